"""tools/bench/primitives.py runs and reports every row (no timing thresholds here)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "bench" / "primitives.py"

ROWS = {
    "fetch_add", "lock_unlock_nostats", "lock_unlock_nostats_nonrt", "lock_unlock_stats",
    "monotonic_ns", "mem_tuple_call", "page_alloc_free", "page_alloc_free_kasan",
    "page_alloc_free_nosplit", "contended_fetch_add", "contended_lock_unlock_stats",
}
C_ROWS = {"c_fetch_add", "c_ttas_lock_unlock", "c_clock_gettime"}


def _segments() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("slabemu-")}
    except FileNotFoundError:
        return set()


def test_quick_json_has_every_row():
    before = _segments()
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)  # --json prints JSON only

    assert out["host"]["logical_cpus"] >= 1 and out["host"]["machine"]
    rows = {r["name"]: r for r in out["rows"]}
    want = set(ROWS)
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        if not any(n.startswith("C twin") for n in out["notes"]):
            want |= C_ROWS
    assert want <= set(rows), f"missing rows: {sorted(want - set(rows))}"
    for name in want:
        r = rows[name]
        for key in ("median_ns", "min_ns"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["min_ns"] <= r["median_ns"]
        assert r["reps"] >= 1
    for name in ("contended_fetch_add", "contended_lock_unlock_stats"):
        r = rows[name]
        assert r["workers"] == len(os.sched_getaffinity(0))
        assert r["aggregate_mops_median"] > 0
        assert not r.get("lock_stat_violations")
    assert rows["contended_fetch_add"]["counter_ok"]
    if "c_fetch_add" in rows:
        assert out["ratios"]["fetch_add_numba_over_c"] > 0
    assert set(out["targets"]) == {"fetch_add_within_1.2x_of_c", "lock_unlock_nostats_under_10ns"}
    assert _segments() <= before, "shared memory left behind"
