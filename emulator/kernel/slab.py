"""SLAB (mm/slab.c, Linux 3.16) on the emulated machine.

What it models, function for function:
  ____cache_alloc       pop the per-CPU array_cache (ALLOCHIT), else cache_alloc_refill
  cache_alloc_refill    refill up to batchcount objects from the node's shared array
                        (transfer_objects), then slabs_partial, then slabs_free; grow
                        the cache (cache_grow) when the node has none
  ____cache_alloc_node  one object from a given node's lists; fallback_alloc tries the
                        other nodes by distance, then a new slab anywhere
  __cache_free          push on the array_cache (FREEHIT), flushing batchcount objects
                        first when it is full (cache_flusharray: into the shared array,
                        else free_block); objects of another node go to this node's
                        alien cache for that node (cache_free_alien), drained to their
                        home node under the alien lock then that node's list_lock
  free_block            objects back into their slabs under list_lock; a slab that
                        becomes empty is destroyed when free_objects > free_limit
  cache_grow            a new slab (kmem_getpages, alloc_slabmgmt, cache_init_objs)
                        appended to slabs_free, with cache colouring
  do_drain / drain_array / drain_alien_cache / drain_freelist
  cache_reap            per CPU, every REAPTIMEOUT_AC (2*HZ) from its timer, over every
                        cache (dead memcg caches included) under slab_mutex (trylock:
                        a held mutex skips the pass); the per-CPU part (reap_alien,
                        drain_array) every time, the per-node part (shared array,
                        drain_freelist) once n->next_reap is due (REAPTIMEOUT_NODE,
                        4*HZ).  cache_reap_one is one cache; ops.py runs the pass as
                        the reap work (OP_REAP) and run/loop.py fires the timer
Counters: mm/slab.c's STATS_INC_* items (ALLOCHIT, FREEMISS, ...), per CPU.

Slab layout (struct page): page->freelist is the address of the slab's freelist, an
array of `num` freelist_idx_t (1 or 2 bytes), on the slab after the colour offset, or,
for off-slab caches, an object of cachep->freelist_cache; page->active counts the
objects in use (structs: PAGE_COUNTERS); page->s_mem is the offset of the first object
from the page address.  Entries freelist[active..num-1] are the free object indices.

Locks: n->list_lock protects a node's three lists, free_objects and its shared array;
an alien cache has its own lock (alc->lock), taken before the remote node's list_lock.
The per-CPU array_cache is touched only by its CPU with irqs off (whole ops are one
phase: kfree and slab_alloc run with interrupts disabled in SLAB).

Invariants (check.py): per slab 0 <= active <= num, slabs_full hold active == num,
slabs_partial 0 < active < num, slabs_free active == 0; free_objects == the free
objects on the node's slabs minus those cached in arrays... precisely:
  free_objects == sum over the node's slabs of (num - active)
and every object is in exactly one place: free in its slab, in an array_cache (per-CPU,
shared, alien) or allocated.

Simplifications (also in the README): an off-slab freelist is taken straight from the
freelist cache's node lists (growing it if needed) instead of through its per-CPU array
(the kernel calls kmem_cache_alloc_node, which could recurse); no debug features; no
mempolicy (alternate_node_alloc); cache_grow's irq-enable window is not a preemption
point.
"""

from __future__ import annotations

from numba import njit

from ..machine import structs as S
from ..machine.machine import ac_alien_row, ac_cpu_row, ac_shared_row
from ..machine.spinlock import spin_lock, spin_trylock, spin_unlock
from .kasan import KASAN_KMALLOC_FREE, KASAN_SLAB_PADDING, kasan_poison_shadow
from .lists import list_add, list_add_tail, list_del
from .page_alloc import __GFP_COMP, __GFP_THISNODE, __free_pages, alloc_pages_node
from .memcontrol import dead_discards, memcg_charge_slab, memcg_uncharge_slab
from .jiffies import REAPTIMEOUT_NODE
from .slab_common import NUMA_NO_NODE, kasan_kmalloc, node_row

BATCHREFILL_LIMIT = 16

# list identifiers for _list_* helpers
L_PARTIAL = 0
L_FULL = 1
L_FREE = 2


# -- rows -------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def ac_cpu(k, s, cpu):
    """Row of cpu_cache_get(cachep) for `cpu`."""
    return ac_cpu_row(k.machine[0, S.MACHINE_NR_CPUS], s, cpu)


@njit(cache=True)
def ac_shared(k, s, nid):
    """Row of n->shared (node nid), or -1."""
    if k.kmem_cache[s, S.KMEM_CACHE_SHARED] == 0:
        return -1
    return ac_shared_row(k.machine[0, S.MACHINE_NR_CPUS], k.machine[0, S.MACHINE_NR_NODES],
                         k.kmem_cache.shape[0], s, nid)


@njit(cache=True)
def ac_alien(k, s, nid, remote):
    """Row of n->alien[remote] on node nid, or -1 (one node, or remote == nid)."""
    nodes = k.machine[0, S.MACHINE_NR_NODES]
    if nodes <= 1 or remote == nid or k.kmem_cache[s, S.KMEM_CACHE_ALIEN_LIMIT] == 0:
        return -1
    return ac_alien_row(k.machine[0, S.MACHINE_NR_CPUS], nodes, k.kmem_cache.shape[0], s, nid, remote)


@njit(cache=True, inline="always")
def _cpu_array_and_node(k, s, cpu):
    """(this CPU's array_cache row, its memory node, that node's kmem_cache_node row and
    list_lock row): what cache_alloc_refill and do_drain work on."""
    nid = k.cpu[cpu, S.CPU_MEM_NODE]
    n = node_row(k, s, nid)
    return ac_cpu(k, s, cpu), nid, n, k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]


@njit(cache=True, inline="always")
def stat(k, s, cpu, item):
    k.kmem_cache_cpu[s * k.machine[0, S.MACHINE_NR_CPUS] + cpu, S.CPU_SLAB_STAT + item] += 1


@njit(cache=True)
def _list_fields(which):
    """kmem_cache_node's (head, count) fields of slabs_partial, slabs_full or slabs_free
    (the tail is the field after the head)."""
    if which == L_PARTIAL:
        return S.KMEM_CACHE_NODE_PARTIAL_HEAD, S.KMEM_CACHE_NODE_NR_PARTIAL
    if which == L_FULL:
        return S.KMEM_CACHE_NODE_FULL_HEAD, S.KMEM_CACHE_NODE_NR_FULL
    return S.KMEM_CACHE_NODE_FREE_HEAD, S.KMEM_CACHE_NODE_NR_FREE


@njit(cache=True)
def _list_add(k, n, which, pfn, tail):
    h, count = _list_fields(which)
    if tail:
        list_add_tail(k.page, k.kmem_cache_node, n, h, h + 1, count, pfn)
    else:
        list_add(k.page, k.kmem_cache_node, n, h, h + 1, count, pfn)


@njit(cache=True)
def _which(k, s, pfn):
    """The list a slab is on, from its active count."""
    active = k.page[pfn, S.PAGE_COUNTERS]
    if active == 0:
        return L_FREE
    if active == k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]:
        return L_FULL
    return L_PARTIAL


@njit(cache=True)
def _list_del(k, n, which, pfn):
    h, count = _list_fields(which)
    list_del(k.page, k.kmem_cache_node, n, h, h + 1, count, pfn)


# -- the slab's freelist ------------------------------------------------------------------
@njit(cache=True)
def get_free_obj(k, s, pfn, idx):
    a = k.page[pfn, S.PAGE_FREELIST]
    if k.kmem_cache[s, S.KMEM_CACHE_FREELIST_IDX_SIZE] == 1:
        return k.ram[a + idx]
    return k.ram[a + 2 * idx] | (k.ram[a + 2 * idx + 1] << 8)


@njit(cache=True)
def set_free_obj(k, s, pfn, idx, val):
    a = k.page[pfn, S.PAGE_FREELIST]
    if k.kmem_cache[s, S.KMEM_CACHE_FREELIST_IDX_SIZE] == 1:
        k.ram[a + idx] = val
    else:
        k.ram[a + 2 * idx] = val & 0xFF
        k.ram[a + 2 * idx + 1] = val >> 8


@njit(cache=True)
def slab_get_obj(k, s, pfn):
    """slab_get_obj(): the next free object of a slab (list_lock held)."""
    active = k.page[pfn, S.PAGE_COUNTERS]
    idx = get_free_obj(k, s, pfn, active)
    k.page[pfn, S.PAGE_COUNTERS] = active + 1
    base = (pfn << k.machine[0, S.MACHINE_PAGE_SHIFT]) + k.page[pfn, S.PAGE_S_MEM]
    return base + idx * k.kmem_cache[s, S.KMEM_CACHE_SIZE]


@njit(cache=True)
def slab_put_obj(k, s, pfn, obj):
    """slab_put_obj(): give an object back to its slab (list_lock held)."""
    base = (pfn << k.machine[0, S.MACHINE_PAGE_SHIFT]) + k.page[pfn, S.PAGE_S_MEM]
    idx = (obj - base) // k.kmem_cache[s, S.KMEM_CACHE_SIZE]
    active = k.page[pfn, S.PAGE_COUNTERS] - 1
    k.page[pfn, S.PAGE_COUNTERS] = active
    set_free_obj(k, s, pfn, active, idx)


# -- growing and destroying slabs --------------------------------------------------------
@njit(cache=True)
def alloc_mgmt_obj(k, fc, nid, cpu):
    """An object of the (on-slab) freelist cache, straight from its node lists."""
    n = node_row(k, fc, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    for _ in range(2):
        spin_lock(k.lock, lock, cpu)
        pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD]
        if pfn == 0:
            pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_HEAD]
        if pfn != 0:
            _list_del(k, n, _which(k, fc, pfn), pfn)
            obj = slab_get_obj(k, fc, pfn)
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] -= 1
            _list_add(k, n, _which(k, fc, pfn), pfn, False)
            spin_unlock(k.lock, lock)
            kasan_kmalloc(k, fc, obj, k.kmem_cache[fc, S.KMEM_CACHE_OBJECT_SIZE])
            return obj
        spin_unlock(k.lock, lock)
        # The freelist cache is on-slab (off-slab caches hold objects of at least
        # PAGE_SIZE/32 bytes, their freelists are smaller): no recursion.
        offset = _next_colour(k, fc, nid, cpu)
        pfn = kmem_getpages(k, fc, nid, cpu, True)
        if pfn == 0:
            return 0
        fl, s_mem = freelist_on_slab(k, fc, pfn, offset)
        _init_slab(k, fc, pfn, fl, s_mem, cpu)
    return 0


@njit(cache=True)
def _next_colour(k, s, nid, cpu):
    """cache_grow()'s colouring: this slab's colour offset, and advance colour_next."""
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    colour = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_COLOUR_NEXT]
    nxt = colour + 1
    if nxt >= k.kmem_cache[s, S.KMEM_CACHE_COLOUR]:
        nxt = 0
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_COLOUR_NEXT] = nxt
    spin_unlock(k.lock, lock)
    return colour * k.kmem_cache[s, S.KMEM_CACHE_COLOUR_OFF]


@njit(cache=True)
def kmem_getpages(k, s, nid, cpu, thisnode):
    """kmem_getpages(): the slab's pages on node nid (0 on failure)."""
    order = k.kmem_cache[s, S.KMEM_CACHE_ORDER]
    gfp = __GFP_COMP if order > 0 else 0
    if thisnode:
        gfp |= __GFP_THISNODE
    pfn = alloc_pages_node(k, nid, order, gfp, cpu)
    return pfn if pfn > 0 else 0


@njit(cache=True, inline="always")
def freelist_on_slab(k, s, pfn, colour_off):
    """alloc_slabmgmt()'s on-slab case: (freelist, s_mem), the freelist at the colour
    offset and the objects right after it."""
    addr = pfn << k.machine[0, S.MACHINE_PAGE_SHIFT]
    return addr + colour_off, colour_off + k.kmem_cache[s, S.KMEM_CACHE_FREELIST_SIZE]


@njit(cache=True)
def alloc_slabmgmt(k, s, pfn, colour_off, cpu):
    """alloc_slabmgmt(): the new slab's (freelist, s_mem): off-slab, an object of the
    freelist cache and the objects from the colour offset on; else freelist_on_slab().
    (0, 0) when the freelist cache has no object to give."""
    if k.kmem_cache[s, S.KMEM_CACHE_OFF_SLAB] == 0:
        return freelist_on_slab(k, s, pfn, colour_off)
    fl = alloc_mgmt_obj(k, k.kmem_cache[s, S.KMEM_CACHE_FREELIST_CACHE], k.page[pfn, S.PAGE_NODE], cpu)
    if fl == 0:
        return 0, 0
    return fl, colour_off


@njit(cache=True)
def cache_init_objs(k, s, pfn):
    """cache_init_objs(): every object of the new slab free (freelist[i] = i); with
    KASAN, the objects poisoned KASAN_KMALLOC_FREE, the rest KASAN_SLAB_PADDING."""
    num = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    for i in range(num):
        set_free_obj(k, s, pfn, i, i)
    if k.machine[0, S.MACHINE_KASAN] != 0:
        shift = k.machine[0, S.MACHINE_PAGE_SHIFT]
        addr = pfn << shift
        size = k.kmem_cache[s, S.KMEM_CACHE_SIZE]
        end = addr + ((1 << k.kmem_cache[s, S.KMEM_CACHE_ORDER]) << shift)
        kasan_poison_shadow(k.shadow, addr, end - addr, KASAN_SLAB_PADDING)
        kasan_poison_shadow(k.shadow, addr + k.page[pfn, S.PAGE_S_MEM], num * size, KASAN_KMALLOC_FREE)


@njit(cache=True)
def _init_slab(k, s, pfn, fl, s_mem, cpu):
    """cache_grow() once it has the pages and the freelist: slab_map_pages() and the
    page's freelist, active and s_mem, cache_init_objs(), then the slab joins
    slabs_free."""
    num = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    order = k.kmem_cache[s, S.KMEM_CACHE_ORDER]
    k.page[pfn, S.PAGE_SLAB_CACHE] = s
    k.page[pfn, S.PAGE_FLAGS] |= S.PG_SLAB
    k.page[pfn, S.PAGE_FREELIST] = fl
    k.page[pfn, S.PAGE_COUNTERS] = 0
    k.page[pfn, S.PAGE_S_MEM] = s_mem
    k.page[pfn, S.PAGE_LRU_NEXT] = 0
    k.page[pfn, S.PAGE_LRU_PREV] = 0
    cache_init_objs(k, s, pfn)
    n = node_row(k, s, k.page[pfn, S.PAGE_NODE])
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    _list_add(k, n, L_FREE, pfn, True)
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] += num
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS] += 1
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS] += num
    spin_unlock(k.lock, lock)
    memcg_charge_slab(k, s, order)  # kmem_getpages(): memcg_charge_slab
    stat(k, s, cpu, S.STAT_GROWN)


@njit(cache=True)
def cache_grow(k, s, nid, cpu, thisnode, given):
    """cache_grow(): a new slab on node nid (or on the `given` pages) onto slabs_free."""
    offset = _next_colour(k, s, nid, cpu)
    pfn = given
    if pfn == 0:
        pfn = kmem_getpages(k, s, nid, cpu, thisnode)
        if pfn == 0:
            return False
    fl, s_mem = alloc_slabmgmt(k, s, pfn, offset, cpu)
    if fl == 0:
        __free_pages(k, pfn, k.kmem_cache[s, S.KMEM_CACHE_ORDER], cpu)
        return False
    _init_slab(k, s, pfn, fl, s_mem, cpu)
    return True


@njit(cache=True)
def slab_destroy(k, s, pfn, cpu):
    """slab_destroy(): the slab is off every list; free its pages (and freelist)."""
    n = node_row(k, s, k.page[pfn, S.PAGE_NODE])
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_SLABS] -= 1
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_TOTAL_OBJECTS] -= k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    fl = k.page[pfn, S.PAGE_FREELIST]
    order = k.kmem_cache[s, S.KMEM_CACHE_ORDER]
    k.page[pfn, S.PAGE_FLAGS] &= ~S.PG_SLAB
    k.page[pfn, S.PAGE_SLAB_CACHE] = -1
    k.page[pfn, S.PAGE_FREELIST] = 0
    k.page[pfn, S.PAGE_COUNTERS] = 0
    k.page[pfn, S.PAGE_S_MEM] = 0
    __free_pages(k, pfn, order, cpu)
    if k.kmem_cache[s, S.KMEM_CACHE_OFF_SLAB] != 0:
        free_mgmt_obj(k, k.kmem_cache[s, S.KMEM_CACHE_FREELIST_CACHE], fl, cpu)
    memcg_uncharge_slab(k, s, order, cpu)  # kmem_freepages(); may queue the destroy


@njit(cache=True)
def free_mgmt_obj(k, fc, obj, cpu):
    """kmem_cache_free(cachep->freelist_cache, freelist), straight to its slab."""
    pfn = obj >> k.machine[0, S.MACHINE_PAGE_SHIFT]
    if k.machine[0, S.MACHINE_KASAN] != 0:
        kasan_poison_shadow(k.shadow, obj, k.kmem_cache[fc, S.KMEM_CACHE_SIZE], KASAN_KMALLOC_FREE)
    n = node_row(k, fc, k.page[pfn, S.PAGE_NODE])
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    _list_del(k, n, _which(k, fc, pfn), pfn)
    slab_put_obj(k, fc, pfn, obj)
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] += 1
    _list_add(k, n, _which(k, fc, pfn), pfn, True)
    spin_unlock(k.lock, lock)


# -- free_block and the arrays ----------------------------------------------------------
@njit(cache=True)
def free_one(k, s, obj, nid, cpu):
    """free_block()'s loop body: one object of node nid back to its slab (list_lock
    held); a slab left empty is destroyed when free_objects > free_limit."""
    n = node_row(k, s, nid)
    pfn = obj >> k.machine[0, S.MACHINE_PAGE_SHIFT]
    if (k.page[pfn, S.PAGE_FLAGS] & S.PG_TAIL) != 0:
        pfn = k.page[pfn, S.PAGE_COMPOUND_HEAD]
    _list_del(k, n, _which(k, s, pfn), pfn)
    slab_put_obj(k, s, pfn, obj)
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] += 1
    if k.page[pfn, S.PAGE_COUNTERS] == 0:
        if k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] > k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_LIMIT] \
                or dead_discards(k, s):
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] -= k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
            slab_destroy(k, s, pfn, cpu)
        else:
            _list_add(k, n, L_FREE, pfn, False)
    else:
        _list_add(k, n, L_PARTIAL, pfn, True)


@njit(cache=True)
def free_block(k, s, ac, start, nr, nid, cpu):
    """free_block(): ac_entry[ac, start:start+nr] back to their slabs (list_lock held)."""
    for i in range(start, start + nr):
        free_one(k, s, k.ac_entry[ac, i], nid, cpu)


@njit(cache=True)
def _shift_down(k, ac, by):
    """memmove(ac->entry, &ac->entry[by], ...) and avail -= by."""
    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL] - by
    for i in range(avail):
        k.ac_entry[ac, i] = k.ac_entry[ac, i + by]
    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = avail


@njit(cache=True)
def transfer_objects(k, to, frm, maxn):
    """transfer_objects(): move up to maxn objects from the top of `frm` to `to`."""
    nr = min(k.array_cache[frm, S.ARRAY_CACHE_AVAIL], maxn,
             k.array_cache[to, S.ARRAY_CACHE_LIMIT] - k.array_cache[to, S.ARRAY_CACHE_AVAIL])
    if nr <= 0:
        return 0
    fa = k.array_cache[frm, S.ARRAY_CACHE_AVAIL] - nr
    ta = k.array_cache[to, S.ARRAY_CACHE_AVAIL]
    for i in range(nr):
        k.ac_entry[to, ta + i] = k.ac_entry[frm, fa + i]
    k.array_cache[frm, S.ARRAY_CACHE_AVAIL] = fa
    k.array_cache[to, S.ARRAY_CACHE_AVAIL] = ta + nr
    return nr


# -- allocation ---------------------------------------------------------------------------
@njit(cache=True)
def cache_alloc_refill(k, s, cpu):
    """cache_alloc_refill() (irqs off): refill this CPU's array, return an object or 0."""
    ac, nid, n, lock = _cpu_array_and_node(k, s, cpu)
    while True:
        batch = k.array_cache[ac, S.ARRAY_CACHE_BATCHCOUNT]
        if k.array_cache[ac, S.ARRAY_CACHE_TOUCHED] == 0 and batch > BATCHREFILL_LIMIT:
            batch = BATCHREFILL_LIMIT
        spin_lock(k.lock, lock, cpu)
        sh = ac_shared(k, s, nid)
        got_shared = sh >= 0 and transfer_objects(k, ac, sh, batch) > 0
        if got_shared:
            k.array_cache[sh, S.ARRAY_CACHE_TOUCHED] = 1
        else:
            while batch > 0:
                pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD]
                if pfn == 0:
                    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_TOUCHED] = 1
                    pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_HEAD]
                    if pfn == 0:
                        break  # must_grow
                num = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
                _list_del(k, n, _which(k, s, pfn), pfn)
                while k.page[pfn, S.PAGE_COUNTERS] < num and batch > 0:
                    batch -= 1
                    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL]
                    k.ac_entry[ac, avail] = slab_get_obj(k, s, pfn)
                    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = avail + 1
                if k.page[pfn, S.PAGE_COUNTERS] == num:
                    _list_add(k, n, L_FULL, pfn, False)
                else:
                    _list_add(k, n, L_PARTIAL, pfn, False)
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] -= k.array_cache[ac, S.ARRAY_CACHE_AVAIL]
        spin_unlock(k.lock, lock)
        if k.array_cache[ac, S.ARRAY_CACHE_AVAIL] == 0:
            grew = cache_grow(k, s, nid, cpu, True, 0)
            if not grew and k.array_cache[ac, S.ARRAY_CACHE_AVAIL] == 0:
                return 0
            if k.array_cache[ac, S.ARRAY_CACHE_AVAIL] == 0:
                continue  # retry
        break
    k.array_cache[ac, S.ARRAY_CACHE_TOUCHED] = 1
    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL] - 1
    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = avail
    return k.ac_entry[ac, avail]


@njit(cache=True, inline="always")
def cache_alloc_hit(k, s, cpu):
    """____cache_alloc()'s hit: the top of the CPU's array cache, or 0 with nothing
    written when it is empty."""
    ac = ac_cpu(k, s, cpu)
    acs = k.array_cache
    avail = acs[ac, S.ARRAY_CACHE_AVAIL]
    if avail == 0:
        return 0
    acs[ac, S.ARRAY_CACHE_TOUCHED] = 1
    stat(k, s, cpu, S.STAT_ALLOCHIT)
    acs[ac, S.ARRAY_CACHE_AVAIL] = avail - 1
    return k.ac_entry[ac, avail - 1]


@njit(cache=True, inline="always")
def ____cache_alloc(k, s, cpu):
    obj = cache_alloc_hit(k, s, cpu)
    if obj != 0:
        return obj
    stat(k, s, cpu, S.STAT_ALLOCMISS)
    return cache_alloc_refill(k, s, cpu)


@njit(cache=True)
def _alloc_from_node(k, s, nid, cpu):
    """____cache_alloc_node()'s retry loop: node nid's lists, growing the cache on that
    node (GFP_THISNODE) while it can; 0 when the node has nothing."""
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    while True:
        spin_lock(k.lock, lock, cpu)
        pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD]
        if pfn == 0:
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_TOUCHED] = 1
            pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_HEAD]
        if pfn != 0:
            stat(k, s, cpu, S.STAT_NODEALLOCS)
            _list_del(k, n, _which(k, s, pfn), pfn)
            obj = slab_get_obj(k, s, pfn)
            k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] -= 1
            _list_add(k, n, _which(k, s, pfn), pfn, False)
            spin_unlock(k.lock, lock)
            return obj
        spin_unlock(k.lock, lock)
        if k.zone[nid, S.ZONE_SPANNED_PAGES] == 0 or not cache_grow(k, s, nid, cpu, True, 0):
            return 0


@njit(cache=True)
def ____cache_alloc_node(k, s, nid, cpu, thisnode):
    """____cache_alloc_node(): one object from node nid, else (unless __GFP_THISNODE)
    fallback_alloc().  (fallback_alloc calls back into the node loop, not into this
    function: numba's cache cannot hold mutually recursive functions.)"""
    obj = _alloc_from_node(k, s, nid, cpu)
    if obj != 0 or thisnode:
        return obj
    return fallback_alloc(k, s, cpu)


@njit(cache=True)
def fallback_alloc(k, s, cpu):
    """fallback_alloc(): other nodes' free objects by distance, then a slab anywhere."""
    me = k.cpu[cpu, S.CPU_MEM_NODE]
    for i in range(k.zonelist.shape[1]):
        nid = k.zonelist[me, i]
        n = node_row(k, s, nid)
        if k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] > 0:
            obj = _alloc_from_node(k, s, nid, cpu)
            if obj != 0:
                return obj
    order = k.kmem_cache[s, S.KMEM_CACHE_ORDER]
    pfn = alloc_pages_node(k, me, order, __GFP_COMP if order > 0 else 0, cpu)
    if pfn < 0:
        return 0
    nid = k.page[pfn, S.PAGE_NODE]
    if not cache_grow(k, s, nid, cpu, True, pfn):
        return 0
    return _alloc_from_node(k, s, nid, cpu)


@njit(cache=True, inline="always")
def slab_alloc_node(k, s, gen, node, size, cpu):
    """SLAB's slab_alloc_node()/slab_alloc() (irqs off): an object or 0."""
    me = k.cpu[cpu, S.CPU_MEM_NODE]
    obj = 0
    if node == NUMA_NO_NODE or node == me:
        obj = ____cache_alloc(k, s, cpu)
        if obj == 0:
            obj = ____cache_alloc_node(k, s, me, cpu, False)
    else:
        obj = ____cache_alloc_node(k, s, node, cpu, False)
    if obj != 0:
        kasan_kmalloc(k, s, obj, size)
    return obj


# -- freeing ------------------------------------------------------------------------------
@njit(cache=True)
def __drain_alien_cache(k, s, ac, nid, cpu):
    """__drain_alien_cache(): an alien array into node nid (alien lock held)."""
    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL]
    if avail == 0:
        return
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    sh = ac_shared(k, s, nid)
    if sh >= 0:
        transfer_objects(k, sh, ac, k.array_cache[ac, S.ARRAY_CACHE_LIMIT])
    free_block(k, s, ac, 0, k.array_cache[ac, S.ARRAY_CACHE_AVAIL], nid, cpu)
    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = 0
    spin_unlock(k.lock, lock)


@njit(cache=True)
def cache_free_alien(k, s, obj, pfn, cpu):
    """cache_free_alien(): True if the object belonged to another node and was handled."""
    home = k.page[pfn, S.PAGE_NODE]
    me = k.cpu[cpu, S.CPU_MEM_NODE]
    if home == me:
        return False
    stat(k, s, cpu, S.STAT_NODEFREES)
    al = ac_alien(k, s, me, home)
    if al >= 0:
        alock = k.array_cache[al, S.ARRAY_CACHE_LOCK]
        spin_lock(k.lock, alock, cpu)
        if k.array_cache[al, S.ARRAY_CACHE_AVAIL] == k.array_cache[al, S.ARRAY_CACHE_LIMIT]:
            stat(k, s, cpu, S.STAT_NODE_OVERFLOW)
            __drain_alien_cache(k, s, al, home, cpu)
            stat(k, s, cpu, S.STAT_ALIEN_FREE_MISS)
        else:
            stat(k, s, cpu, S.STAT_ALIEN_FREE_HIT)
        avail = k.array_cache[al, S.ARRAY_CACHE_AVAIL]
        k.ac_entry[al, avail] = obj
        k.array_cache[al, S.ARRAY_CACHE_AVAIL] = avail + 1
        spin_unlock(k.lock, alock)
    else:
        free_one_locked(k, s, obj, home, cpu)
    return True


@njit(cache=True)
def free_one_locked(k, s, obj, nid, cpu):
    """free_block(cachep, &objp, 1, nid) under node nid's list_lock."""
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    free_one(k, s, obj, nid, cpu)
    spin_unlock(k.lock, lock)


@njit(cache=True)
def cache_flusharray(k, s, ac, cpu):
    """cache_flusharray(): batchcount objects into the shared array, else free_block."""
    batch = k.array_cache[ac, S.ARRAY_CACHE_BATCHCOUNT]
    nid = k.cpu[cpu, S.CPU_MEM_NODE]
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    sh = ac_shared(k, s, nid)
    done = False
    if sh >= 0:
        mx = k.array_cache[sh, S.ARRAY_CACHE_LIMIT] - k.array_cache[sh, S.ARRAY_CACHE_AVAIL]
        if mx > 0:
            if batch > mx:
                batch = mx
            sa = k.array_cache[sh, S.ARRAY_CACHE_AVAIL]
            for i in range(batch):
                k.ac_entry[sh, sa + i] = k.ac_entry[ac, i]
            k.array_cache[sh, S.ARRAY_CACHE_AVAIL] = sa + batch
            done = True
    if not done:
        free_block(k, s, ac, 0, batch, nid, cpu)
    spin_unlock(k.lock, lock)
    _shift_down(k, ac, batch)


@njit(cache=True, inline="always")
def cache_free_hit(k, s, obj, pfn, cpu):
    """__cache_free()'s hit: a local object (its slab on this CPU's node) of a live
    cache into a non-full array cache.  False, with nothing written, otherwise."""
    if dead_discards(k, s):
        return False
    if k.machine[0, S.MACHINE_NR_NODES] > 1 and k.page[pfn, S.PAGE_NODE] != k.cpu[cpu, S.CPU_MEM_NODE]:
        return False  # cache_free_alien()'s case
    ac = ac_cpu(k, s, cpu)
    acs = k.array_cache
    avail = acs[ac, S.ARRAY_CACHE_AVAIL]
    if avail >= acs[ac, S.ARRAY_CACHE_LIMIT]:
        return False
    stat(k, s, cpu, S.STAT_FREEHIT)
    k.ac_entry[ac, avail] = obj
    acs[ac, S.ARRAY_CACHE_AVAIL] = avail + 1
    return True


@njit(cache=True)
def __cache_free(k, s, obj, pfn, cpu):
    """__cache_free() (irqs off).  A dead cache under patch 8 has limit 0 on its arrays
    and free_limit 0: the object goes straight to free_block on its node, which drops
    the slab if it is now empty."""
    if cache_free_hit(k, s, obj, pfn, cpu):
        return
    if dead_discards(k, s):
        free_one_locked(k, s, obj, k.page[pfn, S.PAGE_NODE], cpu)
        return
    if k.machine[0, S.MACHINE_NR_NODES] > 1 and cache_free_alien(k, s, obj, pfn, cpu):
        return
    # a local object and a full array cache
    ac = ac_cpu(k, s, cpu)
    stat(k, s, cpu, S.STAT_FREEMISS)
    cache_flusharray(k, s, ac, cpu)
    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL]
    k.ac_entry[ac, avail] = obj
    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = avail + 1


# -- draining and reaping ---------------------------------------------------------------
@njit(cache=True)
def do_drain(k, s, cpu):
    """do_drain(): what drain_cpu_caches' IPI does on `cpu`."""
    ac, nid, n, lock = _cpu_array_and_node(k, s, cpu)
    spin_lock(k.lock, lock, cpu)
    free_block(k, s, ac, 0, k.array_cache[ac, S.ARRAY_CACHE_AVAIL], nid, cpu)
    spin_unlock(k.lock, lock)
    k.array_cache[ac, S.ARRAY_CACHE_AVAIL] = 0


@njit(cache=True)
def drain_array(k, s, ac, force, nid, cpu):
    """drain_array(): part (or, forced, all) of an array back to node nid."""
    if ac < 0 or k.array_cache[ac, S.ARRAY_CACHE_AVAIL] == 0:
        return
    if k.array_cache[ac, S.ARRAY_CACHE_TOUCHED] != 0 and not force:
        k.array_cache[ac, S.ARRAY_CACHE_TOUCHED] = 0
        return
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    spin_lock(k.lock, lock, cpu)
    avail = k.array_cache[ac, S.ARRAY_CACHE_AVAIL]
    if avail > 0:
        if force:
            tofree = avail
        else:
            tofree = (k.array_cache[ac, S.ARRAY_CACHE_LIMIT] + 4) // 5
        if tofree > avail:
            tofree = (avail + 1) // 2
        free_block(k, s, ac, 0, tofree, nid, cpu)
        _shift_down(k, ac, tofree)
    spin_unlock(k.lock, lock)


@njit(cache=True)
def drain_alien_cache(k, s, nid, cpu):
    """drain_alien_cache(): every alien array of node nid into its home node."""
    for remote in range(k.machine[0, S.MACHINE_NR_NODES]):
        al = ac_alien(k, s, nid, remote)
        if al >= 0 and k.array_cache[al, S.ARRAY_CACHE_AVAIL] > 0:
            alock = k.array_cache[al, S.ARRAY_CACHE_LOCK]
            spin_lock(k.lock, alock, cpu)
            __drain_alien_cache(k, s, al, remote, cpu)
            spin_unlock(k.lock, alock)


@njit(cache=True)
def drain_freelist(k, s, nid, tofree, cpu):
    """drain_freelist(): destroy up to `tofree` slabs of slabs_free.  Returns how many."""
    n = node_row(k, s, nid)
    lock = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_LIST_LOCK]
    freed = 0
    while freed < tofree and k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NR_FREE] > 0:
        spin_lock(k.lock, lock, cpu)
        pfn = k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_TAIL]
        if pfn == 0:
            spin_unlock(k.lock, lock)
            break
        _list_del(k, n, L_FREE, pfn)
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] -= k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
        spin_unlock(k.lock, lock)
        slab_destroy(k, s, pfn, cpu)
        freed += 1
    return freed


@njit(cache=True)
def reap_alien(k, s, nid, cpu):
    """reap_alien(): drain the alien array of node nid that holds objects of node
    slab_reap_node (this CPU's, cpu.reap_node), if its lock is free (spin_trylock_irq)."""
    remote = k.cpu[cpu, S.CPU_REAP_NODE]
    al = ac_alien(k, s, nid, remote)
    if al >= 0 and k.array_cache[al, S.ARRAY_CACHE_AVAIL] > 0:
        alock = k.array_cache[al, S.ARRAY_CACHE_LOCK]
        if spin_trylock(k.lock, alock, cpu):
            __drain_alien_cache(k, s, al, remote, cpu)
            spin_unlock(k.lock, alock)


@njit(cache=True)
def next_reap_node(k, cpu):
    """next_reap_node(): slab_reap_node moves to the next online node, wrapping (every
    node of the topology is online here).  init_reap_node() starts it at the node after
    the CPU's memory node, which is this function applied once to that node."""
    k.cpu[cpu, S.CPU_REAP_NODE] = (k.cpu[cpu, S.CPU_REAP_NODE] + 1) % k.machine[0, S.MACHINE_NR_NODES]


@njit(cache=True)
def cache_reap_one(k, s, cpu, now):
    """cache_reap()'s loop body for one cache on `cpu` at jiffies `now` (mm/slab.c,
    3.16): reap_alien, then drain_array of this CPU's array; the node part (the shared
    array, then drain_freelist of (free_limit + 5*num - 1) / (5*num) free slabs unless
    slabs_free was touched since the last pass) only once n->next_reap is due, which
    it moves REAPTIMEOUT_NODE ahead.  Returns the slabs freed."""
    nid = k.cpu[cpu, S.CPU_MEM_NODE]
    n = node_row(k, s, nid)
    reap_alien(k, s, nid, cpu)
    drain_array(k, s, ac_cpu(k, s, cpu), False, nid, cpu)
    # "These are racy checks but it does not matter if we skip one check or scan twice."
    if k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NEXT_REAP] > now:  # time_after(next_reap, jiffies)
        return 0
    k.kmem_cache_node[n, S.KMEM_CACHE_NODE_NEXT_REAP] = now + REAPTIMEOUT_NODE
    drain_array(k, s, ac_shared(k, s, nid), False, nid, cpu)
    if k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_TOUCHED] != 0:
        k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_TOUCHED] = 0
        return 0
    num = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    tofree = (k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_LIMIT] + 5 * num - 1) // (5 * num)
    freed = drain_freelist(k, s, nid, tofree, cpu)
    k.kmem_cache_cpu[s * k.machine[0, S.MACHINE_NR_CPUS] + cpu, S.CPU_SLAB_STAT + S.STAT_REAPED] += freed
    return freed


@njit(cache=True)
def shrink_drain_shared(k, s, nid, cpu):
    """drain_cpu_caches()'s second loop: node nid's shared array (after every node's
    alien arrays were drained by the first loop, drain_alien_cache)."""
    drain_array(k, s, ac_shared(k, s, nid), True, nid, cpu)


@njit(cache=True)
def shrink_free_node(k, s, nid, cpu):
    """__kmem_cache_shrink()'s per-node loop: drain_freelist(slabs_tofree())."""
    n = node_row(k, s, nid)
    num = k.kmem_cache[s, S.KMEM_CACHE_OBJECTS]
    tofree = (k.kmem_cache_node[n, S.KMEM_CACHE_NODE_FREE_OBJECTS] + num - 1) // num
    return drain_freelist(k, s, nid, tofree, cpu)
