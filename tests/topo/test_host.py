"""Host discovery: on this machine, and on fake sysfs trees."""

import os

import psutil
import pytest

from topo import ConfigError, DEFAULT_MEMORY_CAP, load_topology
from topo.host import discover_host, host_arch
from topo.sizes import GiB, KiB, MiB


def test_this_host():
    t = load_topology("host")
    assert t.name == "host"
    online = psutil.cpu_count(logical=True)
    assert t.nr_cpus == online
    assert t.page_size == os.sysconf("SC_PAGE_SIZE")
    assert t.arch == host_arch()
    assert 0 < t.memory_total <= DEFAULT_MEMORY_CAP
    assert set(os.sched_getaffinity(0)) <= set(t.cpu_ids)


def test_arch_names():
    assert host_arch("x86_64") == host_arch("AMD64") == "x86_64"
    assert host_arch("aarch64") == host_arch("arm64") == "arm64"
    with pytest.raises(ConfigError, match="x86_64 or arm64 host"):
        host_arch("ppc64le")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_sysfs(root, *, nodes=True):
    """2 packages x 2 cores x 2 threads, Linux Intel numbering (siblings c, c+4)."""
    cpu = root / "devices/system/cpu"
    write(cpu / "online", "0-7\n")
    for c in range(8):
        pkg = (c % 4) // 2
        write(cpu / f"cpu{c}/topology/physical_package_id", f"{pkg}\n")
        write(cpu / f"cpu{c}/topology/core_id", f"{c % 2}\n")
        write(cpu / f"cpu{c}/topology/thread_siblings_list", f"{c % 4},{c % 4 + 4}\n")
    write(cpu / "cpu0/cache/index0/coherency_line_size", "64\n")
    if nodes:
        node = root / "devices/system/node"
        write(node / "online", "0-1\n")
        write(node / "node0/cpulist", "0-1,4-5\n")
        write(node / "node1/cpulist", "2-3,6-7\n")
        write(node / "node0/meminfo", f"Node 0 MemTotal:       {3 * GiB // KiB} kB\n")
        write(node / "node1/meminfo", f"Node 1 MemTotal:       {1 * GiB // KiB} kB\n")
        write(node / "node0/distance", "10 21\n")
        write(node / "node1/distance", "21 10\n")


def test_fake_numa_host(tmp_path):
    fake_sysfs(tmp_path)
    t = discover_host(sysfs=tmp_path, machine="x86_64", page_size=4096)
    assert t.nr_cpus == 8 and t.node_ids == (0, 1)
    assert t.node(0).cpus == (0, 1, 4, 5) and t.distances == ((10, 21), (21, 10))
    assert t.packages == 2 and t.cores == 4 and t.threads_per_core == 2
    assert t.cpu(0).core == t.cpu(4).core and t.cpu(4).thread == 1 and t.cpu(6).package == 1
    assert [n.memory for n in t.nodes] == [768 * MiB, 256 * MiB]     # 3:1 kept under 1 GiB
    full = discover_host(sysfs=tmp_path, machine="x86_64", page_size=4096, memory_cap=None)
    assert full.memory_total == 4 * GiB


def test_fake_host_without_numa_falls_back_to_one_node(tmp_path):
    fake_sysfs(tmp_path, nodes=False)
    t = discover_host(sysfs=tmp_path, machine="aarch64", page_size=65536)
    assert t.arch == "arm64" and t.page_size == 65536
    assert t.node_ids == (0,) and t.node(0).cpus == tuple(range(8))
    assert 0 < t.memory_total <= DEFAULT_MEMORY_CAP


def test_fake_host_bad_slit_uses_default(tmp_path):
    fake_sysfs(tmp_path)
    write(tmp_path / "devices/system/node/node1/distance", "10 10\n")
    t = discover_host(sysfs=tmp_path, machine="x86_64", page_size=4096)
    assert t.distances == ((10, 20), (20, 10))


def test_bare_sysfs(tmp_path):
    t = discover_host(sysfs=tmp_path, machine="x86_64", page_size=4096)
    assert t.nr_cpus == psutil.cpu_count(logical=True) and t.nr_nodes == 1
