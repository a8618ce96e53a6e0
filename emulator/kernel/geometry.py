"""Slab cache geometry: what SLUB and SLAB decide once, when a cache is created.

Models the sizing half of cache creation in Linux 3.16 (the series' base; unchanged in
what is modelled here through 4.0 unless a comment says otherwise):

- the kmalloc constants of include/linux/slab.h (KMALLOC_SHIFT_LOW/HIGH/MAX,
  KMALLOC_MIN_SIZE, ARCH_KMALLOC_MINALIGN, SLAB_OBJ_MIN_SIZE), per allocator and arch;
- kmalloc_index(), the size_index[] table and kmalloc_slab() (mm/slab_common.c), and the
  set of boot caches create_kmalloc_caches() makes, plus each allocator's own bootstrap
  caches (SLUB "kmem_cache_node" and "kmem_cache"; SLAB "kmem_cache", "kmalloc-ac" and
  "kmalloc-node"), in the order kmem_cache_init() creates them;
- calculate_alignment() (mm/slab_common.c);
- SLUB: kmem_cache_open(), calculate_sizes(), calculate_order(), slab_order(),
  set_min_partial() and the cpu_partial choice (mm/slub.c) -> `SlubGeometry`;
- SLAB: __kmem_cache_create(), calculate_slab_order(), cache_estimate(),
  calculate_nr_objs(), calculate_freelist_size() and enable_cpucache()'s tunables
  (mm/slab.c) -> `SlabGeometry`.

Everything depends on the machine (`MachineParams`): page size, cache-line size, the
number of possible CPUs and nodes, the architecture and the amount of RAM.  The same
cache therefore gets a different order and object count on an 8-CPU laptop than on a
64-CPU server, and again on a 64K-page arm64 machine.

The modelled kernel config: 64-bit (sizeof(void *) == 8), CONFIG_NUMA, CONFIG_SYSFS,
CONFIG_MEMCG_KMEM, CONFIG_SLUB_DEBUG and CONFIG_SLUB_CPU_PARTIAL (SLUB) compiled in but
no slub_debug= on the command line, no CONFIG_DEBUG_SLAB (SLAB), no lockdep (spinlock_t
is 4 bytes), MAX_ORDER 11 (arm64 64K pages with THP would have 14; not modelled).

Pure Python, run once per cache creation; the jitted allocators read the results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..machine.structs import MAX_ORDER

__all__ = [
    "MachineParams", "KmallocParams", "BootCache", "SlubGeometry", "SlabGeometry",
    "ALLOCATORS", "ARCHES", "BYTES_PER_WORD", "MAX_ORDER", "PAGE_ALLOC_COSTLY_ORDER",
    "SLAB_DEBUG_FREE", "SLAB_RED_ZONE", "SLAB_POISON", "SLAB_HWCACHE_ALIGN",
    "SLAB_CACHE_DMA", "SLAB_STORE_USER", "SLAB_RECLAIM_ACCOUNT", "SLAB_PANIC",
    "SLAB_DESTROY_BY_RCU", "SLAB_MEM_SPREAD", "SLAB_TRACE", "SLAB_NOLEAKTRACE",
    "SLAB_DEBUG_FLAGS", "ARCH_KMALLOC_FLAGS_SLAB", "MAX_OBJS_PER_PAGE", "MIN_PARTIAL",
    "MAX_PARTIAL", "SLAB_MAX_ORDER_LO", "SLAB_MAX_ORDER_HI",
    "fls", "ilog2", "get_order", "align_up", "kmalloc_params", "kmalloc_index",
    "kmalloc_size", "size_index_table", "kmalloc_slab", "kmalloc_caches", "boot_caches",
    "calculate_alignment", "slub_min_objects", "slub_geometry", "slab_max_order",
    "slab_geometry", "cache_geometry", "boot_geometries", "memcg_cache_name",
]

Allocator = Literal["slub", "slab"]
ALLOCATORS: tuple[str, ...] = ("slub", "slab")
ARCHES: tuple[str, ...] = ("x86_64", "arm64")

BYTES_PER_WORD = 8            # sizeof(void *) on the 64-bit kernels modelled
PAGE_ALLOC_COSTLY_ORDER = 3   # include/linux/mmzone.h

# include/linux/slab.h (3.16) flag values.
SLAB_DEBUG_FREE = 0x00000100
SLAB_RED_ZONE = 0x00000400
SLAB_POISON = 0x00000800
SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_CACHE_DMA = 0x00004000
SLAB_STORE_USER = 0x00010000
SLAB_RECLAIM_ACCOUNT = 0x00020000
SLAB_PANIC = 0x00040000
SLAB_DESTROY_BY_RCU = 0x00080000
SLAB_MEM_SPREAD = 0x00100000
SLAB_TRACE = 0x00200000
SLAB_NOLEAKTRACE = 0x00800000
# mm/slab.h: the flags that make kmem_cache_debug() true under CONFIG_SLUB_DEBUG.
SLAB_DEBUG_FLAGS = SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE | SLAB_DEBUG_FREE
# mm/slab.c: ARCH_KMALLOC_FLAGS, the flags SLAB creates its kmalloc caches with (SLUB's
# create_kmalloc_caches(0) passes none).
ARCH_KMALLOC_FLAGS_SLAB = SLAB_HWCACHE_ALIGN

# mm/slub.c
MAX_OBJS_PER_PAGE = 32767     # page->objects is 15 bits
MIN_PARTIAL = 5
MAX_PARTIAL = 10
SLUB_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER   # slub_max_order (no slub_max_order= given)
SLUB_MIN_ORDER = 0                          # slub_min_order
# struct track with CONFIG_STACKTRACE: addr, addrs[TRACK_ADDRS_COUNT = 16], cpu, pid, when.
SLUB_TRACK_SIZE = 8 + 16 * 8 + 4 + 4 + 8

# mm/slab.c
SLAB_MAX_ORDER_LO = 0
SLAB_MAX_ORDER_HI = 1

# Structure sizes of the modelled 3.16 config (x86_64 and arm64 alike: LP64, 4-byte
# spinlock_t), used for the allocators' own boot caches:
#   SLUB struct kmem_cache_node: list_lock 4 (+4 pad), nr_partial 8, partial 16,
#     nr_slabs 8, total_objects 8, full 16 (the last three under CONFIG_SLUB_DEBUG) = 64.
#   SLUB offsetof(struct kmem_cache, node): cpu_slab 8, flags 8, min_partial 8, size,
#     object_size, offset, cpu_partial, oo, max, min, allocflags, refcount 4 each (+4 pad),
#     ctor 8, inuse, align, reserved 4 each (+4 pad), name 8, list 16, kobj 64
#     (CONFIG_SYSFS; no CONFIG_DEBUG_KOBJECT_RELEASE), memcg_params 8, max_attr_size 4
#     (CONFIG_MEMCG_KMEM), remote_node_defrag_ratio 4 (CONFIG_NUMA) = 192.  The
#     memcg_kset pointer only arrived in 3.19.  The resulting object size (200 for one
#     node, padded to 256 by SLAB_HWCACHE_ALIGN) matches the "kmem_cache ... 256 16 1"
#     lines of real SLUB /proc/slabinfo output of the era.
#   SLAB struct kmem_cache_node (mm/slab.h): list_lock 4 (+4), slabs_partial/full/free 48,
#     free_objects 8, free_limit 4, colour_next 4, shared 8, alien 8, next_reap 8,
#     free_touched 4 (+4) = 104.
#   SLAB offsetof(struct kmem_cache, array) (include/linux/slab_def.h, 3.16): batchcount,
#     limit, shared, size 4 each, reciprocal_buffer_size 8, flags, num, gfporder,
#     allocflags 4 each, colour 8, colour_off 4 (+4), freelist_cache 8, freelist_size 4
#     (+4), ctor 8, name 8, list 16, refcount, object_size, align 4 each (+4),
#     memcg_params 8 (CONFIG_MEMCG_KMEM), node 8 = 136.  (3.19 replaced array[] by a
#     per-cpu pointer and node[MAX_NUMNODES]; 3.16 still sizes it by nr_cpu_ids.)
#   SLAB struct arraycache_init: array_cache {avail, limit, batchcount, touched, lock}
#     = 20 (+4) and entries[BOOT_CPUCACHE_ENTRIES = 1] 8 = 32.  (3.17 moved the lock
#     out of array_cache into struct alien_cache.)
SLUB_KMEM_CACHE_NODE_SIZE = 64
SLUB_KMEM_CACHE_NODE_OFFSET = 192
SLAB_KMEM_CACHE_NODE_SIZE = 104
SLAB_KMEM_CACHE_ARRAY_OFFSET = 136
SLAB_ARRAYCACHE_INIT_SIZE = 32


# -- integer helpers (include/linux/bitops.h, log2.h, asm-generic/getorder.h) -----------------

def fls(x: int) -> int:
    """fls(): the 1-based position of the most significant set bit; fls(0) == 0."""
    return int(x).bit_length()


def ilog2(x: int) -> int:
    """ilog2() of a positive integer."""
    if x <= 0:
        raise ValueError(f"ilog2 of {x}")
    return int(x).bit_length() - 1


def get_order(size: int, page_size: int) -> int:
    """get_order(): the smallest order whose block of pages holds `size` bytes."""
    if size <= 0:
        raise ValueError(f"get_order of {size}")
    return ((size - 1) >> ilog2(page_size)).bit_length()


def align_up(x: int, a: int) -> int:
    """ALIGN(x, a) for a power of two a."""
    return (x + a - 1) & ~(a - 1)


# -- the machine ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MachineParams:
    """The scalars cache geometry depends on.

    ``nr_cpu_ids`` is the number of possible CPU ids (highest id + 1), ``nr_node_ids`` the
    number of possible node ids; ``cache_line`` plays cache_line_size() (x86:
    boot_cpu_data.x86_cache_alignment; arm64 3.16: 4 << CTR_EL0.CWG), while
    ARCH_DMA_MINALIGN stays the compile-time constant of the arch (see `kmalloc_params`).
    ``totalram_pages`` is the emulated RAM in pages.
    """

    page_size: int
    cache_line: int
    nr_cpu_ids: int
    arch: str
    totalram_pages: int
    nr_node_ids: int = 1
    kernel_era: str = "3.16"   # topo.KERNEL_ERAS: which ARCH_DMA_MINALIGN (kmalloc_params)

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ValueError(f"arch must be one of {', '.join(ARCHES)}, not {self.arch!r}")
        for field_name in ("page_size", "cache_line"):
            v = getattr(self, field_name)
            if v <= 0 or v & (v - 1):
                raise ValueError(f"{field_name} must be a power of two, not {v}")
        if self.page_size < 4096:
            raise ValueError(f"page_size must be at least 4096, not {self.page_size}")
        if self.kernel_era not in ("3.16", "4.7"):
            raise ValueError(f"kernel_era must be 3.16 or 4.7, not {self.kernel_era!r}")
        if self.nr_cpu_ids < 1 or self.nr_node_ids < 1 or self.totalram_pages < 0:
            raise ValueError("nr_cpu_ids and nr_node_ids must be >= 1, totalram_pages >= 0")

    @property
    def page_shift(self) -> int:
        return ilog2(self.page_size)

    @classmethod
    def from_topology(cls, topo: Any) -> "MachineParams":
        """From a `topo.Topology` (or anything with arch, page_size, cache_line, cpus or
        nr_cpus, nodes and memory_total).  nr_cpu_ids/nr_node_ids are the highest id + 1,
        as the kernel derives them from the possible maps."""
        cpus = getattr(topo, "cpus", None)
        nr_cpu_ids = (max(c.id for c in cpus) + 1) if cpus else int(topo.nr_cpus)
        nodes = getattr(topo, "nodes", None)
        nr_node_ids = (max(n.id for n in nodes) + 1) if nodes else 1
        return cls(page_size=int(topo.page_size), cache_line=int(topo.cache_line),
                   nr_cpu_ids=nr_cpu_ids, arch=str(topo.arch),
                   totalram_pages=int(topo.memory_total) // int(topo.page_size),
                   nr_node_ids=nr_node_ids, kernel_era=str(getattr(topo, "kernel_era", "3.16")))


def _check_allocator(allocator: str) -> None:
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {', '.join(ALLOCATORS)}, not {allocator!r}")


@dataclass(frozen=True)
class KmallocParams:
    """include/linux/slab.h's kmalloc constants for one allocator on one machine."""

    arch_kmalloc_minalign: int   # ARCH_KMALLOC_MINALIGN
    arch_slab_minalign: int      # ARCH_SLAB_MINALIGN
    min_size: int                # KMALLOC_MIN_SIZE
    shift_low: int               # KMALLOC_SHIFT_LOW
    shift_high: int              # KMALLOC_SHIFT_HIGH: largest kmalloc cache is 1 << this
    shift_max: int               # KMALLOC_SHIFT_MAX: largest kmalloc() size
    max_cache_size: int          # KMALLOC_MAX_CACHE_SIZE
    max_size: int                # KMALLOC_MAX_SIZE
    max_order: int               # KMALLOC_MAX_ORDER
    slab_obj_min_size: int       # SLAB_OBJ_MIN_SIZE


def _arch_dma_minalign(arch: str, era: str = "3.16") -> int | None:
    """ARCH_DMA_MINALIGN, or None where the arch leaves it undefined.

    x86_64 does not define it (so kmalloc alignment is __alignof__(unsigned long long)).
    arm64 (arch/arm64/include/asm/cache.h) defines it as L1_CACHE_BYTES, whatever the
    CPU's real line size: L1_CACHE_SHIFT 6, i.e. 64, in 3.16 (era "3.16", the default);
    4.7 ("arm64: Increase the max granular size", for ThunderX's 128-byte lines) raised
    L1_CACHE_SHIFT to 7, so 128 (era "4.7"): KMALLOC_MIN_SIZE 128, and kmalloc-8 to
    kmalloc-96 and kmalloc-192 no longer exist.  Later kernels keep ARCH_DMA_MINALIGN
    128 (with L1_CACHE_BYTES back at 64) until 6.5 decoupled kmalloc's minimum
    alignment from it (bouncing unaligned DMA); that era is not modelled.
    """
    if arch != "arm64":
        return None
    return 128 if era == "4.7" else 64


def kmalloc_params(allocator: str, mp: MachineParams) -> KmallocParams:
    """The kmalloc constants of include/linux/slab.h (3.16) for `allocator` on `mp`."""
    _check_allocator(allocator)
    page_shift = mp.page_shift
    dma = _arch_dma_minalign(mp.arch, mp.kernel_era)
    if dma is not None and dma > 8:
        minalign, min_size, shift_low = dma, dma, ilog2(dma)
    else:
        minalign = 8                                  # __alignof__(unsigned long long)
        shift_low = 5 if allocator == "slab" else 3   # #ifndef KMALLOC_SHIFT_LOW
        min_size = 1 << shift_low
    if allocator == "slab":
        shift_high = min(MAX_ORDER + page_shift - 1, 25)
        shift_max = shift_high
    else:
        shift_high = page_shift + 1                   # SLUB: up to an order-1 page
        shift_max = MAX_ORDER + page_shift
    return KmallocParams(arch_kmalloc_minalign=minalign, arch_slab_minalign=8,
                         min_size=min_size, shift_low=shift_low, shift_high=shift_high,
                         shift_max=shift_max, max_cache_size=1 << shift_high,
                         max_size=1 << shift_max, max_order=shift_max - page_shift,
                         slab_obj_min_size=min(min_size, 16))


# -- kmalloc size classes (include/linux/slab.h, mm/slab_common.c) ---------------------------

def kmalloc_size(index: int) -> int:
    """kmalloc_size(): the object size of kmalloc_caches[index] (1 is 96, 2 is 192)."""
    if index == 0:
        return 0
    if index == 1:
        return 96
    if index == 2:
        return 192
    return 1 << index


def kmalloc_index(size: int, mp: MachineParams, allocator: str = "slub") -> int:
    """kmalloc_index(): the kmalloc_caches[] index a `size`-byte request maps to.

    0 for size 0 (ZERO_SIZE_PTR), -1 beyond 64 MiB (the kernel BUG()s there).  For sizes
    above KMALLOC_MAX_CACHE_SIZE the index exists but no cache does (see kmalloc_slab).
    """
    kp = kmalloc_params(allocator, mp)
    if size < 0:
        raise ValueError(f"negative kmalloc size {size}")
    if size == 0:
        return 0
    if size <= kp.min_size:
        return kp.shift_low
    if kp.min_size <= 32 and 64 < size <= 96:
        return 1
    if kp.min_size <= 64 and 128 < size <= 192:
        return 2
    for i in range(3, 27):     # 8 bytes .. 64 MiB
        if size <= 1 << i:
            return i
    return -1


# size_index[] of mm/slab_common.c before create_kmalloc_caches() patches it: the
# kmalloc_caches index for sizes 8, 16, ..., 192 (element (size - 1) / 8).
_SIZE_INDEX_BASE = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2)


def size_index_table(allocator: str, mp: MachineParams) -> tuple[int, ...]:
    """size_index[] after create_kmalloc_caches() has adapted it to KMALLOC_MIN_SIZE."""
    kp = kmalloc_params(allocator, mp)
    table = list(_SIZE_INDEX_BASE)
    for i in range(8, kp.min_size, 8):
        elem = (i - 1) // 8
        if elem >= len(table):
            break
        table[elem] = kp.shift_low
    if kp.min_size >= 64:
        for i in range(64 + 8, 96 + 1, 8):
            table[(i - 1) // 8] = 7
    if kp.min_size >= 128:
        for i in range(128 + 8, 192 + 1, 8):
            table[(i - 1) // 8] = 8
    return tuple(table)


def _kmalloc_name(index: int) -> str:
    return f"kmalloc-{kmalloc_size(index)}"


def kmalloc_slab(size: int, mp: MachineParams, allocator: str = "slub") -> str | None:
    """The name of the kmalloc cache kmalloc(size) allocates from, or None.

    Models __kmalloc(): kmalloc(0) gives ZERO_SIZE_PTR (None: no cache), a size above
    KMALLOC_MAX_CACHE_SIZE goes to the page allocator (SLUB's kmalloc_large; SLAB fails
    it, its KMALLOC_MAX_SIZE being the same) -> None; otherwise kmalloc_slab(): the
    size_index[] table up to 192 bytes, then fls(size - 1).
    """
    if size < 0:
        raise ValueError(f"negative kmalloc size {size}")
    kp = kmalloc_params(allocator, mp)
    if size == 0 or size > kp.max_cache_size:
        return None
    if size <= 192:
        index = size_index_table(allocator, mp)[(size - 1) // 8]
    else:
        index = fls(size - 1)
    return _kmalloc_name(index)


def kmalloc_caches(allocator: str, mp: MachineParams, zone_dma: bool = False
                   ) -> list[tuple[str, int]]:
    """The kmalloc caches create_kmalloc_caches() leaves, as (name, object size).

    In the order its loop visits them: each power of two from KMALLOC_SHIFT_LOW to
    KMALLOC_SHIFT_HIGH, with kmalloc-96 right after kmalloc-64 (if KMALLOC_MIN_SIZE <= 32)
    and kmalloc-192 right after kmalloc-128 (if KMALLOC_MIN_SIZE <= 64).  SLAB's
    "kmalloc-ac"/"kmalloc-node" bootstrap caches are among these (they are renamed
    kmalloc-<size> at the end); `boot_caches` gives the true creation order.
    ``zone_dma`` adds the dma-kmalloc-<size> twins CONFIG_ZONE_DMA creates; the emulator
    never allocates with GFP_DMA, so they are off by default.
    """
    kp = kmalloc_params(allocator, mp)
    out: list[tuple[str, int]] = []
    for i in range(kp.shift_low, kp.shift_high + 1):
        out.append((_kmalloc_name(i), 1 << i))
        if kp.min_size <= 32 and i == 6:
            out.append(("kmalloc-96", 96))
        if kp.min_size <= 64 and i == 7:
            out.append(("kmalloc-192", 192))
    if zone_dma:
        by_index = sorted(out, key=lambda t: kmalloc_index(t[1], mp, allocator))
        out += [("dma-" + name, size) for name, size in by_index]
    return out


@dataclass(frozen=True)
class BootCache:
    """A cache the allocator creates during kmem_cache_init()."""

    name: str
    object_size: int
    align: int      # the align argument calculate_alignment() starts from
    flags: int
    early: bool     # SLAB: created while slab_early_init is set (never off-slab)


def boot_caches(allocator: str, mp: MachineParams, zone_dma: bool = False) -> list[BootCache]:
    """The caches that exist after kmem_cache_init(), in the order they join slab_caches
    (their creation order, except that SLUB creates kmem_cache_node's struct first).

    SLUB (kmem_cache_init, 3.16): "kmem_cache_node" (sizeof(struct kmem_cache_node)),
    then "kmem_cache" (offsetof(struct kmem_cache, node) + nr_node_ids pointers), both
    SLAB_HWCACHE_ALIGN; bootstrap() adds kmem_cache and then kmem_cache_node to
    slab_caches, so kmem_cache counts as created first; then create_kmalloc_caches(0).

    SLAB: "kmem_cache" (offsetof(struct kmem_cache, array[nr_cpu_ids]) + nr_node_ids
    pointers, SLAB_HWCACHE_ALIGN), "kmalloc-ac" for sizeof(struct arraycache_init),
    "kmalloc-node" for sizeof(struct kmem_cache_node) if that is another size class,
    all three while slab_early_init is set, then create_kmalloc_caches(ARCH_KMALLOC_FLAGS)
    fills in the rest.  Every kmalloc cache ends up named kmalloc-<size>.
    """
    kp = kmalloc_params(allocator, mp)
    minalign = kp.arch_kmalloc_minalign
    out: list[BootCache] = []
    if allocator == "slub":
        out.append(BootCache("kmem_cache",
                             SLUB_KMEM_CACHE_NODE_OFFSET + mp.nr_node_ids * BYTES_PER_WORD,
                             minalign, SLAB_HWCACHE_ALIGN, False))
        out.append(BootCache("kmem_cache_node", SLUB_KMEM_CACHE_NODE_SIZE, minalign,
                             SLAB_HWCACHE_ALIGN, False))
        kflags = 0
        made: set[str] = set()
    else:
        size = (SLAB_KMEM_CACHE_ARRAY_OFFSET + mp.nr_cpu_ids * BYTES_PER_WORD
                + mp.nr_node_ids * BYTES_PER_WORD)
        out.append(BootCache("kmem_cache", size, minalign, SLAB_HWCACHE_ALIGN, True))
        kflags = ARCH_KMALLOC_FLAGS_SLAB
        index_ac = kmalloc_index(SLAB_ARRAYCACHE_INIT_SIZE, mp, allocator)
        index_node = kmalloc_index(SLAB_KMEM_CACHE_NODE_SIZE, mp, allocator)
        made = set()
        for index in dict.fromkeys((index_ac, index_node)):
            out.append(BootCache(_kmalloc_name(index), kmalloc_size(index), minalign,
                                 kflags, True))
            made.add(_kmalloc_name(index))
    for name, size in kmalloc_caches(allocator, mp, zone_dma=zone_dma):
        if name in made:
            continue
        flags = kflags | (SLAB_CACHE_DMA if name.startswith("dma-") else 0)
        out.append(BootCache(name, size, minalign, flags, False))
    return out


def memcg_cache_name(root_name: str, memcg_id: int, cgroup_name: str) -> str:
    """The name of a memcg child cache: memcg_create_kmem_cache()'s "%s(%d:%s)" of the
    root cache's name, memcg_cache_id() and the cgroup's name (3.16)."""
    return f"{root_name}({memcg_id}:{cgroup_name})"


# -- common ---------------------------------------------------------------------------------

def calculate_alignment(flags: int, align: int, size: int, mp: MachineParams) -> int:
    """calculate_alignment() (mm/slab_common.c): SLAB_HWCACHE_ALIGN aligns to the cache
    line, halved while the object fits in half of it; never below ARCH_SLAB_MINALIGN;
    always a multiple of sizeof(void *)."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = mp.cache_line
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    if align < 8:                      # ARCH_SLAB_MINALIGN
        align = 8
    return align_up(align, BYTES_PER_WORD)


def _check_size(object_size: int, allocator: str, mp: MachineParams) -> None:
    kp = kmalloc_params(allocator, mp)
    if object_size <= 0 or object_size > kp.max_size:
        raise ValueError(f"object size must be in 1..{kp.max_size} (KMALLOC_MAX_SIZE), "
                         f"not {object_size}")


# -- SLUB -----------------------------------------------------------------------------------

# SlubGeometry and SlabGeometry: each allocator's own struct kmem_cache fields and the
# same /proc/slabinfo properties, alike in shape only.
@dataclass(frozen=True)
class SlubGeometry:
    """A SLUB cache's layout as kmem_cache_open() computes it.

    ``size``: the object stride (s->size); ``offset``: where the free pointer lives;
    ``inuse``: s->inuse; ``order``/``objects``: s->oo; ``min_order``/``min_objects``:
    s->min (the fallback when a high-order allocation fails); ``pages_per_slab`` is
    1 << order; ``reserved`` is always 0 on 64-bit (need_reserve_slab_rcu is false).
    """

    name: str
    object_size: int
    size: int
    align: int
    offset: int
    inuse: int
    order: int
    objects: int
    min_order: int
    min_objects: int
    min_partial: int
    cpu_partial: int
    flags: int
    pages_per_slab: int
    reserved: int = 0

    allocator = "slub"

    @property
    def objects_per_slab(self) -> int:
        return self.objects

    @property
    def tunables(self) -> tuple[int, int, int]:
        """/proc/slabinfo's limit, batchcount, sharedfactor: SLUB reports zeros."""
        return (0, 0, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": "slub", **asdict(self)}


def slub_min_objects(mp: MachineParams) -> int:
    """calculate_order()'s target object count: 4 * (fls(nr_cpu_ids) + 1) (3.16 used
    nr_cpu_ids; 5.x switched to num_present_cpus())."""
    return 4 * (fls(mp.nr_cpu_ids) + 1)


def _order_objects(order: int, size: int, reserved: int, page_size: int) -> int:
    """order_objects()"""
    return ((page_size << order) - reserved) // size


def _slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int,
                reserved: int, page_size: int) -> int:
    """slab_order() (mm/slub.c, 3.16): the lowest order from which min_objects fit and
    the leftover is at most 1/fract_leftover of the slab; max_order + 1 if none."""
    min_order = SLUB_MIN_ORDER
    if _order_objects(min_order, size, reserved, page_size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE, page_size) - 1
    order = max(min_order, get_order(min_objects * size + reserved, page_size))
    while order <= max_order:
        slab_size = page_size << order
        rem = (slab_size - reserved) % size
        if rem <= slab_size // fract_leftover:
            break
        order += 1
    return order


def _calculate_order(size: int, reserved: int, mp: MachineParams) -> int:
    """calculate_order() (mm/slub.c, 3.16): try waste fractions 1/16, 1/8, 1/4 with
    min_objects, lowering min_objects until 2; then one object within slub_max_order;
    then one object within MAX_ORDER."""
    page_size = mp.page_size
    min_objects = slub_min_objects(mp)
    max_objects = _order_objects(SLUB_MAX_ORDER, size, reserved, page_size)
    min_objects = min(min_objects, max_objects)
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = _slab_order(size, min_objects, SLUB_MAX_ORDER, fraction, reserved,
                                page_size)
            if order <= SLUB_MAX_ORDER:
                return order
            fraction //= 2
        min_objects -= 1
    order = _slab_order(size, 1, SLUB_MAX_ORDER, 1, reserved, page_size)
    if order <= SLUB_MAX_ORDER:
        return order
    order = _slab_order(size, 1, MAX_ORDER, 1, reserved, page_size)
    if order < MAX_ORDER:
        return order
    return -1   # -ENOSYS


def slub_geometry(name: str, object_size: int, mp: MachineParams, align: int = 0,
                  flags: int = 0, ctor: bool = False) -> SlubGeometry:
    """A SLUB cache as kmem_cache_create() -> kmem_cache_open() lays it out (3.16).

    ``align`` is the caller's alignment (boot caches pass ARCH_KMALLOC_MINALIGN); it goes
    through calculate_alignment() first, as do_kmem_cache_create()/create_boot_cache() do.
    Debug flags (SLAB_RED_ZONE, SLAB_POISON, SLAB_STORE_USER) grow the object as
    calculate_sizes() does under CONFIG_SLUB_DEBUG, and any SLAB_DEBUG_FLAGS turn the
    per-cpu partial lists off.  Models calculate_sizes(), calculate_order(),
    set_min_partial() and kmem_cache_open()'s cpu_partial choice.
    """
    _check_size(object_size, "slub", mp)
    s_align = calculate_alignment(flags, align, object_size, mp)
    reserved = 0   # need_reserve_slab_rcu: sizeof(page->lru) >= sizeof(struct rcu_head)

    # calculate_sizes()
    size = align_up(object_size, BYTES_PER_WORD)
    if flags & SLAB_RED_ZONE and size == object_size:
        size += BYTES_PER_WORD
    inuse = size
    offset = 0
    if flags & (SLAB_DESTROY_BY_RCU | SLAB_POISON) or ctor:
        offset = size
        size += BYTES_PER_WORD
    if flags & SLAB_STORE_USER:
        size += 2 * SLUB_TRACK_SIZE
    if flags & SLAB_RED_ZONE:
        size += BYTES_PER_WORD
    size = align_up(size, s_align)
    order = _calculate_order(size, reserved, mp)
    if order < 0:
        raise ValueError(f"cache {name!r}: no slab order holds a {size}-byte object")
    objects = _order_objects(order, size, reserved, mp.page_size)
    min_order = get_order(size, mp.page_size)
    min_objects = _order_objects(min_order, size, reserved, mp.page_size)

    # kmem_cache_open(): set_min_partial(s, ilog2(s->size) / 2)
    min_partial = min(max(ilog2(size) // 2, MIN_PARTIAL), MAX_PARTIAL)
    if flags & SLAB_DEBUG_FLAGS:       # !kmem_cache_has_cpu_partial(s)
        cpu_partial = 0
    elif size >= mp.page_size:
        cpu_partial = 2
    elif size >= 1024:
        cpu_partial = 6
    elif size >= 256:
        cpu_partial = 13
    else:
        cpu_partial = 30
    return SlubGeometry(name=name, object_size=object_size, size=size, align=s_align,
                        offset=offset, inuse=inuse, order=order, objects=objects,
                        min_order=min_order, min_objects=min_objects,
                        min_partial=min_partial, cpu_partial=cpu_partial, flags=flags,
                        pages_per_slab=1 << order, reserved=reserved)


# -- SLAB -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlabGeometry:
    """A SLAB cache's layout and tunables as __kmem_cache_create() and enable_cpucache()
    set them.

    ``size``: the object stride; ``gfporder``/``num``: pages (as an order) and objects per
    slab; ``left_over``: unused bytes per slab, spent on ``colour`` colours of
    ``colour_off`` bytes; ``off_slab``: the freelist (``num`` freelist_idx_t of
    ``freelist_idx_size`` bytes, ``freelist_size`` in all) lives in a kmalloc object
    instead of at the head of the slab; ``limit``/``batchcount``: the per-CPU
    array_cache; ``shared``: the per-node shared array holds shared * batchcount objects;
    ``alien_limit``: the per-node alien caches' size (0 on one node, where
    use_alien_caches is off).
    """

    name: str
    object_size: int
    size: int
    align: int
    gfporder: int
    num: int
    left_over: int
    colour: int
    colour_off: int
    off_slab: bool
    freelist_size: int
    freelist_idx_size: int
    limit: int
    batchcount: int
    shared: int
    alien_limit: int
    pages_per_slab: int
    flags: int = 0

    allocator = "slab"

    @property
    def objects_per_slab(self) -> int:
        return self.num

    @property
    def order(self) -> int:
        return self.gfporder

    @property
    def tunables(self) -> tuple[int, int, int]:
        """/proc/slabinfo's limit, batchcount, sharedfactor."""
        return (self.limit, self.batchcount, self.shared)

    @property
    def shared_entries(self) -> int:
        """The capacity of each node's shared array_cache (shared * batchcount)."""
        return self.shared * self.batchcount

    def free_limit(self, nr_cpus_node: int) -> int:
        """kmem_cache_node->free_limit on a node with nr_cpus_node CPUs:
        (1 + nr_cpus_node(node)) * batchcount + num (alloc_kmem_cache_node)."""
        return (1 + nr_cpus_node) * self.batchcount + self.num

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": "slab", **asdict(self)}


def slab_max_order(mp: MachineParams) -> int:
    """kmem_cache_init(): SLAB_MAX_ORDER_HI when totalram_pages > (32 << 20) >> PAGE_SHIFT
    (and no slab_max_order= on the command line), else SLAB_MAX_ORDER_LO."""
    if mp.totalram_pages > (32 << 20) >> mp.page_shift:
        return SLAB_MAX_ORDER_HI
    return SLAB_MAX_ORDER_LO


def _freelist_idx_size(mp: MachineParams) -> int:
    """sizeof(freelist_idx_t): a byte when FREELIST_BYTE_INDEX, i.e.
    (PAGE_SIZE >> BITS_PER_BYTE) <= SLAB_OBJ_MIN_SIZE, else an unsigned short."""
    kp = kmalloc_params("slab", mp)
    return 1 if (mp.page_size >> 8) <= kp.slab_obj_min_size else 2


def _calculate_freelist_size(nr_objs: int, align: int, idx_size: int) -> int:
    """calculate_freelist_size() (no CONFIG_DEBUG_SLAB_LEAK)."""
    freelist_size = nr_objs * idx_size
    if align:
        freelist_size = align_up(freelist_size, align)
    return freelist_size


def _calculate_nr_objs(slab_size: int, buffer_size: int, idx_size: int, align: int) -> int:
    """calculate_nr_objs(): guess ignoring the freelist's padding, then drop one object
    if the aligned freelist does not fit."""
    nr_objs = slab_size // (buffer_size + idx_size)
    remained_size = slab_size - nr_objs * buffer_size
    if remained_size < _calculate_freelist_size(nr_objs, align, idx_size):
        nr_objs -= 1
    return nr_objs


def _cache_estimate(gfporder: int, buffer_size: int, align: int, off_slab: bool,
                    mp: MachineParams, idx_size: int) -> tuple[int, int]:
    """cache_estimate(): (num, left_over) for one order."""
    slab_size = mp.page_size << gfporder
    if off_slab:
        mgmt_size = 0
        nr_objs = slab_size // buffer_size
    else:
        nr_objs = _calculate_nr_objs(slab_size, buffer_size, idx_size, align)
        mgmt_size = _calculate_freelist_size(nr_objs, align, idx_size)
    return nr_objs, slab_size - nr_objs * buffer_size - mgmt_size


def _calculate_slab_order(size: int, align: int, flags: int, off_slab: bool,
                          mp: MachineParams, idx_size: int) -> tuple[int, int, int]:
    """calculate_slab_order(): (gfporder, num, left_over); num 0 if nothing fits."""
    kp = kmalloc_params("slab", mp)
    obj_max_num = (1 << (idx_size * 8)) - 1            # SLAB_OBJ_MAX_NUM
    max_order = slab_max_order(mp)
    best = (0, 0, 0)
    for gfporder in range(kp.max_order + 1):           # 0..KMALLOC_MAX_ORDER
        num, remainder = _cache_estimate(gfporder, size, align, off_slab, mp, idx_size)
        if not num:
            continue
        if num > obj_max_num:
            break
        if off_slab:
            offslab_limit = size // idx_size
            if num > offslab_limit:
                break
        best = (gfporder, num, remainder)
        if flags & SLAB_RECLAIM_ACCOUNT:
            break
        if gfporder >= max_order:
            break
        if remainder * 8 <= mp.page_size << gfporder:
            break
    return best


def _enable_cpucache(size: int, mp: MachineParams) -> tuple[int, int, int]:
    """enable_cpucache(): (limit, batchcount, shared) for a root cache (memcg children
    copy their root's)."""
    if size > 131072:
        limit = 1
    elif size > mp.page_size:
        limit = 8
    elif size > 1024:
        limit = 24
    elif size > 256:
        limit = 54
    else:
        limit = 120
    shared = 8 if size <= mp.page_size and mp.nr_cpu_ids > 1 else 0
    return limit, (limit + 1) // 2, shared


def slab_geometry(name: str, object_size: int, mp: MachineParams, align: int = 0,
                  flags: int = 0, early: bool = False, ctor: bool = False) -> SlabGeometry:
    """A SLAB cache as kmem_cache_create() -> __kmem_cache_create() lays it out (3.16).

    ``align`` is the caller's alignment, passed through calculate_alignment() first.
    ``early`` is slab_early_init (kmem_cache and the kmalloc-ac/kmalloc-node bootstrap
    caches): those keep their freelist on the slab whatever their size.  Without
    CONFIG_DEBUG_SLAB, kmem_cache_create() masks the debug flags off (CACHE_CREATE_MASK),
    so they change nothing here; ``ctor`` does not change SLAB's layout either.
    Models __kmem_cache_create(), calculate_slab_order(), cache_estimate(),
    calculate_nr_objs(), calculate_freelist_size(), enable_cpucache() and
    alloc_alien_cache()'s limit.
    """
    _check_size(object_size, "slab", mp)
    flags &= ~SLAB_DEBUG_FLAGS
    c_align = calculate_alignment(flags, align, object_size, mp)
    kp = kmalloc_params("slab", mp)
    idx_size = _freelist_idx_size(mp)

    size = align_up(object_size, BYTES_PER_WORD)
    off_slab = size >= (mp.page_size >> 5) and not early and not flags & SLAB_NOLEAKTRACE
    size = align_up(size, c_align)
    if idx_size == 1 and size < kp.slab_obj_min_size:     # FREELIST_BYTE_INDEX
        size = align_up(kp.slab_obj_min_size, c_align)
    gfporder, num, left_over = _calculate_slab_order(size, c_align, flags, off_slab, mp,
                                                     idx_size)
    if not num:
        raise ValueError(f"cache {name!r}: no slab order holds a {size}-byte object")
    freelist_size = _calculate_freelist_size(num, c_align, idx_size)
    if off_slab and left_over >= freelist_size:
        off_slab = False
        left_over -= freelist_size
    if off_slab:
        freelist_size = _calculate_freelist_size(num, 0, idx_size)
    colour_off = max(mp.cache_line, c_align)
    limit, batchcount, shared = _enable_cpucache(size, mp)
    alien_limit = (12 if limit > 1 else limit) if mp.nr_node_ids > 1 else 0
    return SlabGeometry(name=name, object_size=object_size, size=size, align=c_align,
                        gfporder=gfporder, num=num, left_over=left_over,
                        colour=left_over // colour_off, colour_off=colour_off,
                        off_slab=off_slab, freelist_size=freelist_size,
                        freelist_idx_size=idx_size, limit=limit, batchcount=batchcount,
                        shared=shared, alien_limit=alien_limit,
                        pages_per_slab=1 << gfporder, flags=flags)


# -- both -----------------------------------------------------------------------------------

def cache_geometry(allocator: str, name: str, object_size: int, mp: MachineParams,
                   align: int = 0, flags: int = 0, ctor: bool = False, early: bool = False
                   ) -> SlubGeometry | SlabGeometry:
    """`slub_geometry` or `slab_geometry` by allocator name."""
    _check_allocator(allocator)
    if allocator == "slub":
        return slub_geometry(name, object_size, mp, align=align, flags=flags, ctor=ctor)
    return slab_geometry(name, object_size, mp, align=align, flags=flags, early=early,
                         ctor=ctor)


def boot_geometries(allocator: str, mp: MachineParams, zone_dma: bool = False
                    ) -> list[SlubGeometry | SlabGeometry]:
    """The geometry of every boot cache, in `boot_caches` order."""
    return [cache_geometry(allocator, c.name, c.object_size, mp, align=c.align,
                           flags=c.flags, early=c.early)
            for c in boot_caches(allocator, mp, zone_dma=zone_dma)]

