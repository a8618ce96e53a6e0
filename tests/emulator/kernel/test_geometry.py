"""Cache geometry against numbers worked out by hand from the 3.16 formulas.

Every expected value below is derived in the comments from the kernel's code, not by
calling the code under test:

SLUB calculate_order(): min_objects = 4 * (fls(nr_cpu_ids) + 1), capped by the objects
an order-3 slab holds; the first order >= get_order(min_objects * size) whose leftover
(slab % size) is <= slab / 16 (then / 8, / 4, then fewer objects) wins.
min_partial = clamp(ilog2(size) / 2, 5, 10); cpu_partial = 2 / 6 / 13 / 30 for
size >= PAGE_SIZE / >= 1024 / >= 256 / else.
"""

from __future__ import annotations

import pytest

from emulator.kernel import geometry as g
from emulator.kernel.geometry import (SLAB_DESTROY_BY_RCU, SLAB_HWCACHE_ALIGN, SLAB_POISON,
                                      SLAB_RECLAIM_ACCOUNT, SLAB_RED_ZONE, SLAB_STORE_USER,
                                      MachineParams, boot_caches, kmalloc_caches,
                                      kmalloc_index, kmalloc_params, kmalloc_slab,
                                      memcg_cache_name, slab_geometry, slub_geometry)
from topo import load_topology

MiB = 1 << 20


def mp(page_size=4096, cpus=8, arch="x86_64", cache_line=64, nodes=1, ram=512 * MiB):
    return MachineParams(page_size=page_size, cache_line=cache_line, nr_cpu_ids=cpus,
                         arch=arch, totalram_pages=ram // page_size, nr_node_ids=nodes)


# -- SLUB: (size, order, objects, min_partial, cpu_partial) per machine ----------------------

SLUB_4K = {
    # 1 CPU: min_objects = 4 * (fls(1) + 1) = 8
    1: [(8, 0, 512, 5, 30),         # 8*8 = 64 -> order 0; 4096/8
        (96, 0, 42, 5, 30),         # 768 -> 0; 4096 % 96 = 64 <= 4096/16
        (192, 0, 21, 5, 30),        # 1536 -> 0; 4096 % 192 = 64 <= 256
        (512, 0, 8, 5, 13),         # 4096 -> 0
        (1024, 1, 8, 5, 6),         # 8192 -> 1; ilog2(1024)/2 = 5
        (2048, 2, 8, 5, 6),         # 16384 -> 2
        (4096, 3, 8, 6, 2),         # 32768 -> 3; ilog2 12 / 2 = 6; size >= PAGE_SIZE
        (8192, 3, 4, 6, 2)],        # max_objects = 32768/8192 = 4 -> 32768 -> 3
    # 2 CPUs: min_objects = 4 * (2 + 1) = 12
    2: [(256, 0, 16, 5, 13),        # 3072 -> 0
        (512, 1, 16, 5, 13),        # 6144 -> 1; 8192/512
        (1024, 2, 16, 5, 6),        # 12288 -> 2
        (2048, 3, 16, 5, 6),        # min(12, 16) * 2048 = 24576 -> 3; 32768/2048
        (8192, 3, 4, 6, 2)],
    # 8 CPUs: min_objects = 4 * (fls(8) = 4 + 1) = 20
    8: [(8, 0, 512, 5, 30),         # 160 -> 0
        (192, 0, 21, 5, 30),        # 3840 -> 0, leftover 64
        (256, 1, 32, 5, 13),        # 5120 -> 1; 8192/256
        (512, 2, 32, 5, 13),        # 10240 -> 2: 32 objects per 4-page slab
        (1024, 3, 32, 5, 6),        # 20480 -> 3
        (2048, 3, 16, 5, 6),        # min(20, 32768/2048 = 16) = 16 -> 32768 -> 3
        (4096, 3, 8, 6, 2)],        # min(20, 8) = 8 -> 3
    # 64 CPUs: min_objects = 4 * (fls(64) = 7 + 1) = 32
    64: [(128, 0, 32, 5, 30),       # 4096 -> 0
         (192, 1, 42, 5, 30),       # 6144 -> 1; 8192 % 192 = 128 <= 512
         (256, 1, 32, 5, 13),       # 8192 -> 1
         (512, 2, 32, 5, 13),       # 16384 -> 2
         (1024, 3, 32, 5, 6),       # min(32, 32) -> 32768 -> 3
         (8192, 3, 4, 6, 2)],
}

SLUB_64K = {
    # arm64, 64K pages (order 3 = 512K); kmalloc starts at 64 (ARCH_DMA_MINALIGN)
    1: [(64, 0, 1024, 5, 30),       # 512 -> 0; 65536/64
        (192, 0, 341, 5, 30),       # 65536 % 192 = 64 <= 4096
        (4096, 0, 16, 6, 6),        # 32768 -> 0; 4096 < PAGE_SIZE -> 6
        (16384, 1, 8, 7, 6),        # 131072 -> 1; ilog2 14 / 2 = 7
        (65536, 3, 8, 8, 2),        # min(8, 524288/65536 = 8) -> 524288 -> 3
        (131072, 3, 4, 8, 2)],      # min(8, 4) = 4 -> 3
    2: [(8192, 1, 16, 6, 6),        # 12 * 8192 = 98304 -> 1
        (32768, 3, 16, 7, 6)],      # 393216 -> 3; 524288/32768
    8: [(64, 0, 1024, 5, 30),       # 1280 -> 0
        (2048, 0, 32, 5, 6),        # 40960 -> 0
        (4096, 1, 32, 6, 6),        # 81920 -> 1
        (8192, 2, 32, 6, 6),        # 163840 -> 2 (262144)
        (131072, 3, 4, 8, 2)],
    64: [(192, 0, 341, 5, 30),      # 6144 -> 0
         (2048, 0, 32, 5, 6),       # 65536 -> 0
         (4096, 1, 32, 6, 6),       # 131072 -> 1
         (16384, 3, 32, 7, 6)],     # min(32, 32) -> 524288 -> 3
}


def _slub_cases(table, page_size, arch):
    for cpus, rows in table.items():
        for size, order, objects, min_partial, cpu_partial in rows:
            yield pytest.param(page_size, arch, cpus, size, order, objects, min_partial,
                               cpu_partial, id=f"{page_size // 1024}K-{cpus}cpu-{size}")


@pytest.mark.parametrize("page_size, arch, cpus, size, order, objects, min_partial, cpu_partial",
                         list(_slub_cases(SLUB_4K, 4096, "x86_64"))
                         + list(_slub_cases(SLUB_64K, 65536, "arm64")))
def test_slub_kmalloc_geometry(page_size, arch, cpus, size, order, objects, min_partial,
                               cpu_partial):
    m = mp(page_size=page_size, cpus=cpus, arch=arch)
    minalign = 64 if arch == "arm64" else 8
    geo = slub_geometry(f"kmalloc-{size}", size, m, align=minalign)
    assert (geo.order, geo.objects) == (order, objects)
    assert geo.pages_per_slab == 1 << order
    assert (geo.min_partial, geo.cpu_partial) == (min_partial, cpu_partial)
    assert geo.size == size and geo.offset == 0 and geo.inuse == size and geo.reserved == 0


def test_slub_kmalloc_512_on_8_cpus_is_32_objects_in_4_pages():
    geo = slub_geometry("kmalloc-512", 512, mp(cpus=8))
    assert (geo.order, geo.objects, geo.pages_per_slab) == (2, 32, 4)
    # s->min: get_order(512) = 0 -> 8 objects in one page
    assert (geo.min_order, geo.min_objects) == (0, 8)


def test_slub_boot_caches_follow_the_machine():
    # kmalloc-512: 32 objects in 4 pages with 8 CPUs, 8 in one page with 1 CPU, and
    # on 64K pages with 8 CPUs 20*512 = 10240 fits order 0: 128 objects.
    def find(m, name):
        return next(x for x in g.boot_geometries("slub", m) if x.name == name)
    assert find(mp(cpus=8), "kmalloc-512").objects == 32
    assert find(mp(cpus=1), "kmalloc-512").objects == 8
    assert find(mp(page_size=65536, cpus=8, arch="arm64"), "kmalloc-512").objects == 128


@pytest.mark.parametrize("size, cpus, order, objects", [
    # 3000 B, 8 CPUs: min(20, 32768/3000 = 10) = 10 -> 30000 -> order 3;
    # 32768 % 3000 = 2768 > 2048 (1/16) but <= 4096 (1/8) -> order 3, 10 objects
    (3000, 8, 3, 10),
    # 1500 B, 1 CPU: 8*1500 = 12000 -> order 2: 16384 % 1500 = 1384 > 1024 -> order 3:
    # 32768 % 1500 = 1268 <= 2048 -> 21 objects
    (1500, 1, 3, 21),
    # 9000 B: min(20, 3) = 3 -> 27000 -> order 3; leftover 5768 > 1/16, 1/8, <= 1/4
    (9000, 8, 3, 3),
    # 11000 B: min(20, 2) = 2 -> 22000 -> order 3, leftover 10768 > 8192 (1/4) at every
    # fraction; min_objects 1 ends the loop, and the single-object pass takes
    # get_order(11000) = 2: 16384 % 11000 = 5384 <= 16384 -> 1 object
    (11000, 8, 2, 1),
    # 20000 B: max_objects = 1, so only the single-object pass: get_order(20000) = 3
    (20000, 8, 3, 1),
    # 40000 B does not fit slub_max_order: the MAX_ORDER pass gives get_order(40000) = 4
    (40000, 8, 4, 1),
])
def test_slub_odd_sizes(size, cpus, order, objects):
    geo = slub_geometry("odd", size, mp(cpus=cpus))
    assert (geo.order, geo.objects) == (order, objects)


def test_slub_sizes_and_free_pointer():
    m = mp()
    # 100 B: ALIGN(100, 8) = 104, free pointer at 0
    plain = slub_geometry("a", 100, m)
    assert (plain.size, plain.inuse, plain.offset, plain.align) == (104, 104, 0, 8)
    # a ctor or SLAB_DESTROY_BY_RCU moves the free pointer after the object: 104 + 8
    for geo in (slub_geometry("b", 100, m, ctor=True),
                slub_geometry("c", 100, m, flags=SLAB_DESTROY_BY_RCU)):
        assert (geo.size, geo.inuse, geo.offset) == (112, 104, 104)
    # SLAB_HWCACHE_ALIGN: 100 > 64/2, so align 64 and 112 -> 128
    hw = slub_geometry("d", 100, m, flags=SLAB_HWCACHE_ALIGN, ctor=True)
    assert (hw.align, hw.size, hw.offset) == (64, 128, 104)
    # ... but a 24-byte object only needs 32: ralign halves while size <= ralign/2
    assert slub_geometry("e", 24, m, flags=SLAB_HWCACHE_ALIGN).align == 32
    # debug: poison moves the pointer (104 -> 112), two struct tracks of 152 with
    # CONFIG_STACKTRACE (+304 = 416), a trailing red zone word (424); no cpu partial
    dbg = slub_geometry("f", 100, m, flags=SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER)
    assert (dbg.size, dbg.offset, dbg.inuse, dbg.cpu_partial) == (424, 104, 104, 0)
    # red zone on a word-sized object adds a word before the free pointer: 64 -> 72 + 8
    rz = slub_geometry("g", 64, m, flags=SLAB_RED_ZONE)
    assert (rz.inuse, rz.size) == (72, 80)


# -- SLAB --------------------------------------------------------------------------------------
# __kmem_cache_create(): off-slab when ALIGN(size, 8) >= PAGE_SIZE >> 5 (checked before
# aligning to the cache's alignment) and not early; calculate_nr_objs(): n = slab /
# (size + idx), minus one if ALIGN(n * idx, align) does not fit in slab - n * size.
# enable_cpucache(): limit 120 / 54 / 24 / 8 / 1 for size <= 256 / 1024 / PAGE_SIZE /
# 128K / above; batchcount (limit + 1) / 2; shared 8 if size <= PAGE_SIZE and > 1 CPU.

SLAB_4K = [
    # name, object size, early, size, order, num, left_over, colour, off_slab,
    # freelist_size, limit, batchcount, shared
    # kmem_cache: 136 + 8*8 + 8*1 = 208, HWCACHE -> 256; early so on-slab:
    # 4096/257 = 15, 4096 - 15*256 = 256 >= ALIGN(15, 64) = 64; left 192 = 3 colours
    ("kmem_cache", 208, True, 256, 0, 15, 192, 3, False, 64, 120, 60, 8),
    # kmalloc-32 (kmalloc-ac): align 32; 4096/33 = 124, 4096 - 3968 = 128 >= ALIGN(124, 32)
    ("kmalloc-32", 32, True, 32, 0, 124, 0, 0, False, 128, 120, 60, 8),
    # 64: 4096/65 = 63, 64 left >= ALIGN(63, 64) = 64
    ("kmalloc-64", 64, False, 64, 0, 63, 0, 0, False, 64, 120, 60, 8),
    # 96 < 128 -> on-slab, then ALIGN(96, 64) = 128: 4096/129 = 31, left 128 - 64 = 64
    ("kmalloc-96", 96, False, 128, 0, 31, 64, 1, False, 64, 120, 60, 8),
    # kmalloc-128 is kmalloc-node: early, so on-slab like kmalloc-96
    ("kmalloc-128", 128, True, 128, 0, 31, 64, 1, False, 64, 120, 60, 8),
    # 192 >= 128: off-slab, 21 objects leave 64 >= ALIGN(21, 64): back on-slab, left 0
    ("kmalloc-192", 192, False, 192, 0, 21, 0, 0, False, 64, 120, 60, 8),
    # 256: off-slab, 16 objects, no room for the freelist (16 one-byte indexes)
    ("kmalloc-256", 256, False, 256, 0, 16, 0, 0, True, 16, 120, 60, 8),
    ("kmalloc-1024", 1024, False, 1024, 0, 4, 0, 0, True, 4, 54, 27, 8),
    ("kmalloc-4096", 4096, False, 4096, 0, 1, 0, 0, True, 1, 24, 12, 8),
    # order 0 holds none; order 1 holds one and 1 >= slab_max_order (1 with 512 MiB)
    ("kmalloc-8192", 8192, False, 8192, 1, 1, 0, 0, True, 1, 8, 4, 0),
    ("kmalloc-262144", 262144, False, 262144, 6, 1, 0, 0, True, 1, 1, 1, 0),
]

SLAB_64K = [
    # arm64 64K pages: freelist_idx_t is a short ((65536 >> 8) > 16), off-slab from 2048
    # kmalloc-64 is kmalloc-ac (sizeof(arraycache_init) 32 <= KMALLOC_MIN_SIZE 64):
    # 65536/66 = 992, 65536 - 63488 = 2048 >= ALIGN(1984, 64) = 1984, left 64
    ("kmalloc-64", 64, True, 64, 0, 992, 64, 1, False, 1984, 120, 60, 8),
    # 65536/194 = 337, 65536 - 64704 = 832 >= ALIGN(674, 64) = 704, left 128
    ("kmalloc-192", 192, False, 192, 0, 337, 128, 2, False, 704, 120, 60, 8),
    # 65536/1026 = 63, 1024 left - ALIGN(126, 64) = 128 -> 896 = 14 colours
    ("kmalloc-1024", 1024, False, 1024, 0, 63, 896, 14, False, 128, 54, 27, 8),
    # 2048 >= 65536 >> 5: off-slab, 32 objects, freelist 32 * 2 = 64 bytes
    ("kmalloc-2048", 2048, False, 2048, 0, 32, 0, 0, True, 64, 24, 12, 8),
    # 65536 is not > PAGE_SIZE: limit 24, and shared since size <= PAGE_SIZE
    ("kmalloc-65536", 65536, False, 65536, 0, 1, 0, 0, True, 2, 24, 12, 8),
    ("kmalloc-131072", 131072, False, 131072, 1, 1, 0, 0, True, 2, 8, 4, 0),
]


@pytest.mark.parametrize("page_size, arch, row",
                         [(4096, "x86_64", r) for r in SLAB_4K]
                         + [(65536, "arm64", r) for r in SLAB_64K],
                         ids=[f"4K-{r[0]}" for r in SLAB_4K] + [f"64K-{r[0]}" for r in SLAB_64K])
def test_slab_geometry(page_size, arch, row):
    (name, obj, early, size, order, num, left, colour, off, fl, limit, batch, shared) = row
    m = mp(page_size=page_size, arch=arch, cpus=8)
    minalign = 64 if arch == "arm64" else 8
    geo = slab_geometry(name, obj, m, align=minalign, flags=SLAB_HWCACHE_ALIGN, early=early)
    assert (geo.size, geo.gfporder, geo.num, geo.left_over) == (size, order, num, left)
    assert (geo.colour, geo.colour_off, geo.off_slab, geo.freelist_size) == (colour, 64, off, fl)
    assert (geo.limit, geo.batchcount, geo.shared) == (limit, batch, shared)
    assert geo.pages_per_slab == 1 << order
    assert geo.freelist_idx_size == (2 if page_size == 65536 else 1)


def test_slab_free_limit_and_alien():
    one = slab_geometry("kmalloc-32", 32, mp(nodes=1), align=8, flags=SLAB_HWCACHE_ALIGN)
    # (1 + nr_cpus_node) * batchcount + num = 9 * 60 + 124
    assert one.free_limit(8) == 664 and one.free_limit(0) == 184
    assert one.alien_limit == 0          # one node: use_alien_caches is off
    two = mp(nodes=2)
    assert slab_geometry("x", 32, two, align=8, flags=SLAB_HWCACHE_ALIGN).alien_limit == 12
    big = slab_geometry("y", 262144, two, align=8, flags=SLAB_HWCACHE_ALIGN)
    assert big.limit == 1 and big.alien_limit == 1   # alloc_alien_cache keeps limit <= 1
    assert one.shared_entries == 8 * 60


def test_slab_single_cpu_has_no_shared_array():
    assert slab_geometry("z", 64, mp(cpus=1), align=8).shared == 0


def test_slab_max_order_and_reclaim_account():
    # 1100 B (align 8 -> 1104), off-slab candidate.  Order 0: 3 objects, 784 left;
    # 784 * 8 > 4096 so with slab_max_order 1 (> 32 MiB of RAM) try order 1: 7 objects,
    # 8192 - 7728 = 464 left; the 8-byte freelist fits, so on-slab with 456 left.
    big_ram = slab_geometry("odd", 1100, mp(ram=512 * MiB))
    assert (big_ram.gfporder, big_ram.num, big_ram.left_over) == (1, 7, 456)
    assert not big_ram.off_slab
    assert big_ram.colour == 456 // 64
    # 32 MiB is not > 32 MiB: SLAB_MAX_ORDER_LO stops at order 0 (784 - 8 = 776 left)
    small_ram = slab_geometry("odd", 1100, mp(ram=32 * MiB))
    assert (small_ram.gfporder, small_ram.num, small_ram.left_over) == (0, 3, 776)
    # SLAB_RECLAIM_ACCOUNT takes the first order that holds anything
    rec = slab_geometry("odd", 1100, mp(), flags=SLAB_RECLAIM_ACCOUNT)
    assert (rec.gfporder, rec.num) == (0, 3)


def test_slab_colour_off_follows_the_cache_line():
    # arm64-64k (ThunderX): 128-byte lines.  kmalloc-192 aligns to 128 -> 256 bytes:
    # 65536/258 = 254, 512 left >= ALIGN(508, 128) = 512 -> on-slab, nothing left
    topo = load_topology("arm64-64k")
    m = MachineParams.from_topology(topo)
    geo = next(x for x in g.boot_geometries("slab", m) if x.name == "kmalloc-192")
    assert (geo.align, geo.size, geo.num, geo.left_over, geo.colour_off) == (128, 256, 254, 0, 128)
    assert geo.alien_limit == 12


# -- kmalloc size classes ----------------------------------------------------------------------

@pytest.mark.parametrize("allocator, arch, size, cache", [
    ("slub", "x86_64", 1, "kmalloc-8"),
    ("slub", "x86_64", 8, "kmalloc-8"),
    ("slub", "x86_64", 9, "kmalloc-16"),
    ("slub", "x86_64", 24, "kmalloc-32"),
    ("slub", "x86_64", 33, "kmalloc-64"),
    ("slub", "x86_64", 65, "kmalloc-96"),
    ("slub", "x86_64", 96, "kmalloc-96"),
    ("slub", "x86_64", 97, "kmalloc-128"),
    ("slub", "x86_64", 129, "kmalloc-192"),
    ("slub", "x86_64", 192, "kmalloc-192"),
    ("slub", "x86_64", 193, "kmalloc-256"),
    ("slub", "x86_64", 8192, "kmalloc-8192"),
    ("slub", "x86_64", 8193, None),            # > KMALLOC_MAX_CACHE_SIZE: kmalloc_large
    ("slub", "x86_64", 0, None),               # ZERO_SIZE_PTR
    ("slab", "x86_64", 1, "kmalloc-32"),       # SLAB's KMALLOC_SHIFT_LOW is 5
    ("slab", "x86_64", 65, "kmalloc-96"),
    ("slab", "x86_64", 8193, "kmalloc-16384"),
    ("slab", "x86_64", 4 * MiB, "kmalloc-4194304"),   # KMALLOC_SHIFT_HIGH 22
    ("slab", "x86_64", 4 * MiB + 1, None),
    ("slub", "arm64", 1, "kmalloc-64"),        # ARCH_DMA_MINALIGN 64
    ("slub", "arm64", 65, "kmalloc-128"),      # no kmalloc-96
    ("slub", "arm64", 97, "kmalloc-128"),
    ("slub", "arm64", 129, "kmalloc-192"),
    ("slab", "arm64", 33, "kmalloc-64"),
])
def test_kmalloc_slab(allocator, arch, size, cache):
    assert kmalloc_slab(size, mp(arch=arch), allocator) == cache


@pytest.mark.parametrize("allocator, arch", [("slub", "x86_64"), ("slab", "x86_64"),
                                             ("slub", "arm64"), ("slab", "arm64")])
def test_kmalloc_index_agrees_with_size_index(allocator, arch):
    # kmalloc_index() (the compile-time path) and kmalloc_slab() (size_index[] then
    # fls) must name the same cache for every size, and that cache must exist.
    m = mp(arch=arch)
    names = {name for name, _ in kmalloc_caches(allocator, m)}
    for size in list(range(1, 4097)) + [8191, 8192]:
        name = kmalloc_slab(size, m, allocator)
        assert name == f"kmalloc-{g.kmalloc_size(kmalloc_index(size, m, allocator))}"
        assert name in names


def test_kmalloc_constants():
    slub, slab = kmalloc_params("slub", mp()), kmalloc_params("slab", mp())
    assert (slub.shift_low, slub.shift_high, slub.max_cache_size) == (3, 13, 8192)
    assert slub.max_size == 1 << (11 + 12)     # KMALLOC_SHIFT_MAX = MAX_ORDER + PAGE_SHIFT
    assert (slab.shift_low, slab.shift_high, slab.min_size) == (5, 22, 32)
    slab64 = kmalloc_params("slab", mp(page_size=65536, arch="arm64"))
    assert (slab64.shift_high, slab64.max_order) == (25, 9)   # capped at 32 MiB
    arm = kmalloc_params("slub", mp(arch="arm64"))
    assert (arm.arch_kmalloc_minalign, arm.min_size, arm.shift_low) == (64, 64, 6)
    assert kmalloc_params("slub", mp(page_size=65536, arch="arm64")).shift_high == 17


# -- boot caches ------------------------------------------------------------------------------

def test_slub_x86_boot_caches():
    names = [c.name for c in boot_caches("slub", mp())]
    assert names == ["kmem_cache", "kmem_cache_node", "kmalloc-8", "kmalloc-16", "kmalloc-32",
                     "kmalloc-64", "kmalloc-96", "kmalloc-128", "kmalloc-192", "kmalloc-256",
                     "kmalloc-512", "kmalloc-1024", "kmalloc-2048", "kmalloc-4096",
                     "kmalloc-8192"]


def test_arm64_boot_caches_follow_arch_dma_minalign():
    for allocator in ("slub", "slab"):
        names = [c.name for c in boot_caches(allocator, mp(arch="arm64"))]
        for absent in ("kmalloc-8", "kmalloc-16", "kmalloc-32", "kmalloc-96"):
            assert absent not in names
        assert "kmalloc-64" in names and "kmalloc-192" in names
    # SLUB kmalloc caches are created with align ARCH_KMALLOC_MINALIGN = 64
    geo = next(x for x in g.boot_geometries("slub", mp(arch="arm64")) if x.name == "kmalloc-64")
    assert geo.align == 64


def test_slab_boot_caches_bootstrap_order():
    caches = boot_caches("slab", mp())
    # kmem_cache, then kmalloc-ac (32) and kmalloc-node (sizeof 104 -> 128), all early
    assert [(c.name, c.early) for c in caches[:4]] == [
        ("kmem_cache", True), ("kmalloc-32", True), ("kmalloc-128", True), ("kmalloc-64", False)]
    assert [c.name for c in caches[4:7]] == ["kmalloc-96", "kmalloc-192", "kmalloc-256"]
    # kmem_cache + kmalloc-32 .. kmalloc-4194304 (shifts 5..22: 18) + kmalloc-96/192
    assert caches[-1].name == "kmalloc-4194304" and len(caches) == 1 + 18 + 2


def test_kmem_cache_object_sizes():
    m = mp(cpus=48, nodes=2)
    slub = {c.name: c.object_size for c in boot_caches("slub", m)}
    assert slub["kmem_cache"] == 192 + 2 * 8 and slub["kmem_cache_node"] == 64
    slab = {c.name: c.object_size for c in boot_caches("slab", m)}
    assert slab["kmem_cache"] == 136 + 48 * 8 + 2 * 8


def test_dma_caches_optional():
    names = [n for n, _ in kmalloc_caches("slub", mp(), zone_dma=True)]
    assert "dma-kmalloc-96" in names and names.index("dma-kmalloc-8") > names.index("kmalloc-8192")


def test_machine_params_from_topology():
    m = MachineParams.from_topology(load_topology("xeon-2s12c"))
    assert (m.nr_cpu_ids, m.nr_node_ids, m.page_size, m.arch) == (48, 2, 4096, "x86_64")
    assert m.totalram_pages == (512 * MiB) // 4096


def test_memcg_cache_name():
    assert memcg_cache_name("kmalloc-64", 3, "docker") == "kmalloc-64(3:docker)"


@pytest.mark.parametrize("bad", [
    dict(arch="sparc"), dict(page_size=3000), dict(cache_line=48), dict(cpus=0)])
def test_machine_params_rejects(bad):
    with pytest.raises(ValueError):
        mp(**bad)


def test_bad_sizes_and_allocator():
    with pytest.raises(ValueError):
        slub_geometry("x", 0, mp())
    with pytest.raises(ValueError):
        slab_geometry("x", 64 * MiB, mp())      # > SLAB's KMALLOC_MAX_SIZE (4 MiB)
    with pytest.raises(ValueError):
        g.cache_geometry("slob", "x", 64, mp())
