"""Doubly linked lists of pages through struct page's lru links (include/linux/list.h).

What it models: list_add, list_add_tail, list_del on lists whose head and tail are two
fields of a table row (kmem_cache_node's partial, full and free lists) and whose count
is a third field (nr_partial, nr_full, nr_free).  Page frame 0 is never a slab, so 0 is
the empty link.  The caller holds the lock that protects the list.

Invariant: walking next links from head visits `count` pages, the last one is tail, and
each page's prev link names the page before it (0 for the head).
"""

from __future__ import annotations

from numba import njit

from ..machine.structs import PAGE_LRU_NEXT, PAGE_LRU_PREV


# list_add and list_add_tail mirror each other line for line, as in include/linux/list.h;
# they stay two functions so that each call reads as its kernel counterpart.
@njit(cache=True)
def list_add(page, tab, row, head_f, tail_f, count_f, pfn):
    """list_add(): at the head."""
    head = tab[row, head_f]
    page[pfn, PAGE_LRU_PREV] = 0
    page[pfn, PAGE_LRU_NEXT] = head
    if head != 0:
        page[head, PAGE_LRU_PREV] = pfn
    else:
        tab[row, tail_f] = pfn
    tab[row, head_f] = pfn
    tab[row, count_f] += 1


@njit(cache=True)
def list_add_tail(page, tab, row, head_f, tail_f, count_f, pfn):
    """list_add_tail(): at the tail."""
    tail = tab[row, tail_f]
    page[pfn, PAGE_LRU_NEXT] = 0
    page[pfn, PAGE_LRU_PREV] = tail
    if tail != 0:
        page[tail, PAGE_LRU_NEXT] = pfn
    else:
        tab[row, head_f] = pfn
    tab[row, tail_f] = pfn
    tab[row, count_f] += 1


@njit(cache=True)
def list_del(page, tab, row, head_f, tail_f, count_f, pfn):
    """list_del(): unlink pfn (which must be on this list)."""
    nxt = page[pfn, PAGE_LRU_NEXT]
    prv = page[pfn, PAGE_LRU_PREV]
    if prv != 0:
        page[prv, PAGE_LRU_NEXT] = nxt
    else:
        tab[row, head_f] = nxt
    if nxt != 0:
        page[nxt, PAGE_LRU_PREV] = prv
    else:
        tab[row, tail_f] = prv
    page[pfn, PAGE_LRU_NEXT] = 0
    page[pfn, PAGE_LRU_PREV] = 0
    tab[row, count_f] -= 1


def walk(page, tab, row, head_f, limit=1 << 30) -> list[int]:
    """The pfns on a list, head first (Python, for checks and reports)."""
    out = []
    pfn = int(tab[row, head_f])
    while pfn != 0 and len(out) <= limit:
        out.append(pfn)
        pfn = int(page[pfn, PAGE_LRU_NEXT])
    return out
