"""`numactl --hardware` text → Topology.

Models the report numactl prints (numactl.c, hardware()):

    available: 2 nodes (0-1)
    node 0 cpus: 0 1 2 3 4 5 6 7 8 9 10 11 24 25 ...
    node 0 size: 64291 MB
    node 0 free: 61502 MB
    ...
    node distances:
    node   0   1
      0:  10  21
      1:  21  10

Accepted variations: text pasted from a terminal (a shell prompt, the command line,
anything before ``available:`` or after the distance table is skipped); sparse node ids
("available: 2 nodes (0,2)"); CPU-less nodes (``node 2 cpus:`` with nothing after it);
memoryless nodes (``size: 0 MB``; ``<not available>`` reads as 0); the
``--cpu-compress`` form ``node 0 cpus: 0-11,24-35 (24)``; sizes in kB, MB or GB;
``No distance information available.`` instead of a table (the default 10/20 matrix is
used).  ``free:`` lines are ignored.  numactl's "MB" are MiB (it prints bytes >> 20).

Invariants: every node listed on the ``available:`` line must have a ``cpus:`` and a
``size:`` line, no other node may appear, and a distance table must have one row and
one column per node, in any order.  numactl says nothing about packages, cores or SMT,
so every node is its own package and every CPU its own single-threaded core (documented
loss of information; use a TOML file or the host loader for SMT).  numactl does not
print the architecture or page size either: they are parameters (x86_64, 4096 by
default).  The memory cap (``DEFAULT_MEMORY_CAP``, 1 GiB, unless given) is applied with
`scale_memory`, after sizes are rounded down to whole pages.
"""

from __future__ import annotations

import re
from pathlib import Path

from .cpulist import parse_cpulist
from .errors import ConfigError
from .model import Cpu, Node, Topology, default_distances, scale_memory, validate
from .sizes import GiB, KiB, MiB

__all__ = ["parse_numactl", "load_numactl", "DEFAULT_MEMORY_CAP"]

DEFAULT_MEMORY_CAP = 1 * GiB

_AVAILABLE = re.compile(r"^\s*available:\s*(\d+)\s+nodes?\s*\(([^)]*)\)\s*$")
_CPUS = re.compile(r"^\s*node\s+(\d+)\s+cpus:(.*)$")
_SIZE = re.compile(r"^\s*node\s+(\d+)\s+size:\s*(.*?)\s*$")
_FREE = re.compile(r"^\s*node\s+(\d+)\s+free:")
_DIST_HEADER = re.compile(r"^\s*node\s+distances:\s*$")
_DIST_COLUMNS = re.compile(r"^\s*node((?:\s+\d+)+)\s*$")
_DIST_ROW = re.compile(r"^\s*(\d+):((?:\s+\d+)+)\s*$")
_NO_DIST = re.compile(r"^\s*No distance information available\.?\s*$")
_SIZE_VALUE = re.compile(r"^(\d+)\s*(kB|KB|MB|GB)$")
_UNIT = {"kB": KiB, "KB": KiB, "MB": MiB, "GB": GiB}


def _parse_cpus(rest: str, source: str, field: str) -> tuple[int, ...]:
    body = rest.strip()
    m = re.fullmatch(r"(.*?)\s*\((\d+)\)", body)
    if m:  # --cpu-compress: "0-11,24-35 (24)"
        ranges = ",".join(x for x in re.split(r"[,\s]+", m.group(1)) if x)
        cpus = parse_cpulist(ranges, source=source, field=field)
        if len(cpus) != int(m.group(2)):
            raise ConfigError(source, field, f"{m.group(2)} CPUs as the count in parentheses says",
                              body)
        return cpus
    if not body:
        return ()
    words = body.split()
    if not all(w.isdigit() for w in words):
        raise ConfigError(source, field, "CPU numbers separated by spaces", body)
    ids = [int(w) for w in words]
    if len(set(ids)) != len(ids):
        raise ConfigError(source, field, "each CPU listed once", body)
    return tuple(sorted(ids))


def parse_numactl(text: str, *, source: str = "numactl", name: str = "numactl",
                  arch: str = "x86_64", page_size: int = 4096, cache_line: int = 64,
                  memory_cap: int | None = DEFAULT_MEMORY_CAP) -> Topology:
    """Parse the text of ``numactl --hardware``; ``memory_cap=None`` keeps the real sizes."""
    if not isinstance(text, str):
        raise ConfigError(source, "text", "the text printed by numactl --hardware", type(text).__name__)
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        m = _AVAILABLE.match(line)
        if m:
            start = i
            break
    if start is None:
        raise ConfigError(source, "available", "an 'available: N nodes (...)' line as numactl "
                          "--hardware prints first")
    count = int(m.group(1))
    node_ids = parse_cpulist(m.group(2).replace(" ", ""), source=source,
                             field=f"line {start + 1} (available)")
    if len(node_ids) != count:
        raise ConfigError(source, f"line {start + 1} (available)",
                          f"{count} node ids in parentheses", m.group(2))
    wanted = set(node_ids)

    cpus: dict[int, tuple[int, ...]] = {}
    sizes: dict[int, int] = {}
    distances: dict[int, list[int]] | None = None
    columns: list[int] = []
    i = start + 1
    while i < len(lines):
        line = lines[i]
        where = f"line {i + 1}"
        m_cpus, m_size = _CPUS.match(line), _SIZE.match(line)
        if m_cpus or m_size:
            node = int((m_cpus or m_size).group(1))
            if node not in wanted:
                raise ConfigError(source, where, f"only nodes listed on the available: line "
                                  f"({','.join(map(str, node_ids))})", node)
            if m_cpus:
                if node in cpus:
                    raise ConfigError(source, where, f"one 'node {node} cpus:' line", line.strip())
                cpus[node] = _parse_cpus(m_cpus.group(2), source, f"{where} (node {node} cpus)")
            else:
                if node in sizes:
                    raise ConfigError(source, where, f"one 'node {node} size:' line", line.strip())
                raw = m_size.group(2)
                if raw == "<not available>":
                    sizes[node] = 0
                else:
                    sm = _SIZE_VALUE.match(raw)
                    if not sm:
                        raise ConfigError(source, f"{where} (node {node} size)",
                                          "a size such as '64291 MB'", raw)
                    sizes[node] = int(sm.group(1)) * _UNIT[sm.group(2)]
        elif _FREE.match(line):
            pass
        elif _NO_DIST.match(line):
            distances = None
        elif _DIST_HEADER.match(line):
            i += 1
            cm = _DIST_COLUMNS.match(lines[i]) if i < len(lines) else None
            if not cm:
                raise ConfigError(source, f"line {i + 1}", "a 'node 0 1 ...' header under "
                                  "'node distances:'", lines[i].strip() if i < len(lines) else "")
            columns = [int(w) for w in cm.group(1).split()]
            if sorted(columns) != sorted(node_ids) or len(set(columns)) != len(columns):
                raise ConfigError(source, f"line {i + 1} (distance columns)",
                                  f"one column per node ({','.join(map(str, node_ids))})",
                                  " ".join(map(str, columns)))
            distances = {}
            while i + 1 < len(lines) and _DIST_ROW.match(lines[i + 1]):
                i += 1
                rm = _DIST_ROW.match(lines[i])
                row_node = int(rm.group(1))
                values = [int(w) for w in rm.group(2).split()]
                if row_node not in wanted or row_node in distances:
                    raise ConfigError(source, f"line {i + 1} (distances)",
                                      "one row per node", row_node)
                if len(values) != len(columns):
                    raise ConfigError(source, f"line {i + 1} (node {row_node} distances)",
                                      f"{len(columns)} distances", len(values))
                distances[row_node] = values
            if len(distances) != len(node_ids):
                raise ConfigError(source, "node distances",
                                  f"a row for each of the {len(node_ids)} nodes", len(distances))
            break  # the table is the end of the report; whatever follows is not ours
        i += 1

    for node in node_ids:
        if node not in cpus:
            raise ConfigError(source, f"node {node}", f"a 'node {node} cpus:' line")
        if node not in sizes:
            raise ConfigError(source, f"node {node}", f"a 'node {node} size:' line")

    nodes = tuple(Node(n, cpus[n], sizes[n] // page_size * page_size) for n in node_ids)
    cpu_records = sorted((Cpu(c, n.id, n.id, c, 0) for n in nodes for c in n.cpus), key=lambda c: c.id)
    if distances is None:
        matrix = default_distances(len(nodes))
    else:
        col = {node: j for j, node in enumerate(columns)}
        matrix = tuple(tuple(distances[a][col[b]] for b in node_ids) for a in node_ids)
    topo = validate(Topology(name=name, arch=arch, page_size=page_size, cache_line=cache_line,
                             nodes=nodes, distances=matrix, cpus=tuple(cpu_records), source=source))
    if memory_cap is not None:
        topo = scale_memory(topo, memory_cap)
    return topo


def load_numactl(path: str | Path, *, memory_cap: int | None = DEFAULT_MEMORY_CAP,
                 arch: str = "x86_64", page_size: int = 4096, cache_line: int = 64) -> Topology:
    """Read a file holding ``numactl --hardware`` output (``-`` reads standard input)."""
    if str(path) == "-":
        import sys
        text, source, name = sys.stdin.read(), "<stdin>", "numactl"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise ConfigError(str(path), "file", "a readable numactl --hardware dump",
                              e.strerror or str(e)) from None
        source, name = str(path), p.stem
    return parse_numactl(text, source=source, name=name, arch=arch, page_size=page_size,
                         cache_line=cache_line, memory_cap=memory_cap)
