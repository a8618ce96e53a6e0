"""TOML topology files: both forms, defaults, SMT mapping and every error path."""

import pytest

from topo import ConfigError, load_topology
from topo.sizes import GiB, MiB
from topo.tomlfile import load_toml

NODES = """
arch = "x86_64"
distances = [[10, 21], [21, 10]]
threads_per_core = 2
[[node]]
cpus = "0-3,8-11"
memory = "256MiB"
[[node]]
cpus = "4-7,12-15"
memory = 268435456
"""


def test_explicit_nodes_defaults(write_toml):
    t = load_toml(write_toml(NODES, "box.toml"))
    assert t.name == "box" and t.node_ids == (0, 1)
    assert t.cpu(0).core == t.cpu(8).core and t.cpu(8).thread == 1
    assert t.cpu(4).package == 1 and t.cpu(4).core == 4           # core ids run on
    assert t.memory_total == 512 * MiB


def test_adjacent_smt_order_and_explicit_ids(write_toml):
    t = load_toml(write_toml('name = "p"\n[[node]]\nid = 3\ncpus = "0-7"\nmemory = "64M"\n'
                             'threads_per_core = 4\nsmt_order = "adjacent"\npackage = 5\n'))
    assert t.name == "p" and t.node_ids == (3,)
    assert [c.core for c in t.cpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {c.package for c in t.cpus} == {5}


def test_cpus_as_list_and_cpuless_node(write_toml):
    t = load_toml(write_toml('[[node]]\ncpus = [2, 0, 1]\nmemory = "4M"\n'
                             '[[node]]\ncpus = ""\nmemory = "1G"\n'))
    assert t.node(0).cpus == (0, 1, 2) and t.node(1).cpus == ()


def test_memory_cap_in_file_and_override(write_toml):
    p = write_toml('memory_cap = "512MiB"\n[[node]]\ncpus = "0"\nmemory = "64GiB"\n'
                   '[[node]]\ncpus = "1"\nmemory = "64GiB"\n')
    assert load_toml(p).memory_total == 512 * MiB
    assert load_toml(p, memory_cap=128 * MiB).memory_total == 128 * MiB
    assert load_topology(str(p), memory_cap="1GiB").memory_total == GiB


def test_synthetic_form(write_toml):
    t = load_toml(write_toml('synthetic = "package:2 numa:2 core:2 pu:2"\nmemory = "1GiB"\n'
                             'distances = [[10,12,32,32],[12,10,32,32],[32,32,10,12],[32,32,12,10]]\n'
                             'arch = "arm64"\npage_size = 16384\n', "syn.toml"))
    assert t.name == "syn" and t.arch == "arm64" and t.page_size == 16384
    assert t.nr_nodes == 4 and [n.memory for n in t.nodes] == [256 * MiB] * 4
    assert t.distance(0, 1) == 12 and t.distance(0, 3) == 32


@pytest.mark.parametrize("text, field, fragment", [
    ("arch = 'x86_64'\n[[node]\ncpus='0'", "TOML", "valid TOML syntax"),
    ("arhc = 'x86_64'\n[[node]]\ncpus='0'\nmemory='4M'", "arhc", "a known key"),
    ("[[node]]\ncpus='0'\nmemory='4M'\ncpu='1'", "node[0].cpu", "a known node key"),
    ("[[node]]\ncpus='0'", "node[0].memory", "the key is missing"),
    ("[[node]]\nmemory='4M'", "node[0].cpus", "the key is missing"),
    ("[[node]]\ncpus='0-3'\nmemory='4M'\n[[node]]\ncpus='3'\nmemory='4M'", "node[1].cpus",
     "each CPU in exactly one node"),
    ("[[node]]\ncpus='3-1'\nmemory='4M'", "node[0].cpus", "a <= b"),
    ("[[node]]\ncpus='0'\nmemory='12XB'", "node[0].memory", "a size such as"),
    ("[[node]]\ncpus='0'\nmemory='4M'\n[[node]]\nid=0\ncpus='1'\nmemory='4M'", "node[1].id",
     "distinct node ids"),
    ("[[node]]\ncpus='0-2'\nmemory='4M'\nthreads_per_core=2", "node[0].cpus",
     "multiple of threads_per_core"),
    ("[[node]]\ncpus='0'\nmemory='4M'\nsmt_order='zigzag'", "node[0].smt_order", "'blocked'"),
    ("[[node]]\ncpus='0'\nmemory=4097", "node[0].memory", "multiple of the page size"),
    ("distances=[[10,20,20],[20,10,20]]\n[[node]]\ncpus='0'\nmemory='4M'\n[[node]]\ncpus='1'\n"
     "memory='4M'", "distances", "2x2 matrix"),
    ("distances=[[11,20],[20,10]]\n[[node]]\ncpus='0'\nmemory='4M'\n[[node]]\ncpus='1'\n"
     "memory='4M'", "distances[0][0]", "to itself"),
    ("page_size=65536\n[[node]]\ncpus='0'\nmemory='4M'", "page_size", "page size x86_64 supports"),
    ("[[node]]\ncpus=''\nmemory='4M'", "cpus", "at least one CPU"),
    ("[[node]]\ncpus='0'\nmemory=0", "memory", "memory on at least one node"),
    ("memory='1G'\n[[node]]\ncpus='0'\nmemory='4M'", "memory", "only for synthetic"),
    ("synthetic='pu:2'\n[[node]]\ncpus='0'\nmemory='4M'", "synthetic", "not both"),
    ("name='x'", "node", "[[node]] tables"),
    ("synthetic='banana:2 pu:1'", "synthetic: banana:2", "hwloc object type"),
    ("synthetic='pu:2'\nthreads_per_core=2", "threads_per_core", "synthetic string's pu"),
    ("memory_cap='lots'\n[[node]]\ncpus='0'\nmemory='4M'", "memory_cap", "a size such as"),
    ("node = 3", "node", "array of tables"),
    ("arch = 7\n[[node]]\ncpus='0'\nmemory='4M'", "arch", "a string"),
])
def test_errors(write_toml, text, field, fragment):
    p = write_toml(text, "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_toml(p)
    assert e.value.source == str(p)
    assert e.value.field == field
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_and_non_utf8(tmp_path):
    with pytest.raises(ConfigError, match="readable topology file"):
        load_toml(tmp_path / "missing.toml")
    p = tmp_path / "latin1.toml"
    p.write_bytes(b"name = '\xe9'\n")
    with pytest.raises(ConfigError):
        load_toml(p)
