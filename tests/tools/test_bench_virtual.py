"""tools/bench/virtual.py runs and reports every row (no timing thresholds here)."""

from __future__ import annotations

import json
import subprocess
import sys

from .bench_harness import ROOT


def test_quick_json_has_every_row():
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "bench" / "virtual.py"), "--quick",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["name"] for r in out["rows"]] == ["twonode-2n4c", "davydov-2s6c", "epyc-nps4"]
    for r in out["rows"]:
        assert r["virtual"]["mops_per_host_s_median"] > 0
        assert r["deterministic"]["mops_per_host_s_median"] > 0
        assert r["virtual"]["virtual_duration_ns"] > 0
