"""SLUB and dead memcg caches, hand-worked kernel traces (docs/series.md §3 patch 7, §4, §7).

Each test builds a state by calling the kernel functions directly (the jitted SLUB and
memcg code on a small two-node machine), writes down the state before, makes the calls
one CPU would make, and checks the state after, under each policy where a switch
decides it:
  - the discard rule: 3.16's (and v2's) ``n->nr_partial > s->min_partial`` parks the
    empty slab of a one-object cache on n->partial when its node has no partial slab;
    4.0's ``>=`` ("slub: fix off by one in number of slab tests") discards it;
  - the frozen-slab leak race: a __slab_free that decided to freeze before the cache
    died pushes its slab on the dead cache's cpu partial list after the offline's
    flush; v2's patch 7 and 4.0 unfreeze it in put_cpu_partial, the RFC's
    kmem_cache_has_cpu_partial() design leaves it there.
"""

from __future__ import annotations

import pytest

from emulator.kernel.boot import Kernel
from emulator.kernel.memcontrol import mark_dead, memcg_alloc, memcg_create_kmem_cache
from emulator.kernel.slab_common import NUMA_NO_NODE, classify_free
from emulator.kernel.slub import (
    DEAD_CPU_PARTIAL_HAS,
    DEAD_CPU_PARTIAL_PUT,
    DEAD_CPU_PARTIAL_ZERO,
    DISCARD_RULE_3_16,
    DISCARD_RULE_4_0,
    SF_CMPXCHG,
    SF_DONE,
    SF_PUT_PARTIAL,
    SF_STAT,
    __flush_cpu_slab,
    fc_frozen,
    fc_inuse,
    shrink_node,
    slab_alloc_node,
    slab_free_begin,
    slab_free_cmpxchg,
    slab_free_inline,
    slab_free_put_partial,
    slab_free_stat,
)
from emulator.machine import structs as S

from ..conftest import small_topology

NR_CPUS = 4  # CPUs 0-1 on node 0, 2-3 on node 1


def boot(rule, how, size):
    """A SLUB kernel with one root cache of `size` bytes and memcg 0's child of it, under
    the self-destruct policy with patches 7-8 (dead_discard_empty) and the given discard
    rule and dead-cache cpu partial handling.  Returns (K, child row)."""
    K = Kernel(small_topology(node_mib=(16, 16), cpus_per_node=2), "slub", max_memcgs=2)
    k = K.mem
    root = K.kmem_cache_create("test-obj", size)
    k.task[:, S.TASK_MEMCG] = -1
    k.config[S.CONFIG_DEAD_CACHES] = 1
    k.config[S.CONFIG_DEAD_DISCARD_EMPTY] = 1
    k.config[S.CONFIG_DISCARD_RULE] = rule
    k.config[S.CONFIG_DEAD_CPU_PARTIAL] = how
    m = memcg_alloc(k, 0, -1)
    child = memcg_create_kmem_cache(k, root, m, 0)
    assert child >= 0
    return K, child


def alloc(K, s, cpu):
    k = K.mem
    obj = slab_alloc_node(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], NUMA_NO_NODE,
                          int(k.kmem_cache[s, S.KMEM_CACHE_OBJECT_SIZE]), cpu)
    assert obj != 0
    return int(obj)


def head(K, obj):
    return int(classify_free(K.mem, obj)[1])


def free(K, s, obj, cpu):
    k = K.mem
    slab_free_inline(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], head(K, obj), obj, cpu,
                     K.task_of(cpu))


def refcnt(K, s):
    return int(K.mem.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_REFCNT])


def nr_partial(K, s, nid):
    return int(K.mem.kmem_cache_node[s * K.nr_nodes + nid, S.KMEM_CACHE_NODE_NR_PARTIAL])


def partial_head(K, s, nid):
    return int(K.mem.kmem_cache_node[s * K.nr_nodes + nid, S.KMEM_CACHE_NODE_PARTIAL_HEAD])


def cpu_partial(K, s, cpu):
    return int(K.mem.kmem_cache_cpu[s * K.nr_cpus + cpu, S.KMEM_CACHE_CPU_PARTIAL])


def word(K, pfn):
    return int(K.mem.page[pfn, S.PAGE_FREELIST])


def is_slab(K, pfn):
    return (int(K.mem.page[pfn, S.PAGE_FLAGS]) & S.PG_SLAB) != 0


def offline(K, s, cpu=0):
    """memcg_unregister_all_caches for one child, as ops._offline_step runs it: mark it
    dead (min_partial = 0; 4.0: cpu_partial = 0), kmem_cache_shrink (flush_all: every
    CPU's __flush_cpu_slab, then every node's partial list), then drop the initial
    reference."""
    k = K.mem
    gen = k.kmem_cache[s, S.KMEM_CACHE_GEN]
    mark_dead(k, s)
    for c in range(K.nr_cpus):
        __flush_cpu_slab(k, s, gen, c)
    for nid in range(K.nr_nodes):
        shrink_node(k, s, gen, nid, True, cpu)


def drop_initial_ref(K, s):
    k = K.mem
    k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_REFCNT] -= 1
    return refcnt(K, s)


# -- the discard rule -----------------------------------------------------------------------
@pytest.mark.parametrize("rule, how", [(DISCARD_RULE_3_16, DEAD_CPU_PARTIAL_PUT),
                                       (DISCARD_RULE_4_0, DEAD_CPU_PARTIAL_ZERO),
                                       (DISCARD_RULE_4_0, DEAD_CPU_PARTIAL_PUT)])
def test_one_object_slab_freed_after_offline(rule, how):
    # big objects, one per slab: every slab is full while it holds its object
    K, s = boot(rule, how, 20000)
    try:
        k = K.mem
        assert int(k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]) == 1
        a = alloc(K, s, 0)  # slab P, CPU 0's cpu slab (node 0)
        b = alloc(K, s, 0)  # P is full: get_freelist finds nothing, P leaves the CPU
        #                     (on no list); slab Q becomes the cpu slab
        P, Q = head(K, a), head(K, b)
        assert P != Q and K.mem.page[P, S.PAGE_NODE] == K.mem.page[Q, S.PAGE_NODE] == 0
        offline(K, s)  # dead, min_partial 0, flush_all: Q deactivated full (no list)
        # before: P and Q full, unfrozen, on no list; node 0 has no partial slab;
        # refcnt = 2 slabs + the initial reference
        assert int(k.kmem_cache[s, S.KMEM_CACHE_MIN_PARTIAL]) == 0
        assert int(k.kmem_cache[s, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS]) == \
            (0 if how == DEAD_CPU_PARTIAL_ZERO else int(k.kmem_cache[K.cache("test-obj"), S.KMEM_CACHE_CPU_PARTIAL_OBJECTS]))
        for pfn in (P, Q):
            assert fc_inuse(word(K, pfn)) == 1 and not fc_frozen(word(K, pfn))
        assert nr_partial(K, s, 0) == 0 and refcnt(K, s) == 3
        # kfree(a) on CPU 1: __slab_free finds P full (prior NULL), freezes it,
        # put_cpu_partial pushes it and (patch 7 / 4.0) unfreezes the list at once:
        # unfreeze_partials sees an empty slab on a node with nr_partial 0
        free(K, s, a, 1)
        assert cpu_partial(K, s, 1) == 0
        if rule == DISCARD_RULE_3_16:
            # 0 > 0 is false: P is parked on n->partial, empty, still charged
            assert is_slab(K, P) and partial_head(K, s, 0) == P and nr_partial(K, s, 0) == 1
            assert fc_inuse(word(K, P)) == 0 and not fc_frozen(word(K, P))
            assert refcnt(K, s) == 3
        else:
            # 0 >= 0: discarded
            assert not is_slab(K, P) and nr_partial(K, s, 0) == 0 and refcnt(K, s) == 2
        # kfree(b) on CPU 1: the same path; now 3.16 finds P on the list (1 > 0)
        free(K, s, b, 1)
        assert not is_slab(K, Q)
        if rule == DISCARD_RULE_3_16:
            assert is_slab(K, P) and nr_partial(K, s, 0) == 1 and refcnt(K, s) == 2
            # the initial reference goes: P keeps the cache alive for good (nothing
            # shrinks a dead cache again)
            assert drop_initial_ref(K, s) == 1
        else:
            assert nr_partial(K, s, 0) == 0 and refcnt(K, s) == 1
            assert drop_initial_ref(K, s) == 0  # the uncharge path would destroy it now
        st = {n: int(k.kmem_cache_cpu[s * NR_CPUS + 1, S.CPU_STAT + i])
              for i, n in enumerate(S.SLUB_STAT_ITEMS)}
        assert st["CPU_PARTIAL_FREE"] == 2  # both frees went through put_cpu_partial
        assert st["DEACTIVATE_EMPTY"] == (1 if rule == DISCARD_RULE_3_16 else 2)
        assert st["FREE_ADD_PARTIAL"] == (1 if rule == DISCARD_RULE_3_16 else 0)
    finally:
        K.close()


@pytest.mark.parametrize("rule", [DISCARD_RULE_3_16, DISCARD_RULE_4_0])
def test_live_cache_keeps_min_partial_empty_slabs(rule):
    # a live cache: min_partial (5 for 200-byte objects) empty slabs are kept under
    # 3.16 (nr_partial > 5 discards the 7th), one fewer under 4.0 (>= 5 discards the 6th)
    K, _ = boot(rule, DEAD_CPU_PARTIAL_PUT, 20000)
    try:
        k = K.mem
        s = K.cache("test-obj")
        k.kmem_cache[s, S.KMEM_CACHE_MIN_PARTIAL] = 5
        objs = [alloc(K, s, 0) for _ in range(9)]  # 9 one-object slabs
        __flush_cpu_slab(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], 0)  # all 9 full, no list
        for o in objs:  # freed on CPU 2 (node 1): pushed on CPU 2's cpu partial list
            free(K, s, o, 2)
        __flush_cpu_slab(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], 2)  # unfreeze_partials
        assert nr_partial(K, s, 0) == (6 if rule == DISCARD_RULE_3_16 else 5)
    finally:
        K.close()


# -- the frozen-slab leak race -----------------------------------------------------------------
@pytest.mark.parametrize("rule, how", [(DISCARD_RULE_3_16, DEAD_CPU_PARTIAL_HAS),
                                       (DISCARD_RULE_3_16, DEAD_CPU_PARTIAL_PUT),
                                       (DISCARD_RULE_4_0, DEAD_CPU_PARTIAL_ZERO)])
def test_frozen_slab_leak_race(rule, how):
    # 16000-byte objects: two per slab
    K, s = boot(rule, how, 16000)
    try:
        k = K.mem
        assert int(k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]) == 2
        gen = k.kmem_cache[s, S.KMEM_CACHE_GEN]
        a, b = alloc(K, s, 0), alloc(K, s, 0)  # slab P, full
        P = head(K, a)
        assert head(K, b) == P
        __flush_cpu_slab(k, s, gen, 0)  # P leaves CPU 0: full, unfrozen, on no list
        assert fc_inuse(word(K, P)) == 2 and not fc_frozen(word(K, P))
        t1 = K.task_of(1)
        k.task[t1, S.TASK_FLAGS] = 0
        # CPU 1: kfree(a) -> __slab_free computes: prior NULL, the cache is live, so
        # kmem_cache_has_cpu_partial() -> new.frozen = 1; the CAS is the next phase
        assert slab_free_begin(k, s, gen, P, a, 1, t1) == SF_CMPXCHG
        assert fc_frozen(int(k.task[t1, S.TASK_NEW])) and fc_inuse(int(k.task[t1, S.TASK_NEW])) == 1
        # ... preempted here.  CPU 0 takes the memcg offline: dead, min_partial 0,
        # flush_all (CPU 1 has nothing yet), every node's partial list (nothing)
        offline(K, s)
        assert refcnt(K, s) == 2 and cpu_partial(K, s, 1) == 0 and nr_partial(K, s, 0) == 0
        # CPU 1 resumes: its cmpxchg_double_slab succeeds (P untouched), the slab is frozen
        assert slab_free_cmpxchg(k, s, gen, P, a, 1, t1) == SF_PUT_PARTIAL
        assert slab_free_put_partial(k, s, gen, P, 1, t1) == SF_STAT
        assert slab_free_stat(k, s, gen, 1, t1) == SF_DONE
        if how == DEAD_CPU_PARTIAL_HAS:
            # nothing checks: P stays frozen on a dead cache's cpu partial list
            assert cpu_partial(K, s, 1) == P and fc_frozen(word(K, P))
            assert nr_partial(K, s, 0) == 0
        else:
            # patch 7 (memcg_cache_dead) / 4.0 (!s->cpu_partial): unfrozen at once
            assert cpu_partial(K, s, 1) == 0 and not fc_frozen(word(K, P))
            assert partial_head(K, s, 0) == P and fc_inuse(word(K, P)) == 1
        assert drop_initial_ref(K, s) == 1
        # the last object goes, freed on CPU 2
        k.task[K.task_of(2), S.TASK_FLAGS] = 0
        free(K, s, b, 2)
        if how == DEAD_CPU_PARTIAL_HAS:
            # a free to a frozen slab (FREE_FROZEN): no list work; P stays, empty and
            # frozen, and the dead cache's refcount never reaches zero
            assert is_slab(K, P) and fc_frozen(word(K, P)) and fc_inuse(word(K, P)) == 0
            assert refcnt(K, s) == 1
        else:
            # P is on n->partial: slab_empty with nr_partial 1 (> 0 and >= 0): discarded
            assert not is_slab(K, P) and refcnt(K, s) == 0
    finally:
        K.close()


def test_rfc_design_after_death_takes_the_locked_path():
    # without the race, the RFC's design keeps a dead cache off cpu partial lists:
    # kmem_cache_has_cpu_partial() is false, so __slab_free takes list_lock and puts
    # the slab on n->partial itself
    K, s = boot(DISCARD_RULE_3_16, DEAD_CPU_PARTIAL_HAS, 16000)
    try:
        k = K.mem
        a, b = alloc(K, s, 0), alloc(K, s, 0)
        P = head(K, a)
        offline(K, s)
        assert not fc_frozen(word(K, P)) and fc_inuse(word(K, P)) == 2
        free(K, s, a, 1)
        assert cpu_partial(K, s, 1) == 0 and partial_head(K, s, 0) == P
        free(K, s, b, 1)
        assert not is_slab(K, P) and refcnt(K, s) == 1
    finally:
        K.close()
