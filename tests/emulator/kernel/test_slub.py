"""SLUB against the oracle and the invariant checker, in the deterministic scheduler."""

from __future__ import annotations

import random

import numpy as np
import pytest

from emulator.kernel.check import check_kernel
from emulator.kernel.ops import OP_ALLOC, OP_CACHE_FREE, OP_FREE, OP_KMALLOC, OP_SHRINK
from emulator.machine import structs as S
from emulator.run.scripted import Sched, run

from .slab_harness import make_kernel, random_script, run_checked, slub_stats


@pytest.fixture
def kern():
    K = make_kernel("slub")
    yield K
    K.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_ops_match_oracle_and_invariants(kern, seed):
    script, nslots = random_script(kern, random.Random(seed), 700)
    sched, oracle = run_checked(kern, script, nslots, seed)
    assert oracle.live == {}
    st = slub_stats(kern, "kmalloc-512")
    assert st["ALLOC_FASTPATH"] > 0 and st["FREE_SLOWPATH"] > 0


def test_fast_paths_counted_exactly(kern):
    s = kern.cache("kmalloc-64")
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(10)] + [[0, OP_FREE, -1, -1, i, 0] for i in range(10)]
    run_checked(kern, np.array(rows), 10, 0)
    st = slub_stats(kern, "kmalloc-64")
    # the first allocation finds no cpu slab: a new slab; the other nine are fast
    assert st["ALLOC_SLAB"] == 1 and st["ALLOC_FASTPATH"] == 9
    assert st["FREE_FASTPATH"] == 10 and st["FREE_SLOWPATH"] == 0


def test_remote_free_to_a_cpu_slab_is_a_frozen_free(kern):
    s = kern.cache("kmalloc-64")
    rows = [[0, OP_ALLOC, s, -1, i, 0] for i in range(4)] + [[3, OP_FREE, -1, -1, i, 0] for i in range(4)]
    run_checked(kern, np.array(rows), 4, 0)
    st = slub_stats(kern, "kmalloc-64")
    # CPU 3 (node 1) frees into CPU 0's frozen cpu slab: __slab_free, FREE_FROZEN
    assert st["FREE_SLOWPATH"] == 4 and st["FREE_FROZEN"] == 4 and st["FREE_FASTPATH"] == 0


def test_node_preference_and_remote_nodes(kern):
    s = kern.cache("test-200")
    rows = [[0, OP_ALLOC, s, 1, 0, 0], [0, OP_ALLOC, s, 0, 1, 0], [3, OP_ALLOC, s, -1, 2, 0]]
    sched, _ = run_checked(kern, np.array(rows), 3, 0)
    page = kern.mem.page
    shift = int(kern.mem.machine[0, S.MACHINE_PAGE_SHIFT])
    nodes = [int(page[int(sched.results[i]) >> shift, S.PAGE_NODE]) for i in range(3)]
    assert nodes == [1, 0, 1]  # explicit node 1, explicit node 0, CPU 3's own node
    st = slub_stats(kern, "test-200")
    assert st["ALLOC_NODE_MISMATCH"] == 1  # CPU 0's cpu slab was on node 1


def test_shrink_empties_every_empty_slab(kern):
    s = kern.cache("kmalloc-512")
    n = 400
    rows = [[i % 4, OP_ALLOC, s, -1, i, 0] for i in range(n)]
    rows += [[(i + 1) % 4, OP_FREE, -1, -1, i, 0] for i in range(n) if i % 50]  # keep 8
    _, oracle = run_checked(kern, np.array(rows), n, 5, check_every=25)
    mem = kern.mem
    frozen = np.flatnonzero((mem.page[:, S.PAGE_SLAB_CACHE] == s) & ((mem.page[:, S.PAGE_FREELIST] & S.SLUB_FC_FROZEN) != 0))
    assert len(frozen) > 8  # empty slabs wait on cpu partial lists
    # the shrink runs after every free has completed (a script orders only one CPU's rows)
    run_checked(kern, np.array([[2, OP_SHRINK, s, -1, -1, 0]]), 1, 5, oracle=oracle)
    # after flush_all every slab went back to its node; shrink dropped all empty ones
    for cpu in range(4):
        c = s * 4 + cpu
        assert mem.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] == 0
        assert mem.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] == 0
    slabs = np.flatnonzero((mem.page[:, S.PAGE_SLAB_CACHE] == s) & ((mem.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0))
    inuse = [(int(mem.page[p, S.PAGE_FREELIST]) >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF for p in slabs]
    assert len(slabs) >= 1 and all(u > 0 for u in inuse)
    assert sum(inuse) == 8


def test_shrink_without_its_array():
    # Patch 4: when kmalloc of slabs_by_inuse fails, 3.16 returns -ENOMEM and drops
    # nothing; with shrink_tolerates_enomem every empty slab still goes.
    from emulator.kernel.ops import ENOMEM
    from emulator.kernel.page_alloc import set_fail_injection
    for tolerate, result, left in ((0, -ENOMEM, True), (1, 0, False)):
        K = make_kernel()
        try:
            mem = K.mem
            mem.config[S.CONFIG_SHRINK_TOLERATES_ENOMEM] = tolerate
            s = K.cache("test-200")  # 20 objects a slab: its array (320 bytes) is kmalloc-512's
            rows = [[c, OP_ALLOC, s, -1, i * 4 + c, 0] for i in range(60) for c in range(4)]
            rows += [[c, OP_FREE, -1, -1, i * 4 + c, 0] for i in range(60) for c in range(4)]
            run_checked(K, np.array(rows), 240, 1, check_every=40)
            for nid in range(2):  # kmalloc-512 has no slab yet: its allocation must fail
                set_fail_injection(mem, nid, ppm=1_000_000)
            sched, _ = run_checked(K, np.array([[0, OP_SHRINK, s, -1, -1, 0]]), 1, 0)
            assert sched.results[0] == result
            slabs = np.flatnonzero((mem.page[:, S.PAGE_SLAB_CACHE] == s) & ((mem.page[:, S.PAGE_FLAGS] & S.PG_SLAB) != 0))
            empty = [p for p in slabs if (int(mem.page[p, S.PAGE_FREELIST]) >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF == 0]
            assert bool(empty) == left
            if not left:
                assert len(slabs) == 0
        finally:
            K.close()


def test_double_and_invalid_free_are_reported_not_corrupting(kern):
    s = kern.cache("kmalloc-64")
    rows = [[0, OP_ALLOC, s, -1, 0, 0], [0, OP_ALLOC, s, -1, 1, 0],
            [1, OP_FREE, -1, -1, 0, 0], [1, OP_FREE, -1, -1, 0, 0],  # double free
            [2, OP_FREE, -1, -1, -1, 0x1234567],  # a pointer into no slab
            [0, OP_ALLOC, s, -1, 2, 0]]
    sched, oracle = run_checked(kern, np.array(rows), 3, 0)
    # the middle of an object: invalid free
    addr = int(sched.slots[2, 0]) + 8
    run_checked(kern, np.array([[3, OP_FREE, -1, -1, -1, addr]]), 1, 0, oracle=oracle)
    bugs = [int(kern.mem.kasan_report[1 + i, S.KASAN_REPORT_BUG]) for i in range(int(kern.mem.kasan_report[0, 0]))]
    assert sorted(bugs) == sorted([S.BUG_DOUBLE_FREE, S.BUG_INVALID_FREE, S.BUG_INVALID_FREE])
    assert bugs[-1] == S.BUG_INVALID_FREE


def test_kmem_cache_free_of_a_foreign_object(kern):
    a, b = kern.cache("kmalloc-64"), kern.cache("test-200")
    rows = [[0, OP_ALLOC, a, -1, 0, 0], [0, OP_CACHE_FREE, b, -1, 0, 0]]
    run(kern.mem, Sched.new(np.array(rows), 4, 1, 0))
    assert kern.mem.kasan_report[0, 0] == 1
    assert kern.mem.kasan_report[1, S.KASAN_REPORT_BUG] == S.BUG_INVALID_FREE


def test_same_seed_same_run_and_replay():
    def once(seed, replay_schedule=None):
        K = make_kernel()
        try:
            script, nslots = random_script(K, random.Random(9), 400)
            sched = Sched.new(script, K.nr_cpus, nslots, seed)
            if replay_schedule is not None:
                sched.schedule[:len(replay_schedule)] = replay_schedule
                run(K.mem, sched, replay=True)
            else:
                run(K.mem, sched)
            state = (K.mem.page.copy(), K.mem.kmem_cache_cpu.copy(), K.mem.kmem_cache_node.copy())
            return sched.schedule[:sched.steps[0]].copy(), sched.results.copy(), state
        finally:
            K.close()
    s1, r1, st1 = once(11)
    s2, r2, st2 = once(11)
    s3, r3, _ = once(12)
    assert (s1 == s2).all() and (r1 == r2).all() and all((a == b).all() for a, b in zip(st1, st2))
    assert len(s1) != len(s3) or (s1 != s3).any()
    s4, r4, st4 = once(99, replay_schedule=s1)
    assert (s4 == s1).all() and (r4 == r1).all() and all((a == b).all() for a, b in zip(st1, st4))


def test_track_full_slabs_keeps_full_slabs_listed():
    K = make_kernel(track_full_slabs=True)
    try:
        script, nslots = random_script(K, random.Random(4), 500)
        run_checked(K, script, nslots, 4, check_every=3)
        st = slub_stats(K, "kmalloc-64")
        assert st["CPU_PARTIAL_FREE"] == 0  # no cpu partial lists when full slabs are tracked
    finally:
        K.close()


def test_a_kernel_internal_free_keeps_the_callers_task_flags(kern):
    """slab_free_inline (a kfree inside another op: SLUB's shrink frees its
    slabs_by_inuse array during a memcg offline) clears only __slab_free's own flags in
    the task row it borrows; the offline's TF_CACHES_COLLECTED (a child cache waits for
    synchronize_sched) must survive it, or the offline skips the grace period and the
    cache is never destroyed."""
    from emulator.kernel.slab_common import (TF_CACHES_COLLECTED, TF_COUNTED, TF_DISCARDED,
                                             TF_WAS_FROZEN)
    from emulator.kernel.slub import slab_free_inline

    s = kern.cache("kmalloc-64")
    sched, _ = run_checked(kern, np.array([[0, OP_ALLOC, s, -1, i, 0] for i in range(4)]), 4, 0)
    k = kern.mem
    obj = int(sched.results[0])
    pfn = obj >> int(k.machine[0, S.MACHINE_PAGE_SHIFT])
    t = 3 * int(k.config[S.CONFIG_NR_TASKS_PER_CPU])  # CPU 3's task: a remote, slow free
    k.task[t, S.TASK_FLAGS] = TF_CACHES_COLLECTED
    before = slub_stats(kern, "kmalloc-64")["FREE_SLOWPATH"]
    slab_free_inline(k, s, int(k.kmem_cache[s, S.KMEM_CACHE_GEN]), pfn, obj, 3, t)
    assert slub_stats(kern, "kmalloc-64")["FREE_SLOWPATH"] == before + 1
    flags = int(k.task[t, S.TASK_FLAGS])
    assert flags & TF_CACHES_COLLECTED
    assert flags & (TF_WAS_FROZEN | TF_COUNTED | TF_DISCARDED) == 0
