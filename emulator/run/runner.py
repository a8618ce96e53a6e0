"""The runner: a scenario on an emulated machine, in worker processes or in one process.

What it models: the machine running — every emulated CPU executing its workload at
once.  Parallel mode forks one worker per group of emulated CPUs (one CPU per worker up
to the host's CPU count, then grouping; `--workers N` sets it), pins each to its host
CPU per the placement and starts them together at a barrier; inside a worker hosting
several CPUs the interleaving is seeded (emulator/run/loop.py).  Deterministic mode runs
every CPU in this process, one seeded step at a time, and records the schedule.

The parent compiles first (no worker compiles), then samples shared counters every
`sample_interval` seconds without stopping anyone (the stream), shows progress, stops
the run at its duration (ctl.stop), and watches the workers:
  - a worker that dies (exception, signal, SIGKILL) is reported by emulated CPU, task,
    op and phase as its task rows hold them; the others are aborted; partial results
    are written; exit "crashed" (status 1);
  - Ctrl-C aborts every worker, writes partial results, exit "interrupted" (130);
  - no progress for `stall_timeout` seconds aborts the run ("failed"), so the parent
    never hangs; workers that do not leave after an abort are killed;
  - workers die with the parent (PR_SET_PDEATHSIG), and the arena is unlinked on
    every path (emulator/machine/arena.py).
Results (docs/design.md §11): summary.json, stream.msgpack (appended as the run goes),
slabinfo.txt, lock_stat.txt, kasan.txt, run.log (the workers' log records, through
multiprocessing-logging), schedule.bin (deterministic mode: int32 index of the CPU
stepped at each step, in order).
"""

from __future__ import annotations

import ctypes
import json
import resource
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_sentinels
from pathlib import Path

import numpy as np

from topo import ConfigError, load_topology, place

from ..kernel.boot import Kernel
from ..kernel.check import check_kernel
from ..kernel.geometry import kmalloc_slab
from ..kernel.ops import OP_NAMES, OP_NONE, phase_name
from ..kernel.page_alloc import set_fail_injection
from ..kernel.policy import DEAD_CPU_PARTIAL, DISCARD_RULES
from ..machine import structs as S
from ..machine.hostsync import acquire_load, atomic_add, release_store
from ..machine.machine import VIRTUAL_EXTRA_LOCKS
from ..machine.prng import STREAM_WORKER, seed_stream
from ..workload.generator import live_cap, seed_workload, workload_params
from . import collect as C
from .loop import (RET_ABORTED, RET_FINISHED, WS_NR, WS_RNG, WS_SCHED_POS, wait_start, worker_buffers,
                   worker_loop)

log = logging.getLogger("slabemu")

EXIT_STATUS = {"ok": 0, "failed": 1, "crashed": 1, "interrupted": 130}
WORKER_ABORTED = 3  # a worker's exit status when it left because of ctl.abort
BATCH_STEPS = 1 << 16
VIRTUAL_SAMPLE_STEPS = 1 << 15  # virtual mode: steps between two stream snapshots, at least
RET_SCHEDULE_END = 3  # a strategy's loop replayed its whole recorded schedule (campaign/sched.py)
SCHEDULE_CAP = 1 << 16


@dataclass
class RunOptions:
    out: str | None = None
    stop_on_error: bool = False
    progress: bool | None = None  # None: a live bar when stderr is a terminal
    sample_interval: float = 0.5
    check_interval: float = 0.0  # > 0: pause, check every invariant, resume, this often
    stall_timeout: float = 60.0
    start_timeout: float = 120.0
    abort_grace: float = 10.0
    quiet: bool = False
    costs: str | None = None  # virtual mode: a cost file (configs/costs), default xeon-2s-2014
    virtual_sample_ns: int = 50_000  # virtual mode: virtual ns between stream snapshots
    # A schedule exploration strategy for the workers that host several CPUs
    # (emulator/campaign/strategies.py: .worker(seed, index, nr_cpus).loop replaces
    # worker_loop); None: worker_loop's seeded uniform choice.
    scheduler: object | None = None


def _loop_for(scheduler, seed: int, index: int, nr_cpus: int):
    """The stepping function of worker `index`: worker_loop, or the strategy's."""
    if scheduler is None or nr_cpus < 2:
        return worker_loop
    return scheduler.worker(seed, index, nr_cpus).loop


@dataclass
class WorkerPlan:
    cpus: list[int]  # emulated CPU indices (positions in the topology)
    host_cpu: int | None  # None: not pinned (deterministic mode runs in this process)


@dataclass
class RunResult:
    summary: dict
    out: Path
    exit_code: int
    violations: list[str] = field(default_factory=list)


# -- planning ------------------------------------------------------------------------------
def plan_workers(topology, placement, workers: int, mode: str) -> list[WorkerPlan]:
    """Emulated CPUs per worker process and the host CPU each is pinned to.

    One worker per emulated CPU, pinned where the placement says, when `workers` is the
    number of emulated CPUs (the default up to the host's CPU count).  With fewer, the
    emulated CPUs the placement puts on one host CPU share a worker pinned there: the
    placement is honoured either way.  When `workers` differs from the number of host
    CPUs the placement uses, neighbouring host CPUs' groups are merged (fewer workers) or
    a host CPU's group is split between several workers pinned to it (more)."""
    n = topology.nr_cpus
    if mode in ("deterministic", "virtual"):
        return [WorkerPlan(list(range(n)), None)]
    if workers <= 0:
        workers = min(n, len(placement.host_cpus))
    workers = max(1, min(workers, n))
    if workers == n:
        return [WorkerPlan([i], placement.mapping[i]) for i in range(n)]
    by_host: dict[int, list[int]] = {}
    for i, h in enumerate(placement.mapping):
        by_host.setdefault(h, []).append(i)
    groups = [(h, cpus) for h, cpus in sorted(by_host.items())]
    while len(groups) > workers:  # merge the two smallest neighbours
        j = min(range(len(groups) - 1), key=lambda x: len(groups[x][1]) + len(groups[x + 1][1]))
        groups[j:j + 2] = [(groups[j][0], sorted(groups[j][1] + groups[j + 1][1]))]
    while len(groups) < workers:  # split the largest group; both halves stay on its host
        j = max(range(len(groups)), key=lambda x: len(groups[x][1]))
        h, cpus = groups[j]
        half = len(cpus) // 2
        groups[j:j + 1] = [(h, cpus[:half]), (h, cpus[half:])]
    return [WorkerPlan(cpus, h) for h, cpus in groups]


def apply_policy(k, policy) -> None:
    """The series' switches into the kernel's config vector (read by jitted code)."""
    # slub.py's TRACK_FULL_*: memcg caches list full slabs (2), or only keep no cpu
    # partial list (3); slub_debug (apply_kernel_config) makes it every cache (1)
    k.config[S.CONFIG_TRACK_FULL_SLABS] = 2 if policy.track_full_slabs else \
        3 if policy.memcg_no_cpu_partial else 0
    k.config[S.CONFIG_SHRINK_TOLERATES_ENOMEM] = 1 if policy.shrink_tolerates_enomem else 0
    k.config[S.CONFIG_DEAD_CACHES] = 1 if policy.dead_caches == "self-destruct" else 0
    k.config[S.CONFIG_NONPREEMPTIBLE_FREE] = 1 if policy.nonpreemptible_free else 0
    k.config[S.CONFIG_SYNC_BEFORE_DESTROY] = 1 if policy.sync_before_destroy else 0
    k.config[S.CONFIG_DEAD_DISCARD_EMPTY] = 1 if policy.dead_discard_empty else 0
    k.config[S.CONFIG_DISCARD_RULE] = DISCARD_RULES.index(policy.discard_rule)
    k.config[S.CONFIG_DEAD_CPU_PARTIAL] = DEAD_CPU_PARTIAL.index(policy.dead_cpu_partial)


def apply_kernel_config(k, kcfg, policy) -> None:
    """The kernel build into the config vector (emulator/kernel/kconfig.py): the
    preemption model, CONFIG_SLUB_STATS, and slub_debug, under which every SLUB cache is
    a kmem_cache_debug() cache: it lists full slabs and keeps no cpu partial list, as
    the policy's track_full_slabs makes memcg caches (slub.py reads the one word for both)."""
    k.config[S.CONFIG_PREEMPT_MODEL] = kcfg.preempt_model
    k.config[S.CONFIG_SLUB_STATS] = 1 if kcfg.slub_stats else 0
    if kcfg.slub_debug:
        k.config[S.CONFIG_TRACK_FULL_SLABS] = 1


def memcg_sizes(sc, nr_cpus: int) -> tuple[int, int]:
    """memcg rows and spare cache rows for a scenario: every memcg the churn can create
    (or memcg.max_memcgs), and a child cache per memcg and spec, capped (a creation that
    finds no free row leaves the allocations on the root cache, as a failed creation
    does in the kernel)."""
    m = sc.memcg
    if m.lifetime <= 0:
        return 1, 16
    if m.max_memcgs:
        memcgs = m.max_memcgs
    elif sc.ops_per_cpu is not None:
        memcgs = nr_cpus * (sc.ops_per_cpu // m.lifetime + 2)
    else:
        memcgs = 4096
    memcgs = max(1, min(memcgs, 1 << 16))
    return memcgs, min(1024, 16 + memcgs * len(sc.caches))


def prepare_out(out: str | None, scenario_name: str) -> Path:
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("results") / f"{stamp}-{scenario_name}"
        i = 1
        while path.exists():
            i += 1
            path = Path("results") / f"{stamp}-{scenario_name}-{i}"
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ConfigError("command line", "--out", "a directory (new or empty)",
                              f"{out} is a file")
        if path.is_dir() and any(path.iterdir()):
            raise ConfigError("command line", "--out", "a new or empty directory",
                              f"{out} is not empty")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("command line", "--out", "a directory that can be created",
                          f"{out or path}: {e.strerror}") from None
    return path


# -- the worker process ---------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG: a worker must not outlive (and spin after) its parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent_pid:
        os._exit(WORKER_ABORTED)


def _worker_main(k, wp, wc, cpus, host_cpu, seed, index, parent_pid, cpu_ids, scheduler=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent_pid)
    wlog = logging.getLogger("slabemu.worker")
    try:
        if host_cpu is not None:
            os.sched_setaffinity(0, {host_cpu})
        import psutil

        wlog.info("worker %d (pid %d): emulated CPUs %s on host CPU %s, affinity %s", index,
                  os.getpid(), ",".join(str(cpu_ids[c]) for c in cpus), host_cpu,
                  ",".join(str(c) for c in psutil.Process().cpu_affinity()))
        if not wait_start(k, 0):
            sys.exit(WORKER_ABORTED)
        ws = np.zeros(WS_NR, np.int64)
        ws[WS_RNG] = seed_stream(seed, STREAM_WORKER, index)
        schedule = np.zeros(0, np.int64)
        cpus_arr = np.asarray(cpus, np.int64)
        buffers = worker_buffers(k)
        loop = _loop_for(scheduler, seed, index, len(cpus))
        while True:
            r = loop(k, wp, wc, cpus_arr, ws, schedule, BATCH_STEPS, *buffers)
            if r == RET_FINISHED:
                wlog.info("worker %d: finished, %d ops", index,
                          int(sum(k.wl[c, S.WORKLOAD_OPS] for c in cpus)))
                sys.exit(0)
            if r == RET_ABORTED:
                wlog.info("worker %d: aborted", index)
                sys.exit(WORKER_ABORTED)
    except SystemExit:
        raise
    except BaseException:
        wlog.exception("worker %d: failed", index)
        sys.exit(1)


# -- progress -------------------------------------------------------------------------------
class Progress:
    """A live bar on a terminal (rich), plain lines every few seconds otherwise."""

    def __init__(self, enabled: bool | None, total_ops: int | None, duration: float | None,
                 quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.total = total_ops
        self.duration = duration
        self._bar = None
        self._last_line = 0.0
        if self.tty and not quiet:
            from rich.progress import (BarColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn)

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                     transient=True, refresh_per_second=4)
            self._bar.start()
            total = float(total_ops) if total_ops else float(duration or 1.0)
            self._task = self._bar.add_task("slabemu", total=total, rate="")

    def update(self, issued: int, ops: int, elapsed: float) -> None:
        if self.quiet:
            return
        rate = ops / elapsed if elapsed > 0 else 0.0
        if self._bar is not None:
            done = issued if self.total else elapsed
            self._bar.update(self._task, completed=done, rate=f"{rate / 1e6:.2f} Mops/s")
        elif elapsed - self._last_line >= 2.0:
            self._last_line = elapsed
            print(f"slabemu: {elapsed:6.1f} s  {ops} ops  {rate / 1e6:.2f} Mops/s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# -- the run --------------------------------------------------------------------------------
class Run:
    def __init__(self, scenario, options: RunOptions | None = None):
        self.sc = scenario
        self.opt = options or RunOptions()
        self.failure: dict | None = None
        self.error: str | None = None
        self.exit = "ok"
        self.violations: list[str] = []
        self.checked = False
        self.events: list[dict] = []
        self.policy = None
        self.out: Path | None = None
        self.K = None  # the Kernel, once execute() has booted it
        self.wc = None  # the workload spec table (workload_params)
        self.stream = None  # the stream writer, once the start record is written
        self.t0: float | None = None  # the origin of event times
        self.t_start: float | None = None  # when the CPUs started stepping
        self.elapsed_run = 0.0
        self.procs: list = []  # parallel mode: the worker processes
        self.plans: list[WorkerPlan] = []
        self.exits_seen: set[int] = set()  # workers whose exit has been handled
        self.cpu_times: dict | None = None  # parallel mode: the parent's and the workers'
        self.virtual = None  # virtual mode: the VirtualClock (emulator/run/virtual.py)

    # The whole run: returns a RunResult with the exit status.
    def execute(self) -> RunResult:
        from ..kernel.policy import load_policy
        from .warmup import warm_up

        sc = self.sc
        topology = load_topology(sc.topology)
        policy = load_policy(sc.policy)
        self.policy = policy
        placement = place(topology, sc.placement) if sc.mode == "parallel" else None
        plans = plan_workers(topology, placement, sc.workers, sc.mode)
        if sc.mode == "deterministic" and sc.ops_per_cpu is None:
            raise ConfigError(sc.path, "ops_per_cpu",
                              "an op budget in deterministic mode (ops_per_cpu or --ops)")
        costs = None
        if sc.mode == "virtual":
            from ..machine.costs import load_costs

            costs = load_costs(self.opt.costs)  # bad files fail before anything runs
        out = prepare_out(self.opt.out, sc.name)
        self.out = out
        handler = self._start_logging(out)
        stream = C.StreamWriter(out / "stream.msgpack")
        try:
            took = warm_up(allocators=(sc.allocator,), quiet=self.opt.quiet)
            log.info("model compiled or loaded in %.1f s", took)
            max_memcgs, extra_caches = memcg_sizes(sc, topology.nr_cpus)
            with Kernel(topology, sc.allocator, seed=sc.seed,
                        track_full_slabs=sc.kernel.slub_debug,
                        live_cap=live_cap(sc.workload.live_objects), max_memcgs=max_memcgs,
                        extra_caches=extra_caches,
                        # slub_debug's flags are in SLUB_NEVER_MERGE (kernel/merge.py)
                        slab_nomerge=sc.kernel.slab_nomerge or sc.kernel.slub_debug,
                        extra_locks=VIRTUAL_EXTRA_LOCKS if sc.mode == "virtual" else 0) as K:
                self.K = K
                wp, wc = self._setup(K, topology, policy)
                self.wc = wc
                stream.write({"type": "start", "scenario": sc.name, "topology": topology.name,
                              "allocator": sc.allocator, "policy": policy.name, "mode": sc.mode,
                              "seed": sc.seed, "cpus": list(K.cpu_ids),
                              "nodes": list(K.node_ids),
                              "workers": [p.cpus for p in plans], "host": C.host_info()})
                self.stream = stream
                t0 = time.monotonic()
                self.t0 = t0
                try:
                    if sc.mode == "deterministic":
                        self._run_inline(K, wp, wc, plans[0])
                    elif sc.mode == "virtual":
                        self._run_virtual(K, wp, wc, topology, costs)
                    else:
                        self._run_parallel(K, wp, wc, plans)
                except KeyboardInterrupt:
                    self.exit = "interrupted"
                    self.error = "interrupted (Ctrl-C)"
                    self._abort_workers()
                return self._finish(K, topology, policy, plans, placement, stream, out)
        finally:
            stream.close()
            self._stop_logging(handler)

    def _setup(self, K, topology, policy):
        sc = self.sc
        k = K.mem
        rows = []
        for spec in sc.caches:
            if spec.kmalloc:
                rows.append(K.cache(kmalloc_slab(spec.size, K.mp, sc.allocator)))
            else:
                rows.append(K.kmem_cache_create(spec.name, spec.size, align=spec.align))
        apply_policy(k, policy)
        apply_kernel_config(k, sc.kernel, policy)
        f = sc.faults
        k.config[S.CONFIG_PREEMPT_PPM] = round(f.preempt * 1_000_000)
        k.config[S.CONFIG_RACE_DELAY_SPINS] = f.race_delay
        k.config[S.CONFIG_FAIL_SHRINK_ALLOC] = 1 if f.shrink_alloc_fail else 0
        # SLAB's per-CPU reap timers (mm/slab.c start_cpu_timer), on unless the scenario
        # turns them off; the machine clock they run on (kernel/jiffies.py): steps in
        # deterministic mode, wall time in parallel mode
        k.config[S.CONFIG_CACHE_REAP] = 1 if (sc.allocator == "slab" and sc.workload.cache_reap) else 0
        # the machine clock (kernel/jiffies.py): steps, virtual ns (-1) or wall time (0)
        k.config[S.CONFIG_STEP_NS] = (sc.workload.step_ns if sc.mode == "deterministic"
                                      else -1 if sc.mode == "virtual" else 0)
        if sc.faults.page_alloc_fail > 0:
            ppm = max(1, round(sc.faults.page_alloc_fail * 1_000_000))
            nodes = sc.faults.nodes or tuple(K.node_ids)
            for nid in nodes:
                z = K.node_ids.index(nid)
                set_fail_injection(k, z, ppm=ppm, seed=sc.seed)
        seed_workload(k, sc.seed)
        wp, wc = workload_params(sc, rows, sc.ops_per_cpu)
        k.ctl[0, :] = 0
        k.ctl[0, S.CTL_STOP_ON_ERROR] = 1 if self.opt.stop_on_error else 0
        k.ctl[0, S.CTL_CLOCK_BASE_NS] = time.monotonic_ns()  # jiffies 0 (wall clock)
        return wp, wc

    # -- logging -----------------------------------------------------------------------------
    def _start_logging(self, out: Path):
        handler = logging.FileHandler(out / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(processName)s %(name)s "
                                               "%(levelname)s %(message)s"))
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.propagate = False
        return handler

    def _stop_logging(self, handler) -> None:
        """Close run.log with every record in it: the parent's last lines (run ended: ...)
        may still sit in the multiprocessing handler's queue, so that handler is closed
        first (its close drains the queue into run.log), then the file."""
        import multiprocessing_logging

        for h in list(log.handlers):
            if isinstance(h, multiprocessing_logging.MultiProcessingHandler):
                log.removeHandler(h)
                h.close()  # drains its queue into `handler`, then closes it
        log.removeHandler(handler)
        handler.close()

    # -- deterministic mode ------------------------------------------------------------------
    def _run_inline(self, K, wp, wc, plan: WorkerPlan) -> None:
        k = K.mem
        sc = self.sc
        k.ctl[0, S.CTL_NR_WORKERS] = 1
        ws = np.zeros(WS_NR, np.int64)
        ws[WS_RNG] = seed_stream(sc.seed, STREAM_WORKER, 0)
        schedule = np.zeros(SCHEDULE_CAP, np.int64)
        cpus = np.asarray(plan.cpus, np.int64)
        buffers = worker_buffers(k)
        loop = _loop_for(self.opt.scheduler, sc.seed, 0, len(plan.cpus))
        progress = Progress(self.opt.progress, (sc.ops_per_cpu or 0) * K.nr_cpus or None,
                            sc.duration, self.opt.quiet)
        self.t_start = time.monotonic()
        last_sample = self.t_start
        last_check = self.t_start
        try:
            with open(self.out / "schedule.bin", "wb") as sched_file:
                while True:
                    r = loop(k, wp, wc, cpus, ws, schedule, SCHEDULE_CAP, *buffers)
                    sched_file.write(schedule[:ws[WS_SCHED_POS]].astype("<i4").tobytes())
                    ws[WS_SCHED_POS] = 0
                    now = time.monotonic()
                    elapsed = now - self.t_start
                    if now - last_sample >= self.opt.sample_interval:
                        last_sample = now
                        self.stream.write(C.snapshot(K, elapsed))
                    progress.update(int(k.wl[:, S.WORKLOAD_ISSUED].sum()),
                                    int(k.wl[:, S.WORKLOAD_OPS].sum()), elapsed)
                    if self.opt.check_interval > 0 and now - last_check >= self.opt.check_interval:
                        last_check = now
                        self._check_quiescent(K)  # between batches: nothing runs
                    if sc.duration is not None and elapsed >= sc.duration and k.ctl[0, S.CTL_STOP] == 0:
                        k.ctl[0, S.CTL_STOP] = 1
                        self._event("stop", reason="duration")
                    if r == RET_FINISHED or r == RET_SCHEDULE_END:
                        break
                    if r == RET_ABORTED:
                        self._aborted(k)
                        break
        finally:
            progress.close()
            self.elapsed_run = time.monotonic() - self.t_start

    def _aborted(self, k) -> None:
        """A loop stopped early: with --stop-on-error a KASAN report stopped it (the
        control word's error flag), and the run failed."""
        if k.ctl[0, S.CTL_ERROR]:
            self.exit = "failed"
            self.error = "a KASAN report with --stop-on-error"

    # -- virtual mode ------------------------------------------------------------------------
    def _run_virtual(self, K, wp, wc, topology, costs) -> None:
        """Every CPU in this process in virtual time (emulator/run/virtual.py).  Stream
        snapshots are taken at virtual times (`t` in virtual seconds); a duration is in
        virtual seconds too."""
        from .virtual import RET_ABORTED as V_ABORTED, RET_FINISHED as V_FINISHED, VirtualClock

        k = K.mem
        sc = self.sc
        k.ctl[0, S.CTL_NR_WORKERS] = 1
        vt = VirtualClock(K, topology, costs, sc.seed)
        self.virtual = vt
        progress = Progress(self.opt.progress, (sc.ops_per_cpu or 0) * K.nr_cpus or None,
                            None, self.opt.quiet)
        period = max(1, int(self.opt.virtual_sample_ns))
        samples = 0
        last_steps = 0
        next_sample = period
        stop_at = int(sc.duration * 1e9) if sc.duration is not None else 0
        self.t_start = time.monotonic()
        try:
            while True:
                r = vt.run(wp, wc, BATCH_STEPS, stop_at, next_sample)
                if vt.now >= next_sample:
                    # a snapshot every `period` virtual ns, but not before VIRTUAL_SAMPLE_STEPS
                    # steps since the last one (a snapshot costs ms of Python with many
                    # caches); both are deterministic, so the stream is too
                    if int(vt.vs[1]) - last_steps >= VIRTUAL_SAMPLE_STEPS:
                        self.stream.write(C.snapshot(K, vt.now / 1e9))
                        last_steps = int(vt.vs[1])
                        samples += 1
                        if samples % 200 == 0:  # keep the stream short on long runs
                            period *= 2
                    next_sample = vt.now + period
                if stop_at and vt.now >= stop_at and k.ctl[0, S.CTL_STOP] == 1 and \
                        not any(e["event"] == "stop" for e in self.events):
                    self._event("stop", reason="duration", virtual_ns=vt.now)
                progress.update(int(k.wl[:, S.WORKLOAD_ISSUED].sum()),
                                int(k.wl[:, S.WORKLOAD_OPS].sum()), time.monotonic() - self.t_start)
                if r == V_FINISHED:
                    break
                if r == V_ABORTED:
                    self._aborted(k)
                    break
        finally:
            progress.close()
            vt.finish()
            self.elapsed_run = time.monotonic() - self.t_start

    def _virtual_summary(self, summary: dict, K) -> None:
        """Virtual mode: times in virtual ns; nothing that depends on the host, so the
        same scenario, seed and cost file give the same summary.json anywhere.  What
        does (the host, the wall time, the commit) goes to host.json."""
        vt = self.virtual
        end = vt.end
        host = {"host": summary.pop("host"), "cpu_times": summary.pop("cpu_times"),
                "commit": summary.pop("commit"), "wall_s": round(self.elapsed_run, 6),
                "scenario_path": summary["scenario_path"]}
        summary["scenario_path"] = Path(summary["scenario_path"]).name
        summary["duration_s"] = round(end / 1e9, 9)
        total = summary["ops"]["total"]
        summary["ops"]["per_second"] = round(total * 1e9 / end, 1) if end > 0 else 0.0
        per_cpu = summary["ops"]["per_cpu"]
        summary["virtual"] = {
            "costs": vt.costs.to_dict(),
            "duration_ns": end,
            "ops_per_second_per_cpu": [round(o * 1e9 / c, 1) if c > 0 else 0.0
                                       for o, c in zip(per_cpu, vt.busy_until())],
            **vt.breakdown(),
        }
        (self.out / "host.json").write_text(json.dumps(host, indent=2) + "\n")

    def _check_quiescent(self, K) -> None:
        """Every invariant at a point where no op is in flight (live objects included)."""
        bad = check_kernel(K.mem, K.nr_cpus, K.nr_nodes, live=C.live_objects(K, self.wc))
        self._event("check", violations=len(bad))
        if bad:
            self.violations += bad
            log.error("invariant check: %d violation(s), first: %s", len(bad), bad[0])

    # -- parallel mode -----------------------------------------------------------------------
    def _run_parallel(self, K, wp, wc, plans: list[WorkerPlan]) -> None:
        import multiprocessing_logging

        k = K.mem
        sc = self.sc
        opt = self.opt
        nworkers = len(plans)
        k.ctl[0, S.CTL_NR_WORKERS] = nworkers
        multiprocessing_logging.install_mp_handler(log)
        ctx = mp.get_context("fork")
        self.procs = []
        self.plans = plans
        for j, plan in enumerate(plans):
            p = ctx.Process(target=_worker_main, name=f"worker-{j}",
                            args=(k, wp, wc, plan.cpus, plan.host_cpu, sc.seed, j, os.getpid(),
                                  K.cpu_ids, opt.scheduler))
            p.start()
            self.procs.append(p)
        progress = Progress(opt.progress, (sc.ops_per_cpu or 0) * K.nr_cpus or None,
                            sc.duration, opt.quiet)
        parent0 = time.process_time()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            self._await_start(k, nworkers)
            if self.exit != "ok":
                return
            # jiffies 0 (kernel/jiffies.py): the start; written before the release below
            k.ctl[0, S.CTL_CLOCK_BASE_NS] = time.monotonic_ns()
            # the last arrival: every worker goes.  A seq_cst add (a release of the parent's
            # setup) paired with wait_start's load_acquire of ctl.start.
            atomic_add(k.ctl, 0, S.CTL_START, 1)
            self.t_start = time.monotonic()
            self._event("start", workers=nworkers)
            self._watch(K, progress)
        except KeyboardInterrupt:
            self._abort_workers()
            raise
        finally:
            progress.close()
            self.elapsed_run = time.monotonic() - self.t_start if self.t_start is not None else 0.0
            self._reap_workers()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            # The runner's own cost: the parent's CPU time (sampling, progress, control)
            # against the workers' (reaped children only: a worker still running at the
            # end would be missing, but every path above reaps or kills them).
            self.cpu_times = {
                "parent_s": round(time.process_time() - parent0, 6),
                "workers_s": round(children.ru_utime + children.ru_stime
                                   - children0.ru_utime - children0.ru_stime, 6)}

    def _await_start(self, k, nworkers: int) -> None:
        deadline = time.monotonic() + self.opt.start_timeout
        while acquire_load(k.ctl, 0, S.CTL_START) < nworkers:  # pairs: wait_start's fetch_add
            if self._check_exits():
                return
            if time.monotonic() > deadline:
                self._fail("failed", "workers did not reach the start barrier in "
                           f"{self.opt.start_timeout:.0f} s")
                return
            time.sleep(0.001)

    def _watch(self, K, progress) -> None:
        k = K.mem
        sc = self.sc
        opt = self.opt
        sentinels = [p.sentinel for p in self.procs]
        last_steps = -1
        last_move = time.monotonic()
        last_check = last_sample = time.monotonic()
        # wake for --check-interval too when it is shorter than the sample interval
        tick = min(opt.sample_interval, opt.check_interval) if opt.check_interval > 0 \
            else opt.sample_interval
        tick = min(tick, 0.05)  # and for the end of the run (ctl.finish)
        abort_at = None
        idle_seen = None
        while True:
            wait_sentinels(sentinels, timeout=tick)
            now = time.monotonic()
            elapsed = now - self.t_start
            if now - last_sample >= opt.sample_interval:
                last_sample = now
                self.stream.write(C.snapshot(K, elapsed))
            progress.update(int(k.wl[:, S.WORKLOAD_ISSUED].sum()), int(k.wl[:, S.WORKLOAD_OPS].sum()),
                            elapsed)
            self._check_exits()
            if all(p.exitcode is not None for p in self.procs):
                return
            if acquire_load(k.ctl, 0, S.CTL_ERROR) and self.exit == "ok":  # pairs: _control's release
                self.exit = "failed"
                self.error = "a KASAN report with --stop-on-error"
                self._event("stop", reason="kasan")
            if k.ctl[0, S.CTL_ABORT]:
                abort_at = abort_at or now
                if now - abort_at > opt.abort_grace:
                    self._kill_workers()
                continue
            if sc.duration is not None and elapsed >= sc.duration and k.ctl[0, S.CTL_STOP] == 0:
                release_store(k.ctl, 0, S.CTL_STOP, 1)  # a flag: wl_issue reads it relaxed
                self._event("stop", reason="duration")
            idle_seen = self._maybe_finish(K, idle_seen)
            if opt.check_interval > 0 and now - last_check >= opt.check_interval \
                    and acquire_load(k.ctl, 0, S.CTL_DONE) == 0:
                last_check = now
                if self._pause(k):
                    self._check_quiescent(K)
                    self.stream.write(C.snapshot(K, now - self.t_start) | {"consistent": True})
                    # release: the checker's reads above are done before any worker resumes
                    # (pairs with _pause's load_acquire of ctl.pause)
                    release_store(k.ctl, 0, S.CTL_PAUSE, 0)
            steps = int(k.wl[:, S.WORKLOAD_STEPS].sum()) + int(k.cpu[:, S.CPU_IPIS_HANDLED].sum())
            if steps != last_steps:
                last_steps, last_move = steps, now
            elif now - last_move > opt.stall_timeout:
                self._fail("failed", f"no progress for {opt.stall_timeout:.0f} s "
                           f"({self._in_flight_text(K)})")

    def _maybe_finish(self, K, idle_seen):
        """The end of a parallel run: every worker done and the whole machine idle, seen
        twice with no step taken in between (a CPU between taking an object from its
        inbox and starting the free would look idle once).  Then ctl.finish."""
        from .loop import global_idle

        k = K.mem
        # acquire, paired with the workers' fetch_add of ctl.done (a release of their rows)
        if acquire_load(k.ctl, 0, S.CTL_DONE) < len(self.procs) or not global_idle(k):
            return None
        mark = (int(k.wl[:, S.WORKLOAD_STEPS].sum()), int(k.cpu[:, S.CPU_IPIS_HANDLED].sum()))
        if idle_seen == mark:
            release_store(k.ctl, 0, S.CTL_FINISH, 1)  # pairs: _control's load_acquire
            return None
        return mark

    def _pause(self, k) -> bool:
        """Ask every worker to pause; True once all have (ctl.pause stays set)."""
        release_store(k.ctl, 0, S.CTL_PAUSE, 1)  # read relaxed by _control (a request)
        deadline = time.monotonic() + 10.0
        # acquire, paired with _pause's fetch_add of ctl.paused: every paused worker's
        # writes (its ops finished) are visible to the checker that reads the tables next
        while acquire_load(k.ctl, 0, S.CTL_PAUSED) < len(self.procs):
            if acquire_load(k.ctl, 0, S.CTL_DONE) > 0 or k.ctl[0, S.CTL_ABORT] or time.monotonic() > deadline \
                    or any(p.exitcode is not None for p in self.procs):
                release_store(k.ctl, 0, S.CTL_PAUSE, 0)
                return False
            time.sleep(0.0005)
        return True

    def _check_exits(self) -> bool:
        """Notice dead workers; True if the run has failed."""
        for j, p in enumerate(self.procs):
            code = p.exitcode
            if code is None or code == 0 or j in self.exits_seen:
                continue
            self.exits_seen.add(j)
            if code == WORKER_ABORTED and self.K.mem.ctl[0, S.CTL_ABORT]:
                continue
            self._worker_died(j, p, code)
        return self.exit != "ok"

    def _worker_died(self, j: int, p, code: int) -> None:
        K = self.K
        tpc = K.cfg.tasks_per_cpu
        plan = self.plans[j]
        cpu = next((c for c in plan.cpus if K.mem.task[c * tpc, S.TASK_OP] != OP_NONE),
                   plan.cpus[0])
        t = cpu * tpc
        op = int(K.mem.task[t, S.TASK_OP])
        phase = int(K.mem.task[t, S.TASK_PHASE])
        if code < 0:
            try:
                reason = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                reason = f"killed by signal {-code}"
        else:
            reason = f"exit status {code}"
        self.failure = {"cpu": K.cpu_ids[cpu], "task": t,
                        "op": OP_NAMES[op] if op < len(OP_NAMES) else str(op),
                        "phase": phase_name(op, phase) if op != OP_NONE else None,
                        "worker_pid": p.pid, "worker": j, "reason": reason}
        where = (f"in {self.failure['op']} phase {self.failure['phase']}" if op != OP_NONE
                 else "between ops")
        self._fail("crashed", f"worker {j} (pid {p.pid}, emulated CPU {K.cpu_ids[cpu]}, task {t}) "
                   f"{reason} {where}")

    def _in_flight_text(self, K) -> str:
        tpc = K.cfg.tasks_per_cpu
        busy = []
        for c in range(K.nr_cpus):
            op = int(K.mem.task[c * tpc, S.TASK_OP])
            if op != OP_NONE:
                busy.append(f"cpu {K.cpu_ids[c]}: {OP_NAMES[op]}/"
                            f"{phase_name(op, int(K.mem.task[c * tpc, S.TASK_PHASE]))}")
        return "; ".join(busy) or "no op in flight"

    def _fail(self, state: str, why: str) -> None:
        if self.exit == "ok":
            self.exit = state
            self.error = why
        log.error("%s", why)
        self._event("failure", state=state, reason=why)
        self.K.mem.ctl[0, S.CTL_ABORT] = 1

    def _abort_workers(self) -> None:
        if self.K is not None and self.K.mem is not None:
            self.K.mem.ctl[0, S.CTL_ABORT] = 1

    def _kill_workers(self) -> None:
        for p in self.procs:
            if p.exitcode is None:
                p.kill()

    def _reap_workers(self) -> None:
        procs = self.procs
        deadline = time.monotonic() + self.opt.abort_grace
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.exitcode is None:
                p.kill()
                p.join(5.0)
        self._check_exits()

    def _event(self, event: str, **kw) -> None:
        now = time.monotonic()
        rec = {"type": "event", "t": round(now - self.t0 if self.t0 is not None else 0.0, 6),
               "event": event, **kw}
        self.events.append(rec)
        if self.stream is not None:
            self.stream.write(rec)

    # -- results -----------------------------------------------------------------------------
    def _finish(self, K, topology, policy, plans, placement, stream, out: Path) -> RunResult:
        sc = self.sc
        k = K.mem
        elapsed = self.elapsed_run
        if self.exit == "ok":
            if all(k.task[c * K.cfg.tasks_per_cpu, S.TASK_OP] == OP_NONE for c in range(K.nr_cpus)):
                self._check_quiescent(K)
                self.checked = True
            if self.violations:
                self.exit = "failed"
                self.error = f"{len(self.violations)} invariant violation(s): {self.violations[0]}"
        if self.virtual is not None:
            elapsed = self.virtual.end / 1e9  # virtual seconds
        stream.write(C.snapshot(K, elapsed))
        ops = C.ops_per_cpu(k)
        total = sum(ops)
        summary = {
            "schema": C.SCHEMA,
            "scenario": sc.name,
            "scenario_path": str(sc.path),
            "allocator": sc.allocator,
            "mode": sc.mode,
            "seed": sc.seed,
            "commit": C.git_commit(),
            "exit": self.exit,
            "error": self.error,
            "duration_s": round(elapsed, 6),
            "topology": {"name": topology.name, "arch": topology.arch,
                         "page_size": topology.page_size, "nodes": topology.nr_nodes,
                         "cpus": topology.nr_cpus},
            "policy": {"name": policy.name, "switches": policy.switches()},
            "kernel": sc.kernel.to_dict(),
            "ops": {"total": total, "per_cpu": ops,
                    "per_second": round(total / elapsed, 1) if elapsed > 0 else 0.0},
            "workload": C.workload_counters(k),
            "faults": sc.faults.to_dict(),
            "workers": {"count": len(plans),
                        "per_worker_cpus": [[K.cpu_ids[c] for c in p.cpus] for p in plans],
                        # where each emulated CPU ran: its worker's host CPU
                        "placement": sorted(({"cpu": K.cpu_ids[c], "host_cpu": p.host_cpu}
                                             for p in plans if p.host_cpu is not None
                                             for c in p.cpus), key=lambda e: e["cpu"])},
            "caches": C.cache_rows(K),
            "locks": C.lock_rows(K),
            "zones": C.zone_rows(K),
            "kasan": C.kasan_rows(K),
            "kasan_total": C.kasan_count(k),
            "leaks": C.leak_summary(K),
            "memcg": C.memcg_summary(K),
            "clock": C.clock_summary(K),
            "cache_reap": C.reap_summary(K),
            "failure": self.failure,
            "invariants": {"checked": self.checked, "violations": self.violations[:50],
                           "count": len(self.violations)},
            "host": C.host_info(),
            "cpu_times": self.cpu_times,
        }
        if sc.mode == "virtual" and self.virtual is not None:
            self._virtual_summary(summary, K)
            elapsed = summary["duration_s"]
        stream.write({"type": "end", "t": round(elapsed, 6), "exit": self.exit})
        self._write_reports(out, summary)
        log.info("run ended: %s (%s ops in %.2f s)", self.exit, total, elapsed)
        return RunResult(summary, out, EXIT_STATUS[self.exit], self.violations)

    def _write_reports(self, out: Path, summary: dict) -> None:
        from ..report.kasan import format_kasan
        from ..report.lockstat import format_lock_stat
        from ..report.slabinfo import format_slabinfo
        from ..report.summary import kernel_line

        (out / "slabinfo.txt").write_text(format_slabinfo(summary["caches"], extended=True))
        (out / "lock_stat.txt").write_text(format_lock_stat(summary["locks"]))
        (out / "kasan.txt").write_text(format_kasan(summary["kasan"], summary["kasan_total"],
                                                    kernel_line(summary)))
        tmp = out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(out / "summary.json")


def run_scenario(scenario, options: RunOptions | None = None) -> RunResult:
    return Run(scenario, options).execute()
