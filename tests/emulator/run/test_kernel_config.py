"""The kernel build decides whether the series' kfree/destroy race exists
(docs/kernel-config.md).  Deterministic runs with fixed seeds, exact expectations:
  - the preemption flavour needs CONFIG_PREEMPT: with preempt = "none" no task is ever
    preempted, with "voluntary" none inside slab_free (no cond_resched() there);
  - the touch that KASAN reports is __slab_free's stat(s, CPU_PARTIAL_FREE): with
    slub_stats = false it does not exist, and no other touch of the destroyed cache
    remains on the paths the model has, for either flavour;
  - slub_debug (kmem_cache_debug(): no cpu partial lists) and SLAB have no such path;
  - with several objects per slab (uaf-multi) no build has one.
The runs use the series' states under Linux 4.0's discard rule (NAME@4.0), where the
race is common; under the posted rule (3.16's test, the presets as shipped) only
v2-no-5-6's parallel path is left, and it needs CONFIG_SLUB_STATS as well
(test_posted_rule_parallel_path_needs_slub_stats).
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from emulator.cli import main
from emulator.kernel.kconfig import DEFAULT, KernelConfig, load_kernel_config
from emulator.run.runner import RunOptions, run_scenario
from emulator.workload.scenario import load_scenario

STAT_PHASE = "__slab_free:stat(CPU_PARTIAL_FREE)"
_RUNS = itertools.count()


def run(name, tmp_path, *, policy="v2-no-5-6@4.0", kernel=DEFAULT, allocator="slub", ops=4000,
        seed=None, faults=None, tag=""):
    sc = load_scenario(name).with_overrides(policy=policy, mode="deterministic",
                                            allocator=allocator, ops_per_cpu=ops, duration=None)
    if seed is not None:
        sc = sc.with_overrides(seed=seed)
    if faults:
        sc = dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, **faults))
    sc = dataclasses.replace(sc, kernel=kernel)
    out = tmp_path / f"{name}-{policy}-{allocator}-{kernel.name}{tag}-{next(_RUNS)}"
    s = run_scenario(sc, RunOptions(out=str(out), progress=False, quiet=True)).summary
    assert s["exit"] == "ok", s["error"]
    assert s["invariants"]["checked"] and s["invariants"]["count"] == 0, s["invariants"]
    assert sum(s["workload"]["live"]) == 0 and s["memcg"]["online"] == 0
    assert s["kernel"] == kernel.to_dict()
    return s


def uafs(s, preempted=None):
    return [r for r in s["kasan"] if r["bug"] == "kmem_cache-use-after-free"
            and (preempted is None or r["preempted"] == preempted)]


def build(**kw):
    return dataclasses.replace(DEFAULT, name="test-" + "-".join(f"{k}{v}" for k, v in kw.items()),
                               **kw)


# -- preemption -----------------------------------------------------------------------------
def test_preemption_flavour_only_with_config_preempt(tmp_path):
    full = run("uaf-race", tmp_path, faults={"race_delay": 0})
    hits = uafs(full, preempted=True)
    assert full["kasan_total"] == 726 and len(hits) == 256  # 256 kept
    assert {r["phase"] for r in hits} == {STAT_PHASE}
    assert full["memcg"]["preemptions"] == 790
    for preempt in ("none", "voluntary"):
        s = run("uaf-race", tmp_path, kernel=build(preempt=preempt), faults={"race_delay": 0})
        assert s["memcg"]["preemptions"] == 0, preempt  # no cond_resched() in slab_free
        assert s["kasan_total"] == 0, preempt
    # patch 6 without 5: the grace period closes the parallel race, and without
    # CONFIG_PREEMPT there is no preemption race to leave open
    assert uafs(run("uaf-race", tmp_path, policy="v2-no-5@4.0"), preempted=True)
    assert run("uaf-race", tmp_path, policy="v2-no-5@4.0", kernel=build(preempt="none"))["kasan_total"] == 0


def test_voluntary_preempts_at_cond_resched_points_only(tmp_path):
    # a voluntary kernel still switches at memcg offline's cond_resched()/might_sleep()
    # points (kmem_cache_shrink, synchronize_sched) when the grace period's callbacks
    # wait (patch 6), but never inside a free: no report; PREEMPT_NONE never switches
    vol = run("uaf-race", tmp_path, policy="v2-no-5@4.0", kernel=build(preempt="voluntary"),
              allocator="slab")
    assert vol["memcg"]["preemptions"] == 85 and vol["kasan_total"] == 0
    none = run("uaf-race", tmp_path, policy="v2-no-5@4.0", kernel=build(preempt="none"),
               allocator="slab")
    assert none["memcg"]["preemptions"] == 0 and none["kasan_total"] == 0


# -- stat() touches ---------------------------------------------------------------------------
def test_stat_touch_only_with_slub_stats(tmp_path):
    # the parallel flavour (no preemption; seed 6 interleaves it): the offline on another
    # CPU destroys the cache while this CPU is between the discard and its stat()
    par = run("uaf-race", tmp_path, seed=6, faults={"preempt": 0.0})
    hits = uafs(par, preempted=False)
    assert len(hits) == par["kasan_total"] == 2
    assert {r["phase"] for r in hits} == {STAT_PHASE}
    assert all(r["freed_by"]["cpu"] != r["cpu"] for r in hits)
    nostats = build(slub_stats=False)
    assert run("uaf-race", tmp_path, kernel=nostats, seed=6, faults={"preempt": 0.0})["kasan_total"] == 0
    # the preemption flavour: preempted as often, and still no touch left to report
    s = run("uaf-race", tmp_path, kernel=nostats, faults={"race_delay": 0})
    assert s["memcg"]["preemptions"] == 118 and s["kasan_total"] == 0
    # a PREEMPT_NONE kernel with SLUB_STATS keeps the parallel flavour
    s = run("uaf-race", tmp_path, kernel=build(preempt="none"), seed=6, faults={"preempt": 0.0})
    assert len(uafs(s, preempted=False)) == s["kasan_total"] == 2


def test_posted_rule_parallel_path_needs_slub_stats(tmp_path):
    # v2-no-5-6 as posted (seed 1): the offline's shrink discards a parked slab and
    # destroys the cache while two frees sit between their discard and stat(); no
    # preemption involved, so PREEMPT_NONE keeps it and no SLUB_STATS removes the touch
    s = run("uaf-race", tmp_path, policy="v2-no-5-6", seed=1)
    assert len(uafs(s, preempted=False)) == s["kasan_total"] == 2
    assert {r["phase"] for r in uafs(s)} == {STAT_PHASE}
    s = run("uaf-race", tmp_path, policy="v2-no-5-6", seed=1, kernel=build(preempt="none"))
    assert len(uafs(s, preempted=False)) == s["kasan_total"] > 0
    s = run("uaf-race", tmp_path, policy="v2-no-5-6", seed=1, kernel=build(slub_stats=False))
    assert s["kasan_total"] == 0


def test_presets_without_slub_stats_report_nothing(tmp_path):
    for name in ("debian-jessie-3.16", "sles12-3.12", "ubuntu-14.04-lowlatency", "fedora-20-debug"):
        k = load_kernel_config(name)
        assert run("uaf-race", tmp_path, kernel=k)["kasan_total"] == 0, name
        assert run("uaf-race", tmp_path, kernel=k, seed=6, faults={"preempt": 0.0},
                   tag="-par")["kasan_total"] == 0, name


def test_slub_debug_has_no_cpu_partial_path(tmp_path):
    # kmem_cache_debug(): no cpu partial lists, so a free that empties a slab takes
    # __slab_free's slab_empty path, whose stat(s, FREE_SLAB) comes before discard_slab
    s = run("uaf-race", tmp_path, kernel=build(slub_debug=True))
    assert s["memcg"]["preemptions"] > 0 and s["kasan_total"] == 0
    stats = [c["stats"] for c in s["caches"] if c["name"].startswith("uaf_obj")]
    assert stats and all(st.get("CPU_PARTIAL_FREE", 0) == 0 for st in stats)


# -- SLAB, multi-object slabs ---------------------------------------------------------------------
def test_slab_has_no_path(tmp_path):
    # __cache_free runs with interrupts off and kmem_cache_destroy's drain_cpu_caches
    # waits for every CPU (on_each_cpu(do_drain, wait=1)): no build opens a window
    for k in (DEFAULT, build(preempt="none")):
        s = run("uaf-race", tmp_path, kernel=k, allocator="slab")
        assert s["kasan_total"] == 0 and s["memcg"]["released"] == s["memcg"]["created"]


@pytest.mark.parametrize("allocator", ["slub", "slab"])
def test_multi_object_slabs_have_no_path(tmp_path, allocator):
    # the last free of a slab holding several objects finds it partial, not full: SLUB
    # takes slab_empty (stat before discard), never put_cpu_partial -> unfreeze_partials
    for seed in (1, 2, 3):
        s = run("uaf-multi", tmp_path, allocator=allocator, seed=seed)
        assert s["kasan_total"] == 0 and s["memcg"]["preemptions"] > 0
        assert s["leaks"]["dead_caches"] == 0


# -- reports name the build -----------------------------------------------------------------------
def test_reports_name_the_build(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["run", "uaf-race", "--policy", "v2-no-5-6@4.0", "--mode", "deterministic",
                 "--ops", "500", "--config",
                 "devel-preempt-stats", "--out", str(out), "--no-progress"])
    text, _ = capsys.readouterr()
    assert code == 0
    line = "devel-preempt-stats: preempt=full, slub_stats=yes, slub_debug=no"
    assert f"kernel     {line}" in text.splitlines()
    assert (out / "kasan.txt").read_text().splitlines()[0] == f"kernel: {line}"
    code = main(["compare", "uaf-race", "--policies", "v2-full", "--mode", "deterministic",
                 "--ops", "300", "--config", "sles12-3.12", "--out", str(tmp_path / "c"),
                 "--no-progress"])
    text, _ = capsys.readouterr()
    assert code == 0
    assert text.splitlines()[1] == "kernel sles12-3.12: preempt=none, slub_stats=no, slub_debug=no"


@pytest.mark.parametrize("argv, expected", [
    (["--config", "no-such-build"], "slabemu: error: command line: --config: expected a .toml file or one of: "),
    (["--config", "./missing.toml"], "slabemu: error: command line: --config: expected an existing config file"),
])
def test_bad_config_option(tmp_path, capsys, argv, expected):
    code = main(["run", "uaf-race", "--mode", "deterministic", "--ops", "100",
                 "--out", str(tmp_path / "o"), *argv])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(expected), err


def test_bad_kernel_table_through_the_cli(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(open(load_scenario("uaf-race").path).read() + '\n[kernel]\npreempt = "lazy"\n')
    code = main(["run", str(path), "--mode", "deterministic", "--ops", "100"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f'slabemu: error: {path}: kernel.preempt: expected "none", "voluntary" or "full", got \'lazy\'\n'
