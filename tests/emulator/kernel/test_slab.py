"""SLAB against the oracle and the invariant checker, in the deterministic scheduler."""

from __future__ import annotations

import random

import numpy as np
import pytest

from emulator.kernel.check import check_kernel
from emulator.kernel.ops import OP_ALLOC, OP_FREE, OP_REAP, OP_SHRINK
from emulator.machine import structs as S
from emulator.run.scripted import Sched, run

from .slab_harness import make_kernel, random_script, run_checked, slab_stats


@pytest.fixture
def kern():
    K = make_kernel("slab")
    yield K
    K.close()


def _slabs(K, s):
    m = K.mem
    return np.flatnonzero((m.page[:, S.PAGE_SLAB_CACHE] == s) & ((m.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_ops_match_oracle_and_invariants(kern, seed):
    script, nslots = random_script(kern, random.Random(seed), 600)
    sched, oracle = run_checked(kern, script, nslots, seed)
    assert oracle.live == {}
    st = slab_stats(kern, "kmalloc-512")
    assert st["ALLOCHIT"] > 0 and st["NODEFREES"] > 0


def test_array_cache_hits_counted_exactly(kern):
    s = kern.cache("kmalloc-64")
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(10)] + [[0, OP_FREE, -1, -1, i, 0] for i in range(10)]
    run_checked(kern, np.array(rows), 10, 0)
    st = slab_stats(kern, "kmalloc-64")
    # one refill (BATCHREFILL_LIMIT = 16 objects from a new slab), then nine hits
    assert st["ALLOCMISS"] == 1 and st["ALLOCHIT"] == 9 and st["GROWN"] == 1
    assert st["FREEHIT"] == 10 and st["FREEMISS"] == 0


def test_alien_cache_fills_and_flushes_to_the_home_node(kern):
    s = kern.cache("test-200")
    alien_limit = kern.by_name["test-200"].geometry.alien_limit
    n = 3 * alien_limit
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(n)]  # node 0's objects
    rows += [[2, OP_FREE, -1, -1, i, 0] for i in range(n)]  # freed on node 1
    run_checked(kern, np.array(rows), n, 0)
    st = slab_stats(kern, "test-200")
    assert st["NODEFREES"] == n
    # every alien_limit-th free found the alien array full and drained it home first
    assert st["NODE_OVERFLOW"] == n // alien_limit - 1
    assert st["ALIEN_FREE_HIT"] + st["ALIEN_FREE_MISS"] == n
    m = kern.mem
    al = int(m.kmem_cache_node[s * 2 + 1, S.KMEM_CACHE_NODE_ALIEN]) + 0
    assert m.array_cache[al, S.ARRAY_CACHE_AVAIL] == alien_limit  # the last batch waits
    # cache_reap on node 1 drains it back (reap_alien rotates over nodes)
    for _ in range(2):
        run_checked(kern, np.array([[2, OP_REAP, -1, -1, -1, 0], [3, OP_REAP, -1, -1, -1, 0]]), 1, 0)
    assert m.array_cache[al, S.ARRAY_CACHE_AVAIL] == 0


def test_shrink_destroys_every_free_slab(kern):
    s = kern.cache("kmalloc-512")
    n = 300
    rows = [[i % 4, OP_ALLOC, s, -1, i, 0] for i in range(n)]
    rows += [[(i + 1) % 4, OP_FREE, -1, -1, i, 0] for i in range(n) if i % 50]  # keep 6
    _, oracle = run_checked(kern, np.array(rows), n, 3, check_every=30)
    run_checked(kern, np.array([[1, OP_SHRINK, s, -1, -1, 0]]), 1, 3, oracle=oracle)
    m = kern.mem
    active = [int(m.page[p, S.PAGE_COUNTERS]) for p in _slabs(kern, s)]
    assert all(a > 0 for a in active) and sum(active) == 6
    for nid in range(2):
        assert m.kmem_cache_node[s * 2 + nid, S.KMEM_CACHE_NODE_NR_FREE] == 0


def test_free_limit_destroys_surplus_empty_slabs(kern):
    s = kern.cache("kmalloc-64")
    g = kern.by_name["kmalloc-64"].geometry
    n = 20 * g.num
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(n)] + [[0, OP_FREE, -1, -1, i, 0] for i in range(n)]
    run_checked(kern, np.array(rows), n, 0, check_every=97)
    m = kern.mem
    node = s * 2
    # free_block destroyed empty slabs once free_objects exceeded free_limit
    assert m.kmem_cache_node[node, S.KMEM_CACHE_NODE_FREE_OBJECTS] <= m.kmem_cache_node[node, S.KMEM_CACHE_NODE_FREE_LIMIT] + g.num
    assert len(_slabs(kern, s)) < 20


def test_off_slab_cache_takes_its_freelist_from_its_freelist_cache(kern):
    info = kern.by_name["kmalloc-1024"]
    assert info.geometry.off_slab
    s = info.row
    fc = int(kern.mem.kmem_cache[s, S.KMEM_CACHE_FREELIST_CACHE])
    before = len(_slabs(kern, fc))
    run_checked(kern, np.array([[0, OP_ALLOC, s, -1, 0, 0], [0, OP_FREE, -1, -1, 0, 0]]), 1, 0)
    p = int(_slabs(kern, s)[0])
    fl = int(kern.mem.page[p, S.PAGE_FREELIST])
    assert kern.mem.page[fl >> 12, S.PAGE_SLAB_CACHE] == fc
    assert len(_slabs(kern, fc)) >= max(before, 1)


def test_deterministic_replay(kern):
    script, nslots = random_script(kern, random.Random(5), 300)
    sched = Sched.new(script, 4, nslots, 42)
    run(kern.mem, sched)
    assert check_kernel(kern.mem, 4, 2) == []
    K2 = make_kernel("slab")
    try:
        s2 = Sched.new(script, 4, nslots, 0)
        s2.schedule[:sched.steps[0]] = sched.schedule[:sched.steps[0]]
        run(K2.mem, s2, replay=True)
        assert (s2.results == sched.results).all()
        assert (K2.mem.page == kern.mem.page).all()
    finally:
        K2.close()


def test_double_and_invalid_free_are_reported_not_corrupting(kern):
    s = kern.cache("kmalloc-64")
    rows = [[0, OP_ALLOC, s, -1, 0, 0], [0, OP_ALLOC, s, -1, 1, 0],
            [1, OP_FREE, -1, -1, 0, 0], [1, OP_FREE, -1, -1, 0, 0],  # double free
            [2, OP_FREE, -1, -1, -1, 0x1234567]]  # a pointer into no slab
    sched, oracle = run_checked(kern, np.array(rows), 2, 0)
    addr = int(sched.slots[1, 0]) + 8  # inside a live object: invalid free
    run_checked(kern, np.array([[3, OP_FREE, -1, -1, -1, addr]]), 1, 0, oracle=oracle)
    bugs = [int(kern.mem.kasan_report[1 + i, S.KASAN_REPORT_BUG]) for i in range(int(kern.mem.kasan_report[0, 0]))]
    assert sorted(bugs) == sorted([S.BUG_DOUBLE_FREE, S.BUG_INVALID_FREE, S.BUG_INVALID_FREE])
