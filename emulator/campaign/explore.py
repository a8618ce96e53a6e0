"""Many deterministic runs of one scenario on one booted machine, and the bounded search.

`Machine` boots the scenario's kernel once, exactly as the runner's deterministic mode
does (run/runner.py: Kernel, policy, kernel build, faults, workload), saves the whole
arena, and runs schedules from that state: each run restores the arena first, so a run
costs a memory copy instead of a boot.  It is what the reproducer search, minimisation
(campaign/minimise.py), the trace and the bounded search use; the campaign's official
runs and `slabemu replay` go through the runner, whose results are the same for the
same schedule (tests/emulator/campaign/test_replay.py).

`bounded_search` is the CHESS-style systematic search (Musuvathi and Qadeer, PLDI 2007:
iterative preemption bounding): every schedule with at most B preemptions, where a
preemption either switches CPUs at a phase boundary inside an op, or preempts the task
there in favour of its CPU's kworker (where the kernel could: a preemption point with
something waiting), and a switch between ops (or away from a CPU that cannot run) is free
and goes to the next CPU in index order (campaign/sched.py, STRAT_BOUNDED).  Simplification: free switches are not branched on
(CHESS would try every CPU there too), so the search covers the preemption choices of one
round-robin order; it terminates because each schedule's preemption points come after the
last preemption taken, and it says how many schedules it ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..machine import structs as S
from ..machine.prng import STREAM_WORKER, seed_stream
from ..run.loop import RET_ABORTED, RET_BATCH, WS_NR, WS_RNG, WS_SCHED_POS, worker_buffers
from .sched import RET_SCHEDULE_END
from .signature import kasan_signature
from .strategies import Strategy

BATCH = 1 << 16


@dataclass
class Outcome:
    """One run on a `Machine`."""
    schedule: np.ndarray  # every step's CPU index
    kasan: list  # the report rows (run/collect.py kasan_rows)
    kasan_total: int
    ret: int
    ops: int
    memcgs: int
    points: np.ndarray | None = None  # bounded: preemption points
    seconds: float = 0.0

    @property
    def signature(self) -> dict | None:
        return kasan_signature(self.kasan[0]) if self.kasan else None


class Machine:
    """A scenario's kernel booted once, restorable to its state before the first step."""

    def __init__(self, sc):
        from topo import load_topology

        from ..kernel.boot import Kernel
        from ..kernel.policy import load_policy
        from ..run.runner import Run, RunOptions, memcg_sizes
        from ..workload.generator import live_cap

        if sc.ops_per_cpu is None:
            from topo import ConfigError
            raise ConfigError(sc.path, "ops_per_cpu", "an op budget in deterministic mode")
        self.sc = sc
        topology = load_topology(sc.topology)
        policy = load_policy(sc.policy)
        max_memcgs, extra = memcg_sizes(sc, topology.nr_cpus)
        self.K = Kernel(topology, sc.allocator, seed=sc.seed,
                        track_full_slabs=policy.track_full_slabs or sc.kernel.slub_debug,
                        live_cap=live_cap(sc.workload.live_objects), max_memcgs=max_memcgs,
                        extra_caches=extra)
        try:
            run = Run(sc, RunOptions(quiet=True))
            self.wp, self.wc = run._setup(self.K, topology, policy)  # the runner's own setup
            k = self.K.mem
            k.ctl[0, S.CTL_NR_WORKERS] = 1
            self.buf = np.frombuffer(self.K.machine.arena._shm.buf, np.uint8)
            self.saved = self.buf.copy()
        except BaseException:
            self.K.close()
            raise
        self.nr_cpus = self.K.nr_cpus
        self.cpus = np.arange(self.nr_cpus, dtype=np.int64)
        self.buffers = worker_buffers(self.K.mem)

    def close(self) -> None:
        self.buf = None
        self.K.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def restore(self) -> None:
        np.copyto(self.buf, self.saved)

    def run(self, strategy: Strategy, max_steps: int = 1 << 40, step_hook=None) -> Outcome:
        """Restore, then step under `strategy` until the run ends, the first KASAN report
        (strategy.stop_at_report), the schedule ends (replay) or `max_steps`.
        `step_hook(pos, k, before)`, when given, is called before and after every step
        (one step per call: slow, for --trace)."""
        from ..run import collect as C

        t0 = time.monotonic()
        self.restore()
        k = self.K.mem
        ws = np.zeros(WS_NR, np.int64)
        ws[WS_RNG] = seed_stream(self.sc.seed, STREAM_WORKER, 0)
        w = strategy.worker(self.sc.seed, 0, self.nr_cpus)
        strategy.workers.clear()
        chunks = []
        sched = np.zeros(BATCH if step_hook is None else 1, np.int64)
        taken = 0
        r = RET_BATCH
        while taken < max_steps:
            n = min(sched.shape[0], max_steps - taken)
            if step_hook is not None:
                step_hook(taken, k, True)
            r = w.loop(k, self.wp, self.wc, self.cpus, ws, sched, n, *self.buffers)
            if step_hook is not None and ws[WS_SCHED_POS]:
                step_hook(taken, k, False)
            chunks.append(sched[:ws[WS_SCHED_POS]].copy())
            taken += int(ws[WS_SCHED_POS])
            ws[WS_SCHED_POS] = 0
            if r != RET_BATCH:
                break
        schedule = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        return Outcome(schedule=schedule, kasan=C.kasan_rows(self.K), kasan_total=C.kasan_count(k),
                       ret=int(r), ops=int(k.wl[:, S.WORKLOAD_OPS].sum()),
                       memcgs=int(k.wl[:, S.WORKLOAD_MEMCGS_CREATED].sum()),
                       points=w.preemption_points() if strategy.name == "bounded" else None,
                       seconds=time.monotonic() - t0)


@dataclass
class BoundedResult:
    bound: int
    explored: int
    outcome: Outcome | None  # the first schedule with a KASAN report, or None
    preemptions: tuple = ()
    seconds: float = 0.0
    complete: bool = True  # False: max_schedules stopped the search first
    per_level: list = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.outcome is not None:
            return (f"finding after {self.explored} schedule(s) with {len(self.preemptions)} "
                    f"preemption(s): {self.outcome.signature['key']}")
        if not self.complete:
            return (f"no finding in the first {self.explored} schedule(s) with at most "
                    f"{self.bound} preemptions (search cut at --max-schedules)")
        return f"no finding within {self.bound} preemptions ({self.explored} schedules explored)"


def bounded_search(machine: Machine, bound: int, max_schedules: int = 100000,
                   deadline: float | None = None) -> BoundedResult:
    """Iterative preemption bounding: all schedules with 0, then 1, ..., `bound`
    preemptions, breadth first; stops at the first schedule with a KASAN report."""
    t0 = time.monotonic()
    explored = 0
    frontier = [()]  # preemption lists whose children are still to be generated
    level = 0
    per_level = []
    base = machine.run(Strategy("bounded"))
    explored += 1
    per_level.append(1)
    if base.kasan:
        return BoundedResult(bound, explored, base, (), time.monotonic() - t0, True, per_level)
    outcomes = {(): base.points}
    n = machine.nr_cpus
    while level < bound:
        nxt = []
        count = 0
        for pre in frontier:
            points = outcomes.pop(pre)
            last = pre[-1][0] if pre else -1
            for step, cur, kernel in points:
                step = int(step)
                if step <= last:
                    continue
                for target in range(n):
                    if target == int(cur) and not kernel:
                        continue  # (cur, cur) is a kernel preemption: only where one can happen
                    if explored >= max_schedules or (deadline and time.monotonic() > deadline):
                        return BoundedResult(bound, explored, None, (), time.monotonic() - t0,
                                             False, per_level + [count])
                    child = pre + ((step, target),)
                    out = machine.run(Strategy("bounded", preemptions=child))
                    explored += 1
                    count += 1
                    if out.kasan:
                        return BoundedResult(bound, explored, out, child, time.monotonic() - t0,
                                             True, per_level + [count])
                    if level + 1 < bound:
                        outcomes[child] = out.points
                        nxt.append(child)
        per_level.append(count)
        frontier = nxt
        level += 1
    return BoundedResult(bound, explored, None, (), time.monotonic() - t0, True, per_level)
