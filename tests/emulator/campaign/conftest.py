"""Small campaign runs: uaf-race on the 2-CPU machine with fault injection off, where the
bounded search finds v2-no-5-6's parallel use-after-free in about a hundred schedules."""

from __future__ import annotations

import pytest

from emulator.campaign.spec import RunSpec, build_scenario

FAULTS_OFF = (("preempt", 0.0), ("race_delay", 0))


def small_spec(policy="v2-no-5-6@4.0", seed=1, ops=12, strategy="bounded", mode="deterministic",
               topology="twonode-2n2c", **kw) -> RunSpec:
    return RunSpec(scenario="uaf-race", policy=policy, allocator="slub", topology=topology,
                   mode=mode, strategy=strategy, seed=seed, ops=ops, faults=FAULTS_OFF, **kw)


@pytest.fixture(scope="session")
def uaf_finding():
    """(spec, outcome) of the bounded search's finding on the small machine."""
    from emulator.campaign.explore import Machine, bounded_search

    spec = small_spec()
    with Machine(build_scenario(spec)) as m:
        r = bounded_search(m, 2, max_schedules=5000)
    assert r.outcome is not None, r.text
    return spec, r.outcome
