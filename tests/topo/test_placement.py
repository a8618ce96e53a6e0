"""Placement policies on fake hosts."""

import os

import pytest

from topo import ConfigError, load_topology, place
from topo.synthetic import parse_synthetic

# 2 packages x 2 cores x 2 threads; Linux numbering: siblings are c and c+4
HOST = parse_synthetic("pack:2 core:2 pu:2(indexes=core:pack)")


def test_fake_host_shape():
    assert HOST.cpu(0).core == HOST.cpu(4).core and HOST.cpu(2).package == 1


def test_compact():
    t = parse_synthetic("core:4 pu:1")
    p = place(t, "compact", host=HOST)
    assert p.policy == "compact" and p.mapping == (0, 1, 2, 3)
    assert p.host_cpus == tuple(range(8)) and p.oversubscription == 1.0 and not p.oversubscribed


def test_scatter_spreads_packages_then_cores_then_threads():
    t = parse_synthetic("core:8 pu:1")
    p = place(t, "scatter", host=HOST)
    # package 0 core 0, package 1 core 0, package 0 core 1, package 1 core 1, then siblings
    assert p.mapping == (0, 2, 1, 3, 4, 6, 5, 7)
    assert [HOST.cpu(h).package for h in p.mapping[:2]] == [0, 1]
    assert len({HOST.cpu(h).core for h in p.mapping[:4]}) == 4


def test_scatter_respects_restricted_allowed_set():
    t = parse_synthetic("core:4 pu:1")
    p = place(t, "scatter", host=HOST, allowed=[1, 2, 3, 5])
    assert set(p.mapping) <= {1, 2, 3, 5}
    assert p.mapping == (1, 2, 3, 5)      # core 1 (p0), core 2 (p1), core 3 (p1), sibling of 1
    c = place(t, "compact", host=HOST, allowed=[6, 7])
    assert c.mapping == (6, 7, 6, 7) and c.host_cpus == (6, 7)


def test_oversubscription():
    t = parse_synthetic("package:2 numa:2 core:4 pu:2")
    p = place(t, "compact", allowed=[0, 1])
    assert len(p.mapping) == 32 and set(p.mapping) == {0, 1}
    assert p.oversubscription == 16.0 and p.max_per_host_cpu == 16 and p.oversubscribed
    d = p.to_dict()
    assert d["oversubscription"] == 16.0 and d["map"][3] == {"cpu": 3, "host_cpu": 1}


def test_explicit_map_string_and_dict():
    t = parse_synthetic("core:3 pu:1")
    p = place(t, "0:7,1:5,2:5", host=HOST)
    assert p.policy == "map" and p.mapping == (7, 5, 5) and p.max_per_host_cpu == 2
    assert p.host_cpu_of(1) == 5
    q = place(t, {0: 1, 1: 2, 2: 3}, host=HOST)
    assert q.mapping == (1, 2, 3)


@pytest.mark.parametrize("policy, fragment", [
    ("0:1,1:2", "a host CPU for every emulated CPU"),
    ("0:1,1:2,2:3,3:4", "emulated CPUs of"),
    ("0:1,0:2,1:2,2:2", "each emulated CPU once"),
    ("0:1,1:2,2:99", "an allowed host CPU"),
    ("0=1", "compact, scatter or a map"),
    ("0:1;1:2", "EMU:HOST pairs"),
    ("random", "compact, scatter or a map"),
])
def test_map_errors(policy, fragment):
    t = parse_synthetic("core:3 pu:1")
    with pytest.raises(ConfigError, match=fragment):
        place(t, policy, host=HOST)


def test_allowed_errors():
    t = parse_synthetic("core:3 pu:1")
    with pytest.raises(ConfigError, match="at least one host CPU"):
        place(t, "compact", allowed=[])
    with pytest.raises(ConfigError, match="CPUs of the host topology"):
        place(t, "compact", host=HOST, allowed=[0, 42])
    with pytest.raises(ConfigError, match="an allowed host CPU"):
        place(t, "0:0,1:1,2:4", host=HOST, allowed=[0, 1, 2, 3])


def test_default_host_is_this_process_affinity():
    t = load_topology("laptop-1n8c")
    mine = sorted(os.sched_getaffinity(0))
    p = place(t)
    assert p.host_cpus == tuple(mine)
    assert p.mapping == tuple(mine[i % len(mine)] for i in range(8))
    s = place(t, "scatter")
    assert set(s.mapping) <= set(mine)
