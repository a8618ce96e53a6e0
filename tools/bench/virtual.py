"""Virtual-time mode's speed: emulated ops per host second, by machine size.

Runs `remote-free` in virtual mode on 4, 24 and 256 emulated CPUs (twonode-2n4c,
davydov-2s6c, epyc-nps4) with the same total op count, and beside it the same scenario
in deterministic mode (one process, a seeded interleaving, no cost accounting): the
ratio is what the event heap and the cost model cost.  The time is the run's own
(host.json wall_s in virtual mode, summary duration_s in deterministic mode): boot and
report writing are left out.  Medians over --reps runs.

    .venv/bin/python tools/bench/virtual.py [--quick] [--json] [--reps N] [--total-ops N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib  # noqa: F401  (sys.path and the numba cache directory first)
from benchlib import host_info, progress_log, run_and_report

from emulator.run.runner import RunOptions, run_scenario
from emulator.run.warmup import warm_up
from emulator.workload.scenario import load_scenario

TOPOLOGIES = (("twonode-2n4c", 4), ("davydov-2s6c", 24), ("epyc-nps4", 256))


def _one(topology: str, mode: str, ops_per_cpu: int, tmp: Path, i: int) -> tuple[float, int, int]:
    sc = load_scenario("remote-free").with_overrides(topology=topology, mode=mode,
                                                      ops_per_cpu=ops_per_cpu)
    out = tmp / f"{topology}-{mode}-{i}"
    r = run_scenario(sc, RunOptions(out=str(out), progress=False, quiet=True))
    if r.exit_code != 0:
        raise SystemExit(f"{topology} {mode}: {r.summary.get('error')}")
    wall = json.loads((out / "host.json").read_text())["wall_s"] if mode == "virtual" \
        else r.summary["duration_s"]
    return wall, r.summary["ops"]["total"], r.summary.get("virtual", {}).get("duration_ns", 0)


def run(reps: int, total_ops: int, log) -> dict:
    warm_up(quiet=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for topo, ncpu in TOPOLOGIES:
            per_cpu = max(100, total_ops // ncpu)
            res = {}
            for mode in ("virtual", "deterministic"):
                rates, vns = [], 0
                for i in range(reps):
                    wall, ops, vns = _one(topo, mode, per_cpu, tmp, i)
                    rates.append(ops / wall)
                    log(f"{topo} {mode} rep {i}: {ops} ops in {wall:.2f} s")
                res[mode] = {"ops": ops, "mops_per_host_s_median": round(statistics.median(rates) / 1e6, 3),
                             "all": [round(x / 1e6, 3) for x in rates]}
                if mode == "virtual":
                    res[mode]["virtual_duration_ns"] = vns
            rows.append({"name": topo, "cpus": ncpu, "ops_per_cpu": per_cpu, **res,
                         "virtual_over_deterministic": round(
                             res["virtual"]["mops_per_host_s_median"] /
                             res["deterministic"]["mops_per_host_s_median"], 3)})
    return {"host": host_info(), "reps": reps, "total_ops": total_ops, "rows": rows}


def print_table(out: dict) -> None:
    print(f"{'topology':<14} {'cpus':>5} {'virtual Mops/s':>15} {'determ. Mops/s':>15} {'ratio':>6}")
    for r in out["rows"]:
        print(f"{r['name']:<14} {r['cpus']:>5} {r['virtual']['mops_per_host_s_median']:>15.3f} "
              f"{r['deterministic']['mops_per_host_s_median']:>15.3f} "
              f"{r['virtual_over_deterministic']:>6.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one rep, 100k ops per topology")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--total-ops", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    reps, total = (1, 100_000) if args.quick else (args.reps, args.total_ops)
    return run_and_report(lambda: run(reps, total, progress_log(args.json)), args.json, print_table)


if __name__ == "__main__":
    sys.exit(main())
