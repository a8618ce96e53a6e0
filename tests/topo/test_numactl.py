"""numactl --hardware text: the tests/data dumps and hand-written variations."""

import pytest

from topo import ConfigError, DEFAULT_MEMORY_CAP, load_topology
from topo.numactl import load_numactl, parse_numactl
from topo.sizes import GiB, MiB

from .conftest import DATA


def test_xeon_dump_with_prompts():
    t = load_numactl(DATA / "numactl-xeon-2s12c.txt")
    assert t.name == "numactl-xeon-2s12c"
    assert t.nr_nodes == 2 and t.nr_cpus == 48
    assert t.node(0).cpus == tuple(range(12)) + tuple(range(24, 36))
    assert t.node(1).cpus == tuple(range(12, 24)) + tuple(range(36, 48))
    assert t.distances == ((10, 21), (21, 10))
    # 64149 + 64508 MiB scaled to the 1 GiB default cap, shares kept, 4 MiB granules
    assert [n.memory for n in t.nodes] == [508 * MiB, 512 * MiB]
    assert t.memory_total <= DEFAULT_MEMORY_CAP == GiB
    # numactl knows no SMT: every node is a package, every CPU a core
    assert t.packages == 2 and t.threads_per_core == 1 and t.cpu(24).package == 0


def test_epyc_dump_memoryless_nodes_and_distances():
    t = load_numactl(DATA / "numactl-epyc7551-memoryless.txt")
    assert t.nr_nodes == 8 and t.nr_cpus == 128
    assert [len(n.cpus) for n in t.nodes] == [16] * 8
    assert t.node(7).cpus == tuple(range(56, 64)) + tuple(range(120, 128))
    mem = [n.memory for n in t.nodes]
    assert mem == [0, 508 * MiB, 0, 0, 0, 512 * MiB, 0, 0]
    assert t.distances[0] == (10, 16, 16, 16, 32, 32, 32, 32)
    assert t.distances[5] == (32, 32, 32, 32, 16, 10, 16, 16)
    assert t.fallback_order(0)[:4] == (0, 1, 2, 3)


def test_cpu_compress_dump():
    t = load_numactl(DATA / "numactl-threadripper-3960x-compress.txt")
    assert t.node(0).cpus == tuple(range(6)) + tuple(range(24, 30))
    assert [n.memory for n in t.nodes][0] == 0 and t.node(3).memory == 0
    assert t.nodes[1].memory > 0 and t.nodes[2].memory > 0
    assert t.distance(1, 2) == 12


def test_real_sizes_without_cap():
    t = load_numactl(DATA / "numactl-xeon-2s12c.txt", memory_cap=None)
    assert t.node(0).memory == 64149 * MiB


def test_load_topology_numactl_and_cap():
    t = load_topology(numactl=str(DATA / "numactl-xeon-2s12c.txt"), memory_cap="256MiB")
    assert t.memory_total <= 256 * MiB and t.nr_cpus == 48


SPARSE = """\
some banner the user pasted too
available: 2 nodes (0,2)
node 0 cpus: 0 1 2 3
node 0 size: 4096 MB
node 0 free: 100 MB
node 2 cpus:
node 2 size: 8192 MB
node 2 free: 8000 MB
node distances:
node   0   2
  0:  10  40
  2:  40  10
$ exit
"""


def test_sparse_ids_and_cpuless_node():
    t = parse_numactl(SPARSE, source="sparse.txt")
    assert t.node_ids == (0, 2)
    assert t.node(2).cpus == () and t.node(2).memory > 0
    assert t.distance(0, 2) == 40
    assert t.fallback_order(2) == (2, 0)
    # 4 GiB + 8 GiB scaled to 1 GiB: one third / two thirds in 4 MiB granules
    assert [n.memory // MiB for n in t.nodes] == [340, 680]


def test_no_distance_information_uses_defaults():
    text = ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 100 MB\nnode 1 cpus: 1\n"
            "node 1 size: 100 MB\nNo distance information available.\n")
    t = parse_numactl(text)
    assert t.distances == ((10, 20), (20, 10))
    assert [n.memory for n in t.nodes] == [100 * MiB, 100 * MiB]


def test_distance_columns_in_another_order():
    text = ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 100 MB\nnode 1 cpus: 1\n"
            "node 1 size: 100 MB\nnode distances:\nnode 1 0\n 1: 10 31\n 0: 21 10\n")
    t = parse_numactl(text)
    assert t.distances == ((10, 21), (31, 10))


@pytest.mark.parametrize("text, fragment", [
    ("node 0 cpus: 0\nnode 0 size: 1 MB\n", "'available: N nodes"),
    ("available: 2 nodes (0)\n", "2 node ids"),
    ("available: 1 nodes (0)\nnode 0 size: 1 MB\n", "'node 0 cpus:' line"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0\n", "'node 0 size:' line"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0 x\nnode 0 size: 1 MB\n", "CPU numbers"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0 0\nnode 0 size: 1 MB\n", "each CPU listed once"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0\nnode 0 size: lots\n", "'64291 MB'"),
    ("available: 1 nodes (0)\nnode 1 cpus: 0\n", "only nodes listed"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 8 MB\nnode 1 cpus: 0\n"
     "node 1 size: 8 MB\n", "exactly one node"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 8 MB\nnode 1 cpus: 1\n"
     "node 1 size: 8 MB\nnode distances:\nnode 0 1\n 0: 10 21\n", "a row for each"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 8 MB\nnode 1 cpus: 1\n"
     "node 1 size: 8 MB\nnode distances:\nnode 0 1\n 0: 10 21\n 1: 10 10\n", "remote distance"),
    ("available: 1 nodes (0)\nnode 0 cpus: 0-3 (5)\nnode 0 size: 8 MB\n", "5 CPUs"),
])
def test_errors(text, fragment):
    with pytest.raises(ConfigError) as e:
        parse_numactl(text, source="dump.txt")
    assert e.value.source == "dump.txt"
    assert fragment in str(e.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="readable numactl"):
        load_numactl("/nonexistent/numactl.txt")
