"""The leak report: every count printed, and the verdict."""

from __future__ import annotations

from emulator.report.leaks import format_leaks, has_leak
from tests.emulator.report.summary_example import example_summary


def test_exact_leak_table():
    assert format_leaks(example_summary()["leaks"]).splitlines() == [
        "dead caches alive:             1",
        "  their slabs:                 1",
        "  their objects:              64",
        "  their pages:                 1",
        "memcgs pinned:                 1",
        "leak: 1 dead cache(s) alive holding 1 page(s), 1 memcg(s) pinned",
    ]


def test_no_leak():
    leaks = dict.fromkeys(example_summary()["leaks"], 0)
    assert not has_leak(leaks)
    lines = format_leaks(leaks).splitlines()
    assert len(lines) == 6 and lines[-1] == "no leak: no dead cache is alive"
    assert lines[0] == "dead caches alive:             0"


def test_pinned_memcg_alone_is_a_leak_and_missing_keys_are_skipped():
    leaks = {"dead_caches": 0, "pinned_memcgs": 2}
    assert has_leak(leaks)
    assert format_leaks(leaks).splitlines() == [
        "dead caches alive:             0",
        "memcgs pinned:                 2",
        "leak: 0 dead cache(s) alive, 2 memcg(s) pinned",
    ]
