"""Topology TOML files (configs/topologies/*.toml) → Topology.

Models a machine description written by hand.  Two forms:

Explicit nodes::

    name = "xeon-2s12c"            # default: the file name without .toml
    description = "..."            # free text, ignored
    arch = "x86_64"                # x86_64 (default) or arm64
    page_size = 4096               # default 4096
    cache_line = 64                # default 64
    kernel_era = "3.16"            # default "3.16"; "4.7": arm64's ARCH_DMA_MINALIGN 128
    memory_cap = "1GiB"            # optional: scale memory down to this total
    threads_per_core = 2           # optional default for the nodes (default 1)
    distances = [[10, 21], [21, 10]]   # optional SLIT, rows/columns in node-id order

    [[node]]
    id = 0                         # default: the table's position (0, 1, ...)
    cpus = "0-11,24-35"            # Linux cpulist ("" for a CPU-less node), or a list
    memory = "512MiB"              # size string or bytes; 0 for a memoryless node
    package = 0                    # default: the node id
    threads_per_core = 2           # default: the top-level value
    smt_order = "blocked"          # "blocked" (default) or "adjacent"

hwloc synthetic string::

    synthetic = "package:2 numa:2 core:8 pu:2"
    memory = "1GiB"                # optional total, split evenly over the NUMA nodes

SMT mapping with ``[[node]]`` tables: a node's CPUs (sorted) are split into
``len(cpus) / threads_per_core`` cores.  ``blocked`` is how Linux numbers Intel and AMD
hyperthreads: the first core-count CPUs are thread 0 of each core and the next ones are
their siblings, so "0-11,24-35" with 2 threads per core makes CPUs 0 and 24 siblings.
``adjacent`` puts a core's threads next to each other (0,1 / 2,3 ...), as POWER does.
Core ids run on across nodes in node-id order.

Invariants: unknown keys (top level or in a node table) are errors naming the key, so a
typo cannot silently fall back to a default; every error names the file and the field
(``node[1].cpus``: the second ``[[node]]`` table); the result has passed `validate`.

`read_toml` is the file-reading step alone (unreadable file, bad TOML, not UTF-8 →
`ConfigError`), shared with the emulator's policy and scenario files.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cpulist import parse_cpulist
from .errors import ConfigError
from .model import Cpu, Node, Topology, assemble, scale_memory, validate
from .sizes import parse_size
from .synthetic import parse_synthetic

__all__ = ["load_toml", "parse_toml", "read_toml"]

_COMMON_KEYS = {"name", "description", "arch", "page_size", "cache_line", "memory_cap", "distances",
                "kernel_era"}
_NODE_FORM_KEYS = _COMMON_KEYS | {"node", "threads_per_core"}
_SYNTHETIC_FORM_KEYS = _COMMON_KEYS | {"synthetic", "memory"}
_NODE_KEYS = {"id", "cpus", "memory", "package", "threads_per_core", "smt_order"}


def _int(value: Any, source: str, field: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(source, field, "an integer", value)
    if value < minimum:
        raise ConfigError(source, field, f"an integer >= {minimum}", value)
    return value


def _str(value: Any, source: str, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(source, field, "a string", value)
    return value


def _distances(value: Any, source: str) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
        raise ConfigError(source, "distances", "a list of rows, e.g. [[10, 21], [21, 10]]", value)
    return tuple(tuple(_int(v, source, f"distances[{i}][{j}]") for j, v in enumerate(row))
                 for i, row in enumerate(value))


def _node_cpus(value: Any, source: str, field: str) -> tuple[int, ...]:
    if isinstance(value, str):
        return parse_cpulist(value, source=source, field=field)
    if isinstance(value, list):
        ids = [_int(v, source, field) for v in value]
        if len(set(ids)) != len(ids):
            raise ConfigError(source, field, "each CPU listed once", value)
        return tuple(sorted(ids))
    raise ConfigError(source, field, "a cpulist string such as '0-11,24-35' or a list of CPU ids",
                      value)


def parse_toml(data: dict[str, Any], *, source: str, default_name: str = "topology",
               memory_cap: int | None = None) -> Topology:
    """Build a Topology from already-decoded TOML; ``memory_cap`` overrides the file's."""
    synthetic = "synthetic" in data
    if synthetic and "node" in data:
        raise ConfigError(source, "synthetic", "either [[node]] tables or synthetic, not both")
    allowed = _SYNTHETIC_FORM_KEYS if synthetic else _NODE_FORM_KEYS
    for key in data:
        if key not in allowed:
            if key == "memory" and not synthetic:
                raise ConfigError(source, "memory", "memory inside each [[node]] table (a top-level "
                                  "memory total is only for synthetic topologies)")
            if key == "threads_per_core" and synthetic:
                raise ConfigError(source, "threads_per_core", "SMT given by the synthetic string's pu "
                                  "level (threads_per_core is only for [[node]] tables)")
            raise ConfigError(source, key, "a known key (" + ", ".join(sorted(allowed)) + ")")

    name = _str(data.get("name", default_name), source, "name")
    if "description" in data:
        _str(data["description"], source, "description")
    arch = _str(data.get("arch", "x86_64"), source, "arch")
    page_size = _int(data.get("page_size", 4096), source, "page_size", minimum=1)
    cache_line = _int(data.get("cache_line", 64), source, "cache_line", minimum=1)
    distances = _distances(data["distances"], source) if "distances" in data else None
    cap = memory_cap
    if cap is None and "memory_cap" in data:
        cap = parse_size(data["memory_cap"], source=source, field="memory_cap")
        if cap <= 0:
            raise ConfigError(source, "memory_cap", "a positive size", data["memory_cap"])

    if synthetic:
        text = _str(data["synthetic"], source, "synthetic")
        memory = None
        if "memory" in data:
            memory = parse_size(data["memory"], source=source, field="memory")
        try:
            topo = parse_synthetic(text, source=source, name=name, memory=memory, arch=arch,
                                   page_size=page_size, cache_line=cache_line)
        except ConfigError as e:
            if e.field == "memory":  # the top-level memory key
                raise
            raise e.relocated(field_prefix="synthetic: ") from None  # say which key holds it
        if distances is not None:
            topo = validate(replace(topo, distances=distances))
    else:
        topo = _explicit_nodes(data, source, name, arch, page_size, cache_line, distances)
    if "kernel_era" in data:
        topo = validate(replace(topo, kernel_era=_str(data["kernel_era"], source, "kernel_era")))
    if cap is not None:
        topo = scale_memory(topo, cap)
    return topo


def _explicit_nodes(data: dict[str, Any], source: str, name: str, arch: str, page_size: int,
                    cache_line: int, distances) -> Topology:
    tables = data.get("node")
    if tables is None:
        raise ConfigError(source, "node", "[[node]] tables (or a synthetic string)")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(source, "node", "an array of tables written [[node]]", tables)
    if not tables:
        raise ConfigError(source, "node", "at least one [[node]] table")
    default_tpc = _int(data.get("threads_per_core", 1), source, "threads_per_core", minimum=1)

    parsed = []
    seen: dict[int, int] = {}
    for i, table in enumerate(tables):
        here = f"node[{i}]"
        for key in table:
            if key not in _NODE_KEYS:
                raise ConfigError(source, f"{here}.{key}",
                                  "a known node key (" + ", ".join(sorted(_NODE_KEYS)) + ")")
        for key in ("cpus", "memory"):
            if key not in table:
                raise ConfigError(source, f"{here}.{key}", "a value (the key is missing)")
        node_id = _int(table.get("id", i), source, f"{here}.id")
        if node_id in seen:
            raise ConfigError(source, f"{here}.id", f"distinct node ids (node[{seen[node_id]}] "
                              f"already has id {node_id})", node_id)
        seen[node_id] = i
        cpus = _node_cpus(table["cpus"], source, f"{here}.cpus")
        memory = parse_size(table["memory"], source=source, field=f"{here}.memory")
        package = _int(table.get("package", node_id), source, f"{here}.package")
        tpc = _int(table.get("threads_per_core", default_tpc), source, f"{here}.threads_per_core",
                   minimum=1)
        order = table.get("smt_order", "blocked")
        if order not in ("blocked", "adjacent"):
            raise ConfigError(source, f"{here}.smt_order", "'blocked' or 'adjacent'", order)
        if len(cpus) % tpc:
            raise ConfigError(source, f"{here}.cpus",
                              f"a multiple of threads_per_core ({tpc}) CPUs", len(cpus))
        if memory % page_size:
            raise ConfigError(source, f"{here}.memory",
                              f"a multiple of the page size ({page_size})", table["memory"])
        parsed.append((node_id, cpus, memory, package, tpc, order, here))

    parsed.sort(key=lambda p: p[0])
    nodes, cpu_records = [], []
    owner: dict[int, str] = {}
    next_core = 0
    for node_id, cpus, memory, package, tpc, order, here in parsed:
        for c in cpus:
            if c in owner:
                raise ConfigError(source, f"{here}.cpus", "each CPU in exactly one node",
                                  f"CPU {c} is also in {owner[c]}")
            owner[c] = here
        ncores = len(cpus) // tpc
        for pos, c in enumerate(cpus):
            if order == "blocked":
                core, thread = pos % ncores, pos // ncores
            else:
                core, thread = pos // tpc, pos % tpc
            cpu_records.append(Cpu(c, node_id, package, next_core + core, thread))
        next_core += ncores
        nodes.append(Node(node_id, cpus, memory))
    return assemble(name=name, arch=arch, page_size=page_size, cache_line=cache_line,
                    nodes=nodes, distances=distances, cpus=cpu_records, source=source)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Decode a TOML file; ``what`` ("topology", "policy", ...) names the kind in the
    error.  An unreadable file, bad TOML or bad UTF-8 raises `ConfigError` whose source
    is ``str(path)``."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(source, "file", f"a readable {what} file", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "TOML", "valid TOML syntax", str(e)) from None
    except ValueError as e:  # not UTF-8
        raise ConfigError(source, "TOML", "a UTF-8 text file", str(e)) from None


def load_toml(path: str | Path, *, memory_cap: int | None = None) -> Topology:
    """Read and validate a topology TOML file."""
    data = read_toml(path, "topology")
    return parse_toml(data, source=str(path), default_name=Path(path).stem, memory_cap=memory_cap)
