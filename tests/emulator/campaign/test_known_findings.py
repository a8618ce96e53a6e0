"""Findings of the campaigns that point at the model, kept as reproducers.

tests/data/v2-full-rcu-cb-overflow.repro.json: uaf-race under v2-full@4.0, fault injection
off, 4 CPUs, seed 142 with PCT (found by searching seeds x strategies in deterministic
mode).  PCT leaves CPU 1 without steps inside a kmem_cache_free, so the grace period
cannot end, while CPU 3 takes memcg after memcg offline.  Each destroy it queues takes a
call_rcu_sched slot; once its 256 slots (MachineConfig.rcu_cb_cap) are full,
memcontrol.py's queue_destroy schedules the destroy work at once, without a grace
period.  CPU 3 then destroys the cache CPU 1 is still freeing into.  The kernel's
call_rcu never runs out of room, so this is the model's bound and not patch 6's: the test
reports an expected failure (xfail) while the reproducer still shows it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.campaign.repro import load_repro, replay

DATA = Path(__file__).resolve().parents[2] / "data" / "v2-full-rcu-cb-overflow.repro.json"


def test_v2_full_has_no_use_after_free_with_a_starved_cpu():
    """Passes once the model is fixed.  It also passes if a change to the model moved the
    interleaving away from the bug: then search again (docs/campaigns.md, "What the
    uaf-race campaigns show") and replace the file."""
    r = load_repro(DATA)
    summary, kasan, _ = replay(r)
    if summary["kasan_total"]:
        assert summary["policy"]["name"].startswith("v2-full")
        pytest.xfail("known model bug: memcontrol.py queue_destroy destroys at once when the "
                     "CPU's call_rcu_sched list is full (rcu_cb_cap), without a grace period")
