#!/usr/bin/env python3
"""Scaling of the parallel runner: aggregate ops/s with 1, 2, 4, ... host-CPU workers.

For each worker count N (one worker per host CPU, one emulated CPU per worker) it runs
`local-fastpath` on a one-node machine of N CPUs and `remote-free` on a two-node machine
of N CPUs (N >= 4: its frees go to another CPU of the node and to the other node, so
each node needs two CPUs), each for --duration seconds
through the real runner (emulator.run.runner), and prints:

  ops/s            aggregate kernel ops per second (allocations and frees completed)
  per worker       ops/s / N
  efficiency       ops/s(N) / (N * ops/s(base)) with base = the smallest N run
                   (1 for local-fastpath, 4 for remote-free)
  runner overhead  the parent's CPU time (sampling, progress, control) over the
                   workers' CPU time

Targets (docs/design.md §13): local-fastpath efficiency >= 0.9 at every N, runner
overhead < 2%.
Each point is the median of --reps runs.  Workers are pinned with the `scatter`
placement by default: one per physical core before any SMT sibling is used, so that up
to the number of cores a point measures the emulator, not two hyperthreads sharing a
core (--placement compact pins worker i to the i-th allowed CPU).  Usage:
  tools/bench/scaling.py [--max-workers N] [--duration S] [--reps R]
                         [--placement scatter|compact] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import host_info  # first: the repository root on sys.path


def topology_toml(nodes: int, cpus: int, mib_per_node: int = 64, cache_line: int = 64) -> str:
    """A machine of `cpus` CPUs split evenly over `nodes` nodes."""
    per = cpus // nodes
    lines = ['description = "scaling benchmark machine"', 'arch = "%s"' % (
        "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"),
        "page_size = 4096", f"cache_line = {cache_line}"]
    if nodes > 1:
        rows = ", ".join("[" + ", ".join("10" if i == j else "20" for j in range(nodes)) + "]"
                         for i in range(nodes))
        lines.append(f"distances = [{rows}]")
    for n in range(nodes):
        lo, hi = n * per, n * per + per - 1 if n < nodes - 1 else cpus - 1
        lines += ["", "[[node]]", f"id = {n}", f'cpus = "{lo}-{hi}"' if hi > lo else f'cpus = "{lo}"',
                  f'memory = "{mib_per_node}MiB"']
    return "\n".join(lines) + "\n"


def one_run(scenario: str, nodes: int, n: int, duration: float, tmp: Path,
            placement: str, cache_line: int) -> dict:
    from emulator.run.runner import RunOptions, run_scenario
    from emulator.workload.scenario import load_scenario

    topo = tmp / f"scaling-{nodes}n{n}c.toml"
    topo.write_text(topology_toml(nodes, n, cache_line=cache_line))
    sc = load_scenario(scenario).with_overrides(topology=str(topo), workers=n, duration=duration,
                                                ops_per_cpu=None, placement=placement)
    out = Path(tempfile.mkdtemp(dir=tmp))
    res = run_scenario(sc, RunOptions(out=str(out), progress=False, quiet=True))
    s = res.summary
    if s["exit"] != "ok":
        raise SystemExit(f"scaling: {scenario} with {n} workers ended {s['exit']}: {s['error']}")
    ct = s["cpu_times"] or {"parent_s": 0.0, "workers_s": 1.0}
    return {"ops_per_s": s["ops"]["per_second"],
            "overhead": ct["parent_s"] / ct["workers_s"] if ct["workers_s"] > 0 else 0.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--placement", choices=("scatter", "compact"), default="scatter",
                    help="how workers are pinned (default: scatter, physical cores first)")
    ap.add_argument("--cache-line", type=int, default=64, choices=(32, 64, 128, 256),
                    help="the emulated machine's cache line, which per-CPU rows are padded to")
    ap.add_argument("--quick", action="store_true", help="one short run per point (smoke test)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.reps = 0.5, 1
    import emulator  # noqa: F401  (numba's cache directory)
    from emulator.run.warmup import warm_up

    warm_up()
    counts = []
    n = 1
    while n <= args.max_workers:
        counts.append(n)
        n *= 2
    if counts[-1] != args.max_workers:
        counts.append(args.max_workers)
    rows = []
    with tempfile.TemporaryDirectory(prefix="slabemu-scaling-") as tmpdir:
        tmp = Path(tmpdir)
        for scenario, nodes, first in (("local-fastpath", 1, 1), ("remote-free", 2, 4)):
            base = None
            # --quick is a smoke test: remote-free runs once, at 4 workers even on a
            # smaller host (oversubscribed)
            points = [n for n in counts if n >= first] or ([first] if args.quick else [])
            for n in points:
                runs = [one_run(scenario, nodes, n, args.duration, tmp, args.placement, args.cache_line)
                        for _ in range(args.reps)]
                ops = statistics.median(r["ops_per_s"] for r in runs)
                over = statistics.median(r["overhead"] for r in runs)
                if base is None:
                    base = (n, ops)
                eff = ops / (n / base[0] * base[1]) if base[1] > 0 else 0.0
                rows.append({"scenario": scenario, "workers": n, "ops_per_s": ops,
                             "per_worker": ops / n, "efficiency": eff, "runner_overhead": over,
                             "reps": args.reps, "duration_s": args.duration,
                             "placement": args.placement})
                if not args.json:
                    print(f"{scenario:15} {n:3} workers  {ops / 1e6:8.2f} Mops/s  "
                          f"{ops / n / 1e6:6.2f} per worker  efficiency {eff:5.2f}  "
                          f"runner {100 * over:5.2f}%", flush=True)
    out = {"host": host_info(), "rows": rows,
           "command": "tools/bench/scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        h = out["host"]
        print(f"host: {h['cpu_model']}, {h['logical_cpus']} logical CPUs on "
              f"{h['physical_cores']} cores ({h['affinity_cpus']} usable), {h['machine']}, "
              f"python {h['python']}, numba {h['numba']}; placement {args.placement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
