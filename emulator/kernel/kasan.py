"""A KASAN-style shadow of emulated RAM (mm/kasan/kasan.c of Linux 4.0).

What it models: one shadow byte per 8 bytes of RAM (KASAN_SHADOW_SCALE_SHIFT = 3), with
KASAN's meanings:
  0                       all 8 bytes of the granule are accessible;
  1..7                    only the first k bytes are (the tail of an object);
  KASAN_FREE_PAGE 0xFF    a page freed to the buddy allocator;
  KASAN_PAGE_REDZONE 0xFE a page-allocator redzone;
  KASAN_KMALLOC_REDZONE 0xFC  the slack/redzone of a slab object;
  KASAN_KMALLOC_FREE 0xFB a freed slab object;
  KASAN_SLAB_PADDING 0xFD the leftover at the end of a slab page, in no object;
Negative (>= 0x80) bytes are poison.  Poisoning works on whole granules: addr and size
must be multiples of 8 (kasan_poison_shadow's rule); unpoisoning a size that is not a
multiple of 8 leaves the last granule partially accessible (kasan_unpoison_shadow).

Who writes the shadow: the page allocator (kasan_alloc_pages / kasan_free_pages) and the
slab allocators (kasan_slab_alloc / kasan_slab_free), always while they own the memory
(the pages or objects are theirs alone), so no atomics are needed.  These functions are
skipped when the run's `kasan` switch is off (`machine[0, MACHINE_KASAN] == 0`).

Invariant: a byte of RAM is accessible iff its granule's shadow says so; the checker
`kasan_check` returns 0 for a good access and the shadow byte that was hit otherwise.
"""

from __future__ import annotations

from numba import njit

KASAN_SHADOW_SCALE_SHIFT = 3
KASAN_SHADOW_SCALE_SIZE = 1 << KASAN_SHADOW_SCALE_SHIFT
KASAN_SHADOW_MASK = KASAN_SHADOW_SCALE_SIZE - 1

KASAN_FREE_PAGE = 0xFF
KASAN_PAGE_REDZONE = 0xFE
KASAN_SLAB_PADDING = 0xFD
KASAN_KMALLOC_REDZONE = 0xFC
KASAN_KMALLOC_FREE = 0xFB


@njit(cache=True)
def kasan_poison_shadow(shadow, addr, size, value):
    """Mark [addr, addr+size) with `value`; both must be granule-aligned."""
    start = addr >> KASAN_SHADOW_SCALE_SHIFT
    end = (addr + size) >> KASAN_SHADOW_SCALE_SHIFT
    for i in range(start, end):
        shadow[i] = value


@njit(cache=True)
def kasan_unpoison_shadow(shadow, addr, size):
    """Make [addr, addr+size) accessible; a partial last granule records its length."""
    start = addr >> KASAN_SHADOW_SCALE_SHIFT
    end = (addr + size) >> KASAN_SHADOW_SCALE_SHIFT
    for i in range(start, end):
        shadow[i] = 0
    tail = size & KASAN_SHADOW_MASK
    if tail:
        shadow[end] = tail


@njit(cache=True)
def kasan_check(shadow, addr, size):
    """Check an access of `size` bytes at `addr` (memory_is_poisoned).

    Returns 0 when every byte is accessible, else the shadow value of the first bad byte
    (an access past the accessible head of a partial granule reports
    KASAN_KMALLOC_REDZONE).  `kasan_check_at` also gives that byte's address.
    """
    return kasan_check_at(shadow, addr, size)[0]


@njit(cache=True)
def kasan_check_at(shadow, addr, size):
    """(shadow value, address) of the first inaccessible byte, or (0, 0)."""
    a = addr
    end = addr + size
    while a < end:
        g = a >> KASAN_SHADOW_SCALE_SHIFT
        s = shadow[g]
        if s == 0:
            a = (g + 1) << KASAN_SHADOW_SCALE_SHIFT
            continue
        if s < 0x80:
            # the first s bytes of the granule are good
            if (a & KASAN_SHADOW_MASK) < s:
                a += 1
                continue
            return KASAN_KMALLOC_REDZONE, a
        return s, a
    return 0, 0
