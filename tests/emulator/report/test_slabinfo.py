"""/proc/slabinfo 2.1: exact lines, round trips, memcg folding, boot rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.kernel.geometry import MachineParams
from emulator.report.slabinfo import (DEAD_MARKER, HEADER_LINE, VERSION_LINE, SlabinfoRow,
                                      boot_slabinfo_rows, created_slabinfo_rows,
                                      fold_memcg_children, format_row,
                                      format_slabinfo, parse_slabinfo, split_memcg_name)
from topo import load_topology

# Two lines printed by real kernels' cache_show(), quoted in LKML threads: a SLUB cache
# with a name of exactly 17 characters, and a SLAB cache whose counts overflow their
# %6lu columns (the columns then just grow).
SLUB_LINE = ("ext4_groupinfo_1k     60     60    136   30    1 : tunables    0    0    0 "
             ": slabdata      2      2      0")
SLAB_LINE = ("dentry            2840237 7328181    192   21    1 : tunables  120   60    8 "
             ": slabdata 348961 348961    120")


def test_header_is_the_kernels():
    assert VERSION_LINE == "slabinfo - version: 2.1"
    assert HEADER_LINE == (
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
        " : tunables <limit> <batchcount> <sharedfactor>"
        " : slabdata <active_slabs> <num_slabs> <sharedavail>")


def test_exact_lines():
    slub = SlabinfoRow(name="ext4_groupinfo_1k", active_objs=60, num_objs=60, objsize=136,
                       objperslab=30, pagesperslab=1, active_slabs=2, num_slabs=2)
    slab = SlabinfoRow(name="dentry", active_objs=2840237, num_objs=7328181, objsize=192,
                       objperslab=21, pagesperslab=1, limit=120, batchcount=60,
                       sharedfactor=8, active_slabs=348961, num_slabs=348961,
                       sharedavail=120)
    assert format_row(slub) == SLUB_LINE
    assert format_row(slab) == SLAB_LINE
    short = SlabinfoRow(name="kmalloc-512", active_objs=1000, num_objs=1024, objsize=512,
                        objperslab=32, pagesperslab=4, active_slabs=32, num_slabs=32)
    assert format_row(short) == ("kmalloc-512         1000   1024    512   32    4 "
                                 ": tunables    0    0    0 : slabdata     32     32      0")
    text = format_slabinfo([slub, slab.to_dict()])
    assert text == "\n".join([VERSION_LINE, HEADER_LINE, SLUB_LINE, SLAB_LINE]) + "\n"


def test_parse_a_kernel_dump():
    rows = parse_slabinfo("\n".join([VERSION_LINE, HEADER_LINE, SLUB_LINE, SLAB_LINE]) + "\n")
    assert rows[1] == {"name": "dentry", "memcg": None, "dead": False,
                       "active_objs": 2840237, "num_objs": 7328181, "objsize": 192,
                       "objperslab": 21, "pagesperslab": 1, "active_slabs": 348961,
                       "num_slabs": 348961, "limit": 120, "batchcount": 60,
                       "sharedfactor": 8, "sharedavail": 120}
    assert rows[0]["name"] == "ext4_groupinfo_1k" and rows[0]["num_slabs"] == 2


def _rows():
    return [
        SlabinfoRow(name="kmalloc-64", active_objs=10, num_objs=64, objsize=64, objperslab=64,
                    pagesperslab=1, active_slabs=1, num_slabs=1),
        SlabinfoRow(name="kmalloc-64(3:docker)", active_objs=5, num_objs=128, objsize=64,
                    objperslab=64, pagesperslab=1, active_slabs=2, num_slabs=2,
                    memcg="docker", dead=True),
        SlabinfoRow(name="kmalloc-64(4:a b)", active_objs=1, num_objs=64, objsize=64,
                    objperslab=64, pagesperslab=1, active_slabs=1, num_slabs=1, memcg="a b"),
        SlabinfoRow(name="kmem_cache", objsize=256, objperslab=16, pagesperslab=1),
    ]


def test_round_trip_extended_and_plain():
    rows = [r.to_dict() for r in _rows()]
    assert parse_slabinfo(format_slabinfo(rows, extended=True)) == rows
    plain = format_slabinfo(rows)
    assert DEAD_MARKER not in plain                      # plain output is the kernel's
    parsed = parse_slabinfo(plain)
    assert parsed == [dict(r, dead=False) for r in rows]
    ext = format_slabinfo(rows, extended=True).splitlines()
    assert ext[3].endswith(" : slabdata      2      2      0 : dead")
    assert ext[2] == format_row(rows[0])                 # live rows carry no marker


def test_fold_memcg_children():
    folded = fold_memcg_children(_rows())
    assert [r["name"] for r in folded] == ["kmalloc-64", "kmem_cache"]
    k = folded[0]
    assert (k["active_objs"], k["num_objs"], k["active_slabs"], k["num_slabs"]) == (
        10 + 5 + 1, 64 + 128 + 64, 1 + 2 + 1, 1 + 2 + 1)
    assert folded[1]["num_objs"] == 0


def test_split_memcg_name():
    assert split_memcg_name("kmalloc-64(3:docker)") == ("kmalloc-64", 3, "docker")
    assert split_memcg_name("kmalloc-64") is None


@pytest.mark.parametrize("text, fragment", [
    ("", "line 1"),
    ("slabinfo - version: 1.1\n", "line 1"),
    (VERSION_LINE + "\n" + HEADER_LINE + "\nfoo 1 2 3 : tunables 0 0 0 : slabdata 0 0 0\n",
     "line 3"),
    (VERSION_LINE + "\nfoo 1 2 3 4 5 : tunables 0 0 : slabdata 0 0 0\n", "line 2"),
    (VERSION_LINE + "\nfoo 1 2 x 4 5 : tunables 0 0 0 : slabdata 0 0 0\n", "line 2"),
])
def test_parse_rejects(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_slabinfo(text)


def test_row_rejects_bad_values():
    with pytest.raises(ValueError):
        SlabinfoRow(name="x", active_objs=-1)
    with pytest.raises(ValueError):
        SlabinfoRow(name="")
    with pytest.raises(ValueError):
        SlabinfoRow(name="x", num_objs=1.5)


def test_boot_rows_slub_laptop():
    # laptop-1n8c: 8 CPUs, one node.  Newest first: kmalloc-8192 ... kmalloc-8,
    # kmem_cache_node, kmem_cache (bootstrap() adds kmem_cache first).
    rows = boot_slabinfo_rows("slub", load_topology("laptop-1n8c"))
    names = [r["name"] for r in rows]
    assert names[0] == "kmalloc-8192" and names[-2:] == ["kmem_cache_node", "kmem_cache"]
    by = {r["name"]: r for r in rows}
    # min_objects = 4 * (fls(8) + 1) = 20: kmalloc-512 -> 10240 B -> order 2, 32 objects
    assert (by["kmalloc-512"]["objperslab"], by["kmalloc-512"]["pagesperslab"]) == (32, 4)
    # kmem_cache: 192 + 8 = 200 -> 256 (HWCACHE); 20 * 256 = 5120 -> order 1, 32 objects
    assert (by["kmem_cache"]["objsize"], by["kmem_cache"]["objperslab"]) == (256, 32)
    assert all(r["active_objs"] == r["num_objs"] == r["num_slabs"] == 0 for r in rows)
    assert all(r["limit"] == r["batchcount"] == r["sharedfactor"] == 0 for r in rows)


def test_boot_rows_slab_with_geometry():
    m = MachineParams(page_size=4096, cache_line=64, nr_cpu_ids=8, arch="x86_64",
                      totalram_pages=131072)
    rows = boot_slabinfo_rows("slab", m, with_geometry=True)
    assert [r["name"] for r in rows[-4:]] == ["kmalloc-64", "kmalloc-128", "kmalloc-32",
                                              "kmem_cache"]
    k32 = rows[-2]
    assert (k32["objperslab"], k32["limit"], k32["batchcount"], k32["sharedfactor"]) == (
        124, 120, 60, 8)
    assert k32["geometry"]["allocator"] == "slab" and k32["geometry"]["off_slab"] is False
    # the rows format and parse back
    assert parse_slabinfo(format_slabinfo(rows)) == [
        {k: v for k, v in r.items() if k != "geometry"} for r in rows]


# -- created caches (slabemu caches --scenario): the same merges as the booted model -----------

_SCENARIOS = sorted(p.stem for p in (Path(__file__).resolve().parents[3] / "configs"
                                     / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("allocator, nomerge", [("slub", False), ("slub", True),
                                                ("slab", False)])
@pytest.mark.parametrize("topology", ["twonode-2n4c", "xeon-2s12c"])
def test_created_rows_match_booted_kernel(topology, allocator, nomerge):
    """created_slabinfo_rows (pure Python) lists what Kernel.kmem_cache_create leaves on
    slab_caches, for every shipped scenario's named caches created one after another:
    the same names, order, geometry lines, aliases and refcounts."""
    from emulator.kernel.boot import Kernel
    from emulator.machine import structs as S
    from emulator.report.slabinfo import kernel_slabinfo_rows
    from emulator.workload.scenario import load_scenario

    specs = [(c.name, c.size, c.align) for n in _SCENARIOS for c in load_scenario(n).caches
             if not c.kmalloc]
    specs = list({name: (name, size, align) for name, size, align in specs}.values())
    t = load_topology(topology)
    rows = created_slabinfo_rows(allocator, t, specs, nomerge=nomerge)
    with Kernel(t, allocator, slab_nomerge=nomerge, extra_caches=len(specs)) as K:
        for name, size, align in specs:
            K.kmem_cache_create(name, size, align=align)
        live = kernel_slabinfo_rows(K)
        assert [{k: r[k] for k in live[0]} for r in rows] == live
        by_name = {c.name: c for c in K.caches}
        for r in rows:
            info = by_name[r["name"]]
            assert r["aliases"] == info.aliases
            if r["refcount"] > 0:  # the model's boot rows keep 1 where the kernel has -1
                assert r["refcount"] == K.mem.kmem_cache[info.row, S.KMEM_CACHE_REFCOUNT]
    if allocator == "slub" and not nomerge:
        assert any(r["aliases"] for r in rows)
    else:
        assert not any(r["aliases"] for r in rows) and len(rows) == len(
            boot_slabinfo_rows(allocator, t)) + len(specs)
