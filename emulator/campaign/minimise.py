"""Minimising a reproducer while its signature still reproduces.

In this order, each step kept only if the finding's signature (campaign/signature.py)
comes out of the run unchanged:
  1. fewer CPUs: the shipped topologies with fewer CPUs than the run's, smallest first;
     the schedule cannot carry over to another machine, so each is searched
     (deterministic seeds x random and pct, then the bounded search with B <= 2 on a
     short op budget);
  2. fewer ops per CPU: the smallest op budget (bisection) under which the same schedule
     still reproduces; fewer ops also means fewer memcgs (one per `memcg.lifetime` ops);
  3. a shorter schedule: delta debugging (Zeller and Hildebrandt, "Simplifying and
     isolating failure-inducing input", TSE 2002; ddmin) over the schedule's steps: a
     schedule without some steps is still a schedule (a CPU chosen at a step where it
     cannot run makes no progress), and a candidate that reports early is cut there;
  4. fewer ops per CPU again, under the shortened schedule.
Simplification: memcgs are not minimised on their own (a smaller memcg table would make
cache creations fail and change the run), only through the op budget.
Each test is a run on a restorable machine (campaign/explore.py): a copy of the arena,
then the steps.  The whole minimisation stops at its time budget, keeping the best so far.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from .explore import Machine, bounded_search
from .spec import RunSpec, build_scenario
from .strategies import Strategy, pct_steps_estimate


def size_of(spec: RunSpec, schedule) -> dict:
    """CPUs, op budget per CPU, ops run, memcgs created and steps of a reproducer."""
    sc = build_scenario(spec)
    with Machine(sc) as m:
        o = m.run(Strategy("replay", replay=np.asarray(schedule, np.int64)))
        return {"cpus": m.nr_cpus, "ops_per_cpu": sc.ops_per_cpu, "ops_run": o.ops,
                "memcgs": o.memcgs, "steps": int(len(schedule)), "topology": sc.topology}


def _reproduces(m: Machine, schedule, key: str):
    """The executed schedule when it reproduces `key`, else None."""
    o = m.run(Strategy("replay", replay=np.asarray(schedule, np.int64)))
    if o.signature and o.signature["key"] == key:
        return o.schedule
    return None


def idle_steps(m: Machine, schedule) -> np.ndarray:
    """A mask of the steps at which the chosen CPU made no progress (nothing it or its
    kworker ran, no IPI taken, no task switch): candidates to drop all at once."""
    from ..machine import structs as S

    schedule = np.asarray(schedule, np.int64)
    idle = np.zeros(len(schedule), bool)
    state = {}

    def mark(k, c):
        return (int(k.wl[c, S.WORKLOAD_STEPS]), int(k.cpu[c, S.CPU_IPIS_HANDLED]),
                int(k.cpu[c, S.CPU_CURRENT]), int(k.wl[c, S.WORKLOAD_ISSUED]))

    def hook(pos, k, before):
        if pos >= len(schedule):
            return
        c = int(m.cpus[schedule[pos] % m.nr_cpus])
        if before:
            state["b"] = mark(k, c)
        else:
            idle[pos] = mark(k, c) == state["b"]

    m.run(Strategy("replay", replay=schedule), step_hook=hook)
    return idle


def ddmin(schedule: np.ndarray, test, deadline: float) -> np.ndarray:
    """Zeller's ddmin over the steps (complements first; each passing test may return a
    shorter schedule, taken at once)."""
    items = np.asarray(schedule, np.int64)
    n = 2
    while len(items) >= 2 and time.monotonic() < deadline:
        chunks = np.array_split(np.arange(len(items)), n)
        reduced = False
        for c in chunks:
            if time.monotonic() >= deadline:
                break
            keep = np.ones(len(items), bool)
            keep[c] = False
            got = test(items[keep])
            if got is not None:
                items = got
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), 2 * n)
    return items


def _smaller_topologies(nr_cpus: int) -> list[str]:
    from topo import load_topology

    out = []
    for p in sorted((Path(__file__).resolve().parents[2] / "configs" / "topologies").glob("*.toml")):
        try:
            t = load_topology(str(p))
        except Exception:  # noqa: BLE001 - a topology this host cannot load is skipped
            continue
        if 2 <= t.nr_cpus < nr_cpus:
            out.append((t.nr_cpus, t.nr_nodes, p.stem))
    return [name for _, _, name in sorted(out)]


def _fewer_ops(spec: RunSpec, schedule, key: str, deadline: float):
    """The smallest op budget under which `schedule` still reproduces (bisection)."""
    sc = build_scenario(spec)
    hi = sc.ops_per_cpu
    lo = 1
    best_spec, best_sched = spec, schedule
    while lo < hi and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        s = dataclasses.replace(spec, ops=mid)
        with Machine(build_scenario(s)) as m:
            got = _reproduces(m, schedule, key)
        if got is not None:
            hi = mid
            best_spec, best_sched = s, got
        else:
            lo = mid + 1
    return best_spec, best_sched


def _fewer_cpus(spec: RunSpec, key: str, nr_cpus: int, deadline: float, seeds: int = 4):
    """A run with the signature on a smaller machine: short op budgets under the bounded
    search first (small and quick), then the spec's budget under random and pct."""
    for topo in _smaller_topologies(nr_cpus):
        tries = [(ops, seed, "bounded") for ops in (12, 30) for seed in (1, 2)]
        tries += [(spec.ops or 0, seed, strat) for seed in range(1, seeds + 1)
                  for strat in ("random", "pct")]
        for ops, seed, strat in tries:
            if time.monotonic() >= deadline:
                return None
            s = dataclasses.replace(spec, topology=topo, seed=seed, ops=ops or None,
                                    mode="deterministic", strategy=strat)
            try:
                sc = build_scenario(s)
            except Exception:  # noqa: BLE001 - the scenario does not fit that machine
                break
            with Machine(sc) as m:
                if strat == "bounded":
                    r = bounded_search(m, 2, max_schedules=3000, deadline=deadline)
                    o = r.outcome
                else:
                    o = m.run(Strategy(strat, depth=spec.depth,
                                       steps=pct_steps_estimate(sc.ops_per_cpu, m.nr_cpus)))
            if o is not None and o.signature and o.signature["key"] == key:
                return s, o.schedule
    return None


def minimise(spec: RunSpec, schedule, key: str, budget: float = 60.0):
    """(spec, schedule, log) of the smallest reproducer found within `budget` seconds."""
    deadline = time.monotonic() + budget
    log = []
    schedule = np.asarray(schedule, np.int64)
    from topo import load_topology

    nr_cpus = load_topology(build_scenario(spec).topology).nr_cpus
    got = _fewer_cpus(spec, key, nr_cpus, time.monotonic() + budget * 0.5)
    if got is not None:
        spec, schedule = got
        log.append(f"cpus: {nr_cpus} -> {load_topology(build_scenario(spec).topology).nr_cpus} "
                   f"({spec.topology}, seed {spec.seed}, {spec.strategy})")
    before = build_scenario(spec).ops_per_cpu
    spec, schedule = _fewer_ops(spec, schedule, key, deadline)
    log.append(f"ops per cpu: {before} -> {spec.ops or before}")
    n0 = len(schedule)
    with Machine(build_scenario(spec)) as m:
        idle = idle_steps(m, schedule)
        if idle.any():  # the steps that did nothing, all at once (kept only if it still reproduces)
            got = _reproduces(m, schedule[~idle], key)
            if got is not None:
                log.append(f"steps: {n0} -> {len(got)} (steps that made no progress dropped)")
                schedule = got
                n0 = len(schedule)
        schedule = ddmin(schedule, lambda s: _reproduces(m, s, key),
                         time.monotonic() + max(1.0, (deadline - time.monotonic()) * 0.8))
    log.append(f"steps: {n0} -> {len(schedule)} (ddmin)")
    before = build_scenario(spec).ops_per_cpu
    spec, schedule = _fewer_ops(spec, schedule, key, deadline + 5.0)
    log.append(f"ops per cpu: {before} -> {spec.ops or before} (after ddmin)")
    return spec, schedule, log
