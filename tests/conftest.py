"""Fixtures for every test: no shared-memory segment of this process may outlive a test."""

from __future__ import annotations

import os

import pytest

import emulator  # noqa: F401  (sets numba's cache directory before numba is imported)
from emulator.machine.arena import leftover_segments


@pytest.fixture(autouse=True)
def no_leftover_segments():
    # Only segments this test process created (names carry the creator's pid): other
    # processes on the machine (a benchmark, another test run) may hold theirs.
    mine = f"slabemu-{os.getpid()}-"
    before = {n for n in leftover_segments() if n.startswith(mine)}
    yield
    after = {n for n in leftover_segments() if n.startswith(mine)} - before
    assert not after, f"shared memory left behind: {sorted(after)}"


def assert_one_line_config_error(load, spec, field, fragment):
    """load(spec) raises a ConfigError whose message is one line, starting
    "SPEC: FIELD: expected " and containing `fragment`."""
    from topo.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load(spec)
    msg = str(e.value)
    assert msg.startswith(f"{spec}: {field}: expected ") and fragment in msg and "\n" not in msg
