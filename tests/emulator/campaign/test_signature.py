"""Signatures leave out what changes with the seed (CPUs, rows, addresses) and keep the
bug: kind, the access, what freed it, and the flavour; findings are deduplicated by it."""

from __future__ import annotations

from emulator.campaign.campaign import aggregate
from emulator.campaign.signature import kasan_signature, run_signatures


def _uaf(cpu, row, preempted, phase="__slab_free:stat(CPU_PARTIAL_FREE)"):
    return {"bug": "kmem_cache-use-after-free", "cpu": cpu, "task": cpu * 2, "op": "kmem_cache_free",
            "phase": phase, "object": row, "size": 0, "cache": f"uaf_obj({row}:m3)",
            "freed_by": {"cpu": 1 - cpu, "op": "kmem_cache_destroy",
                         "phase": "kmem_cache_destroy:release"}, "preempted": preempted}


def _rec(i, kasan, mode="parallel", t=0.5, ops=1000, exit="failed", leaks=0):
    s = {"kasan": kasan, "kasan_total": len(kasan), "exit": exit, "failure": None,
         "invariants": {"count": 0}, "leaks": {"dead_caches": leaks, "pinned_memcgs": 0}}
    return {"id": f"r{i}", "spec": {"scenario": "uaf-race", "policy": "v2-no-5-6",
                                    "allocator": "slub", "topology": None, "mode": mode,
                                    "strategy": "-" if mode == "parallel" else "random"},
            "signatures": run_signatures(s), "duration_s": t, "ops": ops}


def test_same_bug_on_other_cpus_and_rows_is_one_signature():
    a, b = kasan_signature(_uaf(0, 17, False)), kasan_signature(_uaf(3, 22, False))
    assert a == b
    assert a["key"] == ("cache-use-after-free at kmem_cache_free/__slab_free:stat(CPU_PARTIAL_FREE)"
                        " freed in kmem_cache_destroy/kmem_cache_destroy:release [parallel]")


def test_flavour_and_access_split_signatures():
    base = kasan_signature(_uaf(0, 17, False))["key"]
    assert kasan_signature(_uaf(0, 17, True))["key"] != base
    assert kasan_signature(_uaf(0, 17, False, phase="__slab_free"))["key"] != base


def test_aggregate_counts_runs_and_first_hits():
    recs = [_rec(1, [_uaf(0, 17, False)], t=0.9, ops=500),
            _rec(2, [_uaf(2, 30, False)], mode="deterministic", t=0.2, ops=9000),
            _rec(3, [_uaf(1, 5, True)], t=0.4, ops=100),
            _rec(4, [], exit="ok")]
    f = aggregate(recs)
    assert [x["count"] for x in f] == [2, 1]
    par = f[0]
    assert par["signature"]["flavour"] == "parallel"
    assert par["runs"] == ["r1", "r2"]
    assert par["first_time"] == {"seconds": 0.2, "run": "r2"}
    assert par["first_ops"] == {"ops": 500, "run": "r1"}
    assert par["deterministic_runs"] == ["r2"]
    assert {p["mode"] for p in par["params"]} == {"parallel", "deterministic"}


def test_leaks_count_only_for_runs_that_reached_their_end():
    assert [s["kind"] for s in _rec(1, [], exit="ok", leaks=3)["signatures"]] == ["dead-cache-leak"]
    assert _rec(2, [], exit="interrupted", leaks=3)["signatures"] == []
