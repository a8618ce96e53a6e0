"""tools/bench/scaling.py runs through the real runner and reports its rows (no timing
thresholds: scaling is measured by hand, on a machine with enough CPUs)."""

from __future__ import annotations

import json
import subprocess
import sys

from .bench_harness import ROOT, _segments


def test_quick_json_rows():
    before = _segments()
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "bench" / "scaling.py"), "--quick",
                        "--json", "--max-workers", "2"], cwd=ROOT, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    rows = {(r["scenario"], r["workers"]): r for r in out["rows"]}
    assert set(rows) == {("local-fastpath", 1), ("local-fastpath", 2), ("remote-free", 4)}
    for r in rows.values():
        assert r["ops_per_s"] > 0 and 0 < r["efficiency"] and 0 <= r["runner_overhead"] < 1
    assert rows[("local-fastpath", 1)]["efficiency"] == 1.0
    assert out["host"]["logical_cpus"] >= 1
    assert _segments() <= before
