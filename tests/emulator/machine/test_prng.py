"""The PRNG's seeded streams (machine/prng.py): declared once, disjoint, and the stream
numbers runs have always used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import emulator
from emulator.machine import prng as P
from topo.model import MAX_NODES

ROOT = Path(emulator.__file__).resolve().parent


def test_declared_streams_are_disjoint():
    assert P.overlapping_streams(P.STREAMS) == []
    assert len({s.name for s in P.STREAMS}) == len(P.STREAMS)


def test_overlap_is_found():
    a = P.Stream("a", 100, 50, "")
    assert P.overlapping_streams((a, P.Stream("b", 149, 1, ""))) == [("a", "b")]
    assert P.overlapping_streams((a, P.Stream("b", 150, 1, ""))) == []


def test_stream_numbers_are_the_historical_ones():
    """Runs stay byte-identical: each user's state is the one it always had."""
    for seed in (0, 5, 123456789):
        assert P.seed_stream(seed, P.STREAM_SCHED) == P.seed_state(seed, 7)
        assert P.seed_stream(seed, P.STREAM_CPU, 3) == P.seed_state(seed, 1003)
        assert P.seed_stream(seed, P.STREAM_WORKLOAD, 2) == P.seed_state(seed, 5002)
        assert P.seed_stream(seed, P.STREAM_ZONE_FAIL, 1) == P.seed_state(seed, 7001)
        assert P.seed_stream(seed, P.STREAM_WORKER, 4) == P.seed_state(seed, 9004)


def test_a_user_beyond_its_range_is_refused():
    P.seed_stream(1, P.STREAM_WORKLOAD, P.STREAM_WORKLOAD.count - 1)
    with pytest.raises(ValueError, match="workload"):
        P.seed_stream(1, P.STREAM_WORKLOAD, P.STREAM_WORKLOAD.count)
    with pytest.raises(ValueError, match="sched"):
        P.seed_stream(1, P.STREAM_SCHED, 1)


def test_every_zone_has_a_stream():
    assert P.STREAM_ZONE_FAIL.count >= MAX_NODES


def test_states_are_seeded_only_through_the_stream_table():
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in sorted(ROOT.rglob("*.py"))
           if p.name != "prng.py"
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r"\bseed_state\(", line)]
    assert not bad, bad
