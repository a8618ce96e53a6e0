"""One campaign run: its parameters (`RunSpec`), its scenario, and `execute_run`, the one
function every engine calls (in a pool process here, in a Dask worker elsewhere).

Modes:
  parallel       one worker process per emulated CPU (true parallelism; no strategy);
  grouped        two emulated CPUs per worker process (`workers` = CPUs / 2), the strategy
                 picking each worker's next CPU;
  deterministic  every CPU in one process, the strategy picking each step's CPU; the
                 schedule is recorded (schedule.bin), so a finding is replayable.
Strategy `bounded` is a search (campaign/explore.py), deterministic mode only: one run
of the campaign is the whole search for one seed; when it finds something, the finding's
schedule is run once more through the runner, so that the run has a results directory
like any other.

Every run stops at its first KASAN report (--stop-on-error), so a run's duration and op
count are the time and ops to its first finding.  `execute_run` returns a plain dict (the
run's record, and its results directory as file name -> bytes) so that the run can be
executed on another machine; nothing in it depends on the engine.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("parallel", "grouped", "deterministic")


@dataclass(frozen=True)
class RunSpec:
    scenario: str
    policy: str
    allocator: str
    topology: str | None  # None: the scenario's
    mode: str
    strategy: str  # random | pct | bounded; "-" in parallel mode
    seed: int
    ops: int | None = None  # per CPU; None: the scenario's
    faults: tuple = ()  # ((field, value), ...) over the scenario's [faults]
    kernel: str | None = None
    depth: int = 3  # pct: d
    bound: int = 2  # bounded: B
    max_schedules: int = 20000  # bounded: a cap on the search

    @property
    def id(self) -> str:
        parts = [self.scenario.rsplit("/", 1)[-1].removesuffix(".toml"), self.policy,
                 self.allocator, self.topology or "default", self.mode, self.strategy,
                 f"s{self.seed}"]
        if self.faults:
            parts.insert(4, "f" + "_".join(f"{k}{v}" for k, v in self.faults))
        return "-".join(str(p).replace("/", "_") for p in parts)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["faults"] = dict(self.faults)
        d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["faults"] = tuple(sorted((d.get("faults") or {}).items()))
        return cls(**kw)

    def cpus_needed(self, nr_cpus: int, host_cpus: int) -> int:
        """Host CPUs the run occupies: one per worker process, at most the host's."""
        if self.mode == "deterministic":
            return 1
        workers = nr_cpus if self.mode == "parallel" else max(1, nr_cpus // 2)
        return max(1, min(workers, host_cpus))


def fit_workload(sc, topology):
    """A scenario on a topology with one CPU per node cannot hand frees to another CPU of
    the node: that share goes to another node instead (the minimiser's and the bounded
    search's small machines)."""
    if sc.workload.remote_cpu > 0 and all(len(n.cpus) < 2 for n in topology.nodes):
        w = sc.workload
        sc = dataclasses.replace(sc, workload=dataclasses.replace(
            w, remote_cpu=0.0, remote_node=min(1.0, w.remote_node + w.remote_cpu)))
    return sc


def build_scenario(spec: RunSpec):
    """The scenario a spec runs (validated as `slabemu run` validates its options)."""
    from topo import load_topology

    from ..workload.scenario import load_scenario

    base = load_scenario(spec.scenario)
    topo_name = spec.topology or base.topology
    base = fit_workload(base, load_topology(topo_name))
    kw = {"policy": spec.policy, "allocator": spec.allocator, "seed": spec.seed,
          "mode": "deterministic" if spec.mode == "deterministic" else "parallel"}
    if spec.topology:
        kw["topology"] = spec.topology
    if spec.ops is not None:
        kw["ops_per_cpu"] = spec.ops
        kw["duration"] = None
    if spec.kernel:
        kw["kernel"] = spec.kernel
    sc = base.with_overrides(**kw)
    if spec.faults:
        sc = dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, **dict(spec.faults)))
    if sc.mode == "deterministic" and sc.ops_per_cpu is None:
        from topo import ConfigError
        raise ConfigError(sc.path, "ops_per_cpu", "an op budget for deterministic runs (--ops)")
    return sc


def strategy_for(spec: RunSpec, sc, nr_hosted: int):
    from .strategies import Strategy, pct_steps_estimate

    if spec.mode == "parallel" or spec.strategy in ("-", "bounded"):
        return None if spec.mode == "parallel" or spec.strategy == "-" else Strategy("bounded")
    steps = pct_steps_estimate(sc.ops_per_cpu or 10000, nr_hosted)
    return Strategy(spec.strategy, depth=spec.depth, steps=steps)


def _placement(nr_cpus: int, host_cpus: list[int] | None) -> str | None:
    """Emulated CPU i on host_cpus[i * len // n]: neighbours share a host CPU (grouped
    mode puts them in one worker)."""
    if not host_cpus:
        return None
    h = len(host_cpus)
    return ",".join(f"{i}:{host_cpus[i * h // nr_cpus]}" for i in range(nr_cpus))


def _collect(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def execute_run(spec_d: dict, host_cpus: list[int] | None = None) -> dict:
    """Run one campaign run; returns {"record": ..., "files": {name: bytes}}."""
    from topo import load_topology

    from ..run.runner import RunOptions, run_scenario
    from .signature import run_signatures
    from .strategies import Strategy, pct_bound

    spec = RunSpec.from_dict(spec_d)
    if spec.mode != "deterministic":
        import multiprocessing as mp

        # the runner forks its workers (and multiprocessing-logging needs fork): a Dask
        # worker process may have been started with spawn, which it then passes on
        if mp.get_start_method(allow_none=True) != "fork":
            mp.set_start_method("fork", force=True)
    t0 = time.monotonic()
    sc = build_scenario(spec)
    topology = load_topology(sc.topology)
    n = topology.nr_cpus
    if spec.mode != "deterministic":
        if host_cpus is None:
            host_cpus = sorted(os.sched_getaffinity(0))
        workers = n if spec.mode == "parallel" else max(1, n // 2)
        sc = sc.with_overrides(workers=workers, placement=_placement(n, host_cpus[:workers]))
    record = {"id": spec.id, "spec": spec.to_dict(), "host": os.uname().nodename,
              "host_cpus": host_cpus if spec.mode != "deterministic" else None}
    extra_files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="slabemu-run-") as d:
        out = Path(d) / "r"
        if spec.strategy == "bounded":
            from .explore import Machine, bounded_search

            with Machine(sc) as m:
                res = bounded_search(m, spec.bound, spec.max_schedules)
            record["bounded"] = {"bound": spec.bound, "explored": res.explored,
                                 "complete": res.complete, "per_level": res.per_level,
                                 "preemptions": [list(p) for p in res.preemptions],
                                 "seconds": round(res.seconds, 6), "text": res.text,
                                 "found": res.outcome is not None}
            if res.outcome is None:
                record.update(exit="ok", duration_s=round(res.seconds, 6), ops=None,
                              signatures=[], kasan=None, steps=None,
                              wall_s=round(time.monotonic() - t0, 3))
                return {"record": record, "files": {}}
            strategy = Strategy("replay", replay=res.outcome.schedule)
            found_s, found_ops = res.seconds, res.outcome.ops
        else:
            strategy = strategy_for(spec, sc, n if spec.mode == "deterministic" else 2)
            found_s = found_ops = None
        result = run_scenario(sc, RunOptions(out=str(out), stop_on_error=True, progress=False,
                                             quiet=True, scheduler=strategy))
        s = result.summary
        sched = out / "schedule.bin"
        record.update(
            exit=s["exit"], error=s["error"],
            duration_s=found_s if found_s is not None else s["duration_s"],
            ops=found_ops if found_ops is not None else s["ops"]["total"],
            signatures=run_signatures(s), kasan=s["kasan"][0] if s["kasan"] else None,
            kasan_total=s["kasan_total"],
            steps=(sched.stat().st_size // 4) if sched.exists() else None,
            memcgs=sum(s["workload"]["memcgs_created"]), nr_cpus=n,
            leaks=s["leaks"], wall_s=round(time.monotonic() - t0, 3))
        if spec.strategy == "pct" and strategy is not None:
            # grouped mode builds the workers' state in the workers: rebuild worker 0's
            w = strategy.workers[0] if strategy.workers else strategy.worker(
                spec.seed, 0, n if spec.mode == "deterministic" else 2)
            k = int(strategy.steps)
            record["pct"] = {"depth": spec.depth, "steps_k": k, "cpus_n": w.n,
                             "bound": pct_bound(w.n, k, spec.depth),
                             "change_points": [int(c) for c in w.cps],
                             "priorities": [int(p) for p in w.initial_prio]}
        files = _collect(out)
        files.update(extra_files)
        return {"record": record, "files": files}
