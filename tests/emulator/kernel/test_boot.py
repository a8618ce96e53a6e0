"""Every arena table after boot, and after a memcg child cache is created, pinned.

The per-cache rows (kmem_cache_node, kmem_cache_cpu, SLAB's array caches and their
locks) are laid out by row formulas that boot and memcg_create_kmem_cache must agree on
with the allocators' own lookups.  These tests hold the tables to digests taken from a
known-good layout: a change to how any row is numbered or initialised fails here, on
both allocators, on a one-node-per-socket machine of each size.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from emulator.kernel.boot import Kernel
from emulator.kernel.memcontrol import memcg_alloc, memcg_create_kmem_cache
from emulator.machine import structs as S
from topo import load_topology

TOPOLOGIES = ("twonode-2n4c", "davydov-2s6c")
# lock_stat's times are wall-clock: blanked before hashing (the counters stay)
_LOCK_TIMES = (S.LOCK_ACQUIRED_AT, S.LOCK_WAIT_MIN, S.LOCK_WAIT_MAX, S.LOCK_WAIT_TOTAL,
               S.LOCK_HOLD_MIN, S.LOCK_HOLD_MAX, S.LOCK_HOLD_TOTAL)
# roots given a memcg child: a kmalloc cache, an off-slab one for SLAB, a named cache
CHILD_ROOTS = ("kmalloc-64", "kmalloc-4096", "test-200")


def table_digests(K) -> dict[str, str]:
    """sha256 (16 hex digits) of the shape and bytes of every arena table that is not
    all zero (a table of zeros is left out, whatever its shape)."""
    out = {}
    t = K.machine.arena.t
    for name in t.names():
        a = t[name]
        if name == "lock":
            a = a.copy()
            a[:, _LOCK_TIMES] = 0
        if not a.any():
            continue
        h = hashlib.sha256(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
        out[name] = h.hexdigest()[:16]
    return out


def _boot(topology, allocator):
    K = Kernel(load_topology(topology), allocator, max_memcgs=2)
    K.kmem_cache_create("test-200", 200)
    return K


# (topology, allocator, after): the non-zero tables' digests, taken from the layout as
# first written (boot.py's Kernel._create and _slab_arrays, memcontrol.py's
# _init_child_rows), after boot plus the test-200 cache, and after CHILD_ROOTS' children.
EXPECTED = {
    ("davydov-2s6c", "slab", "boot"): dict(
        array_cache="ad9d9c91f9badfc4", config="95f33606fcae5cee", cpu="c4d95c4eebffe9a4",
        kmalloc_map="5d9952d6899b486a", kmem_cache="7cbb80d37c0ff80d",
        kmem_cache_cpu="b0cec174ffef4396", kmem_cache_node="044d658cc855e7b2",
        lock="c10988fe2894532d", machine="eb008b59359c78c0",
        memcg_cache_params="7ef8dd6f73e9d02c", memcg_caches="4fcbeb02b61b75b9",
        page="605ae07a2ea24457", rcu="a778f4075abeca95", shadow="408b9a3b2e70603a",
        slots="8d9a0d4efca599f8", task="462c0e4b25756bef", zone="8cb3b7d5a5d7b404",
        zonelist="8b5b236ff5bde115"),
    ("davydov-2s6c", "slab", "child"): dict(
        array_cache="d191fce43eb6b49c", config="95f33606fcae5cee", cpu="c4d95c4eebffe9a4",
        ctl="946bb1b9a9e06363", kmalloc_map="5d9952d6899b486a",
        kmem_cache="5922abb0504b5a34", kmem_cache_cpu="c6b604c0e395cd59",
        kmem_cache_node="f19353e5e1fe5ae2", lock="cf16fb1a04b56f83",
        machine="eb008b59359c78c0", memcg="604a507f33cfa5e2",
        memcg_cache_params="151f124cfc6c7c33", memcg_caches="19f2932adf3a2509",
        page="605ae07a2ea24457", rcu="a778f4075abeca95", shadow="408b9a3b2e70603a",
        slots="8d9a0d4efca599f8", task="462c0e4b25756bef", zone="8cb3b7d5a5d7b404",
        zonelist="8b5b236ff5bde115"),
    ("davydov-2s6c", "slub", "boot"): dict(
        config="95f33606fcae5cee", cpu="c4d95c4eebffe9a4", kmalloc_map="eed341f5497749a9",
        kmem_cache="2ba86003290290d0", kmem_cache_cpu="6c431ff72fc9521c",
        kmem_cache_node="bbd7374469467dea", lock="285db893f3b946ab",
        machine="eb008b59359c78c0", memcg_cache_params="dde17e837ef1b75b",
        memcg_caches="5f6157deb43acfdb", page="605ae07a2ea24457", rcu="b30d38839b5f528b",
        shadow="408b9a3b2e70603a", slots="8d9a0d4efca599f8", task="462c0e4b25756bef",
        zone="8cb3b7d5a5d7b404", zonelist="8b5b236ff5bde115"),
    ("davydov-2s6c", "slub", "child"): dict(
        config="95f33606fcae5cee", cpu="c4d95c4eebffe9a4", ctl="946bb1b9a9e06363",
        kmalloc_map="eed341f5497749a9", kmem_cache="5f69c3f9d2e8b678",
        kmem_cache_cpu="01c0d98b5ead8ab2", kmem_cache_node="e0210c250b4c90e2",
        lock="4a8e3db91cac442a", machine="eb008b59359c78c0", memcg="604a507f33cfa5e2",
        memcg_cache_params="d9f3577c1cc3bb2d", memcg_caches="d499f66060d1da1f",
        page="605ae07a2ea24457", rcu="b30d38839b5f528b", shadow="408b9a3b2e70603a",
        slots="8d9a0d4efca599f8", task="462c0e4b25756bef", zone="8cb3b7d5a5d7b404",
        zonelist="8b5b236ff5bde115"),
    ("twonode-2n4c", "slab", "boot"): dict(
        array_cache="0d626a579e6d4eb0", config="95f33606fcae5cee", cpu="a1e2ad0055d256c4",
        kmalloc_map="5d9952d6899b486a", kmem_cache="8c7a3c51bc25b1a5",
        kmem_cache_cpu="521016f166e1fa28", kmem_cache_node="f9372b4ec312dfc0",
        lock="c10988fe2894532d", machine="09ec1fd10be77863",
        memcg_cache_params="7ef8dd6f73e9d02c", memcg_caches="4fcbeb02b61b75b9",
        page="f39780faf8ad91e9", rcu="a778f4075abeca95", shadow="d11f293bc2dbf0c3",
        slots="ae48a7e6db8ae812", task="f289c0917a51521e", zone="97c1e04540d89566",
        zonelist="8b5b236ff5bde115"),
    ("twonode-2n4c", "slab", "child"): dict(
        array_cache="571daeb40d29ccaa", config="95f33606fcae5cee", cpu="a1e2ad0055d256c4",
        ctl="946bb1b9a9e06363", kmalloc_map="5d9952d6899b486a",
        kmem_cache="72b112a31cc36b5d", kmem_cache_cpu="212da10857583c85",
        kmem_cache_node="0c5b4caee67bc2b4", lock="cf16fb1a04b56f83",
        machine="09ec1fd10be77863", memcg="604a507f33cfa5e2",
        memcg_cache_params="151f124cfc6c7c33", memcg_caches="19f2932adf3a2509",
        page="f39780faf8ad91e9", rcu="a778f4075abeca95", shadow="d11f293bc2dbf0c3",
        slots="ae48a7e6db8ae812", task="f289c0917a51521e", zone="97c1e04540d89566",
        zonelist="8b5b236ff5bde115"),
    ("twonode-2n4c", "slub", "boot"): dict(
        config="95f33606fcae5cee", cpu="a1e2ad0055d256c4", kmalloc_map="eed341f5497749a9",
        kmem_cache="3b49596a4c438788", kmem_cache_cpu="c0a5c2d2cee6f4c9",
        kmem_cache_node="bbd7374469467dea", lock="285db893f3b946ab",
        machine="09ec1fd10be77863", memcg_cache_params="dde17e837ef1b75b",
        memcg_caches="5f6157deb43acfdb", page="f39780faf8ad91e9", rcu="b30d38839b5f528b",
        shadow="d11f293bc2dbf0c3", slots="ae48a7e6db8ae812", task="f289c0917a51521e",
        zone="97c1e04540d89566", zonelist="8b5b236ff5bde115"),
    ("twonode-2n4c", "slub", "child"): dict(
        config="95f33606fcae5cee", cpu="a1e2ad0055d256c4", ctl="946bb1b9a9e06363",
        kmalloc_map="eed341f5497749a9", kmem_cache="4d134d4c48683111",
        kmem_cache_cpu="1bf529815f747b16", kmem_cache_node="e0210c250b4c90e2",
        lock="4a8e3db91cac442a", machine="09ec1fd10be77863", memcg="604a507f33cfa5e2",
        memcg_cache_params="d9f3577c1cc3bb2d", memcg_caches="d499f66060d1da1f",
        page="f39780faf8ad91e9", rcu="b30d38839b5f528b", shadow="d11f293bc2dbf0c3",
        slots="ae48a7e6db8ae812", task="f289c0917a51521e", zone="97c1e04540d89566",
        zonelist="8b5b236ff5bde115"),
}


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_tables_after_boot_and_child_creation(topology, allocator):
    with _boot(topology, allocator) as K:
        boot = table_digests(K)
        m = memcg_alloc(K.mem, 0, -1)
        assert m == 0
        children = [memcg_create_kmem_cache(K.mem, K.cache(name), m, 1) for name in CHILD_ROOTS]
        assert min(children) >= 0 and len(set(children)) == len(children)
        child = table_digests(K)
    assert boot == EXPECTED[topology, allocator, "boot"]
    assert child == EXPECTED[topology, allocator, "child"]
