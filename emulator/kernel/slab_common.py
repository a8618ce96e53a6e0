"""What SLUB and SLAB share (mm/slab_common.c, mm/slab.h, the KASAN hooks of 4.0).

What it models:
  - kmalloc_slab(size): the kmalloc cache serving a request (size_index for sizes up to
    192, then fls), from the `kmalloc_map` table filled at boot;
  - virt_to_head_page + the checks kfree() makes before it trusts a pointer: a pointer
    into no slab, not at an object boundary, or to an object already free is reported
    (invalid-free, double-free) and the free is skipped, never corrupting state;
  - kasan_slab_alloc / kasan_kmalloc (unpoison the requested bytes, redzone the rest of
    the slot) and kasan_slab_free (poison the slot KASAN_KMALLOC_FREE);
  - the KASAN-style report table, and the check that a task still holding a cache
    (row, generation) finds the same generation: touching a freed kmem_cache row is the
    use-after-free this emulator exists to show;
  - the rows below a kmem_cache descriptor (`init_cache_rows`), set up the same way for
    boot caches, named caches and memcg child caches.

Objects in a slab that were never allocated are poisoned KASAN_KMALLOC_FREE like freed
ones (KASAN 4.0 marks them as redzone), so a free of such an object is a double free;
the leftover at the end of a slab is KASAN_SLAB_PADDING.

Locks: none.  Reports are appended with one atomic fetch-add on the report counter
(row 0, word 0 of kasan_report); rows beyond max_reports are counted, not stored.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.atomics import fetch_add, load_acquire
from ..machine.machine import ac_alien_row, ac_cpu_row, ac_shared_row, alien_lock_row, list_lock_row
from .kasan import (
    KASAN_KMALLOC_FREE,
    KASAN_KMALLOC_REDZONE,
    kasan_poison_shadow,
    kasan_unpoison_shadow,
)
from .page_alloc import compound_head

NUMA_NO_NODE = -1
OP_CACHE_DESTROY = 8  # ops.OP_CACHE_DESTROY (ops imports this module, not the reverse)
ZERO_SIZE_PTR = 16  # kfree() ignores pointers <= ZERO_SIZE_PTR (ZERO_OR_NULL_PTR)

# Task flags (task.flags), every one of them: distinct bits (checked below), cleared by
# op_start.  slab_free_inline() clears the word when it is done.
TF_WAS_FROZEN = 1 << 0  # __slab_free: the slab was frozen when its CAS was computed (slub.py)
TF_COUNTED = 1 << 1  # __slab_free: stat(s, FREE_SLOWPATH) counted once per free (slub.py)
TF_DISCARDED = 1 << 2  # this free discarded a slab (the window before its last touch of s)
TF_SHUTDOWN = 1 << 8  # the shrink is __kmem_cache_shutdown's (ops.py)
TF_CACHES_COLLECTED = 1 << 9  # memcg offline: a child cache waits for synchronize_sched (patch 6)
TF_IPI_LOCAL = 1 << 10  # on_each_cpu(_cond): this CPU runs the function after the wait (ops.py)
TASK_FLAGS = (TF_WAS_FROZEN, TF_COUNTED, TF_DISCARDED, TF_SHUTDOWN, TF_CACHES_COLLECTED,
              TF_IPI_LOCAL)
assert all(f & (f - 1) == 0 for f in TASK_FLAGS), "a task flag is one bit"
assert len(set(TASK_FLAGS)) == len(TASK_FLAGS), "task flags share a bit"

# kfree() pointer classes
PTR_NULL = 0
PTR_SLAB = 1
PTR_LARGE = 2  # a kmalloc_large compound page
PTR_BAD = 3

# alloc_arraycache(node, entries, 0xbaadf00d): the batchcount of SLAB's shared and alien
# arrays, which are never refilled or flushed in batches
BATCHCOUNT_UNUSED = 0xBAADF00D


@njit(cache=True, inline="always")
def kmalloc_index(k, size):
    """kmalloc_index()/size_index: the kmalloc index of a request, or -1 if too big."""
    if size <= 0:
        return -1
    if size <= 192:
        return k.kmalloc_map[(size - 1) >> 3]
    fls = 0
    v = size - 1
    while v:
        fls += 1
        v >>= 1
    if fls >= 32:
        return -1
    return fls


@njit(cache=True, inline="always")
def kmalloc_slab(k, size):
    """kmalloc_slab(): the kmalloc cache row for `size`, or -1 (kmalloc_large)."""
    idx = kmalloc_index(k, size)
    if idx < 0 or idx >= 32:
        return -1
    return k.kmalloc_map[S.KMALLOC_CACHES_AT + idx]


@njit(cache=True, inline="always")
def node_row(k, s, nid):
    """Row of kmem_cache_node(s, nid) (cachep->node[nid] / get_node(s, nid))."""
    return s * k.machine[0, S.MACHINE_NR_NODES] + nid


@njit(cache=True)
def _init_lock_row(k, row, cls, node, owner):
    """spin_lock_init() of a cache's lock row: its class, node and owner for lock_stat.
    Machine set every lock row up (counters zero, lock_stat on or off) before boot; a
    row a later cache takes over keeps the counters of the earlier one."""
    k.lock[row, S.LOCK_CLASS] = cls
    k.lock[row, S.LOCK_NODE] = node
    k.lock[row, S.LOCK_OWNER_OBJ] = owner


@njit(cache=True)
def _init_ac(k, row, limit, batch, lock):
    """alloc_arraycache(): an empty array_cache whose slots are ac_entry[row]."""
    for f in range(k.array_cache.shape[1]):
        k.array_cache[row, f] = 0
    k.array_cache[row, S.ARRAY_CACHE_LIMIT] = limit
    k.array_cache[row, S.ARRAY_CACHE_BATCHCOUNT] = batch
    k.array_cache[row, S.ARRAY_CACHE_LOCK] = lock
    k.array_cache[row, S.ARRAY_CACHE_ENTRIES] = row


@njit(cache=True)
def init_cache_rows(k, s):
    """The rows below kmem_cache descriptor s, from its allocator and tunables (already
    in the descriptor): one kmem_cache_node row per node with its list_lock, one
    kmem_cache_cpu row per CPU with tid == cpu (init_kmem_cache_nodes(),
    alloc_kmem_cache_cpus() and init_tid() for SLUB); for SLAB, enable_cpucache()'s
    arrays (per CPU; shared and, on more than one node, alien per node, each alien
    array with its lock) and alloc_kmem_cache_node()'s
      free_limit = (1 + nr_cpus_node(node)) * batchcount + num.
    Boot and named caches (boot.py) and memcg child caches (memcontrol.py) all come
    here: the rows are numbered by machine.py's row functions only."""
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    cpus = k.machine[0, S.MACHINE_NR_CPUS]
    caches = k.kmem_cache.shape[0]
    slab = k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLAB
    batch = k.kmem_cache[s, S.KMEM_CACHE_BATCHCOUNT]
    shared = k.kmem_cache[s, S.KMEM_CACHE_SHARED]
    alien_limit = k.kmem_cache[s, S.KMEM_CACHE_ALIEN_LIMIT]
    for nid in range(nodes):
        n = node_row(k, s, nid)
        lock = list_lock_row(nodes, s, nid)
        for f in range(k.kmem_cache_node.shape[1]):
            k.kmem_cache_node[n, f] = 0
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK] = lock
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_SHARED] = -1
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_ALIEN] = -1
        _init_lock_row(k, lock, S.LOCK_CLASS_LIST_LOCK, nid, s)
        if not slab:
            continue
        on_node = 0
        for cpu in range(cpus):
            if k.cpu[cpu, S.CPU_NODE] == nid:
                on_node += 1
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_LIMIT] = \
            (1 + on_node) * batch + k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
        if shared != 0:
            row = ac_shared_row(cpus, nodes, caches, s, nid)
            _init_ac(k, row, shared * batch, BATCHCOUNT_UNUSED, -1)
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_SHARED] = row
        if nodes > 1 and alien_limit != 0:
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_ALIEN] = ac_alien_row(cpus, nodes, caches, s, nid, 0)
            for remote in range(nodes):
                if remote != nid:
                    lk = alien_lock_row(nodes, caches, s, nid, remote)
                    _init_lock_row(k, lk, S.LOCK_CLASS_ALIEN, nid, s)
                    _init_ac(k, ac_alien_row(cpus, nodes, caches, s, nid, remote), alien_limit,
                             BATCHCOUNT_UNUSED, lk)
    for cpu in range(cpus):
        c = s * cpus + cpu
        for f in range(k.kmem_cache_cpu.shape[1]):
            k.kmem_cache_cpu[c, f] = 0
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] = cpu  # init_tid()
        if slab:
            _init_ac(k, ac_cpu_row(cpus, s, cpu), k.kmem_cache[s, S.KMEM_CACHE_LIMIT], batch, -1)


@njit(cache=True)
def kasan_report(k, bug, cpu, task, op, phase, addr, size, cache, shadow):
    """Record one report (kasan_report / kasan_report_error)."""
    # the count claims a row; rows are read only once every writer has stopped (the parent
    # after joining the workers, or the process that wrote them), so need no release
    n = fetch_add(k.kasan_report, (0, 0), 1)
    if n < k.kasan_report.shape[0] - 1:
        r = n + 1
        k.kasan_report[r, S.KASAN_REPORT_BUG] = bug
        k.kasan_report[r, S.KASAN_REPORT_CPU] = cpu
        k.kasan_report[r, S.KASAN_REPORT_TASK] = task
        k.kasan_report[r, S.KASAN_REPORT_OP] = op
        k.kasan_report[r, S.KASAN_REPORT_PHASE] = phase
        k.kasan_report[r, S.KASAN_REPORT_ADDR] = addr
        k.kasan_report[r, S.KASAN_REPORT_SIZE] = size
        k.kasan_report[r, S.KASAN_REPORT_CACHE] = cache
        k.kasan_report[r, S.KASAN_REPORT_SHADOW] = shadow
        k.kasan_report[r, S.KASAN_REPORT_FREED_CPU] = -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_OP] = -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_PHASE] = -1
        k.kasan_report[r, S.KASAN_REPORT_PREEMPTED] = 1 if task >= 0 and k.task[task, S.TASK_OPS_STARTED] > 0 and \
            k.task[task, S.TASK_PREEMPTED_OP] == k.task[task, S.TASK_OPS_STARTED] else 0
        k.kasan_report[r, S.KASAN_REPORT_ALLOC_CPU] = -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_CPU_OP] = -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_CPU_PHASE] = -1
        k.kasan_report[r, S.KASAN_REPORT_CPU_PREV_OP] = k.task[task, S.TASK_PREV_OP] if task >= 0 else -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_ROOT] = -1
        k.kasan_report[r, S.KASAN_REPORT_FREED_MEMCG] = -1
    return n


@njit(cache=True, inline="always")
def cache_touch(k, s, gen, cpu, task, op, phase):
    """A touch of cache s by a task that took it at generation gen.

    Returns True when the cache is still the one the task took.  Otherwise reports a
    use-after-free of the kmem_cache descriptor (always on, whatever `kasan` says)."""
    # acquire, paired with kmem_cache_release's fetch_add of gen (the report reads freed_*)
    if load_acquire(k.kmem_cache, (s, S.KMEM_CACHE_GEN)) == gen:
        return True
    report_cache_uaf(k, s, cpu, task, op, phase)
    return False


@njit(cache=True)
def report_cache_uaf(k, s, cpu, task, op, phase):
    """A touch of a freed kmem_cache: the report says where the descriptor was freed
    (kmem_cache_destroy on which CPU, in which phase) and what the cache was."""
    n = kasan_report(k, S.BUG_CACHE_USE_AFTER_FREE, cpu, task, op, phase, s, 0, s, 0)
    if n < k.kasan_report.shape[0] - 1:
        r = n + 1
        k.kasan_report[r, S.KASAN_REPORT_FREED_CPU] = k.kmem_cache[s, S.KMEM_CACHE_FREED_CPU]
        k.kasan_report[r, S.KASAN_REPORT_FREED_OP] = OP_CACHE_DESTROY
        k.kasan_report[r, S.KASAN_REPORT_FREED_PHASE] = k.kmem_cache[s, S.KMEM_CACHE_FREED_PHASE]
        k.kasan_report[r, S.KASAN_REPORT_FREED_ROOT] = k.kmem_cache[s, S.KMEM_CACHE_FREED_ROOT]
        k.kasan_report[r, S.KASAN_REPORT_FREED_MEMCG] = k.kmem_cache[s, S.KMEM_CACHE_FREED_MEMCG]
        k.kasan_report[r, S.KASAN_REPORT_ALLOC_CPU] = k.kmem_cache[s, S.KMEM_CACHE_CREATED_CPU]
        fc = k.kmem_cache[s, S.KMEM_CACHE_FREED_CPU]
        if 0 <= fc < k.machine[0, S.MACHINE_NR_CPUS]:
            ft = fc * k.config[S.CONFIG_NR_TASKS_PER_CPU]
            k.kasan_report[r, S.KASAN_REPORT_FREED_CPU_OP] = k.task[ft, S.TASK_OP]
            k.kasan_report[r, S.KASAN_REPORT_FREED_CPU_PHASE] = k.task[ft, S.TASK_PHASE]


@njit(cache=True, inline="always")
def classify_free(k, addr):
    """virt_to_head_page() and the page's kind: (PTR_*, head pfn)."""
    if addr <= ZERO_SIZE_PTR:
        return PTR_NULL, 0
    shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
    pfn = addr >> shift
    if pfn <= 0 or pfn >= k.page.shape[0]:
        return PTR_BAD, 0
    head = compound_head(k, pfn)
    flags = k.page[head, S.PAGE_FLAGS]
    if (flags & S.PG_SLAB) != 0:
        return PTR_SLAB, head
    if (flags & S.PG_HEAD) != 0 and (flags & S.PG_BUDDY) == 0 and addr == head << shift:
        return PTR_LARGE, head
    return PTR_BAD, head


@njit(cache=True, inline="always")
def object_index(k, s, pfn, addr):
    """Index of the object at addr in slab pfn, or -1 if addr is no object boundary."""
    shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
    off = addr - (pfn << shift) - k.page[pfn, S.PAGE_S_MEM]
    size = k.kmem_cache[s, S.KMEM_CACHE_SIZE]
    if off < 0 or off % size != 0:
        return -1
    idx = off // size
    if idx >= slab_objects(k, s, pfn):
        return -1
    return idx


@njit(cache=True, inline="always")
def slab_objects(k, s, pfn):
    """page->objects (SLUB: from the packed word) / cachep->num (SLAB)."""
    if k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
        return (k.page[pfn, S.PAGE_FREELIST] >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE
    return k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]


@njit(cache=True)
def kasan_kmalloc(k, s, obj, size):
    """kasan_kmalloc(): `size` bytes accessible, the rest of the slot a redzone."""
    if k.machine[0, S.MACHINE_KASAN] == 0:
        return
    slot = k.kmem_cache[s, S.KMEM_CACHE_SIZE]
    kasan_unpoison_shadow(k.shadow, obj, size)
    start = (size + 7) & ~7
    if start < slot:
        kasan_poison_shadow(k.shadow, obj + start, slot - start, KASAN_KMALLOC_REDZONE)


@njit(cache=True)
def kasan_slab_free(k, s, obj):
    """kasan_slab_free(): the whole slot becomes KASAN_KMALLOC_FREE."""
    if k.machine[0, S.MACHINE_KASAN] == 0:
        return
    kasan_poison_shadow(k.shadow, obj, k.kmem_cache[s, S.KMEM_CACHE_SIZE], KASAN_KMALLOC_FREE)


@njit(cache=True, inline="always")
def check_free(k, s, pfn, addr, cpu, task, op):
    """The checks before a slab object is freed.  True: go ahead and free."""
    if object_index(k, s, pfn, addr) < 0:
        kasan_report(k, S.BUG_INVALID_FREE, cpu, task, op, 0, addr, 0, s, 0)
        return False
    if k.machine[0, S.MACHINE_KASAN] != 0:
        sh = k.shadow[addr >> 3]
        if sh == KASAN_KMALLOC_FREE:
            kasan_report(k, S.BUG_DOUBLE_FREE, cpu, task, op, 0, addr, 0, s, sh)
            return False
    return True
