"""Operations as phase state machines, and the IPIs between them (design section 5).

What it models: the kernel entry points a workload calls — kmem_cache_alloc_node,
kmalloc_node, kfree, kmem_cache_free, kmem_cache_shrink — each split at the points where
the kernel could be preempted or interrupted.  An op in flight lives in its task row
(op, phase, cache and its generation, object, page, registers); `op_step` runs one
phase and says whether the op is done, has another phase, or is blocked.  Between two
phases other CPUs run (parallelism), IPIs are handled, and, where the phase table says
preemption is enabled, the CPU may switch to another task (preemption).  A phase holds
no lock across its end: every spin_lock in a phase is released in it, as spin_lock
disables preemption in the kernel.  The fast paths are a single phase, so the phase
machinery costs them one dispatch.

IPIs (on_each_cpu for flush_all) go through each CPU's IPI ring; a CPU handles its IPIs
(`handle_ipis`) at every phase boundary, where interrupts are enabled in every phase
below, and acknowledges them to the sender's `ipi_acks` word, on which the sender's
flush_all waits (smp_call_function_many with wait=1).

The phase table (PHASES) names, per op and phase, the kernel code that runs and
whether preemption and interrupts are enabled at the boundary before it.  In 3.16
slab_free and __slab_free run with preemption enabled, which patch 5 of the series
(`nonpreemptible_free`) changes; the policy layer reads PHASE_PREEMPTIBLE.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..machine import structs as S
from ..machine.atomics import fetch_add, load_acquire
from ..machine.inbox import inbox_pending, inbox_recv, inbox_send
from ..machine.machine import NR_RINGS, RING_IPI
from .kasan import KASAN_PAGE_REDZONE, kasan_poison_shadow, kasan_unpoison_shadow
from .page_alloc import __GFP_COMP, __free_pages, alloc_pages_node
from .slab_common import (
    NUMA_NO_NODE,
    PTR_BAD,
    PTR_LARGE,
    PTR_NULL,
    cache_touch,
    check_free,
    classify_free,
    kasan_report,
    kasan_slab_free,
    kmalloc_slab,
)
from . import slab as SLAB
from .slub import (
    SF_CMPXCHG,
    SF_DONE,
    SF_PUT_PARTIAL,
    SF_RETRY,
    __flush_cpu_slab,
    has_cpu_slab,
    shrink_node,
    slab_alloc_node,
    slab_free_begin,
    slab_free_cmpxchg,
    slab_free_fast,
    slab_free_inline,
    slab_free_put_partial,
)

# ops
OP_NONE = 0
OP_ALLOC = 1  # kmem_cache_alloc_node(cache, node)
OP_KMALLOC = 2  # kmalloc_node(size, node)
OP_FREE = 3  # kfree(obj)
OP_CACHE_FREE = 4  # kmem_cache_free(cache, obj)
OP_SHRINK = 5  # kmem_cache_shrink(cache)
OP_REAP = 6  # SLAB's cache_reap() work on this CPU, over every cache
NR_OPS = 7
OP_NAMES = ("none", "kmem_cache_alloc", "kmalloc", "kfree", "kmem_cache_free",
            "kmem_cache_shrink", "cache_reap")

# op_step results
STEP_DONE = 0
STEP_NEXT = 1  # another phase follows (a boundary: IPIs, other CPUs, maybe preemption)
STEP_BLOCKED = 2  # waiting (for IPI acknowledgements); the same phase runs again

ENOMEM = 12

# IPI kinds
IPI_FLUSH_CPU_SLAB = 1  # SLUB flush_all(s) -> __flush_cpu_slab on each CPU
IPI_DRAIN = 2  # SLAB drain_cpu_caches(s) -> do_drain on each CPU
IPI_MSG_WORDS = 4  # kind, cache, gen, sender

# (op, phase) -> (kernel code, preemption enabled at the boundary before, irqs enabled)
PHASES = {
    (OP_ALLOC, 0): ("slab_alloc_node", True, True),
    (OP_KMALLOC, 0): ("kmalloc_node", True, True),
    (OP_FREE, 0): ("slab_free", True, True),
    (OP_FREE, 1): ("__slab_free", True, True),
    (OP_FREE, 2): ("__slab_free:cmpxchg_double_slab", True, True),
    (OP_FREE, 3): ("__slab_free:put_cpu_partial", True, True),
    (OP_SHRINK, 0): ("__kmem_cache_shrink:kmalloc+flush_all", True, True),
    (OP_SHRINK, 1): ("flush_all:wait", True, True),
    (OP_SHRINK, 2): ("__kmem_cache_shrink:node", True, True),  # SLAB: drain_alien_cache
    (OP_SHRINK, 3): ("__kmem_cache_shrink:kfree", True, True),  # SLAB: drain shared
    (OP_SHRINK, 4): ("__kmem_cache_shrink:drain_freelist", True, True),
    (OP_REAP, 0): ("cache_reap", True, True),
}
for _ph in range(4):
    if (OP_FREE, _ph) in PHASES:
        PHASES[(OP_CACHE_FREE, _ph)] = PHASES[(OP_FREE, _ph)]
MAX_PHASES = 5
PHASE_PREEMPTIBLE = np.zeros((NR_OPS, MAX_PHASES), np.int64)
for (_op, _ph), (_name, _preempt, _irqs) in PHASES.items():
    PHASE_PREEMPTIBLE[_op, _ph] = 1 if _preempt else 0


def phase_name(op: int, phase: int) -> str:
    entry = PHASES.get((op, phase))
    return entry[0] if entry else f"op{op}:phase{phase}"


# -- starting ops -------------------------------------------------------------------
@njit(cache=True, inline="always")
def op_start(k, t, op, cache, node, size, obj):
    """Begin an op in task row t (the task must be idle)."""
    k.task[t, S.TASK_OP] = op
    k.task[t, S.TASK_PHASE] = 0
    k.task[t, S.TASK_CACHE] = cache
    k.task[t, S.TASK_CACHE_GEN] = k.kmem_cache[cache, S.KMEM_CACHE_GEN] if cache >= 0 else -1
    k.task[t, S.TASK_NODE] = node
    k.task[t, S.TASK_SIZE] = size
    k.task[t, S.TASK_OBJ] = obj
    k.task[t, S.TASK_PAGE] = 0
    k.task[t, S.TASK_FLAGS] = 0
    k.task[t, S.TASK_ITER] = 0
    k.task[t, S.TASK_AUX] = 0
    k.task[t, S.TASK_RESULT] = 0
    k.task[t, S.TASK_OPS_STARTED] += 1


@njit(cache=True, inline="always")
def _finish(k, t):
    k.task[t, S.TASK_OP] = OP_NONE
    k.task[t, S.TASK_OPS_DONE] += 1
    return STEP_DONE


# -- the allocation side ------------------------------------------------------------
@njit(cache=True)
def kmalloc_large_node(k, size, node, cpu):
    """kmalloc_large_node(): a compound page block; 0 on failure."""
    shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
    order = 0
    while (1 << (order + shift)) < size:
        order += 1
    nid = node if node != NUMA_NO_NODE else k.cpu[cpu, S.CPU_MEM_NODE]
    pfn = alloc_pages_node(k, nid, order, __GFP_COMP, cpu)
    if pfn < 0:
        return 0
    addr = pfn << shift
    if k.machine[0, S.MACHINE_KASAN] != 0:  # kasan_kmalloc_large()
        kasan_unpoison_shadow(k.shadow, addr, size)
        start = (size + 7) & ~7
        end = (1 << (order + shift))
        if start < end:
            kasan_poison_shadow(k.shadow, addr + start, end - start, KASAN_PAGE_REDZONE)
    return addr


@njit(cache=True, inline="always")
def kmalloc_node(k, size, node, cpu):
    """kmalloc_node(): a kmalloc cache, or the page allocator beyond the largest one."""
    s = kmalloc_slab(k, size)
    if s < 0:
        return kmalloc_large_node(k, size, node, cpu)
    return cache_alloc(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], node, size, cpu)


@njit(cache=True)
def kfree_inline(k, addr, cpu, t):
    """kfree() run to completion with no preemption point (kernel-internal)."""
    kind, pfn = classify_free(k, addr)
    if kind == PTR_NULL or kind == PTR_BAD:
        return
    if kind == PTR_LARGE:
        __free_pages(k, pfn, k.page[pfn, S.PAGE_COMPOUND_ORDER], cpu)
        return
    s = k.page[pfn, S.PAGE_SLAB_CACHE]
    kasan_slab_free(k, s, addr)
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
        SLAB.__cache_free(k, s, addr, pfn, cpu)
    else:
        slab_free_inline(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN], pfn, addr, cpu, t)


# -- IPIs ---------------------------------------------------------------------------
@njit(cache=True)
def send_ipi(k, target, kind, cache, gen, sender):
    msg = np.empty(IPI_MSG_WORDS, np.int64)
    msg[0] = kind
    msg[1] = cache
    msg[2] = gen
    msg[3] = sender
    ring = target * NR_RINGS + RING_IPI
    while not inbox_send(k.inbox, k.slots, ring, msg):
        pass  # capacity >= nr_cpus and one IPI per sender in flight: never full


@njit(cache=True)
def handle_ipis(k, cpu):
    """Run every pending IPI on `cpu` (interrupts enabled here); returns how many."""
    ring = cpu * NR_RINGS + RING_IPI
    if inbox_pending(k.inbox, ring) == 0:  # the common case: no allocation, no work
        return 0
    msg = np.empty(IPI_MSG_WORDS, np.int64)
    n = 0
    while inbox_recv(k.inbox, k.slots, ring, msg):
        kind = msg[0]
        s = msg[1]
        gen = msg[2]
        if kind == IPI_FLUSH_CPU_SLAB:
            if cache_touch(k, s, gen, cpu, -1, 0, 0):
                __flush_cpu_slab(k, s, gen, cpu)
        elif kind == IPI_DRAIN:
            if cache_touch(k, s, gen, cpu, -1, 0, 0):
                SLAB.do_drain(k, s, cpu)
        fetch_add(k.cpu, (msg[3], S.CPU_IPI_ACKS), 1)
        n += 1
    k.cpu[cpu, S.CPU_IPIS_HANDLED] += n
    return n


@njit(cache=True)
def on_each_cpu_cond(k, s, gen, cpu, kind):
    """on_each_cpu_cond(cond, func, s, wait=1): IPI every other CPU for which the
    condition holds (SLUB: has_cpu_slab; SLAB's on_each_cpu: all), then run the function
    here at once.  Returns the ipi_acks value the caller must wait for."""
    target = k.cpu[cpu, S.CPU_IPI_ACKS]
    for other in range(k.machine[0, S.MACHINE_NR_CPUS]):
        if other != cpu and (kind == IPI_DRAIN or has_cpu_slab(k, s, other)):
            send_ipi(k, other, kind, s, gen, cpu)
            target += 1
    if kind == IPI_DRAIN:
        SLAB.do_drain(k, s, cpu)
    elif has_cpu_slab(k, s, cpu):
        __flush_cpu_slab(k, s, gen, cpu)
    return target


# -- the step function --------------------------------------------------------------
@njit(cache=True)
def op_step(k, t):
    """Run the next phase of task t's op.  Returns STEP_DONE, STEP_NEXT or STEP_BLOCKED."""
    op = k.task[t, S.TASK_OP]
    phase = k.task[t, S.TASK_PHASE]
    cpu = k.task[t, S.TASK_CPU]
    s = k.task[t, S.TASK_CACHE]
    gen = k.task[t, S.TASK_CACHE_GEN]
    if op == OP_ALLOC:
        if cache_touch(k, s, gen, cpu, t, op, phase):
            k.task[t, S.TASK_RESULT] = cache_alloc(k, s, gen, k.task[t, S.TASK_NODE],
                                                   k.task[t, S.TASK_SIZE], cpu)
        return _finish(k, t)
    if op == OP_KMALLOC:
        k.task[t, S.TASK_RESULT] = kmalloc_node(k, k.task[t, S.TASK_SIZE], k.task[t, S.TASK_NODE], cpu)
        return _finish(k, t)
    if op == OP_FREE or op == OP_CACHE_FREE:
        return _free_step(k, t, op, phase, cpu)
    if op == OP_SHRINK:
        if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
            return _slab_shrink_step(k, t, op, phase, cpu, s, gen)
        return _shrink_step(k, t, op, phase, cpu, s, gen)
    if op == OP_REAP:
        return _reap_step(k, t, cpu)
    return _finish(k, t)


@njit(cache=True, inline="always")
def cache_alloc(k, s, gen, node, size, cpu):
    """kmem_cache_alloc_node() for either allocator."""
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
        return SLAB.slab_alloc_node(k, s, gen, node, size, cpu)
    return slab_alloc_node(k, s, gen, node, size, cpu)


@njit(cache=True)
def _slab_shrink_step(k, t, op, phase, cpu, s, gen):
    """SLAB's __kmem_cache_shrink(): drain_cpu_caches (do_drain by IPI, then every
    node's alien arrays, then every node's shared array), then drain_freelist per node;
    one node per phase."""
    if phase == 1:
        if load_acquire(k.cpu, (cpu, S.CPU_IPI_ACKS)) < k.task[t, S.TASK_ITER]:
            return STEP_BLOCKED
        k.task[t, S.TASK_ITER] = 0
        k.task[t, S.TASK_PHASE] = 2
        return STEP_NEXT
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return _finish(k, t)
    if phase == 0:
        k.task[t, S.TASK_ITER] = on_each_cpu_cond(k, s, gen, cpu, IPI_DRAIN)  # drain_cpu_caches
        k.task[t, S.TASK_PHASE] = 1
        return STEP_NEXT
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    nid = k.task[t, S.TASK_ITER]
    if phase == 2:
        SLAB.drain_alien_cache(k, s, nid, cpu)
    elif phase == 3:
        SLAB.shrink_drain_shared(k, s, nid, cpu)
    else:
        SLAB.shrink_free_node(k, s, nid, cpu)
    nid += 1
    if nid >= nodes:
        if phase == 4:
            return _finish(k, t)
        nid = 0
        k.task[t, S.TASK_PHASE] = phase + 1
    k.task[t, S.TASK_ITER] = nid
    return STEP_NEXT


@njit(cache=True)
def _reap_step(k, t, cpu):
    """cache_reap(): one cache per phase (it cond_resched()s between caches)."""
    s = k.task[t, S.TASK_ITER]
    caches = k.kmem_cache.shape[0]
    while s < caches and (k.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE or
                          k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] != S.ALLOCATOR_SLAB):
        s += 1
    if s >= caches:
        return _finish(k, t)
    SLAB.cache_reap_one(k, s, cpu)
    k.task[t, S.TASK_ITER] = s + 1
    return STEP_NEXT


@njit(cache=True)
def _free_step(k, t, op, phase, cpu):
    obj = k.task[t, S.TASK_OBJ]
    if phase == 0:
        kind, pfn = classify_free(k, obj)
        if kind == PTR_NULL:
            return _finish(k, t)
        if kind == PTR_BAD or op == OP_CACHE_FREE and kind == PTR_LARGE:
            kasan_report(k, S.BUG_INVALID_FREE, cpu, t, op, phase, obj, 0, -1, 0)
            return _finish(k, t)
        if kind == PTR_LARGE:
            __free_pages(k, pfn, k.page[pfn, S.PAGE_COMPOUND_ORDER], cpu)
            return _finish(k, t)
        s = k.page[pfn, S.PAGE_SLAB_CACHE]
        if op == OP_CACHE_FREE:
            want = k.task[t, S.TASK_CACHE]
            if not cache_touch(k, want, k.task[t, S.TASK_CACHE_GEN], cpu, t, op, phase):
                return _finish(k, t)
            # cache_from_obj(): the page's cache, which must be s or a memcg child of it
            if s != want and k.kmem_cache[s, S.KMEM_CACHE_ROOT_CACHE] != want:
                kasan_report(k, S.BUG_INVALID_FREE, cpu, t, op, phase, obj, 0, want, 0)
                return _finish(k, t)
        gen = k.kmem_cache[s, S.KMEM_CACHE_GEN]
        k.task[t, S.TASK_CACHE] = s
        k.task[t, S.TASK_CACHE_GEN] = gen
        k.task[t, S.TASK_PAGE] = pfn
        if not check_free(k, s, pfn, obj, cpu, t, op):
            return _finish(k, t)
        if k.machine[0, S.MACHINE_KASAN] != 0:
            kasan_slab_free(k, s, obj)  # slab_free_hook()
        if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
            SLAB.__cache_free(k, s, obj, pfn, cpu)  # kfree() runs with irqs off
            return _finish(k, t)
        if slab_free_fast(k, s, pfn, obj, cpu):
            return _finish(k, t)
        k.task[t, S.TASK_PHASE] = 1
        return STEP_NEXT
    s = k.task[t, S.TASK_CACHE]
    gen = k.task[t, S.TASK_CACHE_GEN]
    pfn = k.task[t, S.TASK_PAGE]
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return _finish(k, t)
    if phase == 1:
        r = slab_free_begin(k, s, gen, pfn, obj, cpu, t)
    elif phase == 2:
        r = slab_free_cmpxchg(k, s, gen, pfn, obj, cpu, t)
    else:
        r = slab_free_put_partial(k, s, gen, pfn, cpu, t)
    if r == SF_DONE:
        return _finish(k, t)
    if r == SF_CMPXCHG:
        k.task[t, S.TASK_PHASE] = 2
    elif r == SF_RETRY:
        k.task[t, S.TASK_PHASE] = 1
    elif r == SF_PUT_PARTIAL:
        k.task[t, S.TASK_PHASE] = 3
    return STEP_NEXT


@njit(cache=True)
def _shrink_step(k, t, op, phase, cpu, s, gen):
    if phase == 1:  # flush_all: wait for every IPI to be acknowledged
        if load_acquire(k.cpu, (cpu, S.CPU_IPI_ACKS)) < k.task[t, S.TASK_ITER]:
            return STEP_BLOCKED
        k.task[t, S.TASK_ITER] = 0
        k.task[t, S.TASK_PHASE] = 2
        return STEP_NEXT
    if phase == 3:
        kfree_inline(k, k.task[t, S.TASK_AUX], cpu, t)
        return _finish(k, t)
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return _finish(k, t)
    if phase == 0:
        objects = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
        arr = kmalloc_node(k, 16 * objects, NUMA_NO_NODE, cpu)  # struct list_head[objects]
        if arr == 0 and k.config[S.CONFIG_SHRINK_TOLERATES_ENOMEM] == 0:
            k.task[t, S.TASK_RESULT] = -ENOMEM
            return _finish(k, t)
        k.task[t, S.TASK_AUX] = arr
        k.task[t, S.TASK_ITER] = on_each_cpu_cond(k, s, gen, cpu, IPI_FLUSH_CPU_SLAB)  # flush_all
        k.task[t, S.TASK_PHASE] = 1
        return STEP_NEXT
    # phase 2: one node per phase
    nid = k.task[t, S.TASK_ITER]
    shrink_node(k, s, gen, nid, k.task[t, S.TASK_AUX] != 0, cpu)
    nid += 1
    k.task[t, S.TASK_ITER] = nid
    if nid >= k.machine[0, S.MACHINE_NR_NODES]:
        k.task[t, S.TASK_PHASE] = 3
    return STEP_NEXT
