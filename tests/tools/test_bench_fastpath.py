"""tools/bench/fastpath.py runs and reports every row (no timing thresholds here)."""

from __future__ import annotations

from .bench_harness import run_quick_json

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


def test_quick_json_has_every_row():
    # ~5 s on a warm numba cache (2-core VM); a cold one compiles the kernel model first
    # (about two minutes there), hence the generous timeout.
    out, rows = run_quick_json("fastpath.py", ROWS, C_ROWS, timeout=600)
    assert all(r["iters"] > 0 for r in rows.values())
    assert out["ratios"]["slub_direct_python_over_numba"] > 0
    if "c_slub" in rows:
        assert out["ratios"]["slub_direct_numba_over_c"] > 0
    assert set(out["targets"]) == TARGETS
    assert all(v is None or isinstance(v, bool) for v in out["targets"].values())
