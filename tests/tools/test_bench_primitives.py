"""tools/bench/primitives.py runs and reports every row (no timing thresholds here)."""

from __future__ import annotations

import os

from .bench_harness import run_quick_json

ROWS = {
    "fetch_add", "lock_unlock_nostats", "lock_unlock_nostats_nonrt", "lock_unlock_stats",
    "monotonic_ns", "mem_tuple_call", "page_alloc_free", "page_alloc_free_kasan",
    "page_alloc_free_nosplit", "contended_fetch_add", "contended_lock_unlock_stats",
}
C_ROWS = {"c_fetch_add", "c_ttas_lock_unlock", "c_clock_gettime"}


def test_quick_json_has_every_row():
    out, rows = run_quick_json("primitives.py", ROWS, C_ROWS, timeout=120)
    for name in ("contended_fetch_add", "contended_lock_unlock_stats"):
        r = rows[name]
        assert r["workers"] == len(os.sched_getaffinity(0))
        assert r["aggregate_mops_median"] > 0
        assert not r.get("lock_stat_violations")
    assert rows["contended_fetch_add"]["counter_ok"]
    if "c_fetch_add" in rows:
        assert out["ratios"]["fetch_add_numba_over_c"] > 0
    assert set(out["targets"]) == {"fetch_add_within_1.2x_of_c", "lock_unlock_nostats_under_10ns"}
