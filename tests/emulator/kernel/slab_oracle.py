"""A slow, obviously-correct model of what an allocator must do, for differential tests.

It knows nothing of freelists or slabs: it keeps the set of live objects and checks
each completed operation against the tables it can read directly (struct page):
  - an allocation returns an address inside a slab page of the right cache, at an object
    boundary (s_mem + i * size with i < the slab's object count), that is not live (or 0
    when memory ran out);
  - a free of a live object makes it not live and reports nothing;
  - a free of an object that was freed before is a double free, of anything else an
    invalid free: each must add exactly one KASAN report of that kind.
"""

from __future__ import annotations

from emulator.kernel.ops import OP_ALLOC, OP_CACHE_FREE, OP_FREE, OP_KMALLOC, OP_SHRINK
from emulator.machine import structs as S


class SlabOracle:
    def __init__(self, kernel, kmalloc_cache_of):
        self.K = kernel
        self.mem = kernel.mem
        self.shift = int(self.mem.machine[0, S.MACHINE_PAGE_SHIFT])
        self.kmalloc_cache_of = kmalloc_cache_of  # size -> cache row, or -1 (large)
        self.live: dict[int, int] = {}  # address -> cache row (-2: kmalloc_large)
        self.freed: set[int] = set()
        self.expected_reports: list[int] = []
        self.errors: list[str] = []
        self.reports_before = int(self.mem.kasan_report[0, 0])

    def _head(self, pfn):
        p = self.mem.page
        if p[pfn, S.PAGE_FLAGS] & S.PG_TAIL:
            return int(p[pfn, S.PAGE_COMPOUND_HEAD])
        return pfn

    def _objects(self, cache: int, pfn: int) -> int:
        """How many objects slab pfn holds, from its struct page and its cache.

        SLUB: page->objects, per slab: allocate_slab() (mm/slub.c) sets it to
        oo_objects(s->oo), or to oo_objects(s->min) when the page allocator could not give
        s->oo's order, so kmem_cache.objects (s->oo's count) bounds only the larger slabs.
        SLAB: cachep->num for every slab; a SLAB cache has one gfporder and no fallback
        (cache_grow() -> kmem_getpages(cachep, ...) in mm/slab.c)."""
        if self.mem.kmem_cache[cache, S.KMEM_CACHE_ALLOCATOR] == S.ALLOCATOR_SLUB:
            word = int(self.mem.page[pfn, S.PAGE_FREELIST])
            return (word >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE
        return int(self.mem.kmem_cache[cache, S.KMEM_CACHE_OBJECTS])

    def alloc(self, cache: int, size: int, addr: int):
        if addr == 0:
            return  # allowed: the emulated machine may run out of memory
        if addr in self.live:
            self.errors.append(f"{addr:#x} handed out while live")
            return
        if cache == -1:  # kmalloc_large
            pfn = addr >> self.shift
            if addr & ((1 << self.shift) - 1) or not self.mem.page[pfn, S.PAGE_FLAGS] & S.PG_HEAD:
                self.errors.append(f"kmalloc_large {size} gave {addr:#x}, not a compound head")
            self.live[addr] = -2
            self.freed.discard(addr)
            return
        pfn = self._head(addr >> self.shift)
        p = self.mem.page
        if not p[pfn, S.PAGE_FLAGS] & S.PG_SLAB or p[pfn, S.PAGE_SLAB_CACHE] != cache:
            self.errors.append(f"{addr:#x} is not in a slab of cache {cache}")
            return
        objsize = int(self.mem.kmem_cache[cache, S.KMEM_CACHE_SIZE])
        off = addr - (pfn << self.shift) - int(p[pfn, S.PAGE_S_MEM])
        if off < 0 or off % objsize or off // objsize >= self._objects(cache, pfn):
            self.errors.append(f"{addr:#x} is not an object boundary of cache {cache}")
        if addr % 8:
            self.errors.append(f"{addr:#x} is not 8-byte aligned")
        self.live[addr] = cache
        self.freed.discard(addr)

    def free(self, addr: int):
        if addr == 0:
            return
        if addr in self.live:
            del self.live[addr]
            self.freed.add(addr)
        elif addr in self.freed:
            self.expected_reports.append(S.BUG_DOUBLE_FREE)
        else:
            self.expected_reports.append(S.BUG_INVALID_FREE)

    def apply(self, row, result, slot_addr):
        op = int(row[1])
        if op == OP_ALLOC:
            self.alloc(int(row[2]), 0, int(result))
        elif op == OP_KMALLOC:
            self.alloc(self.kmalloc_cache_of(int(row[2])), int(row[2]), int(result))
        elif op in (OP_FREE, OP_CACHE_FREE):
            self.free(int(slot_addr))
        elif op == OP_SHRINK:
            pass

    def reports(self):
        """The bugs reported since this oracle was made, in report order."""
        n = int(self.mem.kasan_report[0, 0])
        return [int(self.mem.kasan_report[1 + i, S.KASAN_REPORT_BUG])
                for i in range(self.reports_before, n)]
