"""Operations as phase state machines, and the IPIs between them (docs/design.md §7).

What it models: the kernel entry points a workload calls — kmem_cache_alloc_node,
kmalloc_node, kfree, kmem_cache_free, kmem_cache_shrink — each split at the points where
the kernel could be preempted or interrupted.  An op in flight lives in its task row
(op, phase, cache and its generation, object, page, registers); `op_step` runs one
phase and says whether the op is done, has another phase, or is blocked.  Between two
phases other CPUs run (parallelism), IPIs are handled, and, where the phase table says
preemption is enabled, the CPU may switch to another task (preemption).  A phase holds
no lock across its end: every spin_lock in a phase is released in it, as spin_lock
disables preemption in the kernel.  The fast paths are a single phase: op_step runs them
flattened (fastpath.py) before anything else and enters the phase machine (_op_step)
only when they miss.  op_step, op_start and handle_ipis' empty check are compiled
without NRT, as fastpath.py explains; functions that allocate say `_nrt=True`.

IPIs (on_each_cpu for flush_all) go through each CPU's IPI ring; a CPU handles its IPIs
(`handle_ipis`) at every phase boundary, where interrupts are enabled in every phase
below, and acknowledges them to the sender's `ipi_acks` word, on which the sender's
flush_all waits (smp_call_function_many with wait=1).

The phase table (PHASES) names, per op and phase, the kernel code that runs and
whether preemption is enabled at the boundary before it.  In 3.16
slab_free and __slab_free run with preemption enabled, which patch 5 of the series
(`nonpreemptible_free`) changes: `preemptible` and `task_preemptible` read
PHASE_PREEMPTIBLE and apply that switch from the run's config vector, and the run loop
(emulator/run/loop.py, `_maybe_preempt`) asks `task_preemptible` before it preempts a
task.  Which boundaries are preemption points depends on the kernel's preemption model
(config preempt_model, emulator/kernel/kconfig.py): with CONFIG_PREEMPT every boundary
where preemption is enabled; with CONFIG_PREEMPT_VOLUNTARY only the boundaries in
COND_RESCHED_PHASES, where 3.16 calls cond_resched() or might_sleep() (which is a
cond_resched() under PREEMPT_VOLUNTARY); with CONFIG_PREEMPT_NONE none: a task is
switched out only between its ops (the return to user mode) or when it blocks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, fetch_add, load_acquire, store_release
from ..machine.inbox import inbox_pending, inbox_recv, inbox_send
from ..machine.spinlock import spin_lock, spin_unlock
from ..machine.machine import NR_RINGS, RING_IPI
from .kasan import KASAN_PAGE_REDZONE, kasan_poison_shadow, kasan_unpoison_shadow
from .page_alloc import __GFP_COMP, __free_pages, alloc_pages_node
from .slab_common import OP_CACHE_DESTROY as _SC_OP_CACHE_DESTROY
from .slab_common import (
    NUMA_NO_NODE,
    PTR_BAD,
    PTR_LARGE,
    PTR_NULL,
    TF_CACHES_COLLECTED,
    TF_DISCARDED,
    TF_IPI_LOCAL,
    TF_SHUTDOWN,
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
    SF_STAT,
    __flush_cpu_slab,
    has_cpu_slab,
    shrink_node,
    slab_alloc_node,
    slab_free_begin,
    slab_free_cmpxchg,
    slab_free_fast,
    slab_free_inline,
    slab_free_put_partial,
    slab_free_stat,
)
from .memcontrol import (
    DESTROY_AFTER_SYNC,
    DESTROY_NONE,
    DESTROY_QUEUED,
    cache_slabs,
    claim_destroy,
    destroy_by_work,
    kmem_cache_release,
    mark_dead,
    memcg_create_kmem_cache,
    memcg_kmem_get_cache,
    memcg_release_if_unpinned,
)
from .fastpath import kfree_fastpath, kmalloc_fastpath, kmem_cache_alloc_fastpath
from .rcu import rcu_qs, rcu_request_gp, rcu_sync_done
from .workqueue import WORK_CACHE_DESTROY, schedule_work

# ops
OP_NONE = 0
OP_ALLOC = 1  # kmem_cache_alloc_node(cache, node)
OP_KMALLOC = 2  # kmalloc_node(size, node)
OP_FREE = 3  # kfree(obj)
OP_CACHE_FREE = 4  # kmem_cache_free(cache, obj)
OP_SHRINK = 5  # kmem_cache_shrink(cache)
OP_REAP = 6  # SLAB's cache_reap() work on this CPU, over every cache
OP_MEMCG_OFFLINE = 7  # mem_cgroup_css_offline -> memcg_unregister_all_caches(memcg)
OP_CACHE_DESTROY = 8  # the unregister work: memcg_unregister_cache -> kmem_cache_destroy
OP_CACHE_CREATE = 9  # memcg_create_cache_work_func -> memcg_create_kmem_cache
NR_OPS = 10
OP_NAMES = ("none", "kmem_cache_alloc", "kmalloc", "kfree", "kmem_cache_free",
            "kmem_cache_shrink", "cache_reap", "memcg_offline", "kmem_cache_destroy",
            "memcg_create_kmem_cache")
assert OP_CACHE_DESTROY == _SC_OP_CACHE_DESTROY

# op_step results
STEP_DONE = 0
STEP_NEXT = 1  # another phase follows (a boundary: IPIs, other CPUs, maybe preemption)
STEP_BLOCKED = 2  # waiting (for IPI acknowledgements); the same phase runs again

# shrink_step results besides the next phase
SH_DONE = -1
SH_BLOCKED = -2

ENOMEM = 12

# IPI kinds
IPI_FLUSH_CPU_SLAB = 1  # SLUB flush_all(s) -> __flush_cpu_slab on each CPU
IPI_DRAIN = 2  # SLAB drain_cpu_caches(s) -> do_drain on each CPU
IPI_MSG_WORDS = 4  # kind, cache, gen, sender

# -- the phase table ----------------------------------------------------------------
# Every phase of every op, in order: (op, constant, kernel code, preemption enabled at
# the boundary before it).  An op's phases are numbered from FIRST_PHASE in table
# order; the PH_ constants below are those numbers, checked against the table.
# kmem_cache_free runs kfree's phases (SAME_PHASES).
#
# Interrupts are enabled at every boundary, so handle_ipis runs at each: the kernel's
# irq-off sections (SLUB's __slab_alloc and unfreeze_partials under local_irq_save,
# __slab_free's and the shrink's spin_lock_irqsave(list_lock), SLAB's __cache_free,
# ____cache_alloc, drain_alien_cache and cache_reap's drain_array) each begin and end
# inside one phase.  The two waits that span boundaries keep interrupts on: flush_all's
# smp_call_function_many(wait=1) (the IPIs it waits for need them) and
# synchronize_sched() (it sleeps).
_PHASE_TABLE = (
    (OP_ALLOC, "PH_ALLOC", "slab_alloc_node", True),
    (OP_KMALLOC, "PH_KMALLOC", "kmalloc_node", True),
    (OP_FREE, "PH_FREE", "slab_free", True),
    (OP_FREE, "PH_FREE_SLOW", "__slab_free", True),
    (OP_FREE, "PH_FREE_CMPXCHG", "__slab_free:cmpxchg_double_slab", True),
    (OP_FREE, "PH_FREE_PUT_PARTIAL", "__slab_free:put_cpu_partial", True),
    (OP_FREE, "PH_FREE_STAT", "__slab_free:stat(CPU_PARTIAL_FREE)", True),
    (OP_SHRINK, "PH_SHRINK_FLUSH", "__kmem_cache_shrink:kmalloc+flush_all", True),
    # smp_call_function_many(wait=1) waits with preemption disabled (get_cpu)
    (OP_SHRINK, "PH_SHRINK_WAIT", "flush_all:wait", False),
    (OP_SHRINK, "PH_SHRINK_NODE", "__kmem_cache_shrink:node", True),  # SLAB: drain_alien_cache
    (OP_SHRINK, "PH_SHRINK_KFREE", "__kmem_cache_shrink:kfree", True),  # SLAB: drain shared
    (OP_SHRINK, "PH_SHRINK_DRAIN_FREELIST", "__kmem_cache_shrink:drain_freelist", True),  # SLAB
    (OP_REAP, "PH_REAP", "cache_reap", True),
    (OP_MEMCG_OFFLINE, "PH_OFFLINE_NEXT", "memcg_unregister_all_caches:next", True),
    (OP_MEMCG_OFFLINE, "PH_OFFLINE_SHRINK", "memcg_unregister_all_caches:kmem_cache_shrink", True),
    (OP_MEMCG_OFFLINE, "PH_OFFLINE_PUT_REF", "memcg_unregister_all_caches:put_initial_ref", True),
    (OP_MEMCG_OFFLINE, "PH_OFFLINE_SYNC", "memcg_unregister_all_caches:synchronize_sched", True),
    (OP_MEMCG_OFFLINE, "PH_OFFLINE_UNREGISTER", "memcg_unregister_all_caches:unregister", True),
    (OP_CACHE_DESTROY, "PH_DESTROY", "kmem_cache_destroy", True),
    (OP_CACHE_DESTROY, "PH_DESTROY_SHUTDOWN", "kmem_cache_destroy:__kmem_cache_shutdown", True),
    (OP_CACHE_DESTROY, "PH_DESTROY_RELEASE", "kmem_cache_destroy:release", True),
    (OP_CACHE_CREATE, "PH_CACHE_CREATE", "memcg_create_kmem_cache", True),
)
# CONFIG_PREEMPT_VOLUNTARY: the boundaries that are a cond_resched() or might_sleep()
# call in 3.16 (each one named with its function).  None is inside slab_free/__slab_free,
# SLAB's __cache_free, flush_all's wait or a shrink's per-node loop.
COND_RESCHED_PHASES = (
    # kmem_cache_shrink(): get_online_cpus() -> might_sleep(); SLUB's __kmem_cache_shrink
    # kmallocs its slabs_by_inuse array with GFP_KERNEL (slab_pre_alloc_hook's might_sleep_if)
    ("OP_SHRINK", "PH_SHRINK_FLUSH"),
    ("OP_REAP", "PH_REAP"),  # mm/slab.c cache_reap(): cond_resched() after each cache
    # memcg_unregister_all_caches -> kmem_cache_shrink(child): get_online_cpus()
    ("OP_MEMCG_OFFLINE", "PH_OFFLINE_SHRINK"),
    # synchronize_sched() -> wait_rcu_gp() -> wait_for_completion(): might_sleep()
    ("OP_MEMCG_OFFLINE", "PH_OFFLINE_SYNC"),
    # kmem_cache_destroy(): get_online_cpus(), mutex_lock(&slab_mutex) (kworker ops,
    # never preempted by the run loop; listed for completeness)
    ("OP_CACHE_DESTROY", "PH_DESTROY"),
    ("OP_CACHE_CREATE", "PH_CACHE_CREATE"),  # memcg_create_kmem_cache(): mutex_lock
)
SAME_PHASES = {OP_CACHE_FREE: OP_FREE}  # op -> the op whose phases it runs
FIRST_PHASE = 0  # op_start's phase, every op's first row above

PH_ALLOC = 0
PH_KMALLOC = 0
PH_FREE = 0
PH_FREE_SLOW = 1
PH_FREE_CMPXCHG = 2
PH_FREE_PUT_PARTIAL = 3
PH_FREE_STAT = 4
PH_SHRINK_FLUSH = 0
PH_SHRINK_WAIT = 1
PH_SHRINK_NODE = 2
PH_SHRINK_KFREE = 3
PH_SHRINK_DRAIN_FREELIST = 4
PH_REAP = 0
PH_OFFLINE_NEXT = 0
PH_OFFLINE_SHRINK = 1
PH_OFFLINE_PUT_REF = 2
PH_OFFLINE_SYNC = 3
PH_OFFLINE_UNREGISTER = 4
PH_DESTROY = 0
PH_DESTROY_SHUTDOWN = 1
PH_DESTROY_RELEASE = 2
PH_CACHE_CREATE = 0


def _number_phases(table, same):
    """({constant: phase}, {(op, phase): (kernel code, preemptible)}) from the table."""
    numbers: dict[str, int] = {}
    phases: dict[tuple[int, int], tuple[str, bool]] = {}
    next_phase: dict[int, int] = {}
    for op, const, code, preempt in table:
        ph = next_phase.get(op, FIRST_PHASE)
        next_phase[op] = ph + 1
        numbers[const] = ph
        phases[(op, ph)] = (code, preempt)
    for op, like in same.items():
        phases.update({(op, ph): v for (o, ph), v in list(phases.items()) if o == like})
    return numbers, phases


_PHASE_NUMBERS, PHASES = _number_phases(_PHASE_TABLE, SAME_PHASES)
assert {n: v for n, v in globals().items() if n.startswith("PH_")} == _PHASE_NUMBERS, \
    "the PH_ constants must be the phase table's numbers"
MAX_PHASES = max(ph for _op, ph in PHASES) + 1
PHASE_PREEMPTIBLE = np.zeros((NR_OPS, MAX_PHASES), np.int64)
for (_op, _ph), (_name, _preempt) in PHASES.items():
    PHASE_PREEMPTIBLE[_op, _ph] = 1 if _preempt else 0
PHASE_PREEMPTIBLE_TABLE = PHASE_PREEMPTIBLE  # a global array: frozen into jitted code
PHASE_COND_RESCHED = np.zeros((NR_OPS, MAX_PHASES), np.int64)
for _opname, _const in COND_RESCHED_PHASES:
    _o = globals()[_opname]
    PHASE_COND_RESCHED[_o, _PHASE_NUMBERS[_const]] = 1
    for _same, _like in SAME_PHASES.items():
        if _like == _o:
            PHASE_COND_RESCHED[_same, _PHASE_NUMBERS[_const]] = 1
assert ((PHASE_COND_RESCHED != 0) <= (PHASE_PREEMPTIBLE != 0)).all(), \
    "a cond_resched() point is a boundary where preemption is enabled"
PHASE_COND_RESCHED_TABLE = PHASE_COND_RESCHED  # frozen into jitted code

# config[CONFIG_PREEMPT_MODEL] (kconfig.PREEMPT_NONE/VOLUNTARY/FULL)
PREEMPT_NONE = 0
PREEMPT_VOLUNTARY = 1
PREEMPT_FULL = 2

# __slab_free's results -> the free op's next phase (SF_DONE ends the op)
_SF_NEXT = {SF_RETRY: PH_FREE_SLOW, SF_CMPXCHG: PH_FREE_CMPXCHG,
            SF_PUT_PARTIAL: PH_FREE_PUT_PARTIAL, SF_STAT: PH_FREE_STAT}
SF_NEXT_PHASE = np.full(max(_SF_NEXT) + 1, -1, np.int64)  # frozen into jitted code
for _r, _ph in _SF_NEXT.items():
    SF_NEXT_PHASE[_r] = _ph
assert SF_DONE not in _SF_NEXT and (SF_NEXT_PHASE >= 0).sum() == len(_SF_NEXT) == SF_NEXT_PHASE.size - 1


@njit(cache=True, inline="always")
def preemptible(k, op, phase):
    """Is the boundary before (op, phase) a preemption point under the run's kernel
    build and policy?  CONFIG_PREEMPT_NONE: never; CONFIG_PREEMPT_VOLUNTARY: only the
    cond_resched() points (COND_RESCHED_PHASES); CONFIG_PREEMPT: every boundary with
    preemption enabled, less those patch 5 (nonpreemptible_free) removes inside SLUB's
    slab_free."""
    model = k.config[S.CONFIG_PREEMPT_MODEL]
    if model != PREEMPT_FULL:
        return model == PREEMPT_VOLUNTARY and PHASE_COND_RESCHED_TABLE[op, phase] != 0
    if PHASE_PREEMPTIBLE_TABLE[op, phase] == 0:
        return False
    if (op == OP_FREE or op == OP_CACHE_FREE) and phase != PH_FREE and \
            k.config[S.CONFIG_NONPREEMPTIBLE_FREE] != 0:
        return False
    return True


@njit(cache=True, inline="always")
def task_preemptible(k, t):
    """preemptible() for task t's next phase, the shrink nested in memcg offline and
    cache destruction included (its flush_all wait is not a preemption point)."""
    op = k.task[t, S.TASK_OP]
    phase = k.task[t, S.TASK_PHASE]
    if op == OP_MEMCG_OFFLINE and phase == PH_OFFLINE_SHRINK or \
            op == OP_CACHE_DESTROY and phase == PH_DESTROY_SHUTDOWN:
        return preemptible(k, OP_SHRINK, k.task[t, S.TASK_SUB_PHASE])
    return preemptible(k, op, phase)


def phase_name(op: int, phase: int) -> str:
    entry = PHASES.get((op, phase))
    return entry[0] if entry else f"op{op}:phase{phase}"


# -- starting ops -------------------------------------------------------------------
@njit(cache=True, _nrt=False)
def op_start(k, t, op, cache, node, size, obj):
    """Begin an op in task row t (the task must be idle).  (Compiled without NRT, so
    the task table is read once, see fastpath.py.)"""
    task = k.task
    task[t, S.TASK_OP] = op
    task[t, S.TASK_PHASE] = FIRST_PHASE
    task[t, S.TASK_CACHE] = cache
    task[t, S.TASK_CACHE_GEN] = k.kmem_cache[cache, S.KMEM_CACHE_GEN] if cache >= 0 else -1
    task[t, S.TASK_NODE] = node
    task[t, S.TASK_SIZE] = size
    task[t, S.TASK_OBJ] = obj
    task[t, S.TASK_PAGE] = 0
    task[t, S.TASK_FLAGS] = 0
    task[t, S.TASK_ITER] = 0
    task[t, S.TASK_AUX] = 0
    task[t, S.TASK_RESULT] = 0
    task[t, S.TASK_SUB_PHASE] = FIRST_PHASE
    task[t, S.TASK_ITER2] = 0
    task[t, S.TASK_OPS_STARTED] += 1


@njit(cache=True, inline="always")
def _task_done(task, t):
    """The op in task row t is complete."""
    task[t, S.TASK_PREV_OP] = task[t, S.TASK_OP]
    task[t, S.TASK_OP] = OP_NONE
    task[t, S.TASK_OPS_DONE] += 1
    return STEP_DONE


@njit(cache=True, inline="always")
def _finish(k, t):
    return _task_done(k.task, t)


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
def kmalloc_node(k, size, node, cpu, t):
    """kmalloc_node(): a kmalloc cache (task t's memcg child of it, t >= 0), or the page
    allocator beyond the largest one."""
    s = kmalloc_slab(k, size)
    if s < 0:
        return kmalloc_large_node(k, size, node, cpu)
    if t >= 0:
        s = memcg_kmem_get_cache(k, s, t, cpu)
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
@njit(cache=True, _nrt=True)  # allocates: NRT even when called from NRT-free code
def send_ipi(k, target, kind, cache, gen, sender):
    msg = np.empty(IPI_MSG_WORDS, np.int64)
    msg[0] = kind
    msg[1] = cache
    msg[2] = gen
    msg[3] = sender
    ring = target * NR_RINGS + RING_IPI
    while not inbox_send(k.inbox, k.slots, ring, msg):
        pass  # capacity >= nr_cpus and one IPI per sender in flight: never full


@njit(cache=True, _nrt=False)
def handle_ipis(k, cpu):
    """Run every pending IPI on `cpu` (interrupts enabled here); returns how many.
    The common case, nothing pending, is one load (compiled without NRT)."""
    if inbox_pending(k.inbox, cpu * NR_RINGS + RING_IPI) == 0:
        return 0
    return _handle_pending_ipis(k, cpu)


@njit(cache=True, _nrt=True)  # allocates: NRT even when called from NRT-free code
def _handle_pending_ipis(k, cpu):
    ring = cpu * NR_RINGS + RING_IPI
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
        # seq_cst add: releases the handler's writes, paired with the sender's load_acquire
        fetch_add(k.cpu, (msg[3], S.CPU_IPI_ACKS), 1)
        n += 1
    k.cpu[cpu, S.CPU_IPIS_HANDLED] += n
    return n


@njit(cache=True)
def on_each_cpu_cond(k, s, gen, cpu, kind, t):
    """on_each_cpu_cond(cond, func, s, wait=1) (SLUB's flush_all: cond has_cpu_slab) or
    on_each_cpu(func, s, wait=1) (SLAB's drain_cpu_caches: every CPU), first half: the
    condition is evaluated for every CPU, this one included, then every other CPU for
    which it holds gets an IPI.  Returns the ipi_acks value the caller must wait for;
    this CPU's own call is left to `on_each_cpu_local`, after the wait, as
    kernel/smp.c's on_each_cpu_mask() and on_each_cpu() do it (3.16):
    smp_call_function_many(mask, func, info, wait=1) waits for the other CPUs, and only
    then does func(info) run here, with irqs off.  Task flag TF_IPI_LOCAL says it must."""
    target = k.cpu[cpu, S.CPU_IPI_ACKS]
    local = kind == IPI_DRAIN or has_cpu_slab(k, s, cpu)  # for_each_online_cpu: cond_func
    for other in range(k.machine[0, S.MACHINE_NR_CPUS]):
        if other != cpu and (kind == IPI_DRAIN or has_cpu_slab(k, s, other)):
            send_ipi(k, other, kind, s, gen, cpu)
            target += 1
    if local:
        k.task[t, S.TASK_FLAGS] |= TF_IPI_LOCAL
    else:
        k.task[t, S.TASK_FLAGS] &= ~TF_IPI_LOCAL
    return target


@njit(cache=True)
def on_each_cpu_local(k, s, gen, cpu, kind, t, op, phase):
    """The second half of on_each_cpu_cond/on_each_cpu, once every IPI was acknowledged:
    local_irq_save(); func(info); local_irq_restore() on this CPU, if its condition
    held (TF_IPI_LOCAL)."""
    if (k.task[t, S.TASK_FLAGS] & TF_IPI_LOCAL) == 0:
        return
    k.task[t, S.TASK_FLAGS] &= ~TF_IPI_LOCAL
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return
    if kind == IPI_DRAIN:
        SLAB.do_drain(k, s, cpu)
    else:
        __flush_cpu_slab(k, s, gen, cpu)


# -- the step function --------------------------------------------------------------
@njit(cache=True, _nrt=False)
def op_step(k, t):
    """Run the next phase of task t's op.  Returns STEP_DONE, STEP_NEXT or STEP_BLOCKED.

    An alloc or a free that can complete on its fast path does so here, in one call
    (fastpath.py: the same effect as the general path, or a miss that wrote nothing);
    everything else runs the op's phase machine (_op_step)."""
    task = k.task
    op = task[t, S.TASK_OP]
    if op == OP_KMALLOC or op == OP_ALLOC:
        if op == OP_KMALLOC:
            obj = kmalloc_fastpath(k, task[t, S.TASK_SIZE], task[t, S.TASK_NODE], task[t, S.TASK_CPU], t)
        else:
            obj = kmem_cache_alloc_fastpath(k, task[t, S.TASK_CACHE], task[t, S.TASK_CACHE_GEN],
                                            task[t, S.TASK_NODE], task[t, S.TASK_SIZE],
                                            task[t, S.TASK_CPU], t)
        if obj != 0:
            task[t, S.TASK_RESULT] = obj
            return _task_done(task, t)
    elif (op == OP_FREE or op == OP_CACHE_FREE) and task[t, S.TASK_PHASE] == PH_FREE:
        want = task[t, S.TASK_CACHE] if op == OP_CACHE_FREE else -1
        pfn = kfree_fastpath(k, task[t, S.TASK_OBJ], want, task[t, S.TASK_CACHE_GEN], task[t, S.TASK_CPU])
        if pfn != 0:  # the task row as _free_step leaves it
            s = k.page[pfn, S.PAGE_SLAB_CACHE]
            task[t, S.TASK_CACHE] = s
            task[t, S.TASK_CACHE_GEN] = k.kmem_cache[s, S.KMEM_CACHE_GEN]
            task[t, S.TASK_PAGE] = pfn
            return _task_done(task, t)
    return _op_step(k, t)


@njit(cache=True)
def _op_step(k, t):
    """op_step() through the op's phase machine (the general path)."""
    op = k.task[t, S.TASK_OP]
    phase = k.task[t, S.TASK_PHASE]
    cpu = k.task[t, S.TASK_CPU]
    s = k.task[t, S.TASK_CACHE]
    gen = k.task[t, S.TASK_CACHE_GEN]
    if op == OP_ALLOC:
        if cache_touch(k, s, gen, cpu, t, op, phase):
            s = memcg_kmem_get_cache(k, s, t, cpu)
            k.task[t, S.TASK_RESULT] = cache_alloc(k, s, k.kmem_cache[s, S.KMEM_CACHE_GEN],
                                                   k.task[t, S.TASK_NODE], k.task[t, S.TASK_SIZE], cpu)
        return _finish(k, t)
    if op == OP_KMALLOC:
        k.task[t, S.TASK_RESULT] = kmalloc_node(k, k.task[t, S.TASK_SIZE], k.task[t, S.TASK_NODE],
                                                cpu, t)
        return _finish(k, t)
    if op == OP_FREE or op == OP_CACHE_FREE:
        return _free_step(k, t, op, phase, cpu)
    if op == OP_SHRINK:
        r = shrink_step(k, t, op, phase, cpu, s, gen)
        if r == SH_DONE:
            return _finish(k, t)
        if r == SH_BLOCKED:
            return STEP_BLOCKED
        k.task[t, S.TASK_PHASE] = r
        return STEP_NEXT
    if op == OP_REAP:
        return _reap_step(k, t, cpu)
    if op == OP_MEMCG_OFFLINE:
        return _offline_step(k, t, op, phase, cpu)
    if op == OP_CACHE_DESTROY:
        return _destroy_step(k, t, op, phase, cpu, s, gen)
    if op == OP_CACHE_CREATE:
        memcg_create_kmem_cache(k, s, k.task[t, S.TASK_ITER2], cpu)
        return _finish(k, t)
    return _finish(k, t)


@njit(cache=True, inline="always")
def cache_alloc(k, s, gen, node, size, cpu):
    """kmem_cache_alloc_node() for either allocator."""
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
        return SLAB.slab_alloc_node(k, s, gen, node, size, cpu)
    return slab_alloc_node(k, s, gen, node, size, cpu)


@njit(cache=True)
def _slab_shrink(k, t, op, phase, cpu, s, gen):
    """SLAB's __kmem_cache_shrink(): drain_cpu_caches (do_drain by IPI, then every
    node's alien arrays, then every node's shared array), then drain_freelist per node;
    one node per phase.  Returns the next phase, SH_DONE or SH_BLOCKED."""
    if phase == PH_SHRINK_WAIT:
        # acquire, paired with _handle_pending_ipis' fetch_add of the ack: the IPIs' work is seen
        if load_acquire(k.cpu, (cpu, S.CPU_IPI_ACKS)) < k.task[t, S.TASK_ITER]:
            return SH_BLOCKED
        on_each_cpu_local(k, s, gen, cpu, IPI_DRAIN, t, op, phase)  # do_drain here, last
        k.task[t, S.TASK_ITER] = 0
        return PH_SHRINK_NODE
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return SH_DONE
    if phase == PH_SHRINK_FLUSH:
        k.task[t, S.TASK_ITER] = on_each_cpu_cond(k, s, gen, cpu, IPI_DRAIN, t)  # drain_cpu_caches
        return PH_SHRINK_WAIT
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    nid = k.task[t, S.TASK_ITER]
    if phase == PH_SHRINK_NODE:
        SLAB.drain_alien_cache(k, s, nid, cpu)
    elif phase == PH_SHRINK_KFREE:
        SLAB.shrink_drain_shared(k, s, nid, cpu)
    else:
        SLAB.shrink_free_node(k, s, nid, cpu)
    nid += 1
    if nid >= nodes:
        if phase == PH_SHRINK_DRAIN_FREELIST:
            return SH_DONE
        k.task[t, S.TASK_ITER] = 0
        return PH_SHRINK_KFREE if phase == PH_SHRINK_NODE else PH_SHRINK_DRAIN_FREELIST
    k.task[t, S.TASK_ITER] = nid
    return phase


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
    if phase == PH_FREE:
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
        k.task[t, S.TASK_PHASE] = PH_FREE_SLOW
        return STEP_NEXT
    s = k.task[t, S.TASK_CACHE]
    gen = k.task[t, S.TASK_CACHE_GEN]
    pfn = k.task[t, S.TASK_PAGE]
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return _finish(k, t)
    if phase == PH_FREE_SLOW:
        r = slab_free_begin(k, s, gen, pfn, obj, cpu, t)
    elif phase == PH_FREE_CMPXCHG:
        r = slab_free_cmpxchg(k, s, gen, pfn, obj, cpu, t)
    elif phase == PH_FREE_PUT_PARTIAL:
        r = slab_free_put_partial(k, s, gen, pfn, cpu, t)
    else:
        # fault injection, the race window "put_cpu_partial -> stat(s, CPU_PARTIAL_FREE)"
        # when put_cpu_partial discarded a slab: the CPU stalls there (not a preemption
        # point: it spins) for race_delay steps
        if (k.task[t, S.TASK_FLAGS] & TF_DISCARDED) != 0 and \
                k.task[t, S.TASK_ITER] < k.config[S.CONFIG_RACE_DELAY_SPINS]:
            k.task[t, S.TASK_ITER] += 1
            return STEP_BLOCKED
        r = slab_free_stat(k, s, gen, cpu, t)
    if r == SF_DONE:
        return _finish(k, t)
    k.task[t, S.TASK_PHASE] = SF_NEXT_PHASE[r]
    return STEP_NEXT


@njit(cache=True)
def _slub_shrink(k, t, op, phase, cpu, s, gen):
    """SLUB's __kmem_cache_shrink(): kmalloc the slabs_by_inuse array, flush_all (IPIs,
    then waiting for them), one node per phase, kfree the array.  Returns the next
    phase, SH_DONE or SH_BLOCKED.  With TF_SHUTDOWN (__kmem_cache_shutdown) no array is
    allocated: empty slabs are freed, nothing is sorted."""
    if phase == PH_SHRINK_WAIT:  # flush_all: wait for every IPI to be acknowledged
        # acquire, paired with _handle_pending_ipis' fetch_add of the ack: the IPIs' work is seen
        if load_acquire(k.cpu, (cpu, S.CPU_IPI_ACKS)) < k.task[t, S.TASK_ITER]:
            return SH_BLOCKED
        on_each_cpu_local(k, s, gen, cpu, IPI_FLUSH_CPU_SLAB, t, op, phase)  # here, last
        k.task[t, S.TASK_ITER] = 0
        return PH_SHRINK_NODE
    if phase == PH_SHRINK_KFREE:
        kfree_inline(k, k.task[t, S.TASK_AUX], cpu, t)
        return SH_DONE
    if not cache_touch(k, s, gen, cpu, t, op, phase):
        return SH_DONE
    if phase == PH_SHRINK_FLUSH:
        arr = 0
        if (k.task[t, S.TASK_FLAGS] & TF_SHUTDOWN) == 0:
            objects = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
            if k.config[S.CONFIG_FAIL_SHRINK_ALLOC] == 0:  # fault injection: kmalloc fails
                arr = kmalloc_node(k, 16 * objects, NUMA_NO_NODE, cpu, -1)  # list_head[objects]
            if arr == 0 and k.config[S.CONFIG_SHRINK_TOLERATES_ENOMEM] == 0:
                k.task[t, S.TASK_RESULT] = -ENOMEM
                return SH_DONE
        k.task[t, S.TASK_AUX] = arr
        k.task[t, S.TASK_ITER] = on_each_cpu_cond(k, s, gen, cpu, IPI_FLUSH_CPU_SLAB, t)  # flush_all
        return PH_SHRINK_WAIT
    # PH_SHRINK_NODE: one node per phase
    nid = k.task[t, S.TASK_ITER]
    shrink_node(k, s, gen, nid, k.task[t, S.TASK_AUX] != 0, cpu)
    nid += 1
    k.task[t, S.TASK_ITER] = nid
    if nid >= k.machine[0, S.MACHINE_NR_NODES]:
        return PH_SHRINK_KFREE
    return PH_SHRINK_NODE


@njit(cache=True)
def shrink_step(k, t, op, phase, cpu, s, gen):
    """One phase of kmem_cache_shrink(s) for either allocator."""
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB:
        return _slab_shrink(k, t, op, phase, cpu, s, gen)
    return _slub_shrink(k, t, op, phase, cpu, s, gen)


# -- memcg offline and cache destruction ------------------------------------------------
@njit(cache=True)
def _nested_shrink(k, t, op, cpu, s, gen, then):
    """PH_OFFLINE_SHRINK and PH_DESTROY_SHUTDOWN: kmem_cache_shrink(s), one of its
    phases per step (task.sub_phase), then the op's phase `then`."""
    r = shrink_step(k, t, op, k.task[t, S.TASK_SUB_PHASE], cpu, s, gen)
    if r == SH_BLOCKED:
        return STEP_BLOCKED
    if r != SH_DONE:
        k.task[t, S.TASK_SUB_PHASE] = r
        return STEP_NEXT
    k.task[t, S.TASK_ITER] = 0
    k.task[t, S.TASK_PHASE] = then
    return STEP_NEXT

@njit(cache=True)
def _offline_step(k, t, op, phase, cpu):
    """memcg_unregister_all_caches(memcg), as each state of the series does it, one
    child cache at a time (task.obj is the memcg, task.iter2 the next root cache row,
    task.cache the child being processed, task.sub_phase its shrink's phase):
      0  the next child cache: mark it dead (dead = true; smp_wmb()), patch 7's
         min_partial = 0;
      1  kmem_cache_shrink(child), phase by phase (flush_all by IPI, per node);
      2  pre-series: destroy it now if it holds no slab, else leave it (leaked, pinning
         the memcg); self-destruct: drop the initial reference, and at 0 destroy it now
         or, with patch 6, after a synchronize_sched();
      3  synchronize_sched(): blocked (a quiescent state) until a grace period passed;
      4  the collected caches' unregister work is queued."""
    m = k.task[t, S.TASK_OBJ]
    if phase == PH_OFFLINE_NEXT:
        if k.task[t, S.TASK_ITER2] == 0:
            # css offline under memcg_slab_mutex: a creation work either published its
            # cache before (seen below) or finds the memcg offline and gives up
            mutex = k.rcu[0, S.RCU_SLAB_MUTEX]
            spin_lock(k.lock, mutex, cpu)
            k.memcg[m, S.MEMCG_OFFLINED_BY] = cpu
            store_release(k.memcg, (m, S.MEMCG_STATE), S.MEMCG_OFFLINE)
            spin_unlock(k.lock, mutex)
        r = k.task[t, S.TASK_ITER2]
        caches = k.kmem_cache.shape[0]
        while r < caches and load_acquire(k.memcg_caches, (m, r)) < 0:
            r += 1
        if r >= caches:
            if (k.task[t, S.TASK_FLAGS] & TF_CACHES_COLLECTED) != 0:
                k.task[t, S.TASK_ITER] = 0
                k.task[t, S.TASK_PHASE] = PH_OFFLINE_SYNC
                return STEP_NEXT
            memcg_release_if_unpinned(k, m)
            return _finish(k, t)
        child = load_acquire(k.memcg_caches, (m, r))
        k.task[t, S.TASK_ITER2] = r + 1
        k.task[t, S.TASK_CACHE] = child
        k.task[t, S.TASK_CACHE_GEN] = k.kmem_cache[child, S.KMEM_CACHE_GEN]
        mark_dead(k, child)
        k.task[t, S.TASK_ITER] = 0
        k.task[t, S.TASK_AUX] = 0
        k.task[t, S.TASK_SUB_PHASE] = PH_SHRINK_FLUSH
        k.task[t, S.TASK_PHASE] = PH_OFFLINE_SHRINK
        return STEP_NEXT
    s = k.task[t, S.TASK_CACHE]
    gen = k.task[t, S.TASK_CACHE_GEN]
    if phase == PH_OFFLINE_SHRINK:
        return _nested_shrink(k, t, op, cpu, s, gen, PH_OFFLINE_PUT_REF)
    if phase == PH_OFFLINE_PUT_REF:
        if cache_touch(k, s, gen, cpu, t, op, phase):
            if k.config[S.CONFIG_DEAD_CACHES] == 0:
                # pre-series: destroy only an empty cache; a cache with objects leaks
                if cache_slabs(k, s) == 0:
                    destroy_by_work(k, s, gen, cpu)
                else:
                    k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_LEAKED] = 1
            else:
                left = fetch_add(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_REFCNT), -1) - 1
                if left == 0:
                    if k.config[S.CONFIG_SYNC_BEFORE_DESTROY] == 0:
                        destroy_by_work(k, s, gen, cpu)  # at once
                    elif claim_destroy(k, s, DESTROY_AFTER_SYNC):
                        k.task[t, S.TASK_FLAGS] |= TF_CACHES_COLLECTED
        k.task[t, S.TASK_PHASE] = PH_OFFLINE_NEXT
        return STEP_NEXT
    if phase == PH_OFFLINE_SYNC:  # synchronize_sched()
        if k.task[t, S.TASK_ITER] == 0:
            k.task[t, S.TASK_AUX] = rcu_request_gp(k)
            k.task[t, S.TASK_ITER] = 1
        rcu_qs(k, cpu)  # the task sleeps: a quiescent state of this CPU
        if not rcu_sync_done(k, k.task[t, S.TASK_AUX]):
            return STEP_BLOCKED
        k.task[t, S.TASK_PHASE] = PH_OFFLINE_UNREGISTER
        return STEP_NEXT
    # PH_OFFLINE_UNREGISTER: unregister what was collected
    for c in range(k.kmem_cache.shape[0]):
        if k.memcg_cache_params[c, S.MEMCG_CACHE_PARAMS_MEMCG] == m and \
                k.memcg_cache_params[c, S.MEMCG_CACHE_PARAMS_DESTROYING] == DESTROY_AFTER_SYNC and \
                k.kmem_cache[c, S.KMEM_CACHE_STATE] == S.CACHE_ACTIVE:
            k.memcg_cache_params[c, S.MEMCG_CACHE_PARAMS_DESTROYING] = DESTROY_QUEUED
            schedule_work(k, cpu, WORK_CACHE_DESTROY, c, 0, k.kmem_cache[c, S.KMEM_CACHE_GEN])
    memcg_release_if_unpinned(k, m)
    return _finish(k, t)


@njit(cache=True)
def _destroy_step(k, t, op, phase, cpu, s, gen):
    """The unregister work, memcg_unregister_cache -> kmem_cache_destroy(s):
      0  a cache already gone (the work was queued twice) is left alone;
      1  __kmem_cache_shutdown: flush every CPU (IPIs) and free the empty slabs, phase
         by phase (the shrink machinery with TF_SHUTDOWN);
      2  a cache that still holds slabs is not destroyed (the kernel's "Slab cache still
         has objects"); else kmem_cache_release frees its rows."""
    if phase == PH_DESTROY:
        if k.kmem_cache[s, S.KMEM_CACHE_GEN] != gen or k.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE:
            return _finish(k, t)
        k.task[t, S.TASK_FLAGS] |= TF_SHUTDOWN
        k.task[t, S.TASK_SUB_PHASE] = PH_SHRINK_FLUSH
        k.task[t, S.TASK_ITER] = 0
        k.task[t, S.TASK_AUX] = 0
        k.task[t, S.TASK_PHASE] = PH_DESTROY_SHUTDOWN
        return STEP_NEXT
    if phase == PH_DESTROY_SHUTDOWN:
        return _nested_shrink(k, t, op, cpu, s, gen, PH_DESTROY_RELEASE)
    # PH_DESTROY_RELEASE
    if cache_touch(k, s, gen, cpu, t, op, phase):
        if cache_slabs(k, s) != 0:
            k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_DESTROYING] = DESTROY_NONE
            k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_LEAKED] = 1
        else:
            kmem_cache_release(k, s, cpu, phase)
    return _finish(k, t)

