"""The immutable topology model: NUMA nodes, CPUs, distances, page and cache-line size.

Models the hardware a Linux kernel sees at boot: the architecture, the base page size,
the cache-line size, the NUMA nodes (id, CPU list, memory), the SLIT distance matrix
(``node_distance()``), and for every CPU its node, package, core and SMT thread.

Invariants (all checked by `validate`, which every loader calls):

- ``arch`` is ``x86_64`` (page size 4096) or ``arm64`` (page size 4096, 16384 or 65536,
  the three ``CONFIG_ARM64_*K_PAGES`` choices); ``cache_line`` is a power of two in
  32..256 (``L1_CACHE_BYTES``: 64 on x86_64, 64 or 128 on arm64).
- ``kernel_era`` is one of `KERNEL_ERAS`: the kernel generation whose arch constants
  apply (only arm64's ARCH_DMA_MINALIGN differs: 64 for "3.16", the default and the
  series' base, 128 for "4.7", kernels 4.7 to 6.4; see kernel/geometry.py).
- ``nodes`` is sorted by id, ids are distinct and non-negative; each node's ``cpus``
  are sorted and distinct; a CPU belongs to exactly one node.  Memoryless nodes (CPUs,
  no memory) and CPU-less nodes (memory, no CPUs) are legal, as in Linux.
- every node's memory is a multiple of the page size; the machine has memory and CPUs.
- ``distances`` is square (one row and column per node, in node order); the diagonal is
  10 (``LOCAL_DISTANCE``) and every other entry is in 11..254: Linux's
  ``numa_set_distance()`` rejects a remote distance <= LOCAL_DISTANCE, and 255 means
  "unreachable" in the ACPI SLIT.  A matrix given explicitly may be asymmetric; the
  default is symmetric: 10 on the diagonal, 20 (``REMOTE_DISTANCE``) elsewhere.
- ``cpus`` is sorted by id and lists exactly the CPUs of the nodes; a CPU's ``node``
  matches the node that lists it; (core, thread) pairs are unique; the threads of one
  core share a package and a node.
- at most 8192 CPUs (x86 ``NR_CPUS`` with MAXSMP) with ids up to 65535, and at most
  1024 nodes with ids below 1024 (``MAX_NUMNODES``).

Core ids are unique across the machine (not per package, as sysfs ``core_id`` is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .sizes import MiB

__all__ = [
    "Cpu", "Node", "Topology", "validate", "scale_memory", "default_distances",
    "ARCHES", "PAGE_SIZES", "LOCAL_DISTANCE", "REMOTE_DISTANCE", "MAX_CPUS", "MAX_NODES",
    "MEMORY_GRANULE",
]

ARCHES = ("x86_64", "arm64")
PAGE_SIZES = {"x86_64": (4096,), "arm64": (4096, 16384, 65536)}
KERNEL_ERAS = ("3.16", "4.7")
DEFAULT_KERNEL_ERA = "3.16"
LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 20
MAX_DISTANCE = 254
MAX_CPUS = 8192
MAX_NODES = 1024
MAX_CPU_ID = 65535  # as in topo.cpulist
# scale_memory() keeps node sizes multiples of this: a multiple of every legal page size,
# and of the 2 MiB/512 MiB huge pages nobody emulates yet.
MEMORY_GRANULE = 4 * MiB


@dataclass(frozen=True)
class Cpu:
    """One logical CPU (a hardware thread)."""

    id: int
    node: int
    package: int
    core: int
    thread: int

    def to_dict(self) -> dict[str, int]:
        return {"id": self.id, "node": self.node, "package": self.package,
                "core": self.core, "thread": self.thread}


@dataclass(frozen=True)
class Node:
    """One NUMA node: its CPUs (sorted ids) and its memory in bytes."""

    id: int
    cpus: tuple[int, ...]
    memory: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpus", tuple(self.cpus))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "cpus": list(self.cpus), "memory": self.memory}


def default_distances(nr_nodes: int) -> tuple[tuple[int, ...], ...]:
    """Linux's default SLIT: LOCAL_DISTANCE on the diagonal, REMOTE_DISTANCE elsewhere."""
    return tuple(tuple(LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(nr_nodes))
                 for i in range(nr_nodes))


@dataclass(frozen=True)
class Topology:
    """An emulated machine; build it with a loader or `Topology.from_dict`, then `validate`."""

    name: str
    arch: str
    page_size: int
    cache_line: int
    nodes: tuple[Node, ...]
    distances: tuple[tuple[int, ...], ...]
    cpus: tuple[Cpu, ...]
    source: str = field(default="", compare=False)
    kernel_era: str = DEFAULT_KERNEL_ERA

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "cpus", tuple(self.cpus))
        object.__setattr__(self, "distances", tuple(tuple(row) for row in self.distances))

    # -- counts ------------------------------------------------------------------------
    @property
    def nr_cpus(self) -> int:
        return len(self.cpus)

    @property
    def nr_nodes(self) -> int:
        return len(self.nodes)

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n.id for n in self.nodes)

    @property
    def cpu_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.cpus)

    @property
    def memory_total(self) -> int:
        return sum(n.memory for n in self.nodes)

    @property
    def packages(self) -> int:
        """Number of distinct packages (sockets)."""
        return len({c.package for c in self.cpus})

    @property
    def cores(self) -> int:
        """Number of distinct physical cores."""
        return len({c.core for c in self.cpus})

    @property
    def threads_per_core(self) -> int:
        """SMT width: the most hardware threads any core has."""
        per_core: dict[int, int] = {}
        for c in self.cpus:
            per_core[c.core] = per_core.get(c.core, 0) + 1
        return max(per_core.values(), default=0)

    # -- lookups -----------------------------------------------------------------------
    def node(self, node_id: int) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node {node_id} in topology {self.name!r}")

    def cpu(self, cpu_id: int) -> Cpu:
        for c in self.cpus:
            if c.id == cpu_id:
                return c
        raise KeyError(f"no CPU {cpu_id} in topology {self.name!r}")

    def node_of(self, cpu_id: int) -> int:
        """The node id of a CPU (``cpu_to_node()``)."""
        return self.cpu(cpu_id).node

    def node_index(self, node_id: int) -> int:
        """Position of a node in ``nodes`` (and in the rows of ``distances``)."""
        for i, n in enumerate(self.nodes):
            if n.id == node_id:
                return i
        raise KeyError(f"no node {node_id} in topology {self.name!r}")

    def distance(self, from_node: int, to_node: int) -> int:
        """``node_distance(from, to)`` by node ids."""
        return self.distances[self.node_index(from_node)][self.node_index(to_node)]

    def fallback_order(self, node_id: int) -> tuple[int, ...]:
        """Node ids in the order the page allocator falls back from ``node_id``.

        Sorted by distance from ``node_id``, ties broken by node id; the node itself comes
        first (its distance is LOCAL_DISTANCE, the minimum).  This is the shape of the
        zonelist built by ``build_zonelists()``; the kernel's ``find_next_best_node()``
        also nudges ties (prefers CPU-less nodes, nodes above itself, and spreads load
        across equal nodes), which this model deliberately leaves out so that the order
        depends on the distance matrix alone.
        """
        me = self.node_index(node_id)
        row = self.distances[me]
        order = sorted(range(self.nr_nodes), key=lambda j: (j != me, row[j], self.nodes[j].id))
        return tuple(self.nodes[j].id for j in order)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; `from_dict` reads it back to an equal Topology."""
        return {
            "name": self.name,
            "arch": self.arch,
            "page_size": self.page_size,
            "cache_line": self.cache_line,
            "nodes": [n.to_dict() for n in self.nodes],
            "distances": [list(row) for row in self.distances],
            "cpus": [c.to_dict() for c in self.cpus],
        } | ({"kernel_era": self.kernel_era} if self.kernel_era != DEFAULT_KERNEL_ERA else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "Topology":
        """Rebuild (and validate) a Topology from `to_dict` output."""
        if not isinstance(data, Mapping):
            raise ConfigError(source, "topology", "a mapping", type(data).__name__)
        keys = {"name", "arch", "page_size", "cache_line", "nodes", "distances", "cpus"}
        for key in data:
            if key not in keys | {"kernel_era"}:
                raise ConfigError(source, str(key), "one of " + ", ".join(sorted(keys)))
        era = data.get("kernel_era", DEFAULT_KERNEL_ERA)
        for key in keys:
            if key not in data:
                raise ConfigError(source, key, "a value (the key is missing)")
        nodes = []
        for i, nd in enumerate(_as_list(data["nodes"], source, "nodes")):
            nd = _as_mapping(nd, source, f"nodes[{i}]")
            _require_keys(nd, ("id", "cpus", "memory"), source, f"nodes[{i}]")
            nodes.append(Node(_as_int(nd["id"], source, f"nodes[{i}].id"),
                              tuple(_as_int(c, source, f"nodes[{i}].cpus")
                                    for c in _as_list(nd["cpus"], source, f"nodes[{i}].cpus")),
                              _as_int(nd["memory"], source, f"nodes[{i}].memory")))
        cpus = []
        for i, cd in enumerate(_as_list(data["cpus"], source, "cpus")):
            cd = _as_mapping(cd, source, f"cpus[{i}]")
            _require_keys(cd, ("id", "node", "package", "core", "thread"), source, f"cpus[{i}]")
            cpus.append(Cpu(*(_as_int(cd[k], source, f"cpus[{i}].{k}")
                              for k in ("id", "node", "package", "core", "thread"))))
        distances = tuple(
            tuple(_as_int(v, source, f"distances[{i}]") for v in _as_list(row, source, f"distances[{i}]"))
            for i, row in enumerate(_as_list(data["distances"], source, "distances")))
        name, arch = data["name"], data["arch"]
        topo = cls(name=name, arch=arch,
                   page_size=_as_int(data["page_size"], source, "page_size"),
                   cache_line=_as_int(data["cache_line"], source, "cache_line"),
                   nodes=tuple(nodes), distances=distances, cpus=tuple(cpus), source=source,
                   kernel_era=era)
        return validate(topo)

    def summary(self) -> str:
        """One line: name, arch, CPUs, nodes, memory."""
        return (f"{self.name}: {self.arch}, {self.nr_cpus} CPUs on {self.nr_nodes} nodes, "
                f"{self.memory_total // MiB} MiB")


# -- validation ----------------------------------------------------------------------------

def _as_int(value: Any, source: str, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(source, field_name, "an integer", value)
    return value


def _as_list(value: Any, source: str, field_name: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(source, field_name, "a list", value)
    return list(value)


def _as_mapping(value: Any, source: str, field_name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(source, field_name, "a table of keys", value)
    return value


def _require_keys(d: Mapping, keys: Iterable[str], source: str, field_name: str) -> None:
    for k in keys:
        if k not in d:
            raise ConfigError(source, f"{field_name}.{k}", "a value (the key is missing)")


def assemble(*, name: str, arch: str, page_size: int, cache_line: int, nodes: Iterable[Node],
             distances, cpus: Iterable[Cpu], source: str | None) -> Topology:
    """The Topology a loader read: CPUs in id order, the default SLIT distances when the
    source gave none (`distances` None), then validated."""
    nodes = tuple(nodes)
    return validate(Topology(
        name=name, arch=arch, page_size=page_size, cache_line=cache_line, nodes=nodes,
        distances=distances if distances is not None else default_distances(len(nodes)),
        cpus=tuple(sorted(cpus, key=lambda c: c.id)), source=source))


def validate(topo: Topology) -> Topology:
    """Check every invariant in this module's docstring; return ``topo`` or raise ConfigError."""
    src = topo.source or topo.name or "topology"
    if not isinstance(topo.name, str) or not topo.name.strip():
        raise ConfigError(src, "name", "a non-empty name", topo.name)
    if topo.arch not in ARCHES:
        raise ConfigError(src, "arch", " or ".join(ARCHES), topo.arch)
    legal_pages = PAGE_SIZES[topo.arch]
    if isinstance(topo.page_size, bool) or topo.page_size not in legal_pages:
        raise ConfigError(src, "page_size",
                          f"a page size {topo.arch} supports ({', '.join(map(str, legal_pages))})",
                          topo.page_size)
    if topo.kernel_era not in KERNEL_ERAS:
        raise ConfigError(src, "kernel_era", " or ".join(f'"{e}"' for e in KERNEL_ERAS), topo.kernel_era)
    cl = topo.cache_line
    if isinstance(cl, bool) or not isinstance(cl, int) or cl < 32 or cl > 256 or cl & (cl - 1):
        raise ConfigError(src, "cache_line", "a power of two from 32 to 256", cl)

    nodes = topo.nodes
    if not nodes:
        raise ConfigError(src, "nodes", "at least one NUMA node")
    if len(nodes) > MAX_NODES:
        raise ConfigError(src, "nodes", f"at most {MAX_NODES} nodes (MAX_NUMNODES)", len(nodes))
    owner: dict[int, int] = {}
    seen_nodes: set[int] = set()
    prev_id = -1
    for n in nodes:
        label = f"node[{n.id}]"
        if isinstance(n.id, bool) or not isinstance(n.id, int) or not 0 <= n.id < MAX_NODES:
            raise ConfigError(src, "node.id", f"a node id from 0 to {MAX_NODES - 1} (MAX_NUMNODES)",
                              n.id)
        if n.id in seen_nodes:
            raise ConfigError(src, f"{label}.id", "distinct node ids", n.id)
        if n.id < prev_id:
            raise ConfigError(src, "nodes", "nodes sorted by id", [x.id for x in nodes])
        seen_nodes.add(n.id)
        prev_id = n.id
        if isinstance(n.memory, bool) or not isinstance(n.memory, int) or n.memory < 0:
            raise ConfigError(src, f"{label}.memory", "a non-negative number of bytes", n.memory)
        if n.memory % topo.page_size:
            raise ConfigError(src, f"{label}.memory",
                              f"a multiple of the page size ({topo.page_size})", n.memory)
        if list(n.cpus) != sorted(n.cpus):
            raise ConfigError(src, f"{label}.cpus", "CPU ids in ascending order", list(n.cpus))
        for c in n.cpus:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= MAX_CPU_ID:
                raise ConfigError(src, f"{label}.cpus", f"CPU ids from 0 to {MAX_CPU_ID}", c)
            if c in owner:
                where = "twice in this node" if owner[c] == n.id else f"also in node {owner[c]}"
                raise ConfigError(src, f"{label}.cpus", "each CPU in exactly one node",
                                  f"CPU {c} {where}")
            owner[c] = n.id
    if not owner:
        raise ConfigError(src, "cpus", "at least one CPU", 0)
    if len(owner) > MAX_CPUS:
        raise ConfigError(src, "cpus", f"at most {MAX_CPUS} CPUs (NR_CPUS)", len(owner))
    if topo.memory_total <= 0:
        raise ConfigError(src, "memory", "memory on at least one node", 0)

    d = topo.distances
    if len(d) != len(nodes) or any(len(row) != len(nodes) for row in d):
        shape = f"{len(d)} rows of " + "/".join(str(len(r)) for r in d) if d else "no rows"
        raise ConfigError(src, "distances",
                          f"a {len(nodes)}x{len(nodes)} matrix (one row and column per node)", shape)
    for i, row in enumerate(d):
        for j, v in enumerate(row):
            here = f"distances[{i}][{j}]"
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(src, here, "an integer distance", v)
            if i == j and v != LOCAL_DISTANCE:
                raise ConfigError(src, here, f"{LOCAL_DISTANCE} from a node to itself (LOCAL_DISTANCE)", v)
            if i != j and not (LOCAL_DISTANCE < v <= MAX_DISTANCE):
                raise ConfigError(src, here,
                                  f"a remote distance from {LOCAL_DISTANCE + 1} to {MAX_DISTANCE}", v)

    cpus = topo.cpus
    ids = [c.id for c in cpus]
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        raise ConfigError(src, "cpus", "CPU records sorted by id, one per CPU", ids[:16])
    if set(ids) != set(owner):
        missing = sorted(set(owner) - set(ids))
        extra = sorted(set(ids) - set(owner))
        raise ConfigError(src, "cpus", "one CPU record for each CPU of the nodes",
                          f"missing {missing[:8]}, extra {extra[:8]}")
    core_home: dict[int, tuple[int, int]] = {}
    threads: set[tuple[int, int]] = set()
    for c in cpus:
        here = f"cpu[{c.id}]"
        for attr in ("node", "package", "core", "thread"):
            v = getattr(c, attr)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(src, f"{here}.{attr}", "a non-negative integer", v)
        if c.node != owner[c.id]:
            raise ConfigError(src, f"{here}.node", f"node {owner[c.id]} (the node listing it)", c.node)
        if (c.core, c.thread) in threads:
            raise ConfigError(src, f"{here}.thread", f"a thread number unused in core {c.core}", c.thread)
        threads.add((c.core, c.thread))
        home = core_home.setdefault(c.core, (c.package, c.node))
        if home != (c.package, c.node):
            raise ConfigError(src, f"{here}.core",
                              "SMT siblings in one package and one node",
                              f"core {c.core} in package/node {home} and {(c.package, c.node)}")
    return topo


def scale_memory(topo: Topology, cap: int) -> Topology:
    """A copy of ``topo`` whose total memory is at most ``cap`` bytes.

    Rule: nothing changes when the total already fits.  Otherwise the cap is cut into
    4 MiB granules (`MEMORY_GRANULE`, a multiple of every page size) and each node with
    memory gets ``floor(share * granules)`` of them, at least one; if those minimums push
    the sum over the cap, the largest nodes give granules back (ties: highest node id
    first) until it fits.  Memoryless nodes stay at 0.  A cap too small to give every
    node with memory one granule is a ConfigError.
    """
    src = topo.source or topo.name
    if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
        raise ConfigError(src, "memory_cap", "a positive size", cap)
    total = topo.memory_total
    if total <= cap:
        return topo
    with_mem = [i for i, n in enumerate(topo.nodes) if n.memory > 0]
    granules = cap // MEMORY_GRANULE
    if granules < len(with_mem):
        raise ConfigError(src, "memory_cap",
                          f"at least {len(with_mem)} x 4 MiB (one granule per node with memory)", cap)
    alloc = {i: max(1, topo.nodes[i].memory * granules // total) for i in with_mem}
    while sum(alloc.values()) > granules:
        i = max((i for i in with_mem if alloc[i] > 1), key=lambda i: (alloc[i], topo.nodes[i].id))
        alloc[i] -= 1
    nodes = tuple(Node(n.id, n.cpus, alloc.get(i, 0) * MEMORY_GRANULE) for i, n in enumerate(topo.nodes))
    return validate(Topology(topo.name, topo.arch, topo.page_size, topo.cache_line, nodes,
                             topo.distances, topo.cpus, topo.source, topo.kernel_era))
