"""Scenarios: the shipped files load, defaults, overrides, to_dict, and every bad input
is one ConfigError line naming the file, the field and what was expected."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from emulator.workload import (
    CacheSpec,
    Faults,
    Scenario,
    Workload,
    available_scenarios,
    load_scenario,
)
from emulator.workload.scenario import CONFIGS_DIR, OPTIONS
from topo import ConfigError, load_topology

from ...conftest import assert_one_line_config_error

SHIPPED = ("local-fastpath", "remote-free", "node-pressure")

MINIMAL = '''\
topology = "laptop-1n8c"
allocator = "slub"
ops_per_cpu = 10
[[cache]]
kmalloc = 64
'''


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def make(top: str = "", caches: str | None = None, workload: str = "", faults: str = "",
         topology: str = "laptop-1n8c", budget: str = "ops_per_cpu = 10\n") -> str:
    """A scenario text: the minimal one with extra lines in each part."""
    text = f'topology = "{topology}"\nallocator = "slub"\n{budget}{top}'
    text += caches if caches is not None else "[[cache]]\nkmalloc = 64\n"
    if workload:
        text += "[workload]\n" + workload
    if faults:
        text += "[faults]\n" + faults
    return text


# -- the shipped files ---------------------------------------------------------------
def test_shipped_scenarios_are_listed():
    assert set(SHIPPED) <= set(available_scenarios())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads(name):
    s = load_scenario(name)
    assert s.name == name and s.path == str(CONFIGS_DIR / f"{name}.toml")
    assert s.description and s.caches
    text = Path(s.path).read_text()
    assert text.startswith("#"), "every scenario starts with a header comment"
    t = load_topology(s.topology)
    # sized for a 2-core host: a few million ops in all, no duration-bound default
    assert s.ops_per_cpu is not None and s.ops_per_cpu * t.nr_cpus <= 2_000_000
    assert s.load_policy().name == s.policy


@pytest.mark.parametrize("name", available_scenarios())
def test_every_scenario_file_loads(name):
    assert load_scenario(f"{name}.toml").name == name


def test_local_fastpath():
    s = load_scenario("local-fastpath")
    assert s.topology == "laptop-1n8c"
    assert {c.name for c in s.caches} == {"kmalloc-64", "kmalloc-256"}
    assert all(c.kmalloc for c in s.caches)
    assert s.workload.remote_cpu == s.workload.remote_node == 0


def test_remote_free_crosses_nodes():
    s = load_scenario("remote-free")
    t = s.load_topology()
    assert t.nr_nodes == 2 and t.nr_cpus == 4 and all(len(n.cpus) == 2 for n in t.nodes)
    assert t.distances == ((10, 20), (20, 10)) and all(n.memory == 64 << 20 for n in t.nodes)
    assert 0.4 <= s.workload.remote_node <= 0.6 and 0.1 <= s.workload.remote_cpu <= 0.3


def test_node_pressure_overflows_node_0():
    s = load_scenario("node-pressure")
    t = s.load_topology()
    assert t.nr_nodes == 3 and [len(n.cpus) for n in t.nodes] == [1, 1, 1]
    assert t.fallback_order(0) == (0, 1, 2)
    assert t.node(0).memory < min(t.node(1).memory, t.node(2).memory)
    live_bytes = s.workload.live_objects * max(c.size for c in s.caches)
    assert live_bytes > t.node(0).memory, "CPU 0's live set must not fit in node 0"
    assert live_bytes < t.node(1).memory


# -- defaults and forms ---------------------------------------------------------------
def test_defaults(tmp_path):
    s = load_scenario(str(write(tmp_path, MINIMAL, "mini.toml")))
    assert (s.name, s.description, s.policy, s.seed, s.mode, s.placement, s.workers) == \
        ("mini", "", "v2-full", 0, "parallel", "compact", 0)
    assert s.ops_per_cpu == 10 and s.duration is None
    assert s.caches == (CacheSpec("kmalloc-64", 64, True, 0, 1),)
    assert s.workload == Workload() and s.faults == Faults()
    assert Workload() == Workload(256, 0.0, 0.0, 1, True, 0, 0)


def test_every_field(tmp_path):
    text = make(top='description = "all"\npolicy = "pre-series"\nseed = 7\nmode = "deterministic"\n'
                    'placement = "0:0,1:1,2:0,3:1,4:0,5:1,6:0,7:1"\nworkers = 2\nduration = 2\n',
                caches='[[cache]]\nkmalloc = 100\nweight = 3\n'
                       '[[cache]]\nname = "my.cache"\nsize = 300\nalign = 64\n',
                workload="live_objects = 9\nremote_cpu = 0.25\nremote_node = 0\nburst = 5\n"
                         "free_at_end = false\nshrink_every = 100\nreap_every = 50\n",
                faults="page_alloc_fail = 0.01\nnodes = [0]\n")
    s = load_scenario(str(write(tmp_path, text)))
    assert (s.description, s.policy, s.seed, s.mode, s.workers) == \
        ("all", "pre-series", 7, "deterministic", 2)
    assert s.placement.startswith("0:0,1:1") and s.duration == 2.0 and s.ops_per_cpu == 10
    assert s.caches == (CacheSpec("kmalloc-100", 100, True, 0, 3),
                        CacheSpec("my.cache", 300, False, 64, 1))
    assert s.workload == Workload(9, 0.25, 0.0, 5, False, 100, 50)
    assert isinstance(s.workload.remote_node, float)
    assert s.faults == Faults(0.01, (0,))


def test_duration_only(tmp_path):
    s = load_scenario(str(write(tmp_path, make(budget="duration = 0.5\n"))))
    assert s.ops_per_cpu is None and s.duration == 0.5


def test_relative_topology_resolves_against_the_scenario_file(tmp_path, monkeypatch):
    (tmp_path / "topos").mkdir()
    topo_text = (CONFIGS_DIR.parent / "topologies" / "twonode-2n4c.toml").read_text()
    (tmp_path / "topos" / "mine.toml").write_text(topo_text)
    (tmp_path / "pol.toml").write_text('extends = "v2-full"\ntrack_full_slabs = true\n')
    scen_dir = tmp_path / "scen"
    scen_dir.mkdir()
    p = write(scen_dir, make(topology="../topos/mine.toml", top='policy = "../pol.toml"\n',
                             workload="remote_node = 0.5\n"))
    monkeypatch.chdir("/")
    s = load_scenario(str(p))
    assert s.load_topology().nr_nodes == 2 and s.load_policy().track_full_slabs
    # relative to the current directory when not next to the scenario file
    monkeypatch.chdir(tmp_path)
    p2 = write(scen_dir, make(topology="topos/mine.toml"), "cwd.toml")
    assert load_scenario(str(p2)).load_topology().nr_cpus == 4


def test_spec_forms_and_configs_dir(tmp_path):
    write(tmp_path, MINIMAL, "mine.toml")
    assert load_scenario("mine", configs_dir=tmp_path).name == "mine"
    assert load_scenario("mine.toml", configs_dir=tmp_path).name == "mine"
    assert load_scenario(tmp_path / "mine.toml").name == "mine"
    assert available_scenarios(tmp_path) == ["mine"]
    assert available_scenarios(tmp_path / "none") == []


def test_host_topology(tmp_path):
    s = load_scenario(str(write(tmp_path, make(topology="host"))))
    assert s.topology == "host" and s.load_topology().nr_cpus >= 1


# -- bad inputs -------------------------------------------------------------------------
# (id, file text, field, fragment of what was expected)
BAD = [
    ("toml-syntax", "topology = \n", "TOML", "valid TOML syntax"),
    ("unknown-top-key", make(top="cpus = 4\n"), "cpus", "a known top-level key"),
    ("missing-topology", MINIMAL.replace('topology = "laptop-1n8c"\n', ""), "topology",
     "the key is missing"),
    ("missing-allocator", MINIMAL.replace('allocator = "slub"\n', ""), "allocator",
     "the key is missing"),
    ("description-type", make(top="description = 1\n"), "description", "a string"),
    ("topology-type", make(topology="x").replace('"x"', "3"), "topology", "a non-empty string"),
    ("topology-unknown", make(topology="no-such-machine"), "topology",
     "one of: altra-1n80c"),
    ("topology-missing-file", make(topology="./nope/t.toml"), "topology",
     "an existing topology file"),
    ("allocator", make().replace('"slub"', '"slob"'), "allocator", "'slub' or 'slab'"),
    ("policy-unknown", make(top='policy = "v3"\n'), "policy", "one of: linux-4.0, no-cpu-partial, pre-series"),
    ("policy-type", make(top="policy = true\n"), "policy", "a non-empty string"),
    ("seed-negative", make(top="seed = -1\n"), "seed", "an integer in 0.."),
    ("seed-bool", make(top="seed = true\n"), "seed", "an integer in 0.."),
    ("seed-float", make(top="seed = 1.5\n"), "seed", "an integer in 0.."),
    ("mode", make(top='mode = "serial"\n'), "mode", "'parallel' or 'deterministic'"),
    ("placement-name", make(top='placement = "spread"\n'), "placement", "'compact', 'scatter'"),
    ("placement-map-syntax", make(top='placement = "0:1,x"\n'), "placement", "EMU:HOST pairs"),
    ("placement-map-incomplete", make(top='placement = "0:0,1:1"\n'), "placement",
     "a host CPU for every emulated CPU"),
    ("placement-map-cpu", make(top='placement = "0:0,99:1"\n'), "placement",
     "emulated CPUs of 'laptop-1n8c'"),
    ("workers-negative", make(top="workers = -2\n"), "workers", "an integer in 0.."),
    ("workers-too-many", make(top="workers = 9\n"), "workers", "1..8 (the topology's CPUs)"),
    ("ops-zero", make(budget="ops_per_cpu = 0\n"), "ops_per_cpu", "an integer in 1.."),
    ("ops-string", make(budget='ops_per_cpu = "10"\n'), "ops_per_cpu", "an integer in 1.."),
    ("duration-zero", make(budget="duration = 0\n"), "duration", "a number of seconds > 0"),
    ("duration-nan", make(budget="duration = nan\n"), "duration", "a number of seconds > 0"),
    ("duration-bool", make(budget="duration = true\n"), "duration", "a number of seconds > 0"),
    ("no-budget", make(budget=""), "ops_per_cpu", "ops_per_cpu (--ops) or duration (--duration)"),
    ("no-cache", make(caches=""), "cache", "at least one [[cache]] table"),
    ("cache-not-array", make(caches="[cache]\nkmalloc = 64\n"), "cache",
     "an array of tables written [[cache]]"),
    ("cache-empty-table", make(caches="[[cache]]\nweight = 1\n"), "cache[0]",
     "kmalloc = SIZE, or name"),
    ("cache-both", make(caches='[[cache]]\nkmalloc = 64\nname = "x"\n'), "cache[0]",
     "not both"),
    ("kmalloc-too-big", make(caches="[[cache]]\nkmalloc = 8193\n"), "cache[0].kmalloc",
     "an integer in 1..8192"),
    ("kmalloc-zero", make(caches="[[cache]]\nkmalloc = 0\n"), "cache[0].kmalloc",
     "an integer in 1..8192"),
    ("kmalloc-bool", make(caches="[[cache]]\nkmalloc = true\n"), "cache[0].kmalloc",
     "an integer in 1..8192"),
    ("kmalloc-align", make(caches="[[cache]]\nkmalloc = 64\nalign = 8\n"), "cache[0].align",
     "a known kmalloc cache key"),
    ("cache-unknown-key", make(caches='[[cache]]\nname = "c"\nsize = 8\nctor = 1\n'),
     "cache[0].ctor", "a known named cache key"),
    ("named-no-size", make(caches='[[cache]]\nkmalloc = 64\n[[cache]]\nname = "c"\n'),
     "cache[1].size", "the key is missing"),
    ("named-size", make(caches='[[cache]]\nname = "c"\nsize = 2097152\n'), "cache[0].size",
     "an integer in 1..1048576"),
    ("named-align", make(caches='[[cache]]\nname = "c"\nsize = 8\nalign = 24\n'),
     "cache[0].align", "0 or a power of two <= 4096"),
    ("named-align-big", make(caches='[[cache]]\nname = "c"\nsize = 8\nalign = 8192\n'),
     "cache[0].align", "an integer in 0..4096"),
    ("named-bad-name", make(caches='[[cache]]\nname = "my cache"\nsize = 8\n'),
     "cache[0].name", "a cache name"),
    ("named-reserved", make(caches='[[cache]]\nname = "kmalloc-64"\nsize = 64\n'),
     "cache[0].name", "not kmem_cache, kmem_cache_node or kmalloc-*"),
    ("weight-zero", make(caches="[[cache]]\nkmalloc = 64\nweight = 0\n"), "cache[0].weight",
     "an integer in 1.."),
    ("duplicate-kmalloc", make(caches="[[cache]]\nkmalloc = 64\n[[cache]]\nkmalloc = 32\n"
                                      "[[cache]]\nkmalloc = 64\n"),
     "cache[2].kmalloc", "distinct cache names (cache[0] is already kmalloc-64)"),
    ("duplicate-named", make(caches='[[cache]]\nname = "a"\nsize = 8\n'
                                    '[[cache]]\nname = "a"\nsize = 16\n'),
     "cache[1].name", "distinct cache names"),
    ("workload-not-table", make(top="workload = 3\n"), "workload", "a table written [workload]"),
    ("workload-unknown", make(workload="live = 3\n"), "workload.live", "a known workload key"),
    ("live-zero", make(workload="live_objects = 0\n"), "workload.live_objects",
     "an integer in 1..1000000"),
    ("live-too-many", make(workload="live_objects = 1000001\n"), "workload.live_objects",
     "an integer in 1..1000000"),
    ("remote-cpu-range", make(workload="remote_cpu = 1.5\n"), "workload.remote_cpu",
     "a number in [0, 1]"),
    ("remote-cpu-bool", make(workload="remote_cpu = true\n"), "workload.remote_cpu",
     "a number in [0, 1]"),
    ("remote-node-negative", make(workload="remote_node = -0.1\n"), "workload.remote_node",
     "a number in [0, 1]"),
    ("remote-sum", make(topology="twonode-2n4c", workload="remote_cpu = 0.6\nremote_node = 0.5\n"),
     "workload.remote_node", "remote_cpu + remote_node <= 1"),
    ("remote-node-one-node", make(workload="remote_node = 0.1\n"), "workload.remote_node",
     "need CPUs on two nodes"),
    ("remote-cpu-single-cpu-nodes", make(topology="pressure-3n3c", workload="remote_cpu = 0.1\n"),
     "workload.remote_cpu", "need two CPUs on a node"),
    ("burst-zero", make(workload="burst = 0\n"), "workload.burst", "an integer in 1..100000"),
    ("burst-big", make(workload="burst = 100001\n"), "workload.burst", "an integer in 1..100000"),
    ("free-at-end-int", make(workload="free_at_end = 1\n"), "workload.free_at_end",
     "true or false"),
    ("shrink-negative", make(workload="shrink_every = -1\n"), "workload.shrink_every",
     "an integer in 0.."),
    ("reap-float", make(workload="reap_every = 1.0\n"), "workload.reap_every",
     "an integer in 0.."),
    ("faults-not-table", make(top="faults = [1]\n"), "faults", "a table written [faults]"),
    ("faults-unknown", make(faults="rate = 0.1\n"), "faults.rate", "a known faults key"),
    ("fail-one", make(faults="page_alloc_fail = 1.0\n"), "faults.page_alloc_fail",
     "a probability in [0, 1)"),
    ("fail-string", make(faults='page_alloc_fail = "1%"\n'), "faults.page_alloc_fail",
     "a probability in [0, 1)"),
    ("fault-nodes-type", make(faults="nodes = 0\n"), "faults.nodes", "a list of node ids"),
    ("fault-nodes-bool", make(faults="nodes = [true]\n"), "faults.nodes[0]", "an integer in 0.."),
    ("fault-nodes-duplicate", make(topology="twonode-2n4c", faults="nodes = [1, 1]\n"),
     "faults.nodes[1]", "each node once"),
    ("fault-node-unknown", make(topology="twonode-2n4c", faults="nodes = [0, 2]\n"),
     "faults.nodes[1]", "a node of twonode-2n4c (0, 1)"),
]


@pytest.mark.parametrize("case_id, text, field, fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_scenario(tmp_path, case_id, text, field, fragment):
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_scenario(str(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}: expected "), msg
    assert fragment in msg, msg
    assert (e.value.source, e.value.field) == (str(path), field)


def test_bad_case_ids_are_distinct():
    assert len({c[0] for c in BAD}) == len(BAD)


def test_a_broken_topology_file_is_named(tmp_path):
    write(tmp_path, '[[node]]\ncpus = "0"\nmemory = "1000"\n', "t.toml")
    path = write(tmp_path, make(topology="t.toml"), "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_scenario(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: topology: {tmp_path / 't.toml'}: node[0].memory: expected ")
    assert "\n" not in msg and msg.count(": expected ") == 1


@pytest.mark.parametrize("spec, field, fragment", [
    ("no-such-scenario", "scenario", "one of: "),
    ("no-such-scenario.toml", "scenario", "one of: "),
    ("./missing/s.toml", "file", "an existing scenario file"),
])
def test_bad_spec(spec, field, fragment):
    assert_one_line_config_error(load_scenario, spec, field, fragment)


def test_a_directory_is_not_a_scenario(tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(ConfigError, match=r"file: expected a scenario file"):
        load_scenario(str(d))


def test_not_utf8(tmp_path):
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"TOML: expected "):
        load_scenario(str(p))


# -- overrides ------------------------------------------------------------------------
def test_overrides():
    s = load_scenario("remote-free")
    o = s.with_overrides(allocator="slab", policy="pre-series", seed=99, mode="deterministic",
                         placement="scatter", workers=2, ops_per_cpu=5, duration=1.5)
    assert (o.allocator, o.policy, o.seed, o.mode, o.placement, o.workers, o.ops_per_cpu,
            o.duration) == ("slab", "pre-series", 99, "deterministic", "scatter", 2, 5, 1.5)
    assert o.caches == s.caches and o.workload == s.workload and o.name == s.name
    assert s.with_overrides() is s
    assert s.seed == 2, "the original is unchanged"
    d = s.with_overrides(ops_per_cpu=None, duration=3)
    assert d.ops_per_cpu is None and d.duration == 3.0
    assert s.with_overrides(topology="davydov-2s6c").topology == "davydov-2s6c"
    assert s.with_overrides(placement="0:0,1:1,2:0,3:1").placement == "0:0,1:1,2:0,3:1"


def test_override_topology_path(tmp_path):
    s = load_scenario("local-fastpath")
    path = str(CONFIGS_DIR.parent / "topologies" / "twonode-2n4c.toml")
    assert s.with_overrides(topology=path).load_topology().nr_cpus == 4


OVERRIDE_BAD = [
    ("local-fastpath", {"seed": -1}, "--seed", "an integer in 0.."),
    ("local-fastpath", {"seed": "1"}, "--seed", "an integer in 0.."),
    ("local-fastpath", {"allocator": "slob"}, "--allocator", "'slub' or 'slab'"),
    ("local-fastpath", {"policy": "nope"}, "--policy", "one of: linux-4.0, no-cpu-partial, pre-series"),
    ("local-fastpath", {"mode": "fast"}, "--mode", "'parallel' or 'deterministic'"),
    ("local-fastpath", {"placement": "everywhere"}, "--placement", "'compact', 'scatter'"),
    ("local-fastpath", {"placement": "0:0"}, "--placement", "a host CPU for every emulated CPU"),
    ("local-fastpath", {"workers": 0.5}, "--workers", "an integer in 0.."),
    ("local-fastpath", {"workers": 100}, "--workers", "1..8 (the topology's CPUs)"),
    ("local-fastpath", {"ops_per_cpu": 0}, "--ops", "an integer in 1.."),
    ("local-fastpath", {"ops_per_cpu": None}, "--ops", "ops_per_cpu (--ops) or duration (--duration)"),
    ("local-fastpath", {"duration": -1}, "--duration", "a number of seconds > 0"),
    ("local-fastpath", {"duration": None, "ops_per_cpu": None}, "--ops",
     "ops_per_cpu (--ops) or duration (--duration)"),
    ("local-fastpath", {"topology": "no-such"}, "--topology", "one of: altra-1n80c"),
    ("local-fastpath", {"topology": ""}, "--topology", "a non-empty string"),
    ("remote-free", {"topology": "laptop-1n8c"},
     "--topology (for the scenario's workload.remote_node)", "need CPUs on two nodes"),
]


@pytest.mark.parametrize("scenario, kw, field, fragment", OVERRIDE_BAD,
                         ids=[f"{s}-{'-'.join(kw)}-{i}" for i, (s, kw, _, _) in
                              enumerate(OVERRIDE_BAD)])
def test_bad_override(scenario, kw, field, fragment):
    s = load_scenario(scenario)
    with pytest.raises(ConfigError) as e:
        s.with_overrides(**kw)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"command line: {field}: expected "), msg
    assert fragment in msg, msg


def test_override_fault_nodes_need_the_new_topology(tmp_path):
    p = write(tmp_path, make(topology="twonode-2n4c", faults="page_alloc_fail = 0.1\nnodes = [1]\n"))
    s = load_scenario(str(p))
    with pytest.raises(ConfigError) as e:
        s.with_overrides(topology="laptop-1n8c")
    assert str(e.value).startswith(
        "command line: --topology (for the scenario's faults.nodes[0]): expected a node of "
        "laptop-1n8c (0), got 1")


def test_override_unknown_field_is_a_type_error():
    with pytest.raises(TypeError, match="description"):
        load_scenario("local-fastpath").with_overrides(description="x")
    assert set(OPTIONS) == {"allocator", "policy", "seed", "mode", "placement", "workers",
                            "ops_per_cpu", "duration", "topology", "kernel"}


# -- to_dict ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_round_trips_through_json(name):
    s = load_scenario(name)
    d = s.to_dict()
    back = json.loads(json.dumps(d))
    assert back == d
    assert Scenario.from_dict(back) == s
    assert set(d) == {f.name for f in dataclasses.fields(Scenario)}
    assert d["caches"][0] == dataclasses.asdict(s.caches[0])
    assert set(d["workload"]) == {f.name for f in dataclasses.fields(Workload)}
    assert d["faults"] == {"page_alloc_fail": s.faults.page_alloc_fail,
                           "nodes": list(s.faults.nodes), "preempt": s.faults.preempt,
                           "race_delay": s.faults.race_delay,
                           "shrink_alloc_fail": s.faults.shrink_alloc_fail}
    assert d["memcg"] == {"lifetime": s.memcg.lifetime, "max_memcgs": s.memcg.max_memcgs,
                          "handover_at_offline": s.memcg.handover_at_offline}


def test_to_dict_with_every_field(tmp_path):
    text = make(topology="twonode-2n4c", top="duration = 1.25\nseed = 5\n",
                caches='[[cache]]\nname = "n"\nsize = 40\nalign = 16\nweight = 2\n'
                       '[[cache]]\nkmalloc = 96\n',
                workload="remote_node = 0.5\n", faults="page_alloc_fail = 0.5\nnodes = [1, 0]\n")
    s = load_scenario(str(write(tmp_path, text)))
    assert s.faults.nodes == (0, 1)
    back = Scenario.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s


def test_from_dict_validates():
    d = load_scenario("local-fastpath").to_dict()
    d["workload"]["remote_node"] = 0.5
    with pytest.raises(ConfigError, match=r"^<dict>: workload.remote_node: expected 0 on this"):
        Scenario.from_dict(d)
    d = load_scenario("local-fastpath").to_dict()
    d["caches"][0]["size"] = 0
    with pytest.raises(ConfigError, match=r"cache\[0\].kmalloc: expected an integer in 1..8192"):
        Scenario.from_dict(d, source="<dict>")


def test_frozen():
    s = load_scenario("local-fastpath")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 3  # type: ignore[misc]
    hash(s)  # every part is immutable


def test_loading_a_scenario_does_not_import_numba():
    import subprocess
    import sys
    code = ("import sys; from emulator.workload import load_scenario; "
            "load_scenario('remote-free').load_policy(); "
            "assert 'numba' not in sys.modules, 'numba imported'")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=str(CONFIGS_DIR.parents[1]))


def test_a_broken_policy_file_is_named(tmp_path):
    write(tmp_path, 'extends = "v2-full"\nnonpreemptible_free = "yes"\n', "pol.toml")
    path = write(tmp_path, make(top='policy = "pol.toml"\n'), "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_scenario(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: policy: {tmp_path / 'pol.toml'}: nonpreemptible_free: "
                          "expected true or false")
    assert "\n" not in msg
