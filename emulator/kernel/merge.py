"""SLUB cache merging: kmem_cache_create() handing out an existing cache (Linux 3.16).

What it models: mm/slab_common.c's kmem_cache_create() first asks the allocator for an
alias, __kmem_cache_alias(); SLUB's (mm/slub.c) looks for a mergeable cache with
find_mergeable() and, when it finds one, counts one more user (s->refcount++), grows
s->object_size and s->inuse to cover the new user's objects (so that kzalloc clears them)
and adds the name as a sysfs alias (a symlink in /sys/kernel/slab to the cache's
":t-0000192"-style directory).  /proc/slabinfo lists the cache once, under the name it
was created with.  SLAB has no __kmem_cache_alias in 3.16 (it never merges).

find_mergeable(size, align, flags, name, ctor), 3.16:
  - nothing merges with slub_nomerge on the command line (``slab_nomerge`` in 3.19 and
    later; the model's [kernel] table calls it slab_nomerge), nor a new cache whose flags
    include SLUB_NEVER_MERGE, nor one with a constructor;
  - size = ALIGN(size, sizeof(void *)); align = calculate_alignment(flags, align, size);
    size = ALIGN(size, align); flags = kmem_cache_flags(...) (slub_debug= adds the debug
    flags to every cache: then nothing merges, as SLUB_NEVER_MERGE includes them);
  - the first cache on slab_caches (newest first) that is not slab_unmergeable() (no
    SLUB_NEVER_MERGE flag, no ctor, refcount >= 0: create_boot_cache() set -1 on
    kmem_cache and kmem_cache_node, "exempt from merging"), with
    size <= s->size, the same SLUB_MERGE_SAME flags, s->size a multiple of align, and
    s->size - size < sizeof(void *).
Memcg caches are created from their root with memcg_create_kmem_cache(), never through
the alias path, so an alias's memcg children are the merged cache's children.

Pure Python (emulator.NOT_JITTED): it runs when Kernel.kmem_cache_create() does, before
any worker.  Invariant: a merged name maps to the same kmem_cache row as the cache it
merged into, whose refcount is 1 + the number of its aliases.
"""

from __future__ import annotations

from typing import Iterable

from .geometry import (
    BYTES_PER_WORD,
    SLAB_CACHE_DMA,
    SLAB_DEBUG_FREE,
    SLAB_DESTROY_BY_RCU,
    SLAB_NOLEAKTRACE,
    SLAB_POISON,
    SLAB_RECLAIM_ACCOUNT,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    SLAB_TRACE,
    MachineParams,
    SlubGeometry,
    align_up,
    calculate_alignment,
)

__all__ = ["SLUB_NEVER_MERGE", "SLUB_MERGE_SAME", "UNMERGEABLE_BOOT_CACHES", "find_mergeable",
           "mergeable_size"]

SLAB_FAILSLAB = 0x02000000  # include/linux/slab.h (fault injection)
SLAB_NOTRACK = 0x01000000  # include/linux/slab.h (kmemcheck)
# mm/slub.c, 3.16: "Set of flags that will prevent slab merging"
SLUB_NEVER_MERGE = (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE |
                    SLAB_DESTROY_BY_RCU | SLAB_NOLEAKTRACE | SLAB_FAILSLAB)
# "Flags that must match for two caches to merge"
SLUB_MERGE_SAME = SLAB_DEBUG_FREE | SLAB_RECLAIM_ACCOUNT | SLAB_CACHE_DMA | SLAB_NOTRACK
# create_boot_cache() leaves s->refcount = -1 on these (kmalloc caches get 1)
UNMERGEABLE_BOOT_CACHES = ("kmem_cache", "kmem_cache_node")


def mergeable_size(size: int, align: int, flags: int, mp: MachineParams) -> tuple[int, int]:
    """find_mergeable()'s (size, align) for a new cache: the size rounded to a word, then
    to the alignment calculate_alignment() gives."""
    size = align_up(size, BYTES_PER_WORD)
    align = calculate_alignment(flags, align, size, mp)
    return align_up(size, align), align


def find_mergeable(caches: Iterable, size: int, align: int, flags: int, ctor: bool,
                   mp: MachineParams, *, nomerge: bool = False):
    """find_mergeable(): the cache (an item of ``caches``, oldest first as the kernel
    created them, each with ``name``, ``root``, ``geometry`` and ``ctor``) that a new SLUB
    cache of ``size`` bytes would merge into, or None."""
    if nomerge or (flags & SLUB_NEVER_MERGE) or ctor:
        return None
    size, align = mergeable_size(size, align, flags, mp)
    for c in reversed(list(caches)):  # slab_caches: list_add() puts the newest first
        g = c.geometry
        if c.root >= 0 or not isinstance(g, SlubGeometry):
            continue  # memcg children are not on slab_caches' merge path
        if (g.flags & SLUB_NEVER_MERGE) or getattr(c, "ctor", False) or \
                c.name in UNMERGEABLE_BOOT_CACHES:  # slab_unmergeable()
            continue
        if size > g.size:
            continue
        if (flags & SLUB_MERGE_SAME) != (g.flags & SLUB_MERGE_SAME):
            continue
        if (g.size & ~(align - 1)) != g.size:  # alignment compatible
            continue
        if g.size - size >= BYTES_PER_WORD:
            continue
        return c
    return None
