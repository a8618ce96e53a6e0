"""hwloc synthetic strings against hand-checked expectations."""

import pytest

from topo import ConfigError, load_topology
from topo.sizes import GiB, MiB
from topo.synthetic import DEFAULT_NODE_MEMORY, parse_synthetic


def test_package_numa_core_pu():
    t = parse_synthetic("package:2 numa:2 core:4 pu:2")
    assert t.nr_cpus == 32 and t.nr_nodes == 4 and t.packages == 2
    assert t.cores == 16 and t.threads_per_core == 2
    for k in range(4):
        assert t.node(k).cpus == tuple(range(8 * k, 8 * k + 8))
        assert t.node(k).memory == DEFAULT_NODE_MEMORY == 256 * MiB
    for c in t.cpus:
        assert c.package == c.id // 16
        assert c.core == c.id // 2          # cores numbered machine-wide
        assert c.thread == c.id % 2         # position inside the core
    assert t.distances[0] == (10, 20, 20, 20)


def test_no_numa_level_gives_one_node():
    t = parse_synthetic("pack:2 core:4 pu:2")
    assert t.nr_cpus == 16 and t.nr_nodes == 1 and t.node(0).cpus == tuple(range(16))
    assert t.packages == 2


def test_bare_arities_follow_hwloc():
    # hwloc: "2 4 2" = package:2 numa:4 pu:2 (NUMA first, then package, then core ...)
    t = parse_synthetic("2 4 2")
    assert (t.nr_cpus, t.nr_nodes, t.packages) == (16, 8, 2)
    assert t.node(3).cpus == (6, 7)
    assert t.threads_per_core == 1
    # hwloc's documented equivalence: "2 3 4 5 6" == "Package:2 NUMANode:3 L2Cache:4 Core:5 PU:6"
    a = parse_synthetic("2 3 4 5 6")
    b = parse_synthetic("Package:2 NUMANode:3 L2Cache:4 Core:5 PU:6")
    assert a.to_dict() == b.to_dict()
    assert (a.nr_cpus, a.nr_nodes, a.cores, a.threads_per_core) == (720, 6, 120, 6)
    assert parse_synthetic("8").nr_cpus == 8
    two = parse_synthetic("2 4")            # numa:2 pu:4
    assert (two.nr_nodes, two.nr_cpus) == (2, 8)


def test_attached_numa():
    t = parse_synthetic("pack:2 [numa] core:4 pu:2")
    assert t.nr_nodes == 2 and t.node(1).cpus == tuple(range(8, 16))
    # hwloc's Xeon Phi example: two nodes per group, the second one CPU-less
    knl = parse_synthetic("package:1 group:4 [numa] [numa] core:16 pu:4")
    assert knl.nr_cpus == 256 and knl.nr_nodes == 8
    assert [len(n.cpus) for n in knl.nodes] == [64, 0, 64, 0, 64, 0, 64, 0]
    # [numa] first attaches to the machine; deeper attachments own the CPUs
    m = parse_synthetic("[numa] pack:2 [numa] pu:2")
    assert [(n.id, n.cpus) for n in m.nodes] == [(0, (0, 1)), (1, (2, 3)), (2, ())]


def test_memory_attributes():
    t = parse_synthetic("pack:2 [numa(memory=64MiB)] pu:2")
    assert [n.memory for n in t.nodes] == [64 * MiB, 64 * MiB]
    # hwloc's MB is 10^6 bytes; rounded down to whole 4K pages
    t = parse_synthetic("numa:2(memory=64MB) pu:1")
    assert t.node(0).memory == 64_000_000 // 4096 * 4096
    t = parse_synthetic("numa:2 pu:1", memory=GiB)
    assert [n.memory for n in t.nodes] == [512 * MiB, 512 * MiB]
    with pytest.raises(ConfigError, match="not both"):
        parse_synthetic("numa:2(memory=1GiB) pu:1", memory=GiB)


def test_case_and_abbreviations():
    ref = parse_synthetic("package:2 numa:2 core:4 pu:2").to_dict()
    for text in ("Package:2 NUMANode:2 Core:4 PU:2", "pack:2 node:2 co:4 pu:2",
                 "PA:2 nu:2 CORE:4 Pu:2", "socket:2 numa:2 core:4 2", "sock:2 no:2 cor:4 pu:2",
                 "pack:2 numa:2 l2:4 core:1 pu:2", "pack:2 numa:2 L3Cache:1 l1d:4 core:1 pu:2",
                 "pack:2 group:1 numa:2 core:4 pu:2", "pack:2 Die:1 numa:2 core:4 pu:2",
                 "pack:0x2 numa:02 core:4 pu:2", "pack:2\nnuma:2  core:4 pu:2"):
        assert parse_synthetic(text).to_dict() == ref, text


def test_indexes_explicit_and_interleaved():
    t = parse_synthetic("pu:4(indexes=3,1,2,0)")
    assert t.node(0).cpus == (0, 1, 2, 3) and t.cpu(3).core == 0
    # Linux's Intel HT numbering: siblings of CPU c are c + 24
    x = parse_synthetic("pack:2 core:12 pu:2(indexes=core:pack)")
    assert x.cpu(0).core == x.cpu(24).core and x.cpu(12).package == 1 and x.cpu(36).package == 1
    n = parse_synthetic("pack:2 core:2 pu:2(indexes=2*4:1*2)")
    assert [c.core for c in n.cpus] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert parse_synthetic("numa:2(indexes=1,0) pu:2").node(1).cpus == (0, 1)


def test_numa_core_interleave_uses_the_implicit_numa_level():
    t = parse_synthetic("pack:2 core:2 pu:2(indexes=numa:core)")
    assert [c.core for c in t.cpus] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_arch_and_page_size_parameters():
    t = parse_synthetic("pack:1 core:2 pu:1", arch="arm64", page_size=65536, cache_line=128)
    assert (t.arch, t.page_size, t.cache_line) == ("arm64", 65536, 128)


@pytest.mark.parametrize("text, field, fragment", [
    ("banana:2 pu:2", "banana:2", "hwloc object type"),
    ("core:0 pu:2", "core:0", "positive number of objects"),
    ("pack:x pu:1", "pack:x", "number of objects"),
    ("p:2 pu:2", "p:2", "hwloc object type"),              # ambiguous: package or pu
    ("packages:2 pu:2", "packages:2", "hwloc object type"),
    ("pack:2 core:4", "core:4", "last level to be the PUs"),
    ("", "(empty)", "at least one level"),
    ("pack:2 4 pu:2", "4", "only numbers"),
    ("pack:2 pack:2 pu:1", "pack:2", "at most one package level"),
    ("numa:2 [numa] pu:1", "[numa]", "not both"),
    ("pack:2 [core] pu:1", "[core]", "only NUMA nodes can be attached"),
    ("machine:2 pu:2", "machine:2", "allowed in synthetic"),
    ("pack 2 pu:2", "pack", "type:number"),
    ("numa:2(foo=1) pu:1", "numa:2(foo=1)", "known attribute"),
    ("numa:2(memory=1XB) pu:1", "numa:2(memory=1XB)", "size unit"),
    ("pu:4(indexes=0,1,2)", "pu:4(indexes=0,1,2)", "exactly 4"),
    ("pu:4(indexes=0,1,1,2)", "pu:4(indexes=0,1,1,2)", "distinct"),
    ("pack:2 pu:2(indexes=core:pack)", "pu:2(indexes=core:pack)", "levels above"),
    ("pu:100000", "pu:100000", "at most 8192"),
    ("core:2 numa:2 pu:2", "cpu[2].core", "SMT siblings in one package and one node"),
])
def test_errors(text, field, fragment):
    with pytest.raises(ConfigError) as e:
        parse_synthetic(text)
    assert e.value.source == f'synthetic "{text}"'
    assert e.value.field == field
    assert fragment in e.value.expected


def test_load_topology_synthetic_and_cap():
    t = load_topology(synthetic="package:2 numa:2 core:4 pu:2", memory_cap="512MiB")
    assert t.memory_total == 512 * MiB and t.nr_nodes == 4
