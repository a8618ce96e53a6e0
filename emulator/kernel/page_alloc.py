"""The page allocator: a buddy allocator per NUMA node (mm/page_alloc.c, Linux 3.16).

What it models:
  - per node one zone with free_area[0..MAX_ORDER-1]: doubly linked free lists of
    2^order-page blocks threaded through struct page's lru links, blocks aligned (relative
    to the node's first frame) to their size;
  - __rmqueue_smallest + expand: take the smallest free block of at least the wanted
    order and split it, putting the unused halves on the lower lists;
  - __free_one_page: merge a freed block with its buddy (`rel ^ (1 << order)`) while the
    buddy is free (PG_buddy) and of the same order (page_private);
  - get_page_from_freelist over the zonelist: the preferred node first, then the others
    by SLIT distance (build_zonelists' order); __GFP_THISNODE forbids the fallback;
  - should_fail_alloc_page (fail_page_alloc): a per-node probability in ppm, or the Nth
    call, makes an allocation preferring that node fail;
  - prep_compound_page for __GFP_COMP: tails point at their head;
  - kasan_alloc_pages / kasan_free_pages: freed pages are poisoned KASAN_FREE_PAGE.
Simplified: one zone per node (no DMA/NORMAL/MOVABLE split), no per-CPU page lists, no
watermarks or reclaim, no migrate types.

Locking: each zone's free lists and counters are protected by its zone->lock (a
lock_stat spinlock, lock row = node id).  Allocation counters of the preferred node
(alloc_calls, fallbacks, failures, injected_failures) are atomic adds.

Invariants (check_buddy):
  nr_free[o] == length of free list o; sum over orders of nr_free[o] << o == nr_free_pages;
  every block on free list o has PG_buddy, page_private == o, lies inside its node and is
  aligned to 2^o relative to start_pfn; prev links match; no frame is on two lists or in
  two blocks;
  PG_buddy marks only the heads of listed blocks, so every frame of a node is in exactly
  one free block or allocated: nr_free_pages + allocated pages == spanned_pages;
  no two buddies of one order below MAX_ORDER - 1 are both listed (__free_one_page
  merges them), so after every allocated block is freed the node is back to its initial
  greedy blocks (full coalescing).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..machine.atomics import fetch_add
from ..machine.prng import STREAM_ZONE_FAIL, seed_stream, shared_next, uniform_below
from ..machine.spinlock import spin_lock, spin_unlock
from ..machine.structs import (
    MACHINE_KASAN,
    MACHINE_PAGE_SHIFT,
    MAX_ORDER,
    PAGE_COMPOUND_HEAD,
    PAGE_COMPOUND_ORDER,
    PAGE_FLAGS,
    PAGE_LRU_NEXT,
    PAGE_LRU_PREV,
    PAGE_MEMCG,
    PAGE_NODE,
    PAGE_PRIVATE,
    PAGE_SLAB_CACHE,
    PG_BUDDY,
    PG_HEAD,
    PG_RESERVED,
    PG_TAIL,
    ZONE_ALLOC_CALLS,
    ZONE_ALLOCS,
    ZONE_FAIL_NTH,
    ZONE_FAIL_PPM,
    ZONE_FAIL_RNG,
    ZONE_FAILURES,
    ZONE_FALLBACKS,
    ZONE_FREE_HEAD_0,
    ZONE_FREES,
    ZONE_INJECTED_FAILURES,
    ZONE_LOCK,
    ZONE_NR_FREE_0,
    ZONE_NR_FREE_PAGES,
    ZONE_SPANNED_PAGES,
    ZONE_START_PFN,
)
from .kasan import KASAN_FREE_PAGE, kasan_poison_shadow, kasan_unpoison_shadow

# gfp_t bits (include/linux/gfp.h names; only those the model acts on).
__GFP_COMP = 1 << 0
__GFP_THISNODE = 1 << 1
__GFP_ZERO = 1 << 2

# __free_pages results
FREE_OK = 0
FREE_BAD_PAGE = -1  # bad_page(): not an allocated block (double free, reserved, tail...)

NUMA_NO_NODE = -1


# -- boot ---------------------------------------------------------------------------
def free_area_init(k, topology, node_ranges) -> None:
    """free_area_init_nodes + build_zonelists + free_all_bootmem, from Python at boot."""
    page, zone = k.page, k.zone
    page[:, :] = 0
    page[:, PAGE_LRU_NEXT] = -1
    page[:, PAGE_LRU_PREV] = -1
    page[:, PAGE_COMPOUND_HEAD] = -1
    page[:, PAGE_SLAB_CACHE] = -1
    page[:, PAGE_MEMCG] = -1
    page[0, PAGE_FLAGS] = PG_RESERVED  # the guard frame: address 0 is NULL
    page[0, PAGE_NODE] = -1
    zone[:, :] = 0
    ids = [n.id for n in topology.nodes]
    for nid, (start, pages) in enumerate(node_ranges):
        page[start:start + pages, PAGE_NODE] = nid
        zone[nid, ZONE_FREE_HEAD_0:ZONE_FREE_HEAD_0 + MAX_ORDER] = -1
        zone[nid, ZONE_START_PFN] = start
        zone[nid, ZONE_SPANNED_PAGES] = pages
        zone[nid, ZONE_LOCK] = nid
        zone[nid, ZONE_FAIL_RNG] = seed_stream(0, STREAM_ZONE_FAIL, nid)
        # zonelist: self first, then by distance (ties by node id), as build_zonelists.
        order = topology.fallback_order(topology.nodes[nid].id)
        k.zonelist[nid, :] = [ids.index(n) for n in order]
    _free_all_bootmem(k)


@njit(cache=True)
def _free_all_bootmem(k):
    """Hand every frame of every node to its free lists in the largest aligned blocks."""
    kasan = k.machine[0, MACHINE_KASAN] != 0
    shift = k.machine[0, MACHINE_PAGE_SHIFT]
    for nid in range(k.zone.shape[0]):
        start = k.zone[nid, ZONE_START_PFN]
        spanned = k.zone[nid, ZONE_SPANNED_PAGES]
        rel = 0
        while rel < spanned:
            order = MAX_ORDER - 1
            while order > 0 and ((rel & ((1 << order) - 1)) != 0 or rel + (1 << order) > spanned):
                order -= 1
            pfn = start + rel
            k.page[pfn, PAGE_FLAGS] = PG_BUDDY
            k.page[pfn, PAGE_PRIVATE] = order
            _free_list_add(k, nid, order, pfn)
            k.zone[nid, ZONE_NR_FREE_PAGES] += 1 << order
            rel += 1 << order
        if kasan and spanned > 0:
            kasan_poison_shadow(k.shadow, start << shift, spanned << shift, KASAN_FREE_PAGE)


def set_fail_injection(k, nid: int, ppm: int = 0, nth: int = 0, seed: int = 0) -> None:
    """fail_page_alloc for one node: fail with probability ppm/1e6, or the Nth call."""
    k.zone[nid, ZONE_FAIL_PPM] = ppm
    k.zone[nid, ZONE_FAIL_NTH] = nth
    k.zone[nid, ZONE_FAIL_RNG] = seed_stream(seed, STREAM_ZONE_FAIL, nid)


# -- free lists ---------------------------------------------------------------------
@njit(cache=True)
def _free_list_add(k, nid, order, pfn):
    head = k.zone[nid, ZONE_FREE_HEAD_0 + order]
    k.page[pfn, PAGE_LRU_NEXT] = head
    k.page[pfn, PAGE_LRU_PREV] = -1
    if head >= 0:
        k.page[head, PAGE_LRU_PREV] = pfn
    k.zone[nid, ZONE_FREE_HEAD_0 + order] = pfn
    k.zone[nid, ZONE_NR_FREE_0 + order] += 1


@njit(cache=True)
def _free_list_del(k, nid, order, pfn):
    nxt = k.page[pfn, PAGE_LRU_NEXT]
    prv = k.page[pfn, PAGE_LRU_PREV]
    if prv >= 0:
        k.page[prv, PAGE_LRU_NEXT] = nxt
    else:
        k.zone[nid, ZONE_FREE_HEAD_0 + order] = nxt
    if nxt >= 0:
        k.page[nxt, PAGE_LRU_PREV] = prv
    k.page[pfn, PAGE_LRU_NEXT] = -1
    k.page[pfn, PAGE_LRU_PREV] = -1
    k.zone[nid, ZONE_NR_FREE_0 + order] -= 1


@njit(cache=True)
def __rmqueue_smallest(k, nid, order):
    """Take a block of 2^order pages from node nid (zone lock held), or -1."""
    for o in range(order, MAX_ORDER):
        pfn = k.zone[nid, ZONE_FREE_HEAD_0 + o]
        if pfn < 0:
            continue
        _free_list_del(k, nid, o, pfn)
        k.page[pfn, PAGE_FLAGS] &= ~PG_BUDDY
        k.page[pfn, PAGE_PRIVATE] = 0
        # expand(): give back the upper halves
        while o > order:
            o -= 1
            buddy = pfn + (1 << o)
            k.page[buddy, PAGE_FLAGS] |= PG_BUDDY
            k.page[buddy, PAGE_PRIVATE] = o
            _free_list_add(k, nid, o, buddy)
        k.zone[nid, ZONE_NR_FREE_PAGES] -= 1 << order
        return pfn
    return -1


@njit(cache=True)
def __free_one_page(k, nid, pfn, order):
    """Free a block and merge it with its buddies (zone lock held)."""
    start = k.zone[nid, ZONE_START_PFN]
    spanned = k.zone[nid, ZONE_SPANNED_PAGES]
    rel = pfn - start
    k.zone[nid, ZONE_NR_FREE_PAGES] += 1 << order
    while order < MAX_ORDER - 1:
        brel = rel ^ (1 << order)
        if brel + (1 << order) > spanned:
            break
        bpfn = start + brel
        if (k.page[bpfn, PAGE_FLAGS] & PG_BUDDY) == 0 or k.page[bpfn, PAGE_PRIVATE] != order:
            break
        _free_list_del(k, nid, order, bpfn)
        k.page[bpfn, PAGE_FLAGS] &= ~PG_BUDDY
        k.page[bpfn, PAGE_PRIVATE] = 0
        rel &= brel
        order += 1
    head = start + rel
    k.page[head, PAGE_FLAGS] |= PG_BUDDY
    k.page[head, PAGE_PRIVATE] = order
    _free_list_add(k, nid, order, head)


# -- the API ------------------------------------------------------------------------
@njit(cache=True)
def should_fail_alloc_page(k, nid):
    """fail_page_alloc's decision for an allocation preferring node nid."""
    calls = fetch_add(k.zone, (nid, ZONE_ALLOC_CALLS), 1) + 1
    nth = k.zone[nid, ZONE_FAIL_NTH]
    if nth > 0 and calls == nth:
        return True
    ppm = k.zone[nid, ZONE_FAIL_PPM]
    if ppm > 0:
        x = shared_next(k.zone, (nid, ZONE_FAIL_RNG))
        if uniform_below(x, 1_000_000) < ppm:
            return True
    return False


@njit(cache=True)
def alloc_pages_node(k, nid, order, gfp, cpu):
    """__alloc_pages_nodemask(): a block of 2^order pages, preferring node nid.

    nid NUMA_NO_NODE means the node of `cpu`'s memory (the caller passes numa_mem_id()).
    Returns the head pfn, or -1 (allocation failure).  Never returns frame 0.
    """
    nr_nodes = k.zone.shape[0]
    if order < 0 or order >= MAX_ORDER or nid < 0 or nid >= nr_nodes:
        return -1
    if should_fail_alloc_page(k, nid):
        fetch_add(k.zone, (nid, ZONE_INJECTED_FAILURES), 1)
        fetch_add(k.zone, (nid, ZONE_FAILURES), 1)
        return -1
    pfn = -1
    served = -1
    for i in range(nr_nodes):
        z = k.zonelist[nid, i]
        if z != nid and (gfp & __GFP_THISNODE) != 0:
            break
        if k.zone[z, ZONE_SPANNED_PAGES] == 0:
            continue  # memoryless node
        lock = k.zone[z, ZONE_LOCK]
        spin_lock(k.lock, lock, cpu)
        pfn = __rmqueue_smallest(k, z, order)
        if pfn >= 0:
            k.zone[z, ZONE_ALLOCS] += 1
        spin_unlock(k.lock, lock)
        if pfn >= 0:
            served = z
            break
    if pfn < 0:
        fetch_add(k.zone, (nid, ZONE_FAILURES), 1)
        return -1
    if served != nid:
        fetch_add(k.zone, (nid, ZONE_FALLBACKS), 1)
    _prep_new_page(k, pfn, order, gfp)
    return pfn


@njit(cache=True)
def _prep_new_page(k, pfn, order, gfp):
    shift = k.machine[0, MACHINE_PAGE_SHIFT]
    n = 1 << order
    if k.machine[0, MACHINE_KASAN] != 0:
        kasan_unpoison_shadow(k.shadow, pfn << shift, n << shift)
    if (gfp & __GFP_ZERO) != 0:
        k.ram[pfn << shift:(pfn + n) << shift] = 0
    if (gfp & __GFP_COMP) != 0 and order > 0:
        k.page[pfn, PAGE_FLAGS] |= PG_HEAD
        k.page[pfn, PAGE_COMPOUND_ORDER] = order
        for t in range(pfn + 1, pfn + n):
            k.page[t, PAGE_FLAGS] |= PG_TAIL
            k.page[t, PAGE_COMPOUND_HEAD] = pfn


@njit(cache=True)
def __free_pages(k, pfn, order, cpu):
    """Free a block of 2^order pages that alloc_pages_node returned.

    Returns FREE_OK, or FREE_BAD_PAGE for a frame that is not an allocated block head of
    that order (a double free, the guard frame, a tail page, a compound order mismatch):
    bad_page() reports and leaves the page alone, as free_pages_check does.
    """
    if pfn <= 0 or pfn >= k.page.shape[0] or order < 0 or order >= MAX_ORDER:
        return FREE_BAD_PAGE
    flags = k.page[pfn, PAGE_FLAGS]
    if (flags & (PG_BUDDY | PG_RESERVED | PG_TAIL)) != 0:
        return FREE_BAD_PAGE
    if (flags & PG_HEAD) != 0 and k.page[pfn, PAGE_COMPOUND_ORDER] != order:
        return FREE_BAD_PAGE
    nid = k.page[pfn, PAGE_NODE]
    start = k.zone[nid, ZONE_START_PFN]
    if ((pfn - start) & ((1 << order) - 1)) != 0 or pfn - start + (1 << order) > k.zone[nid, ZONE_SPANNED_PAGES]:
        return FREE_BAD_PAGE
    n = 1 << order
    if (flags & PG_HEAD) != 0:
        for t in range(pfn + 1, pfn + n):
            k.page[t, PAGE_FLAGS] &= ~PG_TAIL
            k.page[t, PAGE_COMPOUND_HEAD] = -1
        k.page[pfn, PAGE_COMPOUND_ORDER] = 0
    k.page[pfn, PAGE_FLAGS] = 0
    k.page[pfn, PAGE_SLAB_CACHE] = -1
    k.page[pfn, PAGE_MEMCG] = -1
    if k.machine[0, MACHINE_KASAN] != 0:
        shift = k.machine[0, MACHINE_PAGE_SHIFT]
        kasan_poison_shadow(k.shadow, pfn << shift, n << shift, KASAN_FREE_PAGE)
    lock = k.zone[nid, ZONE_LOCK]
    spin_lock(k.lock, lock, cpu)
    __free_one_page(k, nid, pfn, order)
    k.zone[nid, ZONE_FREES] += 1
    spin_unlock(k.lock, lock)
    return FREE_OK


@njit(cache=True, inline="always")
def compound_head(k, pfn):
    """compound_head(): the head frame of a tail page, else the frame itself."""
    if (k.page[pfn, PAGE_FLAGS] & PG_TAIL) != 0:
        return k.page[pfn, PAGE_COMPOUND_HEAD]
    return pfn


# -- reports and invariants ---------------------------------------------------------
def zone_stats(k, nid: int) -> dict:
    z = k.zone[nid]
    return {
        "node": nid,
        "spanned_pages": int(z[ZONE_SPANNED_PAGES]),
        "nr_free_pages": int(z[ZONE_NR_FREE_PAGES]),
        "free_per_order": [int(z[ZONE_NR_FREE_0 + o]) for o in range(MAX_ORDER)],
        "alloc_calls": int(z[ZONE_ALLOC_CALLS]),
        "allocs": int(z[ZONE_ALLOCS]),
        "fallbacks": int(z[ZONE_FALLBACKS]),
        "failures": int(z[ZONE_FAILURES]),
        "injected_failures": int(z[ZONE_INJECTED_FAILURES]),
        "frees": int(z[ZONE_FREES]),
    }


def check_buddy(k) -> list[str]:
    """The invariants of the module docstring at a quiescent point; the violated ones."""
    bad: list[str] = []
    page, zone = k.page, k.zone
    owner = np.full(page.shape[0], -1, dtype=np.int64)
    heads: set[int] = set()  # every listed block's head frame, all nodes
    for nid in range(zone.shape[0]):
        start = int(zone[nid, ZONE_START_PFN])
        spanned = int(zone[nid, ZONE_SPANNED_PAGES])
        total = 0
        listed: dict[int, int] = {}  # head pfn -> order, this node
        for o in range(MAX_ORDER):
            count = 0
            pfn = int(zone[nid, ZONE_FREE_HEAD_0 + o])
            prev = -1
            while pfn >= 0:
                count += 1
                if count > spanned + 1:
                    bad.append(f"node {nid} order {o}: free list loops")
                    break
                if not (start <= pfn and pfn + (1 << o) <= start + spanned):
                    bad.append(f"node {nid} order {o}: pfn {pfn} outside the node")
                    break
                if (pfn - start) % (1 << o):
                    bad.append(f"node {nid} order {o}: pfn {pfn} misaligned")
                if not page[pfn, PAGE_FLAGS] & PG_BUDDY or page[pfn, PAGE_PRIVATE] != o:
                    bad.append(f"node {nid} order {o}: pfn {pfn} lacks PG_buddy/order")
                if page[pfn, PAGE_LRU_PREV] != prev:
                    bad.append(f"node {nid} order {o}: pfn {pfn} bad prev link")
                blk = owner[pfn:pfn + (1 << o)]
                if (blk >= 0).any():
                    bad.append(f"node {nid} order {o}: pfn {pfn} in two free blocks")
                blk[:] = o
                listed.setdefault(pfn, o)
                total += 1 << o
                prev = pfn
                pfn = int(page[pfn, PAGE_LRU_NEXT])
            if count != zone[nid, ZONE_NR_FREE_0 + o]:
                bad.append(f"node {nid} order {o}: nr_free {zone[nid, ZONE_NR_FREE_0 + o]} != {count} listed")
        if total != zone[nid, ZONE_NR_FREE_PAGES]:
            bad.append(f"node {nid}: nr_free_pages {zone[nid, ZONE_NR_FREE_PAGES]} != {total} listed")
        for pfn, o in listed.items():  # __free_one_page's merge left nothing to merge
            buddy = start + ((pfn - start) ^ (1 << o))
            if o < MAX_ORDER - 1 and buddy > pfn and listed.get(buddy) == o:
                bad.append(f"node {nid} order {o}: free buddies {pfn} and {buddy} not merged")
        heads.update(listed)
    for pfn in np.flatnonzero((page[:, PAGE_FLAGS] & PG_BUDDY) != 0):
        if int(pfn) not in heads:
            bad.append(f"pfn {pfn} has PG_buddy but heads no listed block")
    return bad
