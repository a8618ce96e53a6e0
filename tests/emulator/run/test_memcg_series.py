"""The dead-cache series, state by state, in both modes (docs/series.md §5 and §6).

Each test runs a shipped scenario (configs/scenarios: memcg-churn, uaf-race,
frozen-leak, shrink-enomem), bounded in ops, under one policy preset, and checks what
that state of the series does to a kernel.  SLUB's discard test decides much of it, so
the v2 states run under the posted rule (3.16's n->nr_partial > s->min_partial, the
presets as shipped) and under the rule Linux 4.0 merged (>=, written NAME@4.0):
  pre-series  dead caches holding objects at offline leak, pinning their memcgs;
  v2-1-3      self-destruction alone: dead caches linger (empty slabs stay cached);
  v2-full     posted rule: a dead cache of one-object slabs keeps one empty slab parked
              on n->partial and lingers; merged rule: every dead cache goes, no memcg
              stays pinned, no KASAN report;
  v2-no-5-6   merged rule: the kfree/destroy use-after-free, through preemption and
              through true parallelism; posted rule: only a parallel path is left (the
              free discards its slab because a parked one is on its node, and the
              offline's shrink then discards that one and drops the last reference);
  v2-no-5     merged rule: the preemption race only; posted rule: none;
  linux-4.0   no leak; the preemption race (no patch 5; a grace period alone);
  v2-rfc-cpu-partial  the frozen-slab leak race: slabs stay frozen on a dead cache's
              cpu partial list (patch 7's check in put_cpu_partial, and 4.0's, close it);
  patch 4     a shrink that cannot allocate its array still drops empty slabs.
Deterministic runs have exact seeds; parallel runs are bounded and assert only what
must hold in every interleaving (or what the fault injection makes certain).
"""

from __future__ import annotations

import dataclasses

import pytest

from emulator.run.runner import RunOptions, run_scenario
from emulator.workload.scenario import load_scenario


def run(name, tmp_path, *, policy, mode="deterministic", allocator="slub", ops=None,
        seed=None, faults=None, tag=""):
    sc = load_scenario(name)
    kw = {"policy": policy, "mode": mode, "allocator": allocator}
    if ops is not None:
        kw.update(ops_per_cpu=ops, duration=None)
    if seed is not None:
        kw["seed"] = seed
    sc = sc.with_overrides(**kw)
    if faults:
        sc = dataclasses.replace(sc, faults=dataclasses.replace(sc.faults, **faults))
    out = tmp_path / f"{name}-{policy}-{mode}-{allocator}{tag}"
    r = run_scenario(sc, RunOptions(out=str(out), progress=False, quiet=True))
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    assert s["invariants"]["checked"] and s["invariants"]["count"] == 0, s["invariants"]
    w = s["workload"]
    assert sum(w["live"]) == 0  # every object was freed
    assert s["memcg"]["online"] == 0  # every memcg went offline
    return s


def uafs(s, preempted=None):
    return [r for r in s["kasan"] if r["bug"] == "kmem_cache-use-after-free"
            and (preempted is None or r["preempted"] == preempted)]


# -- leaks: memcg-churn --------------------------------------------------------------------
@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_pre_series_leaks_dead_caches_for_good(tmp_path, allocator, mode):
    s = run("memcg-churn", tmp_path, policy="pre-series", mode=mode, allocator=allocator,
            ops=12000)
    assert s["leaks"]["dead_caches"] > 0
    assert s["leaks"]["pinned_memcgs"] > 0
    assert s["leaks"]["dead_cache_pages"] > 0
    assert s["kasan_total"] == 0
    # the hierarchy: every CPU's group memcg stays pinned by its leaked children, and its
    # kmem counter holds exactly its children's pages
    m = s["memcg"]
    assert m["groups"] == s["topology"]["cpus"]
    assert m["hierarchy_consistent"]
    assert m["released"] < m["created"] - m["groups"]


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_v2_1_3_dead_caches_linger(tmp_path, allocator, mode):
    s = run("memcg-churn", tmp_path, policy="v2-1-3", mode=mode, allocator=allocator, ops=12000)
    assert s["leaks"]["dead_caches"] > 0
    assert s["leaks"]["pinned_memcgs"] > 0


NO_LEAK = {"dead_caches": 0, "dead_cache_slabs": 0, "dead_cache_objects": 0,
           "dead_cache_pages": 0, "pinned_memcgs": 0, "dead_cache_frozen_slabs": 0,
           "dead_cache_node_partial_slabs": 0}


def dead_caches_alive(s):
    return [c["name"] for c in s["caches"] if c.get("dead")]


@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_v2_full_posted_rule_parks_one_empty_slab_per_big_obj_cache(tmp_path, mode):
    # v2's patch 7 keeps 3.16's n->nr_partial > s->min_partial: a big_obj slab (one
    # object) freed after offline on a node with no partial slab is parked on n->partial
    s = run("memcg-churn", tmp_path, policy="v2-full", mode=mode, ops=12000)
    lk = s["leaks"]
    assert lk["dead_caches"] > 0 and lk["pinned_memcgs"] > 0
    assert lk["dead_cache_frozen_slabs"] == 0
    assert lk["dead_cache_node_partial_slabs"] == lk["dead_cache_slabs"] == lk["dead_caches"]
    assert lk["dead_cache_objects"] == lk["dead_caches"]  # one-object slabs
    assert s["kasan_total"] == 0
    if mode == "deterministic":
        assert lk["dead_caches"] == 20 and lk["dead_cache_pages"] == 160


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_v2_full_merged_rule_leaves_no_dead_cache(tmp_path, allocator, mode):
    # SLAB has no such test: v2-full is the same policy there
    policy = "v2-full@4.0" if allocator == "slub" else "v2-full"
    s = run("memcg-churn", tmp_path, policy=policy, mode=mode, allocator=allocator, ops=12000)
    assert s["leaks"] == NO_LEAK
    assert s["kasan_total"] == 0
    assert s["memcg"]["released"] == s["memcg"]["created"] > 0  # the groups too
    assert s["memcg"]["hierarchy_consistent"]
    assert s["memcg"]["rcu_grace_periods"] > 0  # patch 6 waited before destroying


@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_reparent_tracks_full_slabs_and_costs_list_lock(tmp_path, mode):
    # the rejected alternative: v2-full plus full-slab lists (what re-parenting needs);
    # the invariant checker (in run()) walks n->full; list_lock is taken far more often
    r = run("memcg-churn", tmp_path, policy="reparent@4.0", mode=mode, ops=6000)
    f = run("memcg-churn", tmp_path, policy="v2-full@4.0", mode=mode, ops=6000)
    assert r["leaks"]["dead_caches"] == 0 and r["kasan_total"] == 0

    def acq(s):
        return sum(l["acquisitions"] for l in s["locks"] if l["class"] == "list_lock")
    assert acq(r) > 2 * acq(f)


def test_reparent_cost_split_deterministic(tmp_path):
    # list_lock acquisitions per 1000 ops, exact (deterministic, 12000 ops per CPU):
    # memcg caches without cpu partial lists (no-cpu-partial), then with their full
    # slabs listed as well (reparent); root caches keep their cpu partial lists
    def acq(s):
        return 1000 * sum(l["acquisitions"] for l in s["locks"] if l["class"] == "list_lock") \
            / s["ops"]["total"]
    a = [acq(run("memcg-churn", tmp_path, policy=p, ops=12000))
         for p in ("v2-full", "no-cpu-partial", "reparent")]
    assert [round(x, 2) for x in a] == [59.37, 219.81, 353.30]


def test_memcg_churn_is_deterministic(tmp_path):
    a = run("memcg-churn", tmp_path, policy="v2-1-3", ops=6000, tag="a")
    b = run("memcg-churn", tmp_path, policy="v2-1-3", ops=6000, tag="b")
    for key in ("leaks", "memcg", "ops", "workload", "caches"):
        if key == "ops":
            assert a["ops"]["per_cpu"] == b["ops"]["per_cpu"]
        else:
            assert a[key] == b[key], key


# -- the use-after-free: uaf-race --------------------------------------------------------
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_v2_no_5_6_merged_rule_preemption_race(tmp_path, mode):
    # the freeing CPU is preempted after put_cpu_partial discarded the last slab; its
    # kworker destroys the cache; __slab_free's stat(s, CPU_PARTIAL_FREE) touches it
    s = run("uaf-race", tmp_path, policy="v2-no-5-6@4.0", mode=mode, ops=4000,
            faults={"race_delay": 0})
    hits = uafs(s, preempted=True)
    assert hits, s["kasan_total"]
    r = hits[0]
    assert r["op"] == "kmem_cache_free" and r["phase"] == "__slab_free:stat(CPU_PARTIAL_FREE)"
    assert r["freed_by"]["op"] == "kmem_cache_destroy"
    assert r["cache"].startswith("uaf_obj(")


def test_v2_no_5_6_merged_rule_parallel_race_deterministic(tmp_path):
    # no preemption at all: the offline path on another CPU drops the last reference and
    # destroys the cache while this CPU is still inside kmem_cache_free (its window
    # widened by faults.race_delay).  Seed 6 interleaves that way (exact).
    s = run("uaf-race", tmp_path, policy="v2-no-5-6@4.0", ops=4000, seed=6, faults={"preempt": 0.0})
    hits = uafs(s, preempted=False)
    assert len(hits) == s["kasan_total"] > 0
    assert all(r["freed_by"]["cpu"] != r["cpu"] for r in hits)
    assert s["memcg"]["preemptions"] == 0


def test_v2_no_5_6_merged_rule_parallel_race_parallel(tmp_path):
    # the same through true parallelism: timing decides, so up to three bounded runs
    found = []
    for seed in (1, 2, 3):
        s = run("uaf-race", tmp_path, policy="v2-no-5-6@4.0", mode="parallel", ops=12000, seed=seed,
                faults={"preempt": 0.0}, tag=f"-{seed}")
        assert s["memcg"]["preemptions"] == 0
        found = uafs(s, preempted=False)
        if found:
            break
    assert found
    assert all(r["freed_by"]["cpu"] != r["cpu"] for r in found)


@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
@pytest.mark.parametrize("policy", ["v2-no-5@4.0", "linux-4.0"])
def test_merged_rule_without_patch_5_only_the_preemption_race(tmp_path, mode, policy):
    # v2 without patch 5 under 4.0's rule, and Linux 4.0 itself (slab_free preemptible,
    # a grace period before the destroy): preempted inside kmem_cache_free after
    # put_cpu_partial discarded the last slab
    s = run("uaf-race", tmp_path, policy=policy, mode=mode, ops=4000)
    assert uafs(s, preempted=True)
    assert not uafs(s, preempted=False)
    assert {r["phase"] for r in uafs(s)} == {"__slab_free:stat(CPU_PARTIAL_FREE)"}
    assert s["leaks"] == NO_LEAK
    # and without preemption, nothing: the grace period waits for kfree in flight
    s = run("uaf-race", tmp_path, policy=policy, mode=mode, ops=4000,
            faults={"preempt": 0.0}, tag="-nopreempt")
    assert s["kasan_total"] == 0


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_v2_full_no_kasan_report(tmp_path, allocator, mode):
    policy = "v2-full@4.0" if allocator == "slub" else "v2-full"
    s = run("uaf-race", tmp_path, policy=policy, mode=mode, allocator=allocator, ops=4000)
    assert s["kasan_total"] == 0
    assert s["leaks"]["dead_caches"] == 0 and s["leaks"]["pinned_memcgs"] == 0
    # every cache was destroyed while frees raced with it, and still no report
    assert s["memcg"]["released"] == s["memcg"]["created"] > 0


# -- the posted rule on uaf-race ----------------------------------------------------------------
def test_posted_v2_no_5_6_keeps_a_parallel_path(tmp_path):
    # 3.16's test: a kfree after offline discards its one-object slab only when another
    # empty slab is on that node's partial list (the offline's flush_all parks one).
    # The offline's shrink then discards the parked slab and drops the initial
    # reference: the cache is destroyed (by the offlining CPU's kworker) while the
    # freeing CPUs are still between their discard and __slab_free's stat().  No
    # preemption is involved.  Seed 1 (exact): two reports, one cache.
    s = run("uaf-race", tmp_path, policy="v2-no-5-6", ops=4000, seed=1)
    hits = uafs(s)
    assert len(hits) == s["kasan_total"] == 2
    assert not uafs(s, preempted=True)
    assert {r["cache"] for r in hits} == {"uaf_obj(19:m7)"}
    assert {r["cpu"] for r in hits} == {0, 3}
    assert {(r["freed_by"]["cpu"], r["freed_by"]["op"]) for r in hits} == {(2, "kmem_cache_destroy")}
    assert {r["phase"] for r in hits} == {"__slab_free:stat(CPU_PARTIAL_FREE)"}
    # and the caches that did not die keep one parked empty slab each
    lk = s["leaks"]
    assert lk["dead_cache_node_partial_slabs"] == lk["dead_cache_slabs"] == lk["dead_caches"] > 0
    assert lk["dead_cache_frozen_slabs"] == 0


@pytest.mark.parametrize("policy", ["v2-no-5", "v2-full"])
def test_posted_rule_with_patch_6_has_no_report(tmp_path, policy):
    # the grace period closes the parallel path; the preemption flavour needs the free
    # to drop the last reference itself, which a parked slab on its node prevents
    for seed in (1, 2):
        s = run("uaf-race", tmp_path, policy=policy, ops=4000, seed=seed, tag=f"-{seed}")
        assert s["kasan_total"] == 0
        assert s["leaks"]["dead_caches"] > 0


# -- the frozen-slab leak race: frozen-leak ------------------------------------------------------
def test_frozen_leak_race_deterministic(tmp_path):
    # the RFC's design: slabs frozen onto a dead cache's cpu partial list after the
    # offline's flush stay there, under either discard rule (exact, seed 3)
    for policy in ("v2-rfc-cpu-partial", "v2-rfc-cpu-partial@4.0"):
        s = run("frozen-leak", tmp_path, policy=policy, ops=4000, seed=3)
        lk = s["leaks"]
        assert lk["dead_cache_frozen_slabs"] > 0 and lk["dead_caches"] > 0
        assert lk["dead_cache_node_partial_slabs"] == 0
        assert s["kasan_total"] == 0
        if policy == "v2-rfc-cpu-partial":
            assert (lk["dead_caches"], lk["dead_cache_frozen_slabs"]) == (165, 167)
    # patch 7's check in put_cpu_partial: no slab stays frozen; under the posted rule
    # some are parked on n->partial (emptied while frozen, unfrozen on a node with no
    # partial slab), under 4.0's rule none
    s = run("frozen-leak", tmp_path, policy="v2-no-5-6", ops=4000, seed=3)
    assert s["leaks"]["dead_cache_frozen_slabs"] == 0
    assert s["leaks"]["dead_cache_node_partial_slabs"] == s["leaks"]["dead_caches"] > 0
    for policy in ("v2-no-5-6@4.0", "v2-full@4.0", "linux-4.0"):
        s = run("frozen-leak", tmp_path, policy=policy, ops=4000, seed=3)
        assert s["leaks"] == NO_LEAK, policy


def test_frozen_leak_race_parallel(tmp_path):
    # true parallelism, bounded: up to three runs to see a frozen slab left behind
    found = 0
    for seed in (1, 2, 3):
        s = run("frozen-leak", tmp_path, policy="v2-rfc-cpu-partial", mode="parallel",
                ops=8000, seed=seed, tag=f"-{seed}")
        found = s["leaks"]["dead_cache_frozen_slabs"]
        if found:
            break
    assert found > 0
    for policy in ("v2-full@4.0", "linux-4.0"):
        s = run("frozen-leak", tmp_path, policy=policy, mode="parallel", ops=8000)
        assert s["leaks"]["dead_cache_frozen_slabs"] == 0 and s["leaks"]["dead_caches"] == 0


# -- patch 4: shrink-enomem ---------------------------------------------------------------
@pytest.mark.parametrize("mode", ["deterministic", "parallel"])
def test_shrink_enomem_without_patch_4_leaves_empty_slabs(tmp_path, mode):
    without = run("shrink-enomem", tmp_path, policy="v2-no-4", mode=mode, ops=6000)
    assert without["leaks"]["dead_caches"] > 0
    assert without["leaks"]["dead_cache_slabs"] > 0
    with_4 = run("shrink-enomem", tmp_path, policy="v2-full", mode=mode, ops=6000)
    assert with_4["leaks"]["dead_caches"] == 0 and with_4["leaks"]["dead_cache_slabs"] == 0


# -- every preset, under the posted and the merged discard test ----------------------------------
# (preset, leak under 3.16's test, leak under 4.0's, use-after-free under 3.16's, under 4.0's)
# leak: None (no dead cache left), "parked" (each left with empty slabs on n->partial
# only), "frozen" (slabs left frozen on cpu lists, maybe parked ones too); uaf: None,
# "parallel", "preempted", "both".  uaf-race, seed 1, 4000 ops per CPU (exact seed; the
# campaigns of docs/series.md section 5 show the same over five seeds).
EVERY_PRESET = [
    ("pre-series", "frozen", "frozen", None, None),
    ("v2-1-3", "frozen", "frozen", None, None),
    ("v2-no-4", "parked", None, None, None),
    ("v2-no-5-6", "parked", None, "parallel", "both"),
    ("v2-no-5", "parked", None, None, "preempted"),
    ("v2-full", "parked", None, None, None),
    ("reparent", "parked", None, None, None),
    ("no-cpu-partial", "parked", None, None, None),
    ("v2-rfc-cpu-partial", "frozen", "frozen", None, None),
    ("linux-4.0", "parked", None, None, "preempted"),
]


def _leak_kind(lk):
    if lk["dead_caches"] == 0:
        return None
    return "frozen" if lk["dead_cache_frozen_slabs"] else "parked"


def _uaf_kind(s):
    pre, par = bool(uafs(s, preempted=True)), bool(uafs(s, preempted=False))
    return {(False, False): None, (True, False): "preempted", (False, True): "parallel",
            (True, True): "both"}[(pre, par)]


@pytest.mark.parametrize("preset, leak316, leak40, uaf316, uaf40", EVERY_PRESET,
                         ids=[p[0] for p in EVERY_PRESET])
def test_every_preset_under_both_rules(tmp_path, preset, leak316, leak40, uaf316, uaf40):
    for rule, leak, uaf in (("3.16", leak316, uaf316), ("4.0", leak40, uaf40)):
        s = run("uaf-race", tmp_path, policy=f"{preset}@{rule}", ops=4000, seed=1)
        assert s["policy"]["switches"]["discard_rule"] == rule
        assert (_leak_kind(s["leaks"]), _uaf_kind(s)) == (leak, uaf), rule
        if leak == "parked":
            assert s["leaks"]["dead_cache_node_partial_slabs"] >= s["leaks"]["dead_caches"]
