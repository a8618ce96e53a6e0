"""SLUB details against hand-worked 3.16 traces: ALLOC_SLOWPATH's count and flush_all's
order.  State before, the calls, state after, on a small two-node machine (CPUs 0-1 on
node 0, 2-3 on node 1)."""

from __future__ import annotations

import pytest

from emulator.kernel.ops import (
    OP_SHRINK,
    STEP_BLOCKED,
    STEP_NEXT,
    handle_ipis,
    op_start,
    op_step,
)
from emulator.kernel.slab_common import NUMA_NO_NODE, TF_IPI_LOCAL, classify_free
from emulator.kernel.slub import slab_alloc_node, slab_free_inline
from emulator.machine import structs as S

from .slab_harness import make_kernel, slub_stats


@pytest.fixture
def kern():
    K = make_kernel("slub")
    yield K
    K.close()


def alloc(K, s, cpu):
    k = K.mem
    obj = int(slab_alloc_node(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], NUMA_NO_NODE,
                              int(k.kmem_cache[s, S.KMEM_CACHE_OBJECT_SIZE]), cpu))
    assert obj != 0
    return obj


def head(K, obj):
    return int(classify_free(K.mem, obj)[1])


def test_alloc_slowpath_once_per_slab_alloc_call(kern):
    # "mm: slub: fix ALLOC_SLOWPATH stat" (3.16): slab_alloc_node counts it once after
    # each __slab_alloc call.  Before it, __slab_alloc counted it at every pass through
    # "redo" that found c->freelist empty: never for a CPU without a cpu slab (it jumps
    # to new_slab), twice for a cpu slab found empty and replaced from the cpu partial list
    K = kern
    k = K.mem
    s = K.cache("kmalloc-64")
    n = int(k.kmem_cache[s, S.KMEM_CACHE_OBJECTS])
    assert n == 64

    def st():
        return slub_stats(K, "kmalloc-64")

    # call 1: CPU 0 has no cpu slab: __slab_alloc -> new_slab_objects -> new slab P
    first = alloc(K, s, 0)
    P = head(K, first)
    assert st()["ALLOC_SLOWPATH"] == 1 and st()["ALLOC_SLAB"] == 1
    objs = [alloc(K, s, 0) for _ in range(n - 1)]  # the rest of P, fast
    assert st()["ALLOC_FASTPATH"] == n - 1 and st()["ALLOC_SLOWPATH"] == 1
    # call 2: c->freelist empty, get_freelist(P) finds nothing: P leaves the CPU full
    # (DEACTIVATE_BYPASS), no cpu partial slab, no node partial slab: new slab Q
    q0 = alloc(K, s, 0)
    Q = head(K, q0)
    assert Q != P
    assert st()["ALLOC_SLOWPATH"] == 2 and st()["DEACTIVATE_BYPASS"] == 1 and st()["ALLOC_SLAB"] == 2
    # kfree of one of P's objects on CPU 0: P is not c->page, so __slab_free; P was full
    # (prior NULL): frozen and put on CPU 0's cpu partial list
    slab_free_inline(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], P, objs[0], 0, K.task_of(0))
    assert int(k.kmem_cache_cpu[s * K.nr_cpus + 0, S.KMEM_CACHE_CPU_PARTIAL]) == P
    for _ in range(n - 1):  # the rest of Q, fast
        alloc(K, s, 0)
    # call 3: Q empty (DEACTIVATE_BYPASS), P from the cpu partial list (CPU_PARTIAL_ALLOC),
    # goto redo: c->freelist empty again, get_freelist(P) takes its one object
    # (ALLOC_REFILL).  One call, one ALLOC_SLOWPATH (the old place counted two here)
    before = st()
    obj = alloc(K, s, 0)
    assert head(K, obj) == P
    after = st()
    assert after["ALLOC_SLOWPATH"] - before["ALLOC_SLOWPATH"] == 1
    assert after["CPU_PARTIAL_ALLOC"] == 1 and after["ALLOC_REFILL"] == 1
    assert after["DEACTIVATE_BYPASS"] == 2 and after["ALLOC_SLAB"] == 2
    assert after["ALLOC_SLOWPATH"] == 3 and after["ALLOC_FASTPATH"] == 2 * (n - 1)


def test_flush_all_flushes_this_cpu_after_the_others(kern):
    # flush_all -> on_each_cpu_cond(has_cpu_slab, flush_cpu_slab, s, 1) ->
    # on_each_cpu_mask: smp_call_function_many(wait=1) first, this CPU's own
    # flush_cpu_slab only once every other CPU has run it (kernel/smp.c, 3.16)
    K = kern
    k = K.mem
    s = K.cache("test-200")
    a = alloc(K, s, 0)  # CPU 0's cpu slab A (node 0), one object used
    b = alloc(K, s, 1)  # CPU 1's cpu slab B (node 0), one object used
    A, B = head(K, a), head(K, b)
    c0, c1 = s * K.nr_cpus + 0, s * K.nr_cpus + 1
    n0 = s * K.nr_nodes + 0
    assert k.kmem_cache_cpu[c0, S.KMEM_CACHE_CPU_PAGE] == A and k.kmem_cache_cpu[c1, S.KMEM_CACHE_CPU_PAGE] == B
    assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_NR_PARTIAL] == 0
    t = K.task_of(0)
    op_start(k, t, OP_SHRINK, s, -1, 0, 0)
    # phase 1: kmalloc the slabs_by_inuse array, then flush_all: an IPI to CPU 1 only
    # (has_cpu_slab), nothing done here yet
    assert op_step(k, t) == STEP_NEXT
    assert k.kmem_cache_cpu[c0, S.KMEM_CACHE_CPU_PAGE] == A
    assert k.kmem_cache_cpu[c1, S.KMEM_CACHE_CPU_PAGE] == B
    # the wait: CPU 1 has not answered
    assert op_step(k, t) == STEP_BLOCKED
    assert k.kmem_cache_cpu[c0, S.KMEM_CACHE_CPU_PAGE] == A
    # CPU 1 takes its IPI: B deactivated to n->partial (head)
    assert handle_ipis(k, 1) == 1
    assert k.kmem_cache_cpu[c1, S.KMEM_CACHE_CPU_PAGE] == 0
    assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_PARTIAL_HEAD] == B
    # the wait ends, and only now is CPU 0's own slab flushed: A lands at the head
    assert op_step(k, t) == STEP_NEXT
    assert k.kmem_cache_cpu[c0, S.KMEM_CACHE_CPU_PAGE] == 0
    assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_NR_PARTIAL] == 2
    assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_PARTIAL_HEAD] == A
    assert k.page[A, S.PAGE_LRU_NEXT] == B
    assert (k.task[t, S.TASK_FLAGS] & TF_IPI_LOCAL) == 0  # consumed
    for _ in range(20):  # the per-node passes and the kfree of the array
        if op_step(k, t) != STEP_NEXT:
            break
    assert k.task[t, S.TASK_OP] == 0


@pytest.mark.parametrize("mode", [2, 3])  # slub.TRACK_FULL_MEMCG, slub.NO_CPU_PARTIAL_MEMCG
def test_reparent_lists_memcg_caches_only(mode):
    # the reparent preset (2): a memcg cache lists its full slabs on n->full and keeps no
    # cpu partial list; a root cache keeps its cpu partial list and lists nothing.
    # no-cpu-partial (3): the memcg cache keeps no cpu partial list, lists nothing.
    from emulator.kernel.memcontrol import memcg_alloc, memcg_create_kmem_cache

    K = make_kernel("slub", max_memcgs=2)
    try:
        k = K.mem
        k.config[S.CONFIG_TRACK_FULL_SLABS] = mode
        root = K.cache("kmalloc-512")
        child = memcg_create_kmem_cache(k, root, memcg_alloc(k, 0, -1), 0)
        n = int(k.kmem_cache[root, S.KMEM_CACHE_OBJECTS])
        for s in (root, child):
            objs = [alloc(K, s, 0) for _ in range(n + 1)]  # slab P filled, then Q
            P = head(K, objs[0])
            n0 = s * K.nr_nodes + int(k.page[P, S.PAGE_NODE])
            listed = int(k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_NR_FULL])
            # before: P full, off the CPU (get_freelist found nothing); on n->full only
            # for a memcg cache under mode 2 (__slab_alloc's add_full under list_lock)
            assert listed == (1 if s == child and mode == 2 else 0)
            # kfree of one of P's objects on CPU 1: __slab_free with prior NULL
            slab_free_inline(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], P, objs[0], 1, K.task_of(1))
            cpu_partial = int(k.kmem_cache_cpu[s * K.nr_cpus + 1, S.KMEM_CACHE_CPU_PARTIAL])
            if s == root:  # kmem_cache_has_cpu_partial(): frozen onto CPU 1's list
                assert cpu_partial == P
            else:  # !kmem_cache_has_cpu_partial(): list_lock, remove_full, add_partial
                assert cpu_partial == 0
                assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_PARTIAL_HEAD] == P
                assert k.kmem_cache_node[n0, S.KMEM_CACHE_NODE_NR_FULL] == 0
    finally:
        K.close()
