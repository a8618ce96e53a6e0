"""arm64 slab geometry: 16K and 64K pages, 128-byte lines, ARCH_DMA_MINALIGN by kernel era.

Each expected value below is worked out by hand from the kernel's formulas (3.16), not
read back from kernel/geometry.py:

SLUB (mm/slub.c)
  slub_min_objects = 4 * (fls(nr_cpu_ids) + 1)
  calculate_order: min_objects = min(slub_min_objects, order_objects(slub_max_order = 3));
    slab_order(size, min_objects, 3, 16) starts at fls(min_objects * size - 1) - PAGE_SHIFT
    and takes the first order whose slab holds min_objects with at most 1/16 left over
  objects = (PAGE_SIZE << order) / size
  min_partial = clamp(ilog2(size) / 2, 5, 10)
  cpu_partial: size >= PAGE_SIZE -> 2, >= 1024 -> 6, >= 256 -> 13, else 30
SLAB (mm/slab.c)
  off-slab freelist when size >= PAGE_SIZE >> 5
  enable_cpucache: limit 1 (> 128K), 8 (> PAGE_SIZE), 24 (> 1024), 54 (> 256), else 120;
    batchcount = (limit + 1) / 2; shared = 8 when size <= PAGE_SIZE and several CPUs
kmalloc caches (include/linux/slab.h, mm/slab_common.c)
  KMALLOC_MIN_SIZE = ARCH_DMA_MINALIGN on arm64: 64 in 3.16 (L1_CACHE_SHIFT 6), 128
  from 4.7 (L1_CACHE_SHIFT 7): kmalloc-96 exists only if KMALLOC_MIN_SIZE <= 32,
  kmalloc-192 only if <= 64; sizes below KMALLOC_MIN_SIZE use the smallest cache.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from emulator.kernel.geometry import (
    SLAB_HWCACHE_ALIGN,
    MachineParams,
    kmalloc_caches,
    kmalloc_params,
    kmalloc_slab,
    slab_geometry,
    slub_geometry,
    slub_min_objects,
)
from topo import ConfigError, load_topology
from topo.tomlfile import parse_toml


def _mp(name, **over):
    return replace(MachineParams.from_topology(load_topology(name)), **over)


def _slub(mp, size):
    return slub_geometry(f"kmalloc-{size}", size, mp, align=kmalloc_params("slub", mp).arch_kmalloc_minalign)


def _slab(mp, size):
    return slab_geometry(f"kmalloc-{size}", size, mp, align=kmalloc_params("slab", mp).arch_kmalloc_minalign,
                         flags=SLAB_HWCACHE_ALIGN)


def test_shipped_arm64_topologies():
    t = load_topology("arm64-64k")  # ThunderX: 64K pages, 128-byte lines, 3.16 constants
    assert (t.page_size, t.cache_line, t.kernel_era) == (65536, 128, "3.16")
    m1 = load_topology("apple-m1-16k")  # 16K pages, 128-byte lines, a 4.7+ kernel
    assert (m1.page_size, m1.cache_line, m1.kernel_era) == (16384, 128, "4.7")


# -- SLUB on 64K pages, 96 CPUs: slub_min_objects = 4 * (fls(96) + 1) = 32 -----------------
@pytest.mark.parametrize("size, order, objects, min_partial, cpu_partial", [
    # 65536 / 128 = 512 >= 32 at order 0; ilog2(128) / 2 = 3 -> 5
    (128, 0, 512, 5, 30),
    # 64 per order-0 slab
    (1024, 0, 64, 5, 6),
    # fls(32 * 8192 - 1) - 16 = 18 - 16 = 2: 262144 / 8192 = 32, nothing left over;
    # 8192 < PAGE_SIZE: cpu_partial 6 (it is 2 with 4K pages)
    (8192, 2, 32, 6, 6),
    # order_objects(3) = 524288 / 32768 = 16 < 32: min_objects 16, fls(16 * 32768 - 1) - 16 = 3
    (32768, 3, 16, 7, 6),
    # kmalloc-131072 (SLUB's largest: 2 pages): order_objects(3) = 4, fls(4 * 131072 - 1) - 16 = 3
    (131072, 3, 4, 8, 2),
])
def test_slub_64k(size, order, objects, min_partial, cpu_partial):
    mp = _mp("arm64-64k")
    assert slub_min_objects(mp) == 32
    g = _slub(mp, size)
    assert (g.order, g.objects, g.min_partial, g.cpu_partial) == (order, objects, min_partial, cpu_partial)


# -- SLUB on 16K pages, 8 CPUs: slub_min_objects = 4 * (fls(8) + 1) = 20 -------------------
@pytest.mark.parametrize("size, order, objects, cpu_partial", [
    (128, 0, 128, 30),          # 16384 / 128
    # 16 < 20 per page: fls(20 * 1024 - 1) - 14 = 15 - 14 = 1: 32768 / 1024 = 32
    (1024, 1, 32, 6),
    # order_objects(3) = 131072 / 8192 = 16 < 20: fls(16 * 8192 - 1) - 14 = 3
    (8192, 3, 16, 6),
    (32768, 3, 4, 2),           # 131072 / 32768, and 32768 >= PAGE_SIZE
])
def test_slub_16k(size, order, objects, cpu_partial):
    mp = _mp("apple-m1-16k")
    assert slub_min_objects(mp) == 20
    g = _slub(mp, size)
    assert (g.order, g.objects, g.cpu_partial) == (order, objects, cpu_partial)


# -- SLAB: the page size moves the off-slab threshold and the tunables ----------------------
@pytest.mark.parametrize("topology, size, off_slab, limit, batch, shared", [
    # 64K pages: off-slab from 2048 bytes; 8192 <= PAGE_SIZE -> limit 24, shared 8
    ("arm64-64k", 1024, False, 54, 27, 8),
    ("arm64-64k", 8192, True, 24, 12, 8),
    # 4K pages, the same 8192-byte object: > PAGE_SIZE -> limit 8, no shared array
    ("xeon-2s12c", 8192, True, 8, 4, 0),
    # 16K pages: off-slab from 512; 32768 > PAGE_SIZE
    ("apple-m1-16k", 1024, True, 54, 27, 8),
    ("apple-m1-16k", 32768, True, 8, 4, 0),
])
def test_slab_tunables_follow_the_page_size(topology, size, off_slab, limit, batch, shared):
    g = _slab(_mp(topology), size)
    assert (g.off_slab, g.limit, g.batchcount, g.shared) == (off_slab, limit, batch, shared)


def test_slab_objects_per_64k_slab():
    # kmalloc-8192, off-slab: 65536 / 8192 = 8 per order-0 slab, nothing left over
    g = _slab(_mp("arm64-64k"), 8192)
    assert (g.gfporder, g.num, g.left_over) == (0, 8, 0)


# -- which kmalloc caches exist: ARCH_DMA_MINALIGN by arch and era --------------------------
def _names(allocator, mp):
    return [n for n, _ in kmalloc_caches(allocator, mp)]


@pytest.mark.parametrize("allocator", ["slub", "slab"])
def test_kmalloc_caches_by_era(allocator):
    old = _mp("arm64-64k")  # 3.16: ARCH_DMA_MINALIGN 64
    new = _mp("arm64-64k", kernel_era="4.7")  # 128
    assert _names(allocator, old)[:3] == ["kmalloc-64", "kmalloc-128", "kmalloc-192"]
    assert _names(allocator, new)[:2] == ["kmalloc-128", "kmalloc-256"]
    assert not {"kmalloc-8", "kmalloc-16", "kmalloc-32", "kmalloc-64", "kmalloc-96",
                "kmalloc-192"} & set(_names(allocator, new))
    assert kmalloc_params(allocator, new).min_size == 128
    # requests below KMALLOC_MIN_SIZE, and the 192 class, round up
    assert kmalloc_slab(8, new, allocator) == "kmalloc-128"
    assert kmalloc_slab(100, new, allocator) == "kmalloc-128"
    assert kmalloc_slab(150, new, allocator) == "kmalloc-256"
    assert kmalloc_slab(8, old, allocator) == "kmalloc-64"
    assert kmalloc_slab(150, old, allocator) == "kmalloc-192"


def test_era_changes_nothing_on_x86():
    mp = _mp("xeon-2s12c")
    assert _names("slub", mp) == _names("slub", replace(mp, kernel_era="4.7"))
    assert _names("slub", mp)[:3] == ["kmalloc-8", "kmalloc-16", "kmalloc-32"]


def test_bad_era_is_one_line():
    with pytest.raises(ConfigError) as e:
        parse_toml({"arch": "arm64", "kernel_era": "5.0",
                    "node": [{"cpus": "0", "memory": "64MiB"}]}, source="t.toml")
    assert str(e.value).startswith("t.toml: kernel_era: expected ") and "\n" not in str(e.value)
