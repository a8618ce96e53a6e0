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


def test_reparent_frees_into_one_memcg_cache_and_splits_the_cost(tmp_path):
    res = reparent.run(tmp_path, ops=1500, topologies=("twonode-2n4c",))
    by = {r["policy"]: r["summary"] for r in res["rows"]}
    assert list(by) == ["v2-full", "no-cpu-partial", "reparent"]
    for s in by.values():
        # every CPU's task in one memcg: nearly every allocation from its one child cache
        # (the first on each CPU goes to the root while the child is being created)
        assert s["memcg"]["created"] == 1 and s["memcg"]["child_caches_alive"] == 1
        assert reparent.memcg_share(s) > 0.99
        child = [c for c in s["caches"] if c.get("root") == "kmalloc-256"]
        assert len(child) == 1 and child[0]["name"].startswith("kmalloc-256(")
        assert child[0]["memcg"] is not None and not child[0]["dead"]
    acq = {p: reparent.list_lock_per_op(s)["acq"] for p, s in by.items()}
    ns = {p: reparent.busy_per_op(s) for p, s in by.items()}
    # the policies change the memcg cache's list handling: no cpu partial list puts every
    # partial slab on n->partial under list_lock, the full list adds full slabs' moves
    assert acq["reparent"] > acq["no-cpu-partial"] > 2 * acq["v2-full"] > 0
    assert ns["reparent"] > ns["no-cpu-partial"] > ns["v2-full"] > 0
    text = reparent.format_table(res)
    assert "no-cpu-partial" in text and "up to 25%" in text


def test_study_command_prints_table_and_draws(tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["study", "scaling", "--objects", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "dead Mfrees/s" in text and (out / "scaling.png").stat().st_size > 1000


def test_study_bad_cost_file_exit_2(tmp_path, capsys):
    assert main(["study", "davydov", "--costs", "nope", "--out", str(tmp_path / "x")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
