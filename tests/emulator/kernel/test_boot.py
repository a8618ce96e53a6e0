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


def arena_digest(K) -> tuple[str, dict[str, str]]:
    """One digest over table_digests(K), and those (for the failure message)."""
    tables = table_digests(K)
    text = " ".join(f"{name}={d}" for name, d in sorted(tables.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16], tables


def _boot(topology, allocator):
    K = Kernel(load_topology(topology), allocator, max_memcgs=2)
    K.kmem_cache_create("test-200", 200)
    return K


# (topology, allocator, after): arena_digest, taken from the layout as
# first written (boot.py's Kernel._create and _slab_arrays, memcontrol.py's
# _init_child_rows), after boot plus the test-200 cache, and after CHILD_ROOTS' children.
# (Retaken when the config vector gained preempt_model and slub_stats, the kernel build's
# words: only the config table's digest changed; and again when it gained the SLUB
# policy words discard_rule and dead_cpu_partial, for the same reason.)
EXPECTED = {
    ("davydov-2s6c", "slab", "boot"): "df0c724f1575ecc8",
    ("davydov-2s6c", "slab", "child"): "9efe493382a35e7d",
    ("davydov-2s6c", "slub", "boot"): "ffee70969b1756e1",
    ("davydov-2s6c", "slub", "child"): "6e91481895a431de",
    ("twonode-2n4c", "slab", "boot"): "323c0c1789949c54",
    ("twonode-2n4c", "slab", "child"): "c85fa3749575b189",
    ("twonode-2n4c", "slub", "boot"): "f98ad2c3eec92221",
    ("twonode-2n4c", "slub", "child"): "cab66c524e9c6f3c",
}


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_tables_after_boot_and_child_creation(topology, allocator):
    with _boot(topology, allocator) as K:
        boot, boot_tables = arena_digest(K)
        m = memcg_alloc(K.mem, 0, -1)
        assert m == 0
        children = [memcg_create_kmem_cache(K.mem, K.cache(name), m, 1) for name in CHILD_ROOTS]
        assert min(children) >= 0 and len(set(children)) == len(children)
        child, child_tables = arena_digest(K)
    assert boot == EXPECTED[topology, allocator, "boot"], boot_tables
    assert child == EXPECTED[topology, allocator, "child"], child_tables
