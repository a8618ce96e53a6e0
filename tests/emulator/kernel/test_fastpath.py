"""The flattened fast paths (emulator/kernel/fastpath.py) against the general path.

The oracle is the general path itself: two machines booted identically run the same
ops, one through `op_step` (fast path first) and one through `_op_step` (the phase
machine alone), and every table of the two must be equal after every op.  That checks
both halves of the fast paths' contract at once: a hit has exactly the general path's
effect, and a miss writes nothing (else the general path that follows would count or
move something twice)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.kernel.boot import Kernel
from emulator.kernel.check import check_kernel
from emulator.kernel.fastpath import kfree_fastpath, kmalloc_fastpath, kmem_cache_alloc_fastpath
from emulator.kernel.memcontrol import mark_dead, memcg_alloc, memcg_create_kmem_cache
from emulator.kernel.ops import (
    OP_ALLOC,
    OP_CACHE_FREE,
    OP_FREE,
    OP_KMALLOC,
    _op_step,
    op_start,
    op_step,
)
from emulator.kernel.slab_common import NUMA_NO_NODE
from emulator.machine import structs as S

from ..conftest import small_topology
from .op_harness import finish_op

NR_CPUS = 4
SIZES = (8, 64, 100, 200, 512, 3000, 20000)  # 20000: kmalloc_large


def _boot(allocator, kasan, dead_discard):
    K = Kernel(small_topology(node_mib=(8, 8), cpus_per_node=2), allocator, kasan=kasan,
               lock_stats=True, max_memcgs=4)
    K.kmem_cache_create("test-200", 200)
    k = K.mem
    k.task[:, S.TASK_MEMCG] = -1
    k.config[S.CONFIG_DEAD_DISCARD_EMPTY] = int(dead_discard)
    # the deterministic clock (it never ticks here): the creation work's message carries
    # the clock, which must be the same word on both twins
    k.config[S.CONFIG_STEP_NS] = 1
    return K


def _run_op(K, step, cpu, op, cache, node, size, obj):
    """One op on cpu's task, to completion (other CPUs answer flush_all's IPIs)."""
    t = K.task_of(cpu)
    op_start(K.mem, t, op, cache, node, size, obj)
    return finish_op(K, t, step)


# lock_stat's clock readings differ from run to run; every other word must match
LOCK_TIMES = [S.LOCK_ACQUIRED_AT, S.LOCK_WAIT_MIN, S.LOCK_WAIT_MAX, S.LOCK_WAIT_TOTAL,
              S.LOCK_HOLD_MIN, S.LOCK_HOLD_MAX, S.LOCK_HOLD_TOTAL]


BIG = ("ram", "ram64", "shadow")  # emulated memory: compared every BIG_EVERY ops


def _assert_same(A, B, what, memory=True):
    for name in S.MEM_TABLES:
        if name in BIG and not memory:
            continue
        a, b = A.mem._views[name], B.mem._views[name]
        if name == "lock":
            a, b = a.copy(), b.copy()
            a[:, LOCK_TIMES] = 0
            b[:, LOCK_TIMES] = 0
        if not np.array_equal(a, b):
            diff = np.argwhere(a != b)[:3].tolist()
            raise AssertionError(f"after {what}: table {name} differs at {diff}")


def _script(rng: random.Random, caches, n, double_frees):
    """Ops (cpu, op, cache, node, size, object slot or address); frees may be remote,
    invalid, kmem_cache_free with the wrong cache, or (with KASAN, which catches them;
    without it a double free corrupts the freelist, as in the kernel) double."""
    rows, live, freed = [], [], []
    for _ in range(n):
        cpu = rng.randrange(NR_CPUS)
        r = rng.random()
        if r < 0.5 or not live:
            node = rng.choice([NUMA_NO_NODE] * 6 + [0, 1])
            if rng.random() < 0.5:
                rows.append((cpu, OP_KMALLOC, -1, node, rng.choice(SIZES), None))
            else:
                c = rng.choice(caches)
                rows.append((cpu, OP_ALLOC, c, node, 0, None))
            live.append(len(rows) - 1)
        elif r < 0.95:
            i = live.pop(rng.randrange(len(live)))
            freed.append(i)
            op = OP_CACHE_FREE if rows[i][1] == OP_ALLOC and rng.random() < 0.7 else OP_FREE
            cache = rows[i][2] if op == OP_CACHE_FREE else -1
            if op == OP_CACHE_FREE and rng.random() < 0.05:
                cache = rng.choice(caches)  # maybe the wrong cache
            rows.append((cpu, op, cache, NUMA_NO_NODE, 0, ("slot", i, rng.random() < 0.03)))
        elif freed and double_frees:
            rows.append((cpu, OP_FREE, -1, NUMA_NO_NODE, 0, ("slot", rng.choice(freed), False)))
        else:
            rows.append((cpu, OP_FREE, -1, NUMA_NO_NODE, 0, ("addr", rng.randrange(1 << 16, 1 << 24) | 1)))
    return rows


def _differential(allocator, kasan, seed, n_ops, memcg=False, dead_discard=False, check_every=50):
    rng = random.Random(seed)
    with _boot(allocator, kasan, dead_discard) as A, _boot(allocator, kasan, dead_discard) as B:
        caches = [A.cache("kmalloc-64"), A.cache("kmalloc-512"), A.cache("test-200")]
        if memcg:  # CPUs 0 and 1 in a memcg with a child of kmalloc-64; a dead one too
            for K in (A, B):
                m = memcg_alloc(K.mem, 0, -1)
                child = memcg_create_kmem_cache(K.mem, caches[0], m, 0)
                assert child >= 0
                for cpu in (0, 1):
                    K.mem.task[K.task_of(cpu), S.TASK_MEMCG] = m
                m2 = memcg_alloc(K.mem, 0, -1)
                dead = memcg_create_kmem_cache(K.mem, caches[2], m2, 0)
                mark_dead(K.mem, dead)
            caches.append(dead)
        results: dict[int, int] = {}
        for i, (cpu, op, cache, node, size, ref) in enumerate(_script(rng, caches, n_ops, kasan)):
            obj = 0
            if ref is not None:
                if ref[0] == "slot":
                    obj = results.get(ref[1], 0) + (1 if ref[2] else 0)  # +1: never an object start
                else:
                    obj = ref[1]
            if op == OP_ALLOC:
                size = int(A.mem.kmem_cache[cache, S.KMEM_CACHE_OBJECT_SIZE])
            ra = _run_op(A, op_step, cpu, op, cache, node, size, obj)
            rb = _run_op(B, _op_step, cpu, op, cache, node, size, obj)
            assert ra == rb
            results[i] = ra
            _assert_same(A, B, f"op {i} {(cpu, op, cache, node, size, obj)}", memory=i % 16 == 0)
            if check_every and i % check_every == 0:
                assert check_kernel(A.mem, A.nr_cpus, A.nr_nodes) == []
        _assert_same(A, B, "the last op")
        assert check_kernel(A.mem, A.nr_cpus, A.nr_nodes) == []
        return A.mem.kasan_report[0, 0]


@pytest.mark.parametrize("allocator", ["slub", "slab"])
@pytest.mark.parametrize("kasan", [False, True])
def test_fast_paths_match_the_general_path(allocator, kasan):
    reports = _differential(allocator, kasan, seed=1, n_ops=1500)
    assert reports > 0  # the script's double and invalid frees were reported


@pytest.mark.parametrize("allocator", ["slub", "slab"])
def test_fast_paths_match_with_memcgs_and_dead_caches(allocator):
    _differential(allocator, True, seed=2, n_ops=1200, memcg=True, dead_discard=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), allocator=st.sampled_from(["slub", "slab"]),
       kasan=st.booleans(), memcg=st.booleans(), dead_discard=st.booleans())
def test_fast_paths_match_property(seed, allocator, kasan, memcg, dead_discard):
    _differential(allocator, kasan, seed, n_ops=150, memcg=memcg, dead_discard=dead_discard,
                  check_every=0)


@pytest.mark.parametrize("allocator", ["slub", "slab"])
def test_local_pairs_take_the_fast_path(allocator):
    """After the first allocation has set up the CPU slab / array cache, local
    kmalloc+kfree pairs are all served by the fast-path functions."""
    with _boot(allocator, kasan=True, dead_discard=False) as K:
        k = K.mem
        t = K.task_of(0)
        first = _run_op(K, op_step, 0, OP_KMALLOC, -1, NUMA_NO_NODE, 64, 0)
        for _ in range(50):
            obj = kmalloc_fastpath(k, 64, NUMA_NO_NODE, 0, t)
            assert obj != 0
            assert kfree_fastpath(k, obj, -1, 0, 0) != 0
        s = K.cache("kmalloc-64")
        obj = kmem_cache_alloc_fastpath(k, s, int(k.kmem_cache[s, S.KMEM_CACHE_GEN]), NUMA_NO_NODE, 64, 0, t)
        assert obj != 0
        # kmem_cache_free through the fast path, then a double free: a miss, and the
        # general path reports it
        assert kfree_fastpath(k, obj, s, int(k.kmem_cache[s, S.KMEM_CACHE_GEN]), 0) != 0
        assert kfree_fastpath(k, obj, -1, 0, 0) == 0
        # the first object freed on CPU 1 (the same node): SLUB's slab is not CPU 1's
        # c->page (__slab_free), SLAB puts it in CPU 1's array cache
        hit = kfree_fastpath(k, first, -1, 0, 1) != 0
        assert hit == (allocator == "slab")
        if not hit:
            _run_op(K, op_step, 1, OP_FREE, -1, NUMA_NO_NODE, 0, first)
        # a stale generation is a miss (the general path reports the cache UAF)
        stale = int(k.kmem_cache[s, S.KMEM_CACHE_GEN]) + 1
        assert kmem_cache_alloc_fastpath(k, s, stale, NUMA_NO_NODE, 64, 0, t) == 0
        obj = kmalloc_fastpath(k, 64, NUMA_NO_NODE, 0, t)
        assert kfree_fastpath(k, obj, s, stale, 0) == 0
        other = K.cache("kmalloc-512")
        assert kfree_fastpath(k, obj, other, int(k.kmem_cache[other, S.KMEM_CACHE_GEN]), 0) == 0
        assert kfree_fastpath(k, obj, -1, 0, 0) != 0
        assert check_kernel(k, K.nr_cpus, K.nr_nodes) == []
