"""SLUB cache merging (emulator/kernel/merge.py): __kmem_cache_alias/find_mergeable, 3.16.

Hand-worked cases on twonode-2n4c (64-byte cache lines, 4 KiB pages), then every shipped
scenario cache on several machines: what merges, and that no cache's geometry changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emulator.kernel.boot import Kernel
from emulator.kernel.geometry import (
    SLAB_HWCACHE_ALIGN,
    SLAB_RECLAIM_ACCOUNT,
    SLAB_RED_ZONE,
    cache_geometry,
)
from emulator.kernel.memcontrol import memcg_alloc, memcg_create_kmem_cache
from emulator.kernel.merge import SLUB_MERGE_SAME, SLUB_NEVER_MERGE
from emulator.kernel.slab_common import NUMA_NO_NODE, classify_free
from emulator.kernel.slub import slab_alloc_node
from emulator.machine import structs as S
from emulator.workload.scenario import load_scenario
from topo import load_topology

SCENARIOS = sorted(p.stem for p in (Path(__file__).resolve().parents[3] / "configs" / "scenarios").glob("*.toml"))


@pytest.fixture
def K():
    with Kernel(load_topology("twonode-2n4c"), "slub", max_memcgs=2) as k:
        yield k


def test_dentry_like_merges_into_kmalloc_192(K):
    k = K.mem
    target = K.cache("kmalloc-192")
    before = k.kmem_cache[target].copy()
    assert before[S.KMEM_CACHE_SIZE] == 192 and before[S.KMEM_CACHE_REFCOUNT] == 1
    # kmem_cache_create("dentry_like", 192, 8, 0, NULL): size ALIGN(192, 8) = 192, align
    # calculate_alignment(0, 8, 192) = 8; slab_caches from the newest: kmalloc-192 is the
    # first with size <= s->size, s->size % 8 == 0 and s->size - size < 8
    row = K.kmem_cache_create("dentry_like", 192, align=8)
    assert row == target and K.cache("dentry_like") == target
    after = k.kmem_cache[target]
    assert after[S.KMEM_CACHE_REFCOUNT] == 2  # s->refcount++
    assert after[S.KMEM_CACHE_OBJECT_SIZE] == 192 and after[S.KMEM_CACHE_INUSE] == 192
    changed = {i for i in range(S.KMEM_CACHE_NR_FIELDS) if before[i] != after[i]}
    assert changed == {S.KMEM_CACHE_REFCOUNT}
    assert K.by_name["kmalloc-192"].aliases == ["dentry_like"]
    assert not [c for c in K.caches if c.name == "dentry_like"]  # one cache, one slabinfo line
    # one set of slabs and one list_lock per node: an object "of dentry_like" is on a
    # kmalloc-192 slab
    obj = int(slab_alloc_node(k, row, k.kmem_cache[row, S.KMEM_CACHE_GEN], NUMA_NO_NODE, 192, 0))
    pfn = int(classify_free(k, obj)[1])
    assert k.page[pfn, S.PAGE_SLAB_CACHE] == target
    # a memcg child of the alias is the merged cache's child
    m = memcg_alloc(k, 0, -1)
    child = memcg_create_kmem_cache(k, row, m, 0)
    assert k.memcg_cache_params[child, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] == target
    assert k.memcg_caches[m, target] == child
    K.sync_caches()
    assert K.name_of(child) == f"kmalloc-192({child}:m{m})"


@pytest.mark.parametrize("size, align, flags, ctor, into", [
    (185, 0, 0, False, "kmalloc-192"),   # ALIGN(185, 8) = 192
    (184, 0, 0, False, None),            # 192 - 184 = 8: not < sizeof(void *)
    (60, 0, 0, False, "kmalloc-64"),
    (192, 64, 0, False, "kmalloc-192"),  # 192 is a multiple of 64
    (192, 128, 0, False, "kmalloc-256"),  # ALIGN(192, 128) = 256: kmalloc-192 too small
    (96, 64, 0, False, "kmalloc-128"),    # ALIGN(96, 64) = 128; kmalloc-96 too small
    (192, 0, 0, True, None),             # a constructor never merges
    (192, 0, SLAB_RED_ZONE, False, None),          # SLUB_NEVER_MERGE
    (192, 0, SLAB_RECLAIM_ACCOUNT, False, None),   # SLUB_MERGE_SAME differs
    (100, 0, SLAB_HWCACHE_ALIGN, False, "kmalloc-128"),  # aligned to 64: 128
    (200, 0, 0, False, None),            # test-200: kmalloc-256 is 56 bytes bigger
])
def test_find_mergeable_rules(K, size, align, flags, ctor, into):
    row = K.kmem_cache_create("new", size, align=align, flags=flags, ctor=ctor)
    if into is None:
        assert K.by_name["new"].name == "new" and row not in {c.row for c in K.caches if c.name != "new"}
    else:
        assert row == K.cache(into) and K.by_name[into].aliases == ["new"]


def test_flag_sets_are_the_kernels():
    assert SLUB_NEVER_MERGE & SLAB_RED_ZONE and not SLUB_NEVER_MERGE & SLAB_RECLAIM_ACCOUNT
    assert SLUB_MERGE_SAME & SLAB_RECLAIM_ACCOUNT and not SLUB_MERGE_SAME & SLAB_HWCACHE_ALIGN


def test_newest_mergeable_cache_wins_and_ctor_caches_are_never_targets(K):
    a = K.kmem_cache_create("a", 176)           # new cache: nothing of 176..183
    b = K.kmem_cache_create("b", 176, ctor=True)  # a ctor: its own cache
    c = K.kmem_cache_create("c", 172)           # ALIGN(172, 8) = 176: "a" (b has a ctor)
    assert len({a, b}) == 2 and c == a
    assert K.by_name["a"].aliases == ["c"]


def test_no_merging_with_slab_nomerge_or_slab():
    for kw in ({"slab_nomerge": True}, {}):
        alloc = "slub" if kw else "slab"
        with Kernel(load_topology("twonode-2n4c"), alloc, **kw) as K:
            row = K.kmem_cache_create("dentry_like", 192, align=8)
            assert row != K.cache("kmalloc-192") and K.by_name["dentry_like"].row == row


def test_boot_caches_are_never_merge_targets(K):
    g = K.by_name["kmem_cache_node"].geometry
    row = K.kmem_cache_create("like-node", g.object_size)
    assert row != K.cache("kmem_cache_node")


@pytest.mark.parametrize("topology", ["twonode-2n4c", "davydov-2s6c", "arm64-64k", "epyc-nps4"])
def test_merging_keeps_every_caches_geometry(topology):
    # every shipped scenario's named caches, created in order on one kernel with merging
    # and on one without: every boot cache's descriptor is the same but for refcount,
    # and a merged name gets a cache whose objects per slab, order, size and tunables
    # are those it would have had on its own
    specs = []
    for name in SCENARIOS:
        for c in load_scenario(name).caches:
            if not c.kmalloc and c.name not in {s.name for s in specs}:
                specs.append(c)
    topo = load_topology(topology)
    with Kernel(topo, "slub", slab_nomerge=True, extra_caches=32) as A, \
            Kernel(topo, "slub", extra_caches=32) as B:
        boot = [c.row for c in A.caches]
        for c in specs:
            A.kmem_cache_create(c.name, c.size, align=c.align)
            B.kmem_cache_create(c.name, c.size, align=c.align)
        cols = [i for i in range(S.KMEM_CACHE_NR_FIELDS) if i != S.KMEM_CACHE_REFCOUNT]
        assert np.array_equal(A.mem.kmem_cache[boot][:, cols], B.mem.kmem_cache[boot][:, cols])
        merged = 0
        for c in specs:
            a, b = A.cache(c.name), B.cache(c.name)
            fields = (S.KMEM_CACHE_SIZE, S.KMEM_CACHE_OBJECTS, S.KMEM_CACHE_ORDER,
                      S.KMEM_CACHE_MIN_PARTIAL, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS,
                      S.KMEM_CACHE_MIN_ORDER, S.KMEM_CACHE_MIN_OBJECTS)
            assert [int(A.mem.kmem_cache[a, f]) for f in fields] == \
                [int(B.mem.kmem_cache[b, f]) for f in fields], c.name
            if B.by_name[c.name].name != c.name:
                merged += 1
                assert B.mem.kmem_cache[b, S.KMEM_CACHE_REFCOUNT] >= 2
        if topology == "twonode-2n4c":
            # into kmalloc-192 and kmalloc-1024, dead-free's 64-byte obj into kmalloc-64;
            # and, as all scenarios' caches share one kernel here, uaf_obj into big_obj
            # (both 20000 bytes)
            assert {c.name: B.by_name[c.name].name for c in specs
                    if B.by_name[c.name].name != c.name} == \
                {"dentry_like": "kmalloc-192", "big_object": "kmalloc-1024", "uaf_obj": "big_obj",
                 "obj": "kmalloc-64"}
