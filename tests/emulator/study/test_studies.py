"""The studies (emulator/study/): small versions of each, checking the direction of what
they report (not the published numbers, which the README compares)."""

from __future__ import annotations

import pytest

from emulator.cli import main
from emulator.study import davydov, reparent, scaling
from emulator.study.common import list_lock_by_node, mean


def test_davydov_dead_frees_take_list_lock_and_cost_more(tmp_path):
    n = 400
    res = davydov.run(tmp_path, objects=n, sizes=(64,))
    r = res["rows"][0]
    live = mean(r["live"]["virtual"]["free_phase_ns"])
    dead = mean(r["dead"]["virtual"]["free_phase_ns"])
    assert dead > 2 * live > 0
    # every dead free goes through free_block under its node's list_lock
    ll, ld = list_lock_by_node(r["live"]), list_lock_by_node(r["dead"])
    for node in (0, 1):
        extra = ld[node]["acquisitions"] - ll[node]["acquisitions"]
        assert extra >= 0.9 * 12 * n
        assert ld[node]["wait_us"] > ll[node]["wait_us"]
    assert r["dead"]["leaks"]["dead_caches"] == 0  # the dead cache destroyed itself
    text = davydov.format_table(res)
    assert "1300" in text and "373" in text  # the published numbers beside ours


def test_scaling_dead_frees_saturate_list_lock(tmp_path):
    res = scaling.run(tmp_path, objects=300, cpus=(1, 4))
    one, four = res["rows"]
    per = lambda r, k: mean(r[k]["virtual"]["free_phase_ns"])
    assert per(four, "dead") > 2 * per(one, "dead")  # waits for the lock
    assert per(four, "live") < 1.5 * per(one, "live")  # per-CPU arrays: no shared lock
    assert "list_lock util" in scaling.format_table(res)


def test_reparent_tracking_costs_list_lock(tmp_path):
    res = reparent.run(tmp_path, ops=1500, topologies=("twonode-2n4c",))
    base, rep = (r["summary"] for r in res["rows"])
    acq = lambda s: sum(n["acquisitions"] for n in list_lock_by_node(s).values())
    assert acq(rep) > 2 * acq(base)
    assert "reparent" in reparent.format_table(res)


def test_study_command_prints_table_and_draws(tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["study", "scaling", "--objects", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dead Mfrees/s" in text and (out / "scaling.png").stat().st_size > 1000


def test_study_bad_cost_file_exit_2(tmp_path, capsys):
    assert main(["study", "davydov", "--costs", "nope", "--out", str(tmp_path / "x")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
