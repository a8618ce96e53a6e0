"""memcg kmem caches (mm/memcontrol.c and mm/slab_common.c, Linux 3.16 with the series).

What it models:
  - memcgs: rows of the memcg table in a hierarchy under the root memcg (memcg.parent,
    -1 = the root), MEMCG_ONLINE from creation, MEMCG_OFFLINE when taken offline,
    MEMCG_RELEASED (css_free) once no child cache and no child memcg pins them (a child
    holds a reference on its parent until it is released); a task belongs to one
    (task.memcg, -1 for the root memcg); kmem charges are hierarchical, as the kmem
    res_counter is: a slab's pages count in its memcg and every ancestor;
  - __memcg_kmem_get_cache: an allocation from root cache r by a task of memcg m uses
    m's child cache of r; on first use it queues memcg_create_cache_work_func on this
    CPU and allocates from r meanwhile; memcg_caches[m, r] is -1 (none), -2 (creation
    queued) or the child's row;
  - memcg_create_kmem_cache (the work): a new kmem_cache row with the root's geometry,
    memcg_cache_params {root, memcg, refcnt = 1 (the initial reference, owned by the live
    memcg), dead = 0}, published with a release store;
  - memcg_charge_slab / memcg_uncharge_slab around every slab page of a child cache:
    refcnt counts slabs (patch 1); when it drops to 0 under the self-destruct policy the
    cache's destruction is queued: call_rcu_sched then work (patch 6), or work at once;
  - kmem_cache_release: the descriptor row is freed, its generation bumped, so that any
    later touch by a task holding (row, old generation) is a use-after-free;
  - memcg_cache_dead: a child cache whose memcg went offline (dead = 1 after the stores
    that precede it: a release store, the smp_wmb/smp_rmb pairing of v3).
Locks: memcg_slab_mutex (rcu row's slab_mutex lock row) serialises creating and
releasing cache rows; refcnt and memcg counters are atomics.
Invariants: a child cache row is ACTIVE iff memcg_caches[memcg, root] == row;
refcnt == slabs of the cache + (1 while the memcg has not dropped its initial reference);
memcg.nr_caches == its child caches that are ACTIVE; a RELEASED memcg has none.
The offline and destroy paths are op phase machines in ops.py.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, fetch_add, load_acquire, store_release
from ..machine.spinlock import spin_lock, spin_unlock
from .rcu import RCU_CB_DESTROY, call_rcu_sched
from .slab_common import init_cache_rows
from .workqueue import WORK_CACHE_CREATE, WORK_CACHE_DESTROY, schedule_work

MEMCG_CACHE_NONE = -1
MEMCG_CACHE_QUEUED = -2

DESTROY_NONE = 0
DESTROY_QUEUED = 1  # a destroy work or RCU callback is on its way
DESTROY_AFTER_SYNC = 2  # offline collected it: destroyed after its synchronize_sched


@njit(cache=True, inline="always")
def is_memcg_cache(k, s):
    return k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] >= 0


@njit(cache=True, inline="always")
def memcg_cache_dead(k, s):
    """memcg_cache_dead(s): not a root cache and params->dead (read with smp_rmb)."""
    return is_memcg_cache(k, s) and \
        load_acquire(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_DEAD)) != 0


@njit(cache=True, inline="always")
def dead_discards(k, s):
    """Patches 7-8: does this cache drop empty slabs at once?"""
    return k.config[S.CONFIG_DEAD_DISCARD_EMPTY] != 0 and memcg_cache_dead(k, s)


@njit(cache=True, inline="always")
def memcg_cache_lookup(k, s, t):
    """__memcg_kmem_get_cache()'s lookup, writing nothing: s itself when task t is in no
    memcg (or the root), s is a child already or the memcg is going offline; else the
    memcg's child of s, or MEMCG_CACHE_NONE / MEMCG_CACHE_QUEUED when it has none yet."""
    m = k.task[t, S.TASK_MEMCG]
    if m < 0 or is_memcg_cache(k, s) or load_acquire(k.memcg, (m, S.MEMCG_STATE)) != S.MEMCG_ONLINE:
        return s
    return load_acquire(k.memcg_caches, (m, s))


@njit(cache=True)
def memcg_kmem_get_cache(k, s, t, cpu):
    """__memcg_kmem_get_cache(): the cache task t allocates from when it asks for s;
    the first request of a memcg for s queues the creation of its child cache and
    allocates from s meanwhile."""
    child = memcg_cache_lookup(k, s, t)
    if child >= 0:
        return child
    m = k.task[t, S.TASK_MEMCG]
    if child == MEMCG_CACHE_NONE and \
            cmpxchg(k.memcg_caches, (m, s), MEMCG_CACHE_NONE, MEMCG_CACHE_QUEUED) == MEMCG_CACHE_NONE:
        if not schedule_work(k, cpu, WORK_CACHE_CREATE, s, m, 0):
            store_release(k.memcg_caches, (m, s), MEMCG_CACHE_NONE)
    return s


@njit(cache=True)
def _charge_up(k, m, pages):
    """res_counter_charge(): the memcg and each ancestor up to the root."""
    while m >= 0:
        fetch_add(k.memcg, (m, S.MEMCG_KMEM_PAGES), pages)
        m = k.memcg[m, S.MEMCG_PARENT]


@njit(cache=True)
def memcg_charge_slab(k, s, order):
    """memcg_charge_slab(): a new slab of a child cache: pages to the memcg, refcnt + 1."""
    if not is_memcg_cache(k, s):
        return
    _charge_up(k, k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_MEMCG], 1 << order)
    fetch_add(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_REFCNT), 1)


@njit(cache=True, inline="always")
def claim_destroy(k, s, how):
    """Take the cache's one destruction (DESTROY_NONE -> how); False if a path already
    has it."""
    return cmpxchg(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_DESTROYING), DESTROY_NONE,
                   how) == DESTROY_NONE


@njit(cache=True)
def destroy_by_work(k, s, gen, cpu):
    """memcg_unregister_cache() now: its work queued on this CPU, once per cache."""
    if claim_destroy(k, s, DESTROY_QUEUED):
        schedule_work(k, cpu, WORK_CACHE_DESTROY, s, 0, gen)


@njit(cache=True)
def queue_destroy(k, s, cpu):
    """The last reference is gone: destroy the cache after a grace period (patch 6:
    call_rcu_sched, whose callback schedules the work) or by work at once."""
    gen = k.kmem_cache[s, S.KMEM_CACHE_GEN]
    if k.config[S.CONFIG_SYNC_BEFORE_DESTROY] == 0:
        destroy_by_work(k, s, gen, cpu)
    elif claim_destroy(k, s, DESTROY_QUEUED) and not call_rcu_sched(k, cpu, RCU_CB_DESTROY, s, gen):
        schedule_work(k, cpu, WORK_CACHE_DESTROY, s, 0, gen)  # no room for the callback


@njit(cache=True)
def memcg_uncharge_slab(k, s, order, cpu):
    """memcg_uncharge_slab(): a slab of a child cache freed: refcnt - 1, and with
    self-destruction (patches 1-3) the cache goes when it reaches 0."""
    if not is_memcg_cache(k, s):
        return
    _charge_up(k, k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_MEMCG], -(1 << order))
    left = fetch_add(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_REFCNT), -1) - 1
    if left == 0 and k.config[S.CONFIG_DEAD_CACHES] != 0:
        queue_destroy(k, s, cpu)


@njit(cache=True)
def memcg_alloc(k, cpu, parent):
    """mem_cgroup_css_alloc + online under `parent` (-1: the root memcg): a new memcg
    row, or -1 when none is left.  The child pins its parent until it is released."""
    m = fetch_add(k.ctl, (0, S.CTL_MEMCGS), 1)
    if m >= k.memcg.shape[0]:
        return -1
    k.memcg[m, S.MEMCG_PARENT] = parent
    k.memcg[m, S.MEMCG_NR_CHILDREN] = 0
    if parent >= 0:
        fetch_add(k.memcg, (parent, S.MEMCG_NR_CHILDREN), 1)
    k.memcg[m, S.MEMCG_NR_CACHES] = 0
    k.memcg[m, S.MEMCG_KMEM_PAGES] = 0
    k.memcg[m, S.MEMCG_CREATED_BY] = cpu
    k.memcg[m, S.MEMCG_OFFLINED_BY] = -1
    # release: the row above, paired with memcg_cache_lookup's load_acquire of the state
    store_release(k.memcg, (m, S.MEMCG_STATE), S.MEMCG_ONLINE)
    return m


@njit(cache=True)
def memcg_create_kmem_cache(k, root, m, cpu):
    """memcg_create_kmem_cache() (the creation work): m's child cache of root, under
    memcg_slab_mutex.  Returns its row, or -1 (memcg not online, or no free row: the
    allocations keep going to the root cache, as when the kernel's creation fails)."""
    mutex = k.rcu[0, S.RCU_SLAB_MUTEX]
    spin_lock(k.lock, mutex, cpu)
    cur = load_acquire(k.memcg_caches, (m, root))
    if cur >= 0:
        spin_unlock(k.lock, mutex)
        return cur
    s = -1
    if load_acquire(k.memcg, (m, S.MEMCG_STATE)) == S.MEMCG_ONLINE:
        for row in range(k.kmem_cache.shape[0]):
            if k.kmem_cache[row, S.KMEM_CACHE_STATE] == S.CACHE_FREE:
                s = row
                break
    if s < 0:
        store_release(k.memcg_caches, (m, root), MEMCG_CACHE_NONE)
        spin_unlock(k.lock, mutex)
        return -1
    # the root's geometry and tunables (one contiguous run of fields, see structs.py);
    # gen and what the row's last destroy recorded stay (a late report of a touch of the
    # previous generation names it)
    for f in range(S.KMEM_CACHE_ALLOCATOR, S.KMEM_CACHE_ALIEN_LIMIT + 1):
        k.kmem_cache[s, f] = k.kmem_cache[root, f]
    k.kmem_cache[s, S.KMEM_CACHE_CREATED_CPU] = cpu
    k.kmem_cache[s, S.KMEM_CACHE_REFCOUNT] = 1
    k.kmem_cache[s, S.KMEM_CACHE_MEMCG_PARAMS] = s
    k.kmem_cache[s, S.KMEM_CACHE_ROOT_CACHE] = root
    init_cache_rows(k, s)  # kmem_cache_create_memcg(): the per-node and per-CPU rows
    p = k.memcg_cache_params
    p[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] = root
    p[s, S.MEMCG_CACHE_PARAMS_MEMCG] = m
    p[s, S.MEMCG_CACHE_PARAMS_REFCNT] = 1  # the initial reference (patch 1)
    p[s, S.MEMCG_CACHE_PARAMS_DEAD] = 0
    p[s, S.MEMCG_CACHE_PARAMS_DESTROYING] = DESTROY_NONE
    p[s, S.MEMCG_CACHE_PARAMS_LEAKED] = 0
    fetch_add(k.memcg, (m, S.MEMCG_NR_CACHES), 1)  # css_get()
    store_release(k.kmem_cache, (s, S.KMEM_CACHE_STATE), S.CACHE_ACTIVE)
    # release: the whole new cache, paired with memcg_cache_lookup's load_acquire
    store_release(k.memcg_caches, (m, root), s)
    spin_unlock(k.lock, mutex)
    return s


@njit(cache=True)
def kmem_cache_release(k, s, cpu, phase):
    """The end of kmem_cache_destroy() for a child cache: memcg_unregister_cache's
    bookkeeping, then the descriptor and its per-CPU and per-node rows are freed (the
    generation moves on: a later touch through (s, old gen) is a use-after-free), and
    css_put() may release the offline memcg."""
    mutex = k.rcu[0, S.RCU_SLAB_MUTEX]
    spin_lock(k.lock, mutex, cpu)
    root = k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE]
    m = k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_MEMCG]
    if root >= 0 and m >= 0 and load_acquire(k.memcg_caches, (m, root)) == s:
        store_release(k.memcg_caches, (m, root), MEMCG_CACHE_NONE)
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    cpus = k.machine[0, S.MACHINE_NR_CPUS]
    k.kmem_cache[s, S.KMEM_CACHE_FREED_CPU] = cpu
    k.kmem_cache[s, S.KMEM_CACHE_FREED_PHASE] = phase
    k.kmem_cache[s, S.KMEM_CACHE_FREED_ROOT] = root
    k.kmem_cache[s, S.KMEM_CACHE_FREED_MEMCG] = m
    # seq_cst add: a release of the freed_* fields above, paired with cache_touch's
    # load_acquire of gen (its report reads them)
    fetch_add(k.kmem_cache, (s, S.KMEM_CACHE_GEN), 1)
    store_release(k.kmem_cache, (s, S.KMEM_CACHE_STATE), S.CACHE_FREE)
    for cpu_i in range(cpus):  # free_percpu(s->cpu_slab): poisoned, never read again
        c = s * cpus + cpu_i
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = 0
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = 0
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] = 0
    for nid in range(nodes):
        n = s * nodes + nid
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_PARTIAL] = 0
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD] = 0
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_TAIL] = 0
    k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_ROOT_CACHE] = -1
    k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_MEMCG] = -1
    k.memcg_cache_params[s, S.MEMCG_CACHE_PARAMS_DESTROYING] = DESTROY_NONE
    k.kmem_cache[s, S.KMEM_CACHE_ROOT_CACHE] = -1
    k.kmem_cache[s, S.KMEM_CACHE_MEMCG_PARAMS] = -1
    if m >= 0:
        fetch_add(k.memcg, (m, S.MEMCG_NR_CACHES), -1)  # css_put()
        memcg_release_if_unpinned(k, m)
    spin_unlock(k.lock, mutex)


@njit(cache=True)
def memcg_release_if_unpinned(k, m):
    """css_free() of an offline memcg once no child cache and no child memcg pins it;
    its parent loses a reference and may go in turn."""
    while m >= 0:
        if load_acquire(k.memcg, (m, S.MEMCG_NR_CACHES)) != 0 or \
                load_acquire(k.memcg, (m, S.MEMCG_NR_CHILDREN)) != 0:
            return
        if cmpxchg(k.memcg, (m, S.MEMCG_STATE), S.MEMCG_OFFLINE, S.MEMCG_RELEASED) != S.MEMCG_OFFLINE:
            return
        parent = k.memcg[m, S.MEMCG_PARENT]
        if parent >= 0:
            fetch_add(k.memcg, (parent, S.MEMCG_NR_CHILDREN), -1)
        m = parent


@njit(cache=True)
def cache_slabs(k, s):
    """Slabs of cache s over every node (nr_slabs)."""
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    total = 0
    for nid in range(nodes):
        total += k.kmem_cache_node[s * nodes + nid, S.KMEM_CACHE_NODE_NR_SLABS]
    return total


@njit(cache=True)
def mark_dead(k, s):
    """memcg_unregister_all_caches: params->dead = true, after which (smp_wmb) the dead
    cache's behaviour changes.  Patch 7 (SLUB): s->min_partial = 0 as well (v2 sets it
    at the top of the __kmem_cache_shrink that offline runs next).  Linux 4.0's
    __kmem_cache_shrink(s, deactivate=true) (commit d6e0b7fa1186) also sets
    s->cpu_partial = 0 (config dead_cpu_partial 3, "cpu_partial_zero"), then
    kick_all_cpus_sync()."""
    if k.config[S.CONFIG_DEAD_DISCARD_EMPTY] != 0 and \
            k.kmem_cache[s, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
        k.kmem_cache[s, S.KMEM_CACHE_MIN_PARTIAL] = 0
        if k.config[S.CONFIG_DEAD_CPU_PARTIAL] == 3:  # slub.DEAD_CPU_PARTIAL_ZERO
            k.kmem_cache[s, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS] = 0
    # release, after min_partial and cpu_partial (so a CPU that sees the cache dead sees
    # them 0 too), paired with memcg_cache_dead's load_acquire
    store_release(k.memcg_cache_params, (s, S.MEMCG_CACHE_PARAMS_DEAD), 1)
