"""Running a benchmark script with --quick --json and checking its rows (no timing
thresholds: benchmarks are measured by hand, tests only check that they run)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _segments(pid: int) -> set[str]:
    """The segments process PID created (arena names are slabemu-<pid>-...); other
    processes on the host (a second test run, a user's run) are not ours to judge."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(f"slabemu-{pid}-")}
    except FileNotFoundError:
        return set()


def run_bench(script: str, *args: str, timeout: int):
    """Run tools/bench/SCRIPT ARGS; returns (the finished process, stdout, stderr).  The
    process is killed if it outlives TIMEOUT seconds."""
    p = subprocess.Popen([sys.executable, str(ROOT / "tools" / "bench" / script), *args],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p, stdout, stderr


def run_quick_json(script: str, rows: set[str], c_rows: set[str], timeout: int):
    """Run tools/bench/SCRIPT --quick --json; check every expected row (the C twin's
    when a compiler exists) is there with positive, finite numbers, and that no shared
    memory segment was left behind.  Returns (the JSON, the rows by name)."""
    p, stdout, stderr = run_bench(script, "--quick", "--json", timeout=timeout)
    assert p.returncode == 0, stderr[-2000:]
    out = json.loads(stdout)  # --json prints JSON only
    assert out["host"]["logical_cpus"] >= 1 and out["host"]["machine"]
    by_name = {r["name"]: r for r in out["rows"]}
    want = set(rows)
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        if not any(n.startswith("C twin") for n in out["notes"]):
            want |= c_rows
    assert want <= set(by_name), f"missing rows: {sorted(want - set(by_name))}; notes: {out['notes']}"
    for name in want:
        r = by_name[name]
        for key in ("median_ns", "min_ns"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["min_ns"] <= r["median_ns"]
        assert r["reps"] >= 1
    assert not _segments(p.pid), "shared memory left behind"
    return out, by_name
