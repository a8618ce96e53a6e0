"""The machine we run on → Topology ("host").

Models what Linux tells a process about its hardware:

- online CPUs: /sys/devices/system/cpu/online (else ``psutil.cpu_count()``);
- per CPU: topology/physical_package_id and thread_siblings_list under
  /sys/devices/system/cpu/cpuN/ (a missing or negative package id reads as 0; a core is
  a set of thread siblings, numbered machine-wide in CPU order, since sysfs core_id is
  only unique within a package; a CPU's thread number is its position among its online
  siblings);
- NUMA nodes: /sys/devices/system/node/online and nodeN/{cpulist,meminfo,distance};
- page size: ``os.sysconf("SC_PAGE_SIZE")``; arch: ``platform.machine()`` (x86_64/amd64
  → x86_64, aarch64/arm64 → arm64, anything else is a ConfigError).

Invariants: when /sys/devices/system/node is missing (containers, kernels without NUMA)
the host is one node holding every online CPU with ``psutil.virtual_memory().total``
bytes; an online CPU that no node lists joins the first node; a SLIT that breaks the
model's rules (firmware bugs) is replaced by the default 10/20; memory is rounded down to
whole pages and then scaled to ``DEFAULT_MEMORY_CAP`` (1 GiB) unless another cap is
given, so that "host" can be emulated on the host.  The cache-line size is read from
/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size when present (else 64).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import psutil

from .cpulist import parse_cpulist
from .errors import ConfigError
from .model import Cpu, Node, Topology, default_distances, scale_memory, validate
from .numactl import DEFAULT_MEMORY_CAP
from .sizes import KiB

__all__ = ["discover_host", "host_arch"]

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch(machine: str | None = None) -> str:
    """slabemu's arch name for ``platform.machine()`` (or the given machine string)."""
    m = machine if machine is not None else platform.machine()
    arch = _ARCH.get(m.lower())
    if arch is None:
        raise ConfigError("host", "arch", "an x86_64 or arm64 host (" + ", ".join(sorted(_ARCH)) + ")", m)
    return arch


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def discover_host(*, sysfs: str | Path = "/sys", memory_cap: int | None = DEFAULT_MEMORY_CAP,
                  machine: str | None = None, page_size: int | None = None) -> Topology:
    """Read the host topology.  ``sysfs``, ``machine`` and ``page_size`` exist for tests."""
    root = Path(sysfs)
    arch = host_arch(machine)
    psize = page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE")
    cpu_dir = root / "devices" / "system" / "cpu"
    node_dir = root / "devices" / "system" / "node"

    online_text = _read(cpu_dir / "online")
    if online_text is not None:
        online = parse_cpulist(online_text, source=str(cpu_dir / "online"), field="online")
    else:
        online = tuple(range(psutil.cpu_count(logical=True) or 1))
    online_set = set(online)

    # NUMA nodes
    nodes: list[tuple[int, list[int], int]] = []
    distances = None
    if node_dir.is_dir():
        node_online = _read(node_dir / "online")
        if node_online is not None:
            node_ids = parse_cpulist(node_online, source=str(node_dir / "online"), field="online")
        else:
            node_ids = tuple(sorted(int(p.name[4:]) for p in node_dir.glob("node[0-9]*")))
        rows = []
        for n in node_ids:
            nd = node_dir / f"node{n}"
            text = _read(nd / "cpulist")
            cpus = parse_cpulist(text, source=str(nd / "cpulist"), field="cpulist") if text else ()
            cpus = [c for c in cpus if c in online_set]
            memory = 0
            meminfo = _read(nd / "meminfo") or ""
            m = re.search(r"MemTotal:\s*(\d+)\s*kB", meminfo)
            if m:
                memory = int(m.group(1)) * KiB
            nodes.append((n, cpus, memory))
            dist = _read(nd / "distance")
            try:
                rows.append(tuple(int(x) for x in dist.split()) if dist else None)
            except ValueError:
                rows.append(None)
        if nodes and all(r is not None and len(r) == len(nodes) for r in rows) and all(
                (v == 10) == (i == j) and 10 <= v <= 254
                for i, r in enumerate(rows) for j, v in enumerate(r)):
            distances = tuple(rows)  # else firmware gave nonsense: use the default matrix
    if not nodes:
        nodes = [(0, list(online), psutil.virtual_memory().total)]
    listed = {c for _, cpus, _ in nodes for c in cpus}
    stray = [c for c in online if c not in listed]
    if stray:
        nodes[0] = (nodes[0][0], sorted(nodes[0][1] + stray), nodes[0][2])
    node_of = {c: n for n, cpus, _ in nodes for c in cpus}

    # packages, cores, threads
    raw: dict[int, tuple[int, tuple[int, ...]]] = {}
    for c in online:
        topo_dir = cpu_dir / f"cpu{c}" / "topology"
        package = _read_int(topo_dir / "physical_package_id")
        sib_text = _read(topo_dir / "thread_siblings_list")
        siblings = (parse_cpulist(sib_text, source=str(topo_dir / "thread_siblings_list"),
                                  field="thread_siblings_list") if sib_text else (c,))
        siblings = tuple(s for s in siblings if s in online_set) or (c,)
        raw[c] = (package if package is not None and package >= 0 else 0, siblings)
    # A core is a set of thread siblings (sysfs core_id is only unique per package); the
    # key includes package and node so siblings never straddle them even if sysfs
    # disagrees with itself.
    core_number: dict[tuple, int] = {}
    cpus: list[Cpu] = []
    used: set[tuple[int, int]] = set()
    for c in online:
        package, siblings = raw[c]
        if c not in siblings:
            siblings = (c,)
        key = (package, node_of[c], siblings)
        if key not in core_number:
            core_number[key] = len(core_number)
        core = core_number[key]
        thread = siblings.index(c)
        while (core, thread) in used:  # inconsistent sibling lists: take the next free slot
            thread += 1
        used.add((core, thread))
        cpus.append(Cpu(c, node_of[c], package, core, thread))

    line = _read_int(cpu_dir / "cpu0" / "cache" / "index0" / "coherency_line_size")
    cache_line = line if line and 32 <= line <= 256 and not line & (line - 1) else 64

    topo_nodes = tuple(Node(n, tuple(sorted(cs)), mem // psize * psize) for n, cs, mem in sorted(nodes))
    topo = Topology(name="host", arch=arch, page_size=psize, cache_line=cache_line, nodes=topo_nodes,
                    distances=distances or default_distances(len(topo_nodes)),
                    cpus=tuple(cpus), source="host")
    topo = validate(topo)
    if memory_cap is not None:
        topo = scale_memory(topo, memory_cap)
    return topo
