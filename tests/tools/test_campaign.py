"""tools/campaign.py: a bounded campaign over seeds, per build, policy and allocator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_campaign_counts_runs_with_a_report():
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "campaign.py"), "uaf-race",
                        "--policies", "v2-no-5@4.0", "--configs", "devel-preempt-stats,debian-jessie-3.16",
                        "--allocators", "slub", "--seeds", "2", "--ops", "2000", "--jobs", "2",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = {r["config"]: r for r in json.loads(p.stdout)["rows"]}
    dev, deb = rows["devel-preempt-stats"], rows["debian-jessie-3.16"]
    assert dev["runs"] == deb["runs"] == 2 and dev["not_ok"] == deb["not_ok"] == 0
    # patch 6 without 5, under 4.0's discard test (as posted, v2-no-5 has no report): only
    # the preemption flavour, and only with CONFIG_PREEMPT + SLUB_STATS
    assert dev["runs_with_uaf"] == 2 and dev["uaf_parallel"] == 0 and dev["first_seed"] == 1
    assert dev["where"] == ["kmem_cache_free/__slab_free:stat(CPU_PARTIAL_FREE)"]
    assert deb["runs_with_uaf"] == 0 and deb["where"] == [] and deb["first_seed"] is None
