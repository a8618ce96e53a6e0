"""SLUB (mm/slub.c, Linux 3.16) on the emulated machine.

What it models, function for function (each jitted function names its kernel twin):
  slab_alloc_node      the lockless fast path (slab_alloc_fast): pop c->freelist,
                       emulating this_cpu_cmpxchg_double(freelist, tid)
  __slab_alloc         the slow path with irqs off: refill from the cpu slab's page
                       freelist (get_freelist), the cpu partial list, the node partial
                       list (get_partial_node, acquire_slab), other nodes by distance
                       (get_any_partial), a new slab (new_slab, allocate_slab with the
                       fallback to s->min)
  slab_free_fast       slab_free's fast path: push on c->freelist when the object's
                       slab is c->page
  __slab_free          the slow path, split in phases (ops.py drives them): one CAS of
                       the page's freelist|counters word, freezing a full slab onto the
                       cpu partial list (put_cpu_partial, unfreeze_partials when the pool
                       is full), list moves under list_lock, discarding an empty slab
                       beyond min_partial
  deactivate_slab      returning a cpu slab to the node lists (both stages)
  __flush_cpu_slab     what flush_all's IPI runs on each CPU
  shrink_node          one node of __kmem_cache_shrink: sort partial slabs by inuse,
                       drop the empty ones
Counters: the CONFIG_SLUB_STATS items under their kernel names, per CPU.  They are
always counted (the reports show them), but only with CONFIG_SLUB_STATS (config
slub_stats) is a stat() a touch of s: the three stat() calls that can follow the
discard of a cache's last slab (unfreeze_partials' and deactivate_slab's
stat(s, FREE_SLAB), __slab_free's stat(s, CPU_PARTIAL_FREE)) go through `stat_touch`,
which checks the cache's generation, and reports a use-after-free, only in that build.
Without it those counts are kept only while the cache is the one the task took.

Slab states (struct page; the SLUB_FC_* layout in structs.py): a slab page's freelist,
inuse, objects and frozen bit share one int64 word, so cmpxchg_double_slab is one CAS.
  frozen        the slab belongs to a CPU (c->page, or on its cpu partial list): only
                that CPU takes objects from it; any CPU may free to it by CAS;
  partial       not frozen, some objects free: on n->partial, under n->list_lock;
  full          not frozen, no free object: on no list (on n->full with
                track_full_slabs);
  empty         inuse == 0: kept on n->partial while nr_partial <= min_partial
                (3.16, and the v2 series; config discard_rule 0) or < min_partial
                (Linux 4.0, since "slub: fix off by one in number of slab tests";
                discard_rule 1), otherwise discarded (its
                pages go back to the buddy allocator): `discard_empty`.
An object's free pointer lives inside the free object at s->offset, as a full address.
The page word's freelist is the index of the first free object + 1.

Locks and order: n->list_lock (lock row kmem_cache_node[LIST_LOCK]) is taken inside
irq-off sections and never across a phase boundary; zone->lock nests inside it only
through discard in shrink (as in the kernel, discard_slab runs after the unlock
elsewhere).  kmem_cache_cpu rows are written only by their own CPU (the IPI handler runs
on the target CPU).  The page word changes only by CAS, except while a slab is being
created or discarded, when no other CPU can reach it.

Invariants (checked by emulator/kernel/check.py at quiescent points):
  a slab not frozen: inuse + length(page freelist) == objects;
  a frozen slab: allocated + length(page freelist) + length(c->freelist, if c->page)
  == objects;  nr_partial == length(n->partial);  nr_slabs and total_objects of each
  node match the slab pages of the cache on it.

Simplifications (also in the README): no debug features (red zones, poisoning, user
tracking), no pfmemalloc, allocate_slab's irq-enable window for __GFP_WAIT is not a
preemption point, SLAB_DESTROY_BY_RCU frees at once, get_cycles() for
remote_node_defrag_ratio is the CPU's PRNG, and memoryless nodes use node_to_mem_node()
as 3.18 does.  Under slub_debug every cache, and with the policy's `track_full_slabs`
every memcg cache (`track_full`), keeps its full slabs on n->full and behaves as
kmem_cache_debug() does for list handling (no cpu partial lists): that is what tracking
them costs in list_lock traffic; `memcg_no_cpu_partial` takes memcg caches' cpu partial
lists away without listing full slabs (`has_cpu_partial`).  How a dead memcg cache leaves
cpu partial lists is the policy's `dead_cpu_partial` (`put_cpu_partial`,
`has_cpu_partial`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..machine import structs as S
from ..machine.atomics import cmpxchg, cpu_relax, fetch_add, load_relaxed
from ..machine.prng import uniform_below, xorshift64
from ..machine.spinlock import spin_lock, spin_unlock
from .kasan import KASAN_KMALLOC_FREE, KASAN_SLAB_PADDING, kasan_poison_shadow
from .lists import list_add, list_add_tail, list_del
from .page_alloc import __GFP_COMP, __free_pages, alloc_pages_node
from .memcontrol import (
    dead_discards,
    is_memcg_cache,
    memcg_cache_dead,
    memcg_charge_slab,
    memcg_uncharge_slab,
)
from .slab_common import (
    NUMA_NO_NODE,
    TF_COUNTED,
    TF_DISCARDED,
    TF_WAS_FROZEN,
    cache_touch,
    kasan_kmalloc,
    node_row,
)

# __slab_free phase results (ops.py maps them onto op phases)
SF_DONE = 0
SF_CMPXCHG = 1  # compute done, the CAS without list_lock is next (a preemption point)
SF_PUT_PARTIAL = 2  # the slab was frozen: put_cpu_partial is next
SF_RETRY = 3  # the CAS failed: start over
SF_STAT = 4  # put_cpu_partial done: __slab_free's stat(s, CPU_PARTIAL_FREE) is next

# __slab_free's task flags (TF_WAS_FROZEN, TF_COUNTED, TF_DISCARDED) are slab_common.py's

# config[CONFIG_TRACK_FULL_SLABS]: which caches list full slabs and keep no cpu partial list
TRACK_FULL_NONE = 0  # none (3.16 without debugging)
TRACK_FULL_ALL = 1  # every cache: slub_debug, kmem_cache_debug() (kernel build)
TRACK_FULL_MEMCG = 2  # memcg caches (policy track_full_slabs: what re-parenting needs)
NO_CPU_PARTIAL_MEMCG = 3  # memcg caches keep no cpu partial list, full slabs unlisted
#                          (policy memcg_no_cpu_partial: that half of the cost alone)

# config[CONFIG_DISCARD_RULE] (policy.DISCARD_RULES): the test that keeps an empty slab
DISCARD_RULE_3_16 = 0  # discard while n->nr_partial > s->min_partial (3.16, the v2 series)
DISCARD_RULE_4_0 = 1  # discard while n->nr_partial >= s->min_partial (4.0; Joonsoo Kim)
# config[CONFIG_DEAD_CPU_PARTIAL] (policy.DEAD_CPU_PARTIAL): a dead cache and cpu partials
DEAD_CPU_PARTIAL_KEEP = 0  # nothing changes (before patch 7)
DEAD_CPU_PARTIAL_PUT = 1  # v2 patch 7: put_cpu_partial unfreezes when memcg_cache_dead(s)
DEAD_CPU_PARTIAL_HAS = 2  # the RFC's kmem_cache_has_cpu_partial() false for a dead cache
DEAD_CPU_PARTIAL_ZERO = 3  # 4.0: s->cpu_partial = 0, put_cpu_partial unfreezes when 0


# -- the packed word ------------------------------------------------------------------
@njit(cache=True, inline="always")
def fc_freelist(w):
    return w & S.SLUB_FC_FREELIST_MASK


@njit(cache=True, inline="always")
def fc_inuse(w):
    return (w >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF


@njit(cache=True, inline="always")
def fc_objects(w):
    return (w >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE


@njit(cache=True, inline="always")
def fc_frozen(w):
    return (w & S.SLUB_FC_FROZEN) != 0


@njit(cache=True, inline="always")
def fc_make(fl, inuse, objects, frozen):
    w = fl | (inuse << S.SLUB_FC_INUSE_SHIFT) | (objects << S.SLUB_FC_OBJECTS_SHIFT)
    if frozen:
        w |= S.SLUB_FC_FROZEN
    return w


@njit(cache=True, inline="always")
def fl_to_addr(k, s, pfn, fl):
    if fl == 0:
        return 0
    return (pfn << k.machine[0, S.MACHINE_PAGE_SHIFT]) + (fl - 1) * k.kmem_cache[s, S.KMEM_CACHE_SIZE]


@njit(cache=True, inline="always")
def addr_to_fl(k, s, pfn, addr):
    if addr == 0:
        return 0
    base = pfn << k.machine[0, S.MACHINE_PAGE_SHIFT]
    return (addr - base) // k.kmem_cache[s, S.KMEM_CACHE_SIZE] + 1


@njit(cache=True, inline="always")
def get_freepointer(k, s, obj):
    return k.ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3]


@njit(cache=True, inline="always")
def set_freepointer(k, s, obj, fp):
    k.ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3] = fp


@njit(cache=True, inline="always")
def cpu_row(k, s, cpu):
    return s * k.machine[0, S.MACHINE_NR_CPUS] + cpu


@njit(cache=True, inline="always")
def stat(k, c, item):
    k.kmem_cache_cpu[c, S.CPU_STAT + item] += 1


@njit(cache=True, inline="always")
def stat_touch(k, s, gen, c, item, cpu, t, op, phase):
    """stat(s, item) where s may already be gone (after a discard_slab).  With
    CONFIG_SLUB_STATS, __this_cpu_inc(s->cpu_slab->stat[item]) reads s: a touch, checked
    (cache_touch reports a freed cache).  Without it stat() compiles to nothing, so
    nothing is touched; the emulator still counts while the cache is the task's."""
    if k.config[S.CONFIG_SLUB_STATS] != 0:
        if cache_touch(k, s, gen, cpu, t, op, phase):
            stat(k, c, item)
    elif k.kmem_cache[s, S.KMEM_CACHE_GEN] == gen:
        stat(k, c, item)


@njit(cache=True, inline="always")
def next_tid(k, tid):
    return tid + k.machine[0, S.MACHINE_TID_STEP]


@njit(cache=True, inline="always")
def track_full(k, s):
    """Does cache s keep its full slabs on n->full?  Every cache under slub_debug
    (kmem_cache_debug()); with the policy's track_full_slabs only memcg caches, whose
    slabs re-parenting would move (root caches are never re-parented)."""
    v = k.config[S.CONFIG_TRACK_FULL_SLABS]
    return v == TRACK_FULL_ALL or v == TRACK_FULL_MEMCG and is_memcg_cache(k, s)


@njit(cache=True, inline="always")
def has_cpu_partial(k, s):
    """kmem_cache_has_cpu_partial(): !kmem_cache_debug(s).  In the design the frozen-slab
    leak race was found in (dead_cpu_partial = "has_cpu_partial": Davydov's review of the
    re-parenting RFC's patch 3/3, Message-ID 537A4D27.1050909@parallels.com) it is also
    false for a dead memcg cache, and nothing else stops a dead cache's cpu partial list:
    a __slab_free that decided to freeze before the cache died still pushes its slab."""
    v = k.config[S.CONFIG_TRACK_FULL_SLABS]
    if v == TRACK_FULL_ALL or (v == TRACK_FULL_MEMCG or v == NO_CPU_PARTIAL_MEMCG) and \
            is_memcg_cache(k, s):
        return False  # lists handled as for kmem_cache_debug() caches
    return not (k.config[S.CONFIG_DEAD_CPU_PARTIAL] == DEAD_CPU_PARTIAL_HAS and
                memcg_cache_dead(k, s))


@njit(cache=True)
def cmpxchg_double_slab(k, c, pfn, old, new):
    # seq_cst: a push (set_freepointer, then this) releases the link; a taker reads links
    # only after its own CAS succeeded (acquire), so the relaxed loads before it suffice
    if cmpxchg(k.page, (pfn, S.PAGE_FREELIST), old, new) == old:
        return True
    stat(k, c, S.CMPXCHG_DOUBLE_FAIL)
    return False


@njit(cache=True)
def node_to_mem_node(k, nid):
    """The nearest node with memory (nid itself unless it is memoryless)."""
    for i in range(k.zonelist.shape[1]):
        z = k.zonelist[nid, i]
        if k.zone[z, S.ZONE_SPANNED_PAGES] > 0:
            return z
    return nid


@njit(cache=True)
def node_match(k, pfn, node):
    if node == NUMA_NO_NODE:
        return True
    return k.page[pfn, S.PAGE_NODE] == node_to_mem_node(k, node)


# -- node lists (list_lock held) ------------------------------------------------------
@njit(cache=True)
def add_partial(k, n, pfn, tail):
    if tail == S.DEACTIVATE_TO_TAIL:
        list_add_tail(k.page, k.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
                      S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, pfn)
    else:
        list_add(k.page, k.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
                 S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, pfn)


@njit(cache=True)
def remove_partial(k, n, pfn):
    list_del(k.page, k.kmem_cache_node, n, S.KMEM_CACHE_NODE_PARTIAL_HEAD,
             S.KMEM_CACHE_NODE_PARTIAL_TAIL, S.KMEM_CACHE_NODE_NR_PARTIAL, pfn)


@njit(cache=True)
def add_full(k, s, n, pfn):
    if track_full(k, s):
        list_add(k.page, k.kmem_cache_node, n, S.KMEM_CACHE_NODE_FULL_HEAD,
                 S.KMEM_CACHE_NODE_FULL_TAIL, S.KMEM_CACHE_NODE_NR_FULL, pfn)


@njit(cache=True)
def remove_full(k, s, n, pfn):
    if track_full(k, s):
        list_del(k.page, k.kmem_cache_node, n, S.KMEM_CACHE_NODE_FULL_HEAD,
                 S.KMEM_CACHE_NODE_FULL_TAIL, S.KMEM_CACHE_NODE_NR_FULL, pfn)


# -- slab pages -----------------------------------------------------------------------
@njit(cache=True)
def new_slab(k, s, node, cpu):
    """new_slab() + allocate_slab(): a frozen slab whose freelist holds every object.

    Returns the pfn, or 0 when the page allocator failed at both s->oo and s->min."""
    c = cpu_row(k, s, cpu)
    order = k.kmem_cache[s, S.KMEM_CACHE_ORDER]
    objects = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    pref = node if node != NUMA_NO_NODE else k.cpu[cpu, S.CPU_MEM_NODE]
    pfn = alloc_pages_node(k, pref, order, __GFP_COMP if order > 0 else 0, cpu)
    if pfn < 0:
        order = k.kmem_cache[s, S.KMEM_CACHE_MIN_ORDER]
        objects = k.kmem_cache[s, S.KMEM_CACHE_MIN_OBJECTS]
        pfn = alloc_pages_node(k, pref, order, __GFP_COMP if order > 0 else 0, cpu)
        if pfn >= 0:
            stat(k, c, S.ORDER_FALLBACK)
    if pfn < 0:
        return 0
    memcg_charge_slab(k, s, order)
    nid = k.page[pfn, S.PAGE_NODE]
    n = node_row(k, s, nid)
    fetch_add(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_NR_SLABS), 1)
    fetch_add(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS), objects)
    k.page[pfn, S.PAGE_SLAB_CACHE] = s
    k.page[pfn, S.PAGE_FLAGS] |= S.PG_SLAB
    k.page[pfn, S.PAGE_S_MEM] = 0
    k.page[pfn, S.PAGE_NEXT] = 0
    k.page[pfn, S.PAGE_PAGES] = 0
    k.page[pfn, S.PAGE_POBJECTS] = 0
    k.page[pfn, S.PAGE_LRU_NEXT] = 0
    k.page[pfn, S.PAGE_LRU_PREV] = 0
    shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
    size = k.kmem_cache[s, S.KMEM_CACHE_SIZE]
    base = pfn << shift
    for i in range(objects - 1):
        set_freepointer(k, s, base + i * size, base + (i + 1) * size)
    set_freepointer(k, s, base + (objects - 1) * size, 0)
    if k.machine[0, S.MACHINE_KASAN] != 0:
        kasan_poison_shadow(k.shadow, base, objects * size, KASAN_KMALLOC_FREE)
        end = base + ((1 << order) << shift)
        pad = (base + objects * size + 7) & ~7
        if pad < end:
            kasan_poison_shadow(k.shadow, pad, end - pad, KASAN_SLAB_PADDING)
    k.page[pfn, S.PAGE_FREELIST] = fc_make(1, objects, objects, True)
    return pfn


@njit(cache=True)
def discard_slab(k, s, pfn, cpu):
    """discard_slab(): dec_slabs_node() and free_slab() back to the page allocator."""
    w = k.page[pfn, S.PAGE_FREELIST]
    nid = k.page[pfn, S.PAGE_NODE]
    n = node_row(k, s, nid)
    fetch_add(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_NR_SLABS), -1)
    fetch_add(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS), -fc_objects(w))
    order = 0
    if (k.page[pfn, S.PAGE_FLAGS] & S.PG_HEAD) != 0:
        order = k.page[pfn, S.PAGE_COMPOUND_ORDER]
    k.page[pfn, S.PAGE_FLAGS] &= ~S.PG_SLAB
    k.page[pfn, S.PAGE_SLAB_CACHE] = -1
    k.page[pfn, S.PAGE_FREELIST] = 0
    k.page[pfn, S.PAGE_NEXT] = 0
    __free_pages(k, pfn, order, cpu)
    memcg_uncharge_slab(k, s, order, cpu)  # __free_slab(); may queue the cache's destroy


@njit(cache=True, inline="always")
def discard_empty(k, s, n):
    """May an empty slab of node row n be discarded (__slab_free's goto slab_empty,
    unfreeze_partials' discard list, deactivate_slab's M_FREE)?

    Linux 3.16, and the v2 series, whose patch 7 only sets min_partial = 0 for a dead
    cache (config discard_rule "3.16"): n->nr_partial > s->min_partial.  A dead cache's
    empty slab is then kept on n->partial when its node has no partial slab: a slab that
    empties while on no list (frozen, or full: every slab of a one-object cache) on such
    a node is parked there, and holds its refcount until something shrinks the cache.
    Linux 4.0 (discard_rule "4.0"): n->nr_partial >= s->min_partial, for every cache,
    so that min_partial 0 keeps no empty slab.  The change is Joonsoo Kim's "slub: fix
    off by one in number of slab tests" (Message-ID
    1403595842-28270-1-git-send-email-iamjoonsoo.kim@lge.com, 24 June 2014, acked by
    Davydov because min_partial 0 still cached a slab, "critical" to the series'
    destroying logic), posted after v2 and outside it; 4.0's d6e0b7fa1186 "slub: make
    dead caches discard free slabs immediately" relies on it."""
    nr = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_PARTIAL]
    mp = k.kmem_cache[s, S.KMEM_CACHE_MIN_PARTIAL]
    if k.config[S.CONFIG_DISCARD_RULE] == DISCARD_RULE_4_0:
        return nr >= mp
    return nr > mp


@njit(cache=True)
def race_window(k):
    """Fault injection: a delay inside a named race window (config race_delay_spins)."""
    n = k.config[S.CONFIG_RACE_DELAY_SPINS]
    for _ in range(n):
        cpu_relax()


# -- allocation ---------------------------------------------------------------------
@njit(cache=True)
def get_freelist(k, s, c, pfn):
    """get_freelist(): take the page freelist of the cpu slab (stays frozen if any)."""
    while True:
        old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
        fl = fc_freelist(old)
        objects = fc_objects(old)
        new = fc_make(0, objects, objects, fl != 0)
        if cmpxchg_double_slab(k, c, pfn, old, new):
            return fl_to_addr(k, s, pfn, fl)


@njit(cache=True)
def acquire_slab(k, s, c, n, pfn, mode):
    """acquire_slab(): freeze a partial slab and take it off n->partial (lock held).

    mode True takes the whole freelist (for c->page); returns (freelist, objects free)."""
    old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
    fl = fc_freelist(old)
    inuse = fc_inuse(old)
    objects = fc_objects(old)
    avail = objects - inuse
    if mode:
        new = fc_make(0, objects, objects, True)
    else:
        new = fc_make(fl, inuse, objects, True)
    if not cmpxchg_double_slab(k, c, pfn, old, new):
        return 0, 0
    remove_partial(k, n, pfn)
    return fl_to_addr(k, s, pfn, fl), avail


@njit(cache=True)
def get_partial_node(k, s, gen, nid, cpu):
    """get_partial_node(): refill this CPU from node nid's partial list."""
    n = node_row(k, s, nid)
    if load_relaxed(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_NR_PARTIAL)) == 0:
        return 0
    c = cpu_row(k, s, cpu)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    obj = 0
    available = 0
    pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD]
    while pfn != 0:
        nxt = k.page[pfn, S.PAGE_LRU_NEXT]
        t, objs = acquire_slab(k, s, c, n, pfn, obj == 0)
        if t == 0:
            break
        available += objs
        if obj == 0:
            k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = pfn
            stat(k, c, S.ALLOC_FROM_PARTIAL)
            obj = t
        else:
            put_cpu_partial(k, s, gen, pfn, False, cpu, -1, 0, 0)
            stat(k, c, S.CPU_PARTIAL_NODE)
        if not has_cpu_partial(k, s) or available > k.kmem_cache[s, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS] // 2:
            break
        pfn = nxt
    spin_unlock(k.lock, lock)
    return obj


@njit(cache=True)
def get_any_partial(k, s, gen, cpu):
    """get_any_partial(): partial slabs of other nodes, nearest first."""
    ratio = k.kmem_cache[s, S.KMEM_CACHE_REMOTE_NODE_DEFRAG_RATIO]
    if ratio == 0:
        return 0
    x = xorshift64(k.cpu[cpu, S.CPU_RNG])
    k.cpu[cpu, S.CPU_RNG] = x
    if uniform_below(x, 1024) > ratio:  # get_cycles() % 1024 > ratio
        return 0
    me = k.cpu[cpu, S.CPU_MEM_NODE]
    for i in range(k.zonelist.shape[1]):
        nid = k.zonelist[me, i]
        n = node_row(k, s, nid)
        if load_relaxed(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_NR_PARTIAL)) > \
                k.kmem_cache[s, S.KMEM_CACHE_MIN_PARTIAL]:
            obj = get_partial_node(k, s, gen, nid, cpu)
            if obj != 0:
                return obj
    return 0


@njit(cache=True)
def get_partial(k, s, gen, node, cpu):
    """get_partial(): the requested (or local) node first, then any node."""
    if node == NUMA_NO_NODE:
        search = k.cpu[cpu, S.CPU_MEM_NODE]
    else:
        search = node_to_mem_node(k, node)
    obj = get_partial_node(k, s, gen, search, cpu)
    if obj != 0 or node != NUMA_NO_NODE:
        return obj
    return get_any_partial(k, s, gen, cpu)


@njit(cache=True)
def new_slab_objects(k, s, gen, node, cpu):
    """new_slab_objects(): a partial slab, else a new one; sets c->page."""
    obj = get_partial(k, s, gen, node, cpu)
    if obj != 0:
        return obj
    pfn = new_slab(k, s, node, cpu)
    if pfn == 0:
        return 0
    c = cpu_row(k, s, cpu)
    if k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] != 0:
        flush_slab(k, s, gen, cpu)
    w = k.page[pfn, S.PAGE_FREELIST]
    obj = fl_to_addr(k, s, pfn, fc_freelist(w))
    k.page[pfn, S.PAGE_FREELIST] = fc_make(0, fc_inuse(w), fc_objects(w), True)
    stat(k, c, S.ALLOC_SLAB)
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = pfn
    return obj


@njit(cache=True)
def __slab_alloc(k, s, gen, node, cpu):
    """__slab_alloc() (irqs off): the allocation slow path.  0 on failure."""
    c = cpu_row(k, s, cpu)
    page = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE]
    freelist = 0
    while True:
        if page != 0:
            # redo:
            if not node_match(k, page, node):
                stat(k, c, S.ALLOC_NODE_MISMATCH)
                deactivate_slab(k, s, gen, page, k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST], cpu)
                k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = 0
                k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = 0
            else:
                freelist = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST]
                if freelist != 0:
                    break  # load_freelist
                if track_full(k, s):
                    # a cache that lists full slabs (kmem_cache_debug's list handling):
                    # a cpu slab found full leaves the CPU onto n->full, unfrozen under
                    # list_lock, as deactivate_slab's M_FULL does, so that a remote free
                    # that sees it unfrozen and full finds it on the list
                    n = node_row(k, s, k.page[page, S.PAGE_NODE])
                    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
                    spin_lock(k.lock, lock, cpu)
                    freelist = get_freelist(k, s, c, page)
                    if freelist == 0:
                        add_full(k, s, n, page)
                    spin_unlock(k.lock, lock)
                else:
                    freelist = get_freelist(k, s, c, page)
                if freelist != 0:
                    stat(k, c, S.ALLOC_REFILL)
                    break  # load_freelist
                k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = 0
                stat(k, c, S.DEACTIVATE_BYPASS)
        # new_slab:
        partial = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL]
        if partial != 0:
            page = partial
            k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = page
            k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] = k.page[page, S.PAGE_NEXT]
            k.page[page, S.PAGE_NEXT] = 0
            stat(k, c, S.CPU_PARTIAL_ALLOC)
            k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = 0
            continue  # goto redo
        freelist = new_slab_objects(k, s, gen, node, cpu)
        if freelist == 0:
            return 0  # slab_out_of_memory()
        break
    # load_freelist:
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = get_freepointer(k, s, freelist)
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] = next_tid(k, k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID])
    return freelist


@njit(cache=True, inline="always")
def slab_alloc_fast(k, s, node, cpu):
    """slab_alloc_node()'s fast path: pop c->freelist, or 0 with nothing written.

    In the kernel this_cpu_cmpxchg_double(freelist, tid) retries when the task was
    preempted or interrupted between its reads and the update; here nothing runs on
    this CPU inside a phase, so it always succeeds and is a plain update."""
    kcc = k.kmem_cache_cpu
    c = s * k.machine[0, S.MACHINE_NR_CPUS] + cpu
    obj = kcc[c, S.KMEM_CACHE_CPU_FREELIST]
    if obj == 0 or not (node == NUMA_NO_NODE or node_match(k, kcc[c, S.KMEM_CACHE_CPU_PAGE], node)):
        return 0
    # every read before the first write: a write to one table makes LLVM reload the rest
    nxt = k.ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3]  # get_freepointer()
    tid = kcc[c, S.KMEM_CACHE_CPU_TID] + k.machine[0, S.MACHINE_TID_STEP]  # next_tid()
    kcc[c, S.KMEM_CACHE_CPU_FREELIST] = nxt
    kcc[c, S.KMEM_CACHE_CPU_TID] = tid
    kcc[c, S.CPU_STAT + S.ALLOC_FASTPATH] += 1
    return obj


@njit(cache=True, inline="always")
def slab_alloc_node(k, s, gen, node, size, cpu):
    """slab_alloc_node(): the fast path, else __slab_alloc.  Returns the object or 0.

    stat(s, ALLOC_SLOWPATH) once per __slab_alloc call, here after it returns, as 3.16
    has it since "mm: slub: fix ALLOC_SLOWPATH stat" (3.15 counted it inside
    __slab_alloc, once per pass through its redo label: twice for a cpu slab found
    empty and then refilled from the cpu partial list)."""
    obj = slab_alloc_fast(k, s, node, cpu)
    if obj == 0:
        obj = __slab_alloc(k, s, gen, node, cpu)
        stat(k, cpu_row(k, s, cpu), S.ALLOC_SLOWPATH)
    if obj != 0 and k.machine[0, S.MACHINE_KASAN] != 0:
        kasan_kmalloc(k, s, obj, size)
    return obj


# -- freeing ------------------------------------------------------------------------
@njit(cache=True, inline="always")
def slab_free_fast(k, s, pfn, obj, cpu):
    """slab_free()'s fast path: True if the object went onto c->freelist (its slab is
    c->page), False with nothing written otherwise."""
    kcc = k.kmem_cache_cpu
    c = s * k.machine[0, S.MACHINE_NR_CPUS] + cpu
    if kcc[c, S.KMEM_CACHE_CPU_PAGE] != pfn:
        return False
    freelist = kcc[c, S.KMEM_CACHE_CPU_FREELIST]
    tid = kcc[c, S.KMEM_CACHE_CPU_TID] + k.machine[0, S.MACHINE_TID_STEP]  # next_tid()
    ram64 = k.ram64
    ram64[(obj + k.kmem_cache[s, S.KMEM_CACHE_OFFSET]) >> 3] = freelist  # set_freepointer()
    kcc[c, S.KMEM_CACHE_CPU_FREELIST] = obj
    kcc[c, S.KMEM_CACHE_CPU_TID] = tid
    kcc[c, S.CPU_STAT + S.FREE_FASTPATH] += 1
    return True


@njit(cache=True)
def slab_free_begin(k, s, gen, pfn, obj, cpu, t):
    """__slab_free(), up to its cmpxchg_double_slab (one turn of its loop).

    Without list_lock the CAS is left to the next phase (SF_CMPXCHG): between the two
    the task may be preempted, the window of the frozen-slab leak race.  With list_lock
    (the slab leaves or joins a node list) the CAS and the list work happen here, as
    spin_lock_irqsave allows no preemption, and the result is SF_DONE."""
    c = cpu_row(k, s, cpu)
    if (k.task[t, S.TASK_FLAGS] & TF_COUNTED) == 0:
        stat(k, c, S.FREE_SLOWPATH)
        k.task[t, S.TASK_FLAGS] |= TF_COUNTED
    nid = k.page[pfn, S.PAGE_NODE]
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    while True:
        old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
        prior = fl_to_addr(k, s, pfn, fc_freelist(old))
        set_freepointer(k, s, obj, prior)
        inuse = fc_inuse(old) - 1
        was_frozen = fc_frozen(old)
        frozen = was_frozen
        locked = False
        if (inuse == 0 or prior == 0) and not was_frozen:
            if has_cpu_partial(k, s) and prior == 0:
                frozen = True  # freeze it: put_cpu_partial later, no list_lock
            else:
                spin_lock(k.lock, lock, cpu)
                locked = True
        new = fc_make(addr_to_fl(k, s, pfn, obj), inuse, fc_objects(old), frozen)
        if not locked:
            k.task[t, S.TASK_PRIOR] = old
            k.task[t, S.TASK_NEW] = new
            if was_frozen:
                k.task[t, S.TASK_FLAGS] |= TF_WAS_FROZEN
            else:
                k.task[t, S.TASK_FLAGS] &= ~TF_WAS_FROZEN
            return SF_CMPXCHG
        if cmpxchg_double_slab(k, c, pfn, old, new):
            break
        spin_unlock(k.lock, lock)
    # list_lock held, the object is on the page freelist
    if inuse == 0 and discard_empty(k, s, n):
        # slab_empty:
        if prior != 0:
            remove_partial(k, n, pfn)
            stat(k, c, S.FREE_REMOVE_PARTIAL)
        else:
            remove_full(k, s, n, pfn)
        spin_unlock(k.lock, lock)
        stat(k, c, S.FREE_SLAB)
        discard_slab(k, s, pfn, cpu)
        return SF_DONE
    if not has_cpu_partial(k, s) and prior == 0:
        remove_full(k, s, n, pfn)
        add_partial(k, n, pfn, S.DEACTIVATE_TO_TAIL)
        stat(k, c, S.FREE_ADD_PARTIAL)
    spin_unlock(k.lock, lock)
    return SF_DONE


@njit(cache=True)
def slab_free_cmpxchg(k, s, gen, pfn, obj, cpu, t):
    """__slab_free()'s cmpxchg_double_slab without list_lock, and what follows it."""
    c = cpu_row(k, s, cpu)
    old = k.task[t, S.TASK_PRIOR]
    new = k.task[t, S.TASK_NEW]
    if not cmpxchg_double_slab(k, c, pfn, old, new):
        return SF_RETRY
    was_frozen = (k.task[t, S.TASK_FLAGS] & TF_WAS_FROZEN) != 0
    if fc_frozen(new) and not was_frozen:
        return SF_PUT_PARTIAL
    if was_frozen:
        stat(k, c, S.FREE_FROZEN)
    return SF_DONE


@njit(cache=True)
def slab_free_put_partial(k, s, gen, pfn, cpu, t):
    """__slab_free() after freezing a full slab: put_cpu_partial(s, page, 1).  Its
    stat(s, CPU_PARTIAL_FREE) is the next phase (slab_free_stat): between the two the
    task may be preempted, after put_cpu_partial may have freed the cache's last slab."""
    put_cpu_partial(k, s, gen, pfn, True, cpu, t, k.task[t, S.TASK_OP], k.task[t, S.TASK_PHASE])
    if k.config[S.CONFIG_SLUB_STATS] == 0:
        # no CONFIG_SLUB_STATS: stat(s, CPU_PARTIAL_FREE) is empty and __slab_free
        # returns here, touching s no more (the emulator's count, if s is still there)
        stat_touch(k, s, gen, cpu_row(k, s, cpu), S.CPU_PARTIAL_FREE, cpu, t,
                   k.task[t, S.TASK_OP], k.task[t, S.TASK_PHASE])
        return SF_DONE
    return SF_STAT


@njit(cache=True)
def slab_free_stat(k, s, gen, cpu, t):
    """__slab_free()'s last touch of s: stat(s, CPU_PARTIAL_FREE)."""
    if cache_touch(k, s, gen, cpu, t, k.task[t, S.TASK_OP], k.task[t, S.TASK_PHASE]):
        stat(k, cpu_row(k, s, cpu), S.CPU_PARTIAL_FREE)
    return SF_DONE


@njit(cache=True)
def slab_free_inline(k, s, gen, pfn, obj, cpu, t):
    """slab_free() run to completion with no preemption point (kernel-internal frees).

    The stages are ops.py's _free_step's, which runs one stage per phase with a
    preemption point between stages; here they run back to back, so the two dispatch
    loops are alike in shape only."""
    if slab_free_fast(k, s, pfn, obj, cpu):
        return
    r = slab_free_begin(k, s, gen, pfn, obj, cpu, t)
    while r != SF_DONE:
        if r == SF_CMPXCHG:
            r = slab_free_cmpxchg(k, s, gen, pfn, obj, cpu, t)
        elif r == SF_RETRY:
            r = slab_free_begin(k, s, gen, pfn, obj, cpu, t)
        elif r == SF_PUT_PARTIAL:
            r = slab_free_put_partial(k, s, gen, pfn, cpu, t)
        else:
            r = slab_free_stat(k, s, gen, cpu, t)
    # only __slab_free's own flags: the task row belongs to the op this free runs inside
    # (a memcg offline keeps TF_CACHES_COLLECTED there across its shrinks' kfrees)
    k.task[t, S.TASK_FLAGS] &= ~(TF_WAS_FROZEN | TF_COUNTED | TF_DISCARDED)


# -- cpu partial lists, deactivation, flushing ----------------------------------------
@njit(cache=True)
def put_cpu_partial(k, s, gen, pfn, drain, cpu, t, op, phase):
    """put_cpu_partial(): push a frozen slab on this CPU's partial list.

    After the push (this_cpu_cmpxchg), the list is unfrozen at once (unfreeze_partials
    with irqs off) when:
      - dead_cpu_partial "put_cpu_partial" (v2 patch 7): memcg_cache_dead(s) (as v3 does;
        v2's fallback to flush_all when the page has left this CPU's list is not modelled);
      - "cpu_partial_zero" (Linux 4.0, d6e0b7fa1186): !s->cpu_partial, which the dying
        memcg's __kmem_cache_shrink(s, deactivate=true) set to 0;
      - "keep" and "has_cpu_partial": never (the latter is the design in which the
        frozen-slab leak race leaves the slab on a dead cache's list for good).
    Not from get_partial_node (drain 0, list_lock held): 4.0's test is unconditional,
    but with cpu_partial 0 get_partial_node stops after the first slab, which becomes
    c->page, so it never gets there."""
    c = cpu_row(k, s, cpu)
    old = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL]
    pages = 0
    pobjects = 0
    if old != 0:
        pobjects = k.page[old, S.PAGE_POBJECTS]
        pages = k.page[old, S.PAGE_PAGES]
        if drain and pobjects > k.kmem_cache[s, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS]:
            unfreeze_partials(k, s, gen, cpu, t, op, phase)
            old = 0
            pobjects = 0
            pages = 0
            stat(k, c, S.CPU_PARTIAL_DRAIN)
    w = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
    pages += 1
    pobjects += fc_objects(w) - fc_inuse(w)
    k.page[pfn, S.PAGE_PAGES] = pages
    k.page[pfn, S.PAGE_POBJECTS] = pobjects
    k.page[pfn, S.PAGE_NEXT] = old
    # this_cpu_cmpxchg(s->cpu_slab->partial, oldpage, page): only this CPU writes it
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] = pfn
    if drain:  # not from get_partial_node: list_lock is held
        how = k.config[S.CONFIG_DEAD_CPU_PARTIAL]
        if how == DEAD_CPU_PARTIAL_PUT and dead_discards(k, s) or \
                how == DEAD_CPU_PARTIAL_ZERO and k.kmem_cache[s, S.KMEM_CACHE_CPU_PARTIAL_OBJECTS] == 0:
            unfreeze_partials(k, s, gen, cpu, t, op, phase)


@njit(cache=True)
def unfreeze_partials(k, s, gen, cpu, t, op, phase):
    """unfreeze_partials(): move this CPU's partial slabs to their node lists.
    (t, op, phase): the task and op it runs in, for a report of its touch of s."""
    c = cpu_row(k, s, cpu)
    locked_n = -1
    lock = -1
    discard = 0
    while True:
        pfn = k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL]
        if pfn == 0:
            break
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] = k.page[pfn, S.PAGE_NEXT]
        n2 = node_row(k, s, k.page[pfn, S.PAGE_NODE])
        if n2 != locked_n:
            if locked_n >= 0:
                spin_unlock(k.lock, lock)
            locked_n = n2
            lock = k.kmem_cache_node[n2, S.KMEM_CACHE_NODE_LIST_LOCK]
            spin_lock(k.lock, lock, cpu)
        while True:
            old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
            new = old & ~S.SLUB_FC_FROZEN
            if cmpxchg_double_slab(k, c, pfn, old, new):
                break
        if fc_inuse(new) == 0 and discard_empty(k, s, n2):
            k.page[pfn, S.PAGE_NEXT] = discard
            discard = pfn
        else:
            add_partial(k, n2, pfn, S.DEACTIVATE_TO_TAIL)
            stat(k, c, S.FREE_ADD_PARTIAL)
    if locked_n >= 0:
        spin_unlock(k.lock, lock)
    while discard != 0:
        pfn = discard
        discard = k.page[pfn, S.PAGE_NEXT]
        stat(k, c, S.DEACTIVATE_EMPTY)
        discard_slab(k, s, pfn, cpu)
        if t >= 0:
            k.task[t, S.TASK_FLAGS] |= TF_DISCARDED
        if k.config[S.CONFIG_SLUB_STATS] != 0:
            race_window(k)  # the window "unfreeze_partials: discard_slab -> stat(s, FREE_SLAB)"
        # stat(s, FREE_SLAB) after discard_slab: with CONFIG_SLUB_STATS a touch of s
        # after its slab went away; without it nothing (the loop reads only the pages)
        stat_touch(k, s, gen, c, S.FREE_SLAB, cpu, t, op, phase)


@njit(cache=True)
def deactivate_slab(k, s, gen, pfn, freelist, cpu):
    """deactivate_slab(): give a cpu slab and its c->freelist back to its node."""
    c = cpu_row(k, s, cpu)
    n = node_row(k, s, k.page[pfn, S.PAGE_NODE])
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    tail = S.DEACTIVATE_TO_HEAD
    if fc_freelist(load_relaxed(k.page, (pfn, S.PAGE_FREELIST))) != 0:
        stat(k, c, S.DEACTIVATE_REMOTE_FREES)
        tail = S.DEACTIVATE_TO_TAIL
    # Stage one: all but the last cpu object go back to the page freelist, still frozen.
    while freelist != 0:
        nextfree = get_freepointer(k, s, freelist)
        if nextfree == 0:
            break
        while True:
            old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
            set_freepointer(k, s, freelist, fl_to_addr(k, s, pfn, fc_freelist(old)))
            new = fc_make(addr_to_fl(k, s, pfn, freelist), fc_inuse(old) - 1, fc_objects(old), True)
            if cmpxchg_double_slab(k, c, pfn, old, new):
                break
        freelist = nextfree
    # Stage two: unfreeze, with the list presence matching the object count.
    M_NONE, M_PARTIAL, M_FULL, M_FREE = 0, 1, 2, 3
    l = M_NONE
    m = M_NONE
    locked = False
    while True:
        old = load_relaxed(k.page, (pfn, S.PAGE_FREELIST))
        inuse = fc_inuse(old)
        if freelist != 0:
            inuse -= 1
            set_freepointer(k, s, freelist, fl_to_addr(k, s, pfn, fc_freelist(old)))
            fl = addr_to_fl(k, s, pfn, freelist)
        else:
            fl = fc_freelist(old)
        new = fc_make(fl, inuse, fc_objects(old), False)
        if inuse == 0 and discard_empty(k, s, n):
            m = M_FREE
        elif fl != 0:
            m = M_PARTIAL
            if not locked:
                locked = True
                spin_lock(k.lock, lock, cpu)
        else:
            m = M_FULL
            if track_full(k, s) and not locked:
                locked = True
                spin_lock(k.lock, lock, cpu)
        if l != m:
            if l == M_PARTIAL:
                remove_partial(k, n, pfn)
            elif l == M_FULL:
                remove_full(k, s, n, pfn)
            if m == M_PARTIAL:
                add_partial(k, n, pfn, tail)
                stat(k, c, tail)
            elif m == M_FULL:
                stat(k, c, S.DEACTIVATE_FULL)
                add_full(k, s, n, pfn)
        l = m
        if cmpxchg_double_slab(k, c, pfn, old, new):
            break
    if locked:
        spin_unlock(k.lock, lock)
    if m == M_FREE:
        stat(k, c, S.DEACTIVATE_EMPTY)
        discard_slab(k, s, pfn, cpu)
        stat_touch(k, s, gen, c, S.FREE_SLAB, cpu, -1, 0, 0)  # with CONFIG_SLUB_STATS only


@njit(cache=True)
def flush_slab(k, s, gen, cpu):
    """flush_slab(): deactivate this CPU's cpu slab."""
    c = cpu_row(k, s, cpu)
    stat(k, c, S.CPUSLAB_FLUSH)
    deactivate_slab(k, s, gen, k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE],
                    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST], cpu)
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID] = next_tid(k, k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_TID])
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] = 0
    k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_FREELIST] = 0


@njit(cache=True)
def __flush_cpu_slab(k, s, gen, cpu):
    """__flush_cpu_slab(): what flush_all's IPI does on `cpu` (irqs off)."""
    c = cpu_row(k, s, cpu)
    if k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] != 0:
        flush_slab(k, s, gen, cpu)
    unfreeze_partials(k, s, gen, cpu, -1, 0, 0)


@njit(cache=True)
def has_cpu_slab(k, s, cpu):
    """has_cpu_slab(): flush_all's condition for sending `cpu` an IPI."""
    c = cpu_row(k, s, cpu)
    return k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PAGE] != 0 or \
        k.kmem_cache_cpu[c, S.KMEM_CACHE_CPU_PARTIAL] != 0


# -- shrinking ----------------------------------------------------------------------
@njit(cache=True, _nrt=True)  # allocates: NRT even when called from NRT-free code
def shrink_node(k, s, gen, nid, have_array, cpu):
    """One node of __kmem_cache_shrink() (after flush_all).

    With the slabs_by_inuse array: partial slabs are re-sorted, fullest first, and the
    empty ones discarded.  Without it (patch 4's fallback): only the empty slabs are
    taken off and discarded.  Returns the number of slabs discarded."""
    n = node_row(k, s, nid)
    if load_relaxed(k.kmem_cache_node, (n, S.KMEM_CACHE_NODE_NR_PARTIAL)) == 0:
        return 0
    objects = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    # bucket heads by inuse; the slabs_by_inuse lists, linked through page->next
    heads = np.zeros(objects + 1, np.int64)
    tails = np.zeros(objects + 1, np.int64)
    empty = 0
    spin_lock(k.lock, lock, cpu)
    pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD]
    while pfn != 0:
        nxt = k.page[pfn, S.PAGE_LRU_NEXT]
        inuse = fc_inuse(load_relaxed(k.page, (pfn, S.PAGE_FREELIST)))
        if inuse == 0:
            remove_partial(k, n, pfn)
            k.page[pfn, S.PAGE_NEXT] = empty
            empty = pfn
        elif have_array:
            remove_partial(k, n, pfn)
            k.page[pfn, S.PAGE_NEXT] = 0
            if tails[inuse] != 0:
                k.page[tails[inuse], S.PAGE_NEXT] = pfn
            else:
                heads[inuse] = pfn
            tails[inuse] = pfn
        pfn = nxt
    if have_array:
        for i in range(objects, 0, -1):
            p = heads[i]
            while p != 0:
                q = k.page[p, S.PAGE_NEXT]
                k.page[p, S.PAGE_NEXT] = 0
                add_partial(k, n, p, S.DEACTIVATE_TO_TAIL)
                p = q
    spin_unlock(k.lock, lock)
    freed = 0
    while empty != 0:
        pfn = empty
        empty = k.page[pfn, S.PAGE_NEXT]
        discard_slab(k, s, pfn, cpu)
        freed += 1
    return freed
