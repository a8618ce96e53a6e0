"""tools/bench/scaling.py runs through the real runner and reports its rows (no timing
thresholds: scaling is measured by hand, on a machine with enough CPUs)."""

from __future__ import annotations

import json

from .bench_harness import _segments, run_bench


def test_quick_json_rows():
    p, stdout, stderr = run_bench("scaling.py", "--quick", "--json", "--max-workers", "2",
                                  timeout=240)
    assert p.returncode == 0, stderr[-2000:]
    out = json.loads(stdout)
    rows = {(r["scenario"], r["workers"]): r for r in out["rows"]}
    assert set(rows) == {("local-fastpath", 1), ("local-fastpath", 2), ("remote-free", 4)}
    for r in rows.values():
        assert r["ops_per_s"] > 0 and 0 < r["efficiency"] and 0 <= r["runner_overhead"] < 1
    assert rows[("local-fastpath", 1)]["efficiency"] == 1.0
    assert out["host"]["logical_cpus"] >= 1
    assert not _segments(p.pid)
