"""tools/bench/fastpath.py runs and reports every row (no timing thresholds here)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "bench" / "fastpath.py"

ROWS = {
    "slub_direct", "slub_ops", "slub_runner", "slub_flat", "slub_flat_hoisted",
    "slub_direct_kasan", "slub_ops_kasan", "slab_direct", "slab_ops", "slab_direct_kasan",
    "slab_ops_kasan", "py_slub_direct", "py_slub_ops", "py_slab_direct", "py_slab_ops",
}
C_ROWS = {"c_slub", "c_slub_kasan", "c_slab", "c_slab_kasan", "c_slub_nrt_model"}
TARGETS = {
    "slub_direct_at_most_15ns", "slub_ops_at_most_15ns", "slub_direct_200x_python",
    "slub_ops_200x_python", "slub_direct_within_3x_of_c", "slub_ops_within_3x_of_c",
}


def _segments() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("slabemu-")}
    except FileNotFoundError:
        return set()


def test_quick_json_has_every_row():
    before = _segments()
    # ~5 s on a warm numba cache (2-core VM); a cold one compiles the kernel model first
    # (about two minutes there), hence the generous timeout.
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)  # --json prints JSON only

    assert out["host"]["logical_cpus"] >= 1 and out["host"]["machine"]
    rows = {r["name"]: r for r in out["rows"]}
    want = set(ROWS)
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        if not any(n.startswith("C twin") for n in out["notes"]):
            want |= C_ROWS
    assert want <= set(rows), f"missing rows: {sorted(want - set(rows))}; notes: {out['notes']}"
    for name in want:
        r = rows[name]
        for key in ("median_ns", "min_ns"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["min_ns"] <= r["median_ns"]
        assert r["reps"] >= 1 and r["iters"] > 0
    assert out["ratios"]["slub_direct_python_over_numba"] > 0
    if "c_slub" in rows:
        assert out["ratios"]["slub_direct_numba_over_c"] > 0
    assert set(out["targets"]) == TARGETS
    assert all(v is None or isinstance(v, bool) for v in out["targets"].values())
    assert _segments() <= before, "shared memory left behind"
