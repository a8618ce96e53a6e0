"""A bounded campaign: one scenario run over many seeds, per kernel build, policy and
allocator, counting the runs that find the kfree/destroy use-after-free.

Usage (in the venv; ./tools/campaign runs it there):
  tools/campaign.py SCENARIO --policies v2-no-5-6 --configs devel-preempt-stats,debian-jessie-3.16
                    [--allocators slub,slab] [--seeds 50] [--ops 4000] [--mode deterministic]
                    [--jobs 2] [--fault preempt=0.0] [--json]

Every run is `slabemu run SCENARIO --seed S --ops N --policy P --config K --allocator A`
(seeds 1..--seeds); deterministic runs are exact, so the table is a fact about those
seeds; runs go --jobs at a time in separate processes (parallel-mode runs start their
own workers: use --jobs 1).  A row: runs, runs with a kmem_cache use-after-free, the
reports kept (preempted / not; a run keeps its first 256), the first seed that found
one, the runs that ended with a dead cache alive (a leak), the dead caches left over all
runs and their slabs that were frozen (cpu slabs, cpu partial lists) or parked on
n->partial, and where the touches were.  A policy may be NAME@3.16 or NAME@4.0 (the
preset under that SLUB discard rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_run(job):
    from emulator.kernel.kconfig import load_kernel_config
    from emulator.run.runner import RunOptions, run_scenario
    from emulator.workload.scenario import load_scenario

    scenario, policy, config, allocator, seed, ops, mode, faults = job
    sc = load_scenario(scenario).with_overrides(policy=policy, allocator=allocator, seed=seed,
                                                ops_per_cpu=ops, duration=None, mode=mode)
    sc = dataclasses.replace(sc, kernel=load_kernel_config(config))
    if faults:
        sc = dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, **faults))
    with tempfile.TemporaryDirectory(prefix="slabemu-campaign-") as d:
        s = run_scenario(sc, RunOptions(out=str(Path(d) / "r"), progress=False, quiet=True)).summary
    uaf = [r for r in s["kasan"] if r["bug"] == "kmem_cache-use-after-free"]
    return {"job": job, "exit": s["exit"], "kasan_total": s["kasan_total"],
            "preempted": sum(1 for r in uaf if r["preempted"]),
            "parallel": sum(1 for r in uaf if not r["preempted"]),
            "where": sorted({f"{r['op']}/{r['phase']}" for r in uaf}),
            "preemptions": s["memcg"]["preemptions"], "leaks": s["leaks"]["dead_caches"],
            "frozen": s["leaks"].get("dead_cache_frozen_slabs", 0),
            "parked": s["leaks"].get("dead_cache_node_partial_slabs", 0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario")
    p.add_argument("--policies", default="v2-no-5-6")
    p.add_argument("--configs", default="devel-preempt-stats")
    p.add_argument("--allocators", default="slub")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--ops", type=int, default=4000)
    p.add_argument("--mode", choices=("deterministic", "parallel"), default="deterministic")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                   help="a [faults] field, e.g. preempt=0.0 or race_delay=0")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    faults = {}
    for f in a.fault:
        k, _, v = f.partition("=")
        faults[k] = float(v) if "." in v else int(v)
    split = lambda t: [x for x in t.split(",") if x]  # noqa: E731
    keys = [(pol, cfg, alloc) for pol in split(a.policies) for cfg in split(a.configs)
            for alloc in split(a.allocators)]
    jobs = [(a.scenario, pol, cfg, alloc, seed, a.ops, a.mode, faults)
            for pol, cfg, alloc in keys for seed in range(1, a.seeds + 1)]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        results = list(ex.map(one_run, jobs))
    took = time.monotonic() - t0
    rows = []
    for pol, cfg, alloc in keys:
        rs = [r for r in results if r["job"][1:4] == (pol, cfg, alloc)]
        hit = [r for r in rs if r["preempted"] or r["parallel"]]
        rows.append({"policy": pol, "config": cfg, "allocator": alloc, "runs": len(rs),
                     "runs_with_uaf": len(hit),
                     "uaf_preempted": sum(r["preempted"] for r in rs),
                     "uaf_parallel": sum(r["parallel"] for r in rs),
                     "first_seed": hit[0]["job"][4] if hit else None,
                     "where": sorted({w for r in rs for w in r["where"]}),
                     "not_ok": sum(1 for r in rs if r["exit"] != "ok"),
                     "runs_leaking": sum(1 for r in rs if r["leaks"]),
                     "dead_caches_leaked": sum(r["leaks"] for r in rs),
                     "leaked_slabs_frozen": sum(r["frozen"] for r in rs),
                     "leaked_slabs_on_node_partial": sum(r["parked"] for r in rs)})
    if a.json:
        print(json.dumps({"argv": sys.argv[1:], "seconds": round(took, 1), "rows": rows}, indent=2))
        return 0
    print(f"campaign {a.scenario}: seeds 1-{a.seeds}, {a.ops} ops/cpu, {a.mode} mode"
          + (f", faults {faults}" if faults else "") + f" ({len(jobs)} runs in {took:.0f} s)")
    w = max([11] + [len(r["policy"]) + 1 for r in rows])
    print(f"{'policy':<{w}}{'config':<25}{'alloc':<6}{'runs':>5}{'w/ UAF':>8}{'preempted':>10}"
          f"{'parallel':>9}{'1st seed':>9}{'leaking':>8}{'dead':>7}{'frozen':>7}{'parked':>7}  where")
    for r in rows:
        print(f"{r['policy']:<{w}}{r['config']:<25}{r['allocator']:<6}{r['runs']:>5}"
              f"{r['runs_with_uaf']:>8}{r['uaf_preempted']:>10}{r['uaf_parallel']:>9}"
              f"{(r['first_seed'] or '-'):>9}{r['runs_leaking']:>8}{r['dead_caches_leaked']:>7}"
              f"{r['leaked_slabs_frozen']:>7}{r['leaked_slabs_on_node_partial']:>7}"
              f"  {', '.join(r['where']) or '-'}"
              + (f"  ({r['not_ok']} not ok)" if r["not_ok"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
