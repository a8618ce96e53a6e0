import json

import pytest

from topo import ConfigError, Cpu, Node, Topology, load_topology, scale_memory, validate
from topo.model import MEMORY_GRANULE, default_distances
from topo.sizes import GiB, MiB


def make(nodes, distances=None, cpus=None, arch="x86_64", page_size=4096, cache_line=64):
    nodes = tuple(Node(i, tuple(c), m) for i, c, m in nodes)
    if cpus is None:
        cpus = tuple(sorted((Cpu(c, n.id, n.id, c, 0) for n in nodes for c in n.cpus),
                            key=lambda c: c.id))
    return Topology("t", arch, page_size, cache_line, nodes,
                    distances if distances is not None else default_distances(len(nodes)),
                    cpus, source="test")


def test_default_distances():
    assert default_distances(3) == ((10, 20, 20), (20, 10, 20), (20, 20, 10))


def test_helpers_on_xeon():
    t = load_topology("xeon-2s12c")
    assert t.nr_cpus == 48 and t.nr_nodes == 2
    assert t.node_ids == (0, 1)
    assert t.node_of(0) == 0 and t.node_of(24) == 0 and t.node_of(12) == 1 and t.node_of(47) == 1
    assert t.packages == 2 and t.cores == 24 and t.threads_per_core == 2
    assert t.memory_total == 512 * MiB
    # hyperthread siblings share a core
    assert t.cpu(0).core == t.cpu(24).core and t.cpu(0).thread == 0 and t.cpu(24).thread == 1
    assert t.cpu(0).core != t.cpu(1).core
    assert t.distance(0, 1) == 21 and t.distance(1, 1) == 10
    with pytest.raises(KeyError):
        t.node_of(48)


def test_fallback_order():
    t = load_topology("eight-node")
    assert t.fallback_order(0) == (0, 1, 2, 3, 4, 5, 6, 7)
    assert t.fallback_order(5) == (5, 4, 6, 7, 0, 1, 2, 3)
    # ties broken by node id, self first even if another node had distance 10 ... (cannot: >10)
    d = ((10, 30, 20), (30, 10, 20), (20, 20, 10))
    t3 = make([(0, [0], 4 * MiB), (1, [1], 4 * MiB), (2, [2], 4 * MiB)], distances=d)
    assert validate(t3).fallback_order(0) == (0, 2, 1)
    assert t3.fallback_order(2) == (2, 0, 1)


def test_roundtrip_dict_json():
    for name in ("xeon-2s12c", "threadripper-3960x-nps4", "arm64-64k"):
        t = load_topology(name)
        d = json.loads(json.dumps(t.to_dict()))
        assert set(d) == {"name", "arch", "page_size", "cache_line", "nodes", "distances", "cpus"}
        assert set(d["nodes"][0]) == {"id", "cpus", "memory"}
        assert set(d["cpus"][0]) == {"id", "node", "package", "core", "thread"}
        assert Topology.from_dict(d) == t


def test_from_dict_rejects_bad_shapes():
    d = load_topology("laptop-1n8c").to_dict()
    with pytest.raises(ConfigError, match="one of"):
        Topology.from_dict({**d, "extra": 1})
    with pytest.raises(ConfigError, match="missing"):
        Topology.from_dict({k: v for k, v in d.items() if k != "cpus"})
    with pytest.raises(ConfigError, match="an integer"):
        Topology.from_dict({**d, "page_size": "4096"})
    with pytest.raises(ConfigError, match="a mapping"):
        Topology.from_dict([1, 2])  # type: ignore[arg-type]


def test_immutable():
    t = load_topology("laptop-1n8c")
    with pytest.raises(AttributeError):
        t.name = "x"  # type: ignore[misc]
    assert isinstance(t.nodes, tuple) and isinstance(t.cpus, tuple) and isinstance(t.distances[0], tuple)


def test_memoryless_and_cpuless_nodes_are_legal():
    t = validate(make([(0, [0, 1], 0), (1, [], 64 * MiB), (2, [2], 8 * MiB)]))
    assert t.nr_nodes == 3 and t.memory_total == 72 * MiB


def test_asymmetric_distances_given_explicitly_are_legal():
    t = validate(make([(0, [0], 4 * MiB), (1, [1], 4 * MiB)], distances=((10, 21), (31, 10))))
    assert t.distance(0, 1) == 21 and t.distance(1, 0) == 31


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(arch="ppc64le"), "x86_64 or arm64"),
    (dict(page_size=65536), "page size x86_64 supports"),
    (dict(page_size=8192, arch="arm64"), "page size arm64 supports"),
    (dict(cache_line=48), "power of two from 32 to 256"),
    (dict(cache_line=512), "power of two from 32 to 256"),
])
def test_machine_level_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate(make([(0, [0], 4 * MiB)], **kwargs))


def test_arm64_page_sizes_and_cache_lines_accepted():
    for ps in (4096, 16384, 65536):
        for cl in (64, 128):
            validate(make([(0, [0], 4 * MiB)], arch="arm64", page_size=ps, cache_line=cl))


@pytest.mark.parametrize("nodes, distances, fragment", [
    ([(0, [0, 1], 4 * MiB), (1, [1], 4 * MiB)], None, "each CPU in exactly one node"),
    ([(0, [], 4 * MiB)], None, "at least one CPU"),
    ([(0, [0], 0)], None, "memory on at least one node"),
    ([(0, [0], 4097)], None, "multiple of the page size"),
    ([(0, [0], 4 * MiB), (1, [1], 4 * MiB)], ((10, 20),), "2x2 matrix"),
    ([(0, [0], 4 * MiB), (1, [1], 4 * MiB)], ((10, 20), (20, 11)), "to itself"),
    ([(0, [0], 4 * MiB), (1, [1], 4 * MiB)], ((10, 10), (20, 10)), "remote distance from 11"),
    ([(0, [0], 4 * MiB), (1, [1], 4 * MiB)], ((10, 255), (255, 10)), "remote distance from 11"),
])
def test_node_level_errors(nodes, distances, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate(make(nodes, distances=distances))


def test_cpu_record_errors():
    nodes = [(0, [0, 1], 4 * MiB)]
    with pytest.raises(ConfigError, match="the node listing it"):
        validate(make(nodes, cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 1, 0, 1, 0))))
    with pytest.raises(ConfigError, match="thread number unused"):
        validate(make(nodes, cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 0, 0, 0, 0))))
    with pytest.raises(ConfigError, match="one CPU record for each CPU"):
        validate(make(nodes, cpus=(Cpu(0, 0, 0, 0, 0),)))
    two = [(0, [0], 4 * MiB), (1, [1], 4 * MiB)]
    with pytest.raises(ConfigError, match="SMT siblings in one package and one node"):
        validate(make(two, cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 1, 1, 0, 1))))
    with pytest.raises(ConfigError, match="distinct node ids"):
        validate(make([(0, [0], 4 * MiB), (0, [1], 4 * MiB)]))


def test_scale_memory_keeps_shares():
    t = make([(0, [0], 64 * GiB), (1, [1], 64 * GiB), (2, [2], 0)])
    s = scale_memory(t, GiB)
    assert [n.memory for n in s.nodes] == [512 * MiB, 512 * MiB, 0]
    assert s.nodes[0].cpus == (0,)
    assert scale_memory(s, 2 * GiB) is s           # already fits: unchanged


def test_scale_memory_uneven_and_minimum():
    t = make([(0, [0], 1000 * GiB), (1, [1], 8 * MiB)])
    s = scale_memory(t, 64 * MiB)
    mems = [n.memory for n in s.nodes]
    assert sum(mems) <= 64 * MiB
    assert mems[1] == MEMORY_GRANULE                   # small node keeps one 4 MiB granule
    assert all(m % MEMORY_GRANULE == 0 for m in mems)


def test_scale_memory_cap_too_small():
    t = make([(0, [0], GiB), (1, [1], GiB)])
    with pytest.raises(ConfigError, match="at least 2 x 4 MiB"):
        scale_memory(t, 4 * MiB)
    with pytest.raises(ConfigError, match="positive size"):
        scale_memory(t, 0)


def test_id_limits():
    with pytest.raises(ConfigError, match="CPU ids from 0 to 65535"):
        validate(make([(0, [70000], 4 * MiB)]))
    t = make([(0, [0], 4 * MiB)])
    big = Topology(t.name, t.arch, t.page_size, t.cache_line, (Node(1024, (0,), 4 * MiB),),
                   t.distances, (Cpu(0, 1024, 0, 0, 0),), source="test")
    with pytest.raises(ConfigError, match="MAX_NUMNODES"):
        validate(big)
