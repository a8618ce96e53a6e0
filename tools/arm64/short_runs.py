"""The short runs of tools/arm64/check: uaf-race and remote-free, deterministic and
parallel, KASAN on (the model's default), each checked against the expectations the
x86_64 suite holds them to (tests/emulator/run/test_memcg_series.py, test_runner.py).

    python tools/arm64/short_runs.py OUT.json [--only deterministic]

Writes one JSON object: per run, its exit, KASAN reports, ops, the failed expectations
(empty when it passed), and for deterministic runs the summary without times, so that
the check can compare the arm64 runs with the same runs on the host: a deterministic
run must give the same summary on both arches, times aside.  Exit status 1 if any
expectation failed.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from emulator.run.runner import RunOptions, run_scenario  # noqa: E402
from emulator.workload.scenario import load_scenario  # noqa: E402

# name, scenario, mode, overrides, faults
RUNS = [
    ("uaf-race/v2-no-5-6/deterministic/parallel-race", "uaf-race", "deterministic",
     {"policy": "v2-no-5-6", "ops_per_cpu": 4000, "seed": 6}, {"preempt": 0.0}),
    ("uaf-race/v2-no-5-6/deterministic/preemption-race", "uaf-race", "deterministic",
     {"policy": "v2-no-5-6", "ops_per_cpu": 4000}, {"race_delay": 0}),
    ("uaf-race/v2-full/parallel", "uaf-race", "parallel",
     {"policy": "v2-full", "ops_per_cpu": 4000}, None),
    ("remote-free/deterministic", "remote-free", "deterministic", {"ops_per_cpu": 2000}, None),
    ("remote-free/parallel", "remote-free", "parallel", {"ops_per_cpu": 2000}, None),
]


def without_times(summary: dict) -> dict:
    """The summary less what a machine or a clock decides (test_runner._without_times)."""
    s = json.loads(json.dumps(summary))
    for key in ("duration_s", "host", "commit", "cpu_times", "out", "results"):
        s.pop(key, None)
    s["ops"].pop("per_second", None)
    for lock in s.get("locks", []):
        for key in [k for k in lock if k.startswith(("waittime_", "holdtime_"))]:
            lock.pop(key)
    return s


def uafs(s, preempted=None):
    return [r for r in s["kasan"] if r["bug"] == "kmem_cache-use-after-free"
            and (preempted is None or r["preempted"] == preempted)]


def expectations(name: str, s: dict) -> list[str]:
    """The failed expectations of one run (the x86_64 tests' asserts, as messages)."""
    bad = []

    def expect(cond, what):
        if not cond:
            bad.append(what)

    expect(s["exit"] == "ok", f"exit {s['exit']}: {s.get('error')}")
    inv = s["invariants"]
    expect(inv["checked"] and inv["count"] == 0, f"invariants: {inv.get('violations')}")
    w = s["workload"]
    expect(sum(w["live"]) == 0, "objects still live at the end")
    expect(sum(w["allocs"]) - sum(w["alloc_failures"]) == sum(w["frees"]) + sum(w["remote_frees"]),
           "allocs - failures != frees + remote frees")
    expect(s["ops"]["total"] > 0, "no op ran")
    if name.startswith("uaf-race"):
        expect(s["memcg"]["online"] == 0, "a memcg is still online")
    if name == "uaf-race/v2-no-5-6/deterministic/parallel-race":
        hits = uafs(s, preempted=False)
        expect(len(hits) == s["kasan_total"] > 0, f"parallel-race reports {len(hits)} of {s['kasan_total']}")
        expect(all(r["freed_by"]["cpu"] != r["cpu"] for r in hits), "a report freed by its own cpu")
        expect(s["memcg"]["preemptions"] == 0, "preemptions with preempt = 0")
    elif name == "uaf-race/v2-no-5-6/deterministic/preemption-race":
        hits = uafs(s, preempted=True)
        expect(bool(hits), f"no preemption-race report ({s['kasan_total']} in all)")
        if hits:
            r = hits[0]
            expect(r["op"] == "kmem_cache_free" and r["phase"] == "__slab_free:stat(CPU_PARTIAL_FREE)",
                   f"report at {r['op']}/{r['phase']}")
            expect(r["freed_by"]["op"] == "kmem_cache_destroy", "not freed by kmem_cache_destroy")
    elif name.startswith("uaf-race/v2-full"):
        expect(s["kasan_total"] == 0, f"v2-full: {s['kasan_total']} KASAN reports")
    elif name.startswith("remote-free"):
        expect(s["kasan_total"] == 0, f"{s['kasan_total']} KASAN reports")
        expect(sum(w["remote_frees"]) > 0, "no remote free")
    return bad


def main(argv: list[str]) -> int:
    out_json = Path(argv[0])
    only = argv[2] if len(argv) > 2 and argv[1] == "--only" else None
    results = {"arch": platform.machine(), "runs": {}}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="slabemu-arm64-") as tmp:
        for name, scenario, mode, over, faults in RUNS:
            if only and mode != only:
                continue
            sc = load_scenario(scenario).with_overrides(mode=mode, duration=None, **over)
            if faults:
                sc = dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, **faults))
            t0 = time.monotonic()
            r = run_scenario(sc, RunOptions(out=str(Path(tmp) / name.replace("/", "-")),
                                            progress=False, quiet=True))
            s = r.summary
            bad = expectations(name, s)
            failed += bool(bad)
            entry = {"mode": mode, "seed": s["seed"], "policy": s.get("policy"),
                     "exit": s["exit"], "kasan_total": s["kasan_total"],
                     "kasan_phases": sorted({f"{k['op']}/{k['phase']}" for k in s["kasan"]}),
                     "ops": s["ops"]["total"], "wall_s": round(time.monotonic() - t0, 1),
                     "failed": bad}
            if mode == "deterministic":
                entry["summary"] = without_times(s)
            results["runs"][name] = entry
            print(f"{name}: {'ok' if not bad else 'FAILED ' + '; '.join(bad)} "
                  f"(exit {s['exit']}, {s['kasan_total']} KASAN, {s['ops']['total']} ops, "
                  f"{entry['wall_s']} s)", flush=True)
    out_json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
