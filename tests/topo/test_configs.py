"""Every shipped topology parses, validates and has the shape its comment claims."""

import tomllib

import pytest

from topo import available_topologies, load_topology
from topo.sizes import GiB, MiB

from .conftest import CONFIGS

FILES = sorted(CONFIGS.glob("*.toml"))

# name: (cpus, nodes, arch, page_size, cache_line, packages, threads_per_core)
EXPECTED = {
    "laptop-1n8c": (8, 1, "x86_64", 4096, 64, 1, 2),
    "xeon-2s12c": (48, 2, "x86_64", 4096, 64, 2, 2),
    "davydov-2s6c": (24, 2, "x86_64", 4096, 64, 2, 2),
    "epyc-nps4": (256, 8, "x86_64", 4096, 64, 2, 2),
    "eight-node": (128, 8, "x86_64", 4096, 64, 2, 2),
    "altra-1n80c": (80, 1, "arm64", 4096, 64, 1, 1),
    "thunderx2-2s": (256, 2, "arm64", 4096, 64, 2, 4),
    "arm64-64k": (96, 2, "arm64", 65536, 128, 2, 1),
    "apple-m1-16k": (8, 1, "arm64", 16384, 128, 1, 1),
    "threadripper-3960x-nps4": (48, 4, "x86_64", 4096, 64, 1, 2),
}


def test_at_least_eight_shipped():
    assert len(FILES) >= 8
    assert set(EXPECTED) <= set(available_topologies())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_parses_and_validates(path):
    t = load_topology(str(path))
    assert t.name == path.stem
    assert t.memory_total <= GiB, "keep emulated memory small"
    assert all(n.memory % t.page_size == 0 for n in t.nodes)
    # every file says where its shape comes from
    text = path.read_text()
    assert text.lstrip().startswith("#")
    assert any(w in text for w in ("github.com", "docs.", "product", "docs/series.md")), \
        "cite the source of the shape"
    tomllib.loads(text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spot_checks(name):
    t = load_topology(name)
    cpus, nodes, arch, page, line, packages, tpc = EXPECTED[name]
    assert (t.nr_cpus, t.nr_nodes, t.arch, t.page_size, t.cache_line) == (cpus, nodes, arch, page, line)
    assert t.packages == packages
    assert t.threads_per_core == tpc
    assert t.cores * tpc == cpus


def test_xeon_layout():
    t = load_topology("xeon-2s12c")
    assert t.node(0).cpus == tuple(range(12)) + tuple(range(24, 36))
    assert t.node(1).cpus == tuple(range(12, 24)) + tuple(range(36, 48))
    assert t.distances == ((10, 21), (21, 10))


def test_davydov_machine():
    t = load_topology("davydov-2s6c")
    assert t.nr_cpus == 24 and t.nr_nodes == 2 and t.packages == 2 and t.cores == 12
    assert t.cpu(0).core == t.cpu(12).core and t.node_of(18) == 1


def test_epyc_nps4_distances_are_nonuniform():
    t = load_topology("epyc-nps4")
    values = {v for row in t.distances for v in row}
    assert values == {10, 12, 32}
    assert t.fallback_order(1) == (1, 0, 2, 3, 4, 5, 6, 7)
    assert {t.cpu(c).package for c in t.node(3).cpus} == {0}
    assert {t.cpu(c).package for c in t.node(4).cpus} == {1}


def test_eight_node():
    t = load_topology("eight-node")
    assert t.nr_nodes == 8
    assert t.distance(0, 3) == 16 and t.distance(0, 4) == 32 and t.distance(7, 4) == 16


def test_threadripper_memoryless_nodes():
    t = load_topology("threadripper-3960x-nps4")
    assert [n.memory for n in t.nodes] == [0, 256 * MiB, 256 * MiB, 0]
    assert len(t.node(0).cpus) == 12


def test_thunderx2_smt4():
    t = load_topology("thunderx2-2s")
    siblings = sorted(c.id for c in t.cpus if c.core == t.cpu(0).core)
    assert siblings == [0, 32, 64, 96]
