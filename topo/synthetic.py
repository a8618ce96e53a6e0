"""hwloc synthetic topology strings ("package:2 numa:2 core:4 pu:2") → Topology.

Models the grammar and semantics of hwloc 2.x's synthetic backend
(hwloc/topology-synthetic.c, type names as hwloc_type_sscanf() in hwloc/traversal.c):

- Levels are separated by spaces (or newlines); each is ``type:arity`` — ``arity``
  objects of that type under every object of the level above — optionally followed by
  ``(attr attr ...)``.  The root (a Machine) is implicit; attributes in parentheses at
  the very start apply to it.  The last level is always the PUs (logical CPUs); its
  type may be omitted or must be ``pu``.
- Type names are matched case-insensitively on a prefix of at least two letters, in
  hwloc's order, so ``pa``/``pack``/``Package``/``socket`` are packages, ``co``/``core``
  cores, ``nu``/``no``/``numa``/``node``/``NUMANode`` NUMA nodes, ``di``/``die`` dies,
  ``gr``/``group`` groups, ``l1``..``l5`` (optionally ``d``/``u``/``i`` and a ``cache``
  suffix: ``L2Cache``, ``l1d``, ``L1iCache``) caches; ``Tile``/``Module`` (exact case)
  are groups; ``pu`` is the PU.  ``p`` alone is ambiguous and rejected, as are
  ``machine``, I/O and Misc types, and anything else.
- Arities are C ``strtoul(…, 0)`` numbers: decimal, ``0x`` hex or leading-``0`` octal;
  zero is rejected.
- Only numbers ("2 4 2"): hwloc picks the types of the intermediate levels itself, in
  priority NUMA, package, core, then up to four caches (L2, L1d, L3, L1i), then groups,
  and orders them groups, package, NUMA, caches, core.  So "2 4 2" is
  ``package:2 numa:4 pu:2`` and "2 3 4 5 6" is
  ``package:2 numa:3 l2:4 core:5 pu:6`` (hwloc's documented example).  Typed and
  untyped intermediate levels cannot be mixed.
- At most one level each of PU, package, die, core and NUMA.
- NUMA nodes are either a normal level (``numa:2``: each object above gets that many
  nodes, each covering its share of the PUs), or attached with the hwloc 2.x
  ``[numa]`` token after a level: ``pack:2 [numa] core:4 pu:2`` gives every package one
  NUMA node; ``[numa] [numa]`` gives two; a ``[numa]`` first attaches to the Machine.
  Both forms at once is an error.  Without either, hwloc adds one NUMA node for the
  whole machine.
- Attributes: ``memory=SIZE`` (non-cache levels and ``[numa(memory=…)]``; hwloc units:
  kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024, a bare number is
  bytes), ``size=SIZE`` (caches), ``memorysidecachesize=SIZE`` and ``indexes=…``: an
  explicit comma list of OS indexes for every object of the level, or hwloc's
  interleaving (``indexes=core:pack`` or ``indexes=2*4:1*2``).

Semantics for slabemu: PUs are numbered in hwloc's logical (depth-first) order unless a
``pu`` level gives ``indexes=``; a PU's node is its NUMA-level ancestor or the first NUMA
node attached to its deepest ancestor that has attachments (further attached nodes are
CPU-less, as HBM/CXL nodes are in Linux); its package is its package ancestor's index
(0 when there is no package level); its core is its core ancestor's index and its thread
its position inside that core (without a core level every PU is a single-thread core).
Node ids, package ids and core ids are hwloc's OS indexes (logical order unless
``indexes=`` says otherwise; attached nodes are numbered in hwloc's insertion order,
children before parents).  Caches, dies and groups are accepted and ignored.

Where slabemu differs from hwloc, on purpose:
- a NUMA node without ``memory=`` gets 256 MiB (hwloc: 1 GiB), so that small
  emulations fit in RAM; sizes are rounded down to a whole number of pages;
- errors hwloc ignores (it prints a warning or silently drops the attribute) are
  errors here: unknown attributes, malformed ``indexes=``, a type not immediately
  followed by ``:`` ("pack 2" — hwloc looks for the next colon anywhere);
- hwloc synthetic strings cannot express distances; the default 10/20 matrix is used
  unless the caller (a TOML file) supplies one;
- at most 8192 PUs and 1024 NUMA nodes (Linux NR_CPUS / MAX_NUMNODES).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ConfigError
from .model import MAX_CPUS, MAX_NODES, Cpu, Node, Topology, assemble
from .sizes import MiB

__all__ = ["parse_synthetic", "DEFAULT_NODE_MEMORY"]

DEFAULT_NODE_MEMORY = 256 * MiB
_MAX_LEVELS = 127  # HWLOC_SYNTHETIC_MAX_DEPTH (128) minus the root

_SPACE = " \t\n\r"


@dataclass
class _Attrs:
    memory: int = 0
    indexes: str | None = None


@dataclass
class _Level:
    kind: str           # machine, numa, package, die, core, pu, group, l1..l5, l1i..l3i, none
    arity: int          # objects of this level under each object of the level above
    token: str          # as written, for error messages
    attrs: _Attrs = field(default_factory=_Attrs)
    attached: list[tuple[_Attrs, str]] = field(default_factory=list)  # [numa] tokens after it


# -- type names (hwloc_type_sscanf) -------------------------------------------------------

def _type_match(s: str, t: str, minmatch: int) -> int | None:
    """hwloc__type_match(): does ``s`` start with at least ``minmatch`` letters of ``t``?

    Returns where the type name ends in ``s`` (at a non-letter), or None.
    """
    i = 0
    while True:
        if i == len(s):
            return i if i >= minmatch else None
        ch = s[i]
        tc = t[i] if i < len(t) else ""
        if ch != tc and ch != tc.upper():
            if ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ch == "-":
                return None
            return i if i >= minmatch else None
        i += 1


_PLAIN_TYPES = (  # (name, minimum prefix, kind) in hwloc's matching order
    ("osdev", 2, "io"), ("block", 4, "io"), ("network", 3, "io"), ("openfabrics", 7, "io"),
    ("dma", 3, "io"), ("gpu", 3, "io"), ("coproc", 5, "io"), ("co-processor", 6, "io"),
    ("machine", 2, "machine"), ("numanode", 2, "numa"), ("node", 2, "numa"),
    ("memcache", 5, "memcache"), ("memory-side cache", 8, "memcache"),
    ("package", 2, "package"), ("socket", 2, "package"), ("die", 2, "die"),
    ("core", 2, "core"), ("pu", 2, "pu"), ("misc", 4, "misc"),
    ("bridge", 4, "io"), ("hostbridge", 6, "io"), ("pcibridge", 5, "io"), ("pcidev", 3, "io"),
)


def _scan_type(name: str) -> str | None:
    """The kind of an hwloc type name, or None when hwloc_type_sscanf() would fail."""
    for t, minmatch, kind in _PLAIN_TYPES:
        if _type_match(name, t, minmatch) is not None:
            return kind
    if len(name) >= 2 and name[0] in "lL" and name[1].isdigit():
        m = re.match(r"\d+", name[1:])
        depth = int(m.group(0))
        rest = name[1 + len(m.group(0)):]
        if rest[:1] in ("i", "I"):
            if not 1 <= depth <= 3:
                return None
            kind, rest = f"l{depth}i", rest[1:]
        else:
            if not 1 <= depth <= 5:
                return None
            kind = f"l{depth}"  # data and unified caches are one hwloc type per depth
            if rest[:1] in ("d", "D", "u", "U"):
                rest = rest[1:]
        if _type_match(rest, "cache", 0) is None:
            return None
        return kind
    if _type_match(name, "group", 2) is not None:
        return "group"
    return None


_TYPE_HELP = ("an hwloc object type (package/pack/socket, numa/numanode/node, die, group, "
              "l1..l5 caches, core, pu)")


# -- numbers and attributes ---------------------------------------------------------------

_STRTOUL = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _strtoul(text: str) -> tuple[int, int] | None:
    """C strtoul(text, &end, 0) on a leading unsigned number: (value, length) or None."""
    m = _STRTOUL.match(text)
    if not m:
        return None
    digits = m.group(0)
    if digits[:2] in ("0x", "0X"):
        return int(digits[2:], 16), len(digits)
    if digits.startswith("0"):
        return int(digits, 8), len(digits)
    return int(digits), len(digits)


_MEM_SUFFIXES = (("tib", 1 << 40), ("tb", 10 ** 12), ("gib", 1 << 30), ("gb", 10 ** 9),
                 ("mib", 1 << 20), ("mb", 10 ** 6), ("kib", 1 << 10), ("kb", 10 ** 3))


def _parse_memory(text: str, source: str, token: str) -> int:
    """hwloc_synthetic_parse_memory_attr(): a number and an optional hwloc unit."""
    num = _strtoul(text)
    if num is None:
        raise ConfigError(source, token, "a size such as 1073741824, 64MB or 1GiB", text)
    value, n = num
    rest = text[n:]
    for suffix, mult in _MEM_SUFFIXES:
        if rest.lower() == suffix:
            return value * mult
    if rest:
        raise ConfigError(source, token, "a size unit kB, KiB, MB, MiB, GB, GiB, TB or TiB", text)
    return value


def _parse_attrs(body: str, kind: str, source: str, token: str) -> _Attrs:
    """The inside of ``(...)``: space-separated key=value attributes."""
    attrs = _Attrs()
    iscache = kind.startswith("l")
    for item in body.split(" "):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(source, token, "attributes of the form key=value", item)
        if key == "memory" and not iscache:
            attrs.memory = _parse_memory(value, source, token)
        elif key == "size" and iscache:
            _parse_memory(value, source, token)  # cache sizes do not matter to slabemu
        elif key == "memorysidecachesize":
            _parse_memory(value, source, token)
        elif key == "indexes":
            if not value:
                raise ConfigError(source, token, "a value after indexes=", item)
            attrs.indexes = value
        else:
            allowed = "size=, indexes=" if iscache else "memory=, indexes=, memorysidecachesize="
            raise ConfigError(source, token, f"a known attribute ({allowed})", item)
    return attrs


# -- the string ---------------------------------------------------------------------------

def _word_at(text: str, pos: int) -> str:
    end = pos
    while end < len(text) and text[end] not in _SPACE:
        end += 1
    return text[pos:end] or text[pos:pos + 1]


def _parse_levels(text: str, source: str) -> list[_Level]:
    levels = [_Level("machine", 1, "(root)")]
    pos = 0
    if text.startswith("("):
        close = text.find(")")
        if close < 0:
            raise ConfigError(source, _word_at(text, 0), "a closing ')' after the root attributes")
        levels[0].attrs = _parse_attrs(text[1:close], "machine", source, text[:close + 1])
        pos = close + 1
    while True:
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        if pos >= len(text):
            break
        word = _word_at(text, pos)
        if text[pos] == "[":
            close = text.find("]", pos)
            if close < 0:
                raise ConfigError(source, word, "a closing ']' after an attached NUMA node")
            inner = text[pos + 1:close]
            token = text[pos:close + 1]
            name_end = inner.index("(") if "(" in inner else len(inner)
            kind = _scan_type(inner[:name_end])
            if kind != "numa":
                raise ConfigError(source, token, "[numa] (only NUMA nodes can be attached)", inner)
            attrs = _Attrs()
            if name_end < len(inner):
                if not inner.endswith(")"):
                    raise ConfigError(source, token, "[numa(attributes)]", inner)
                attrs = _parse_attrs(inner[name_end + 1:-1], "numa", source, token)
            levels[-1].attached.append((attrs, token))
            pos = close + 1
            continue

        kind = "none"
        start = pos
        if not text[pos].isdigit():
            colon = text.find(":", pos)
            name = text[pos:colon] if colon >= 0 else word
            if colon < 0 or any(ch in _SPACE + "([" for ch in name):
                raise ConfigError(source, word, "type:number, e.g. core:4")
            kind = _scan_type(name) or ("group" if name.startswith(("Tile", "Module")) else "")
            if not kind:
                raise ConfigError(source, word, _TYPE_HELP, name)
            if kind in ("machine", "io", "misc", "memcache"):
                raise ConfigError(source, word,
                                  "a level type allowed in synthetic strings (not machine, "
                                  "Misc, I/O or memory-side caches)", name)
            pos = colon + 1
        num = _strtoul(text[pos:])
        if num is None:
            raise ConfigError(source, word, "a number of objects after the type", text[pos:pos + 8] or "")
        arity, n = num
        if arity == 0:
            raise ConfigError(source, word, "a positive number of objects", 0)
        pos += n
        level = _Level(kind, arity, text[start:pos])
        if pos < len(text) and text[pos] == "(":
            close = text.find(")", pos)
            if close < 0:
                raise ConfigError(source, word, "a closing ')' after the attributes")
            level.attrs = _parse_attrs(text[pos + 1:close], kind, source, text[start:close + 1])
            pos = close + 1
            level.token = text[start:pos]
        levels.append(level)
        if len(levels) - 1 > _MAX_LEVELS:
            raise ConfigError(source, word, f"at most {_MAX_LEVELS} levels")
        width = 1
        for lv in levels[1:]:
            width *= lv.arity
        if width > MAX_CPUS:
            raise ConfigError(source, level.token,
                              f"at most {MAX_CPUS} objects per level (Linux NR_CPUS)", width)
    return levels


def _assign_implicit_types(levels: list[_Level], source: str) -> None:
    """hwloc's rules for the last level and for untyped ("2 4 2") intermediate levels."""
    last = levels[-1]
    if len(levels) == 1:
        raise ConfigError(source, "(empty)",
                          "at least one level, ending with the PUs (e.g. 'core:4 pu:2')")
    if last.kind not in ("none", "pu"):
        raise ConfigError(source, last.token, "the last level to be the PUs (pu:N or a bare number)",
                          last.kind)
    last.kind = "pu"
    middle = levels[1:-1]
    unset = [lv for lv in middle if lv.kind == "none"]
    if unset and len(unset) != len(middle):
        raise ConfigError(source, unset[0].token, "typed levels throughout, or only numbers "
                          "(types cannot be mixed with bare arities)")
    attached = any(lv.attached for lv in levels)
    if unset:
        count = len(middle)
        neednuma = 1 if count >= 1 and not attached else 0
        count -= neednuma
        needpack = 1 if count >= 1 else 0
        count -= needpack
        needcore = 1 if count >= 1 else 0
        count -= needcore
        needcaches = min(count, 4)
        count -= needcaches
        needgroups = count
        kinds = ["group"] * needgroups + ["package"] * needpack + ["numa"] * neednuma
        kinds += {0: [], 1: ["l2"], 2: ["l2", "l1"], 3: ["l3", "l2", "l1"],
                  4: ["l3", "l2", "l1", "l1i"]}[needcaches]
        kinds += ["core"] * needcore
        for lv, kind in zip(middle, kinds):
            lv.kind = kind

    for kind, what in (("pu", "PU"), ("package", "package"), ("die", "die"), ("numa", "NUMA node"),
                       ("core", "core")):
        same = [lv for lv in levels if lv.kind == kind]
        if len(same) > 1:
            raise ConfigError(source, same[1].token, f"at most one {what} level")
    numa_levels = [lv for lv in levels if lv.kind == "numa"]
    if numa_levels and attached:
        first_attached = next(tok for lv in levels for _, tok in lv.attached)
        raise ConfigError(source, first_attached,
                          "NUMA nodes either as a level (numa:N) or attached ([numa]), not both")


# -- indexes= ---------------------------------------------------------------------------

def _index_array(spec: str, total: int, widths: list[int], kinds: list[str], depth: int,
                 source: str, token: str) -> list[int]:
    """OS indexes for the ``total`` objects of one level (hwloc_synthetic_process_indexes)."""
    if all(ch in "0123456789," for ch in spec):
        parts = spec.split(",")
        if any(not p for p in parts) or len(parts) != total:
            raise ConfigError(source, token, f"indexes= with exactly {total} comma-separated numbers",
                              spec)
        values = [int(p) for p in parts]
        if len(set(values)) != total:
            raise ConfigError(source, token, "distinct indexes", spec)
        return values

    loops: list[tuple[int, int]] = []
    if spec[0].isdigit():
        for part in spec.split(":"):
            m = re.fullmatch(r"(\d+)\*(\d+)", part)
            if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
                raise ConfigError(source, token, "interleaving loops step*count, e.g. 2*4:1*2", spec)
            loops.append((int(m.group(1)), int(m.group(2))))
    else:
        loop_depths: list[int] = []
        for part in spec.split(":"):
            kind = _scan_type(part)
            found = [d for d in range(depth) if kind is not None and kinds[d] == kind]
            if kind is None or not found:
                raise ConfigError(source, token, "interleaving by types of levels above this one", part)
            if found[0] in loop_depths:
                raise ConfigError(source, token, "each level once in an interleaving", part)
            loop_depths.append(found[0])
        for d in loop_depths:
            if total % widths[d]:
                raise ConfigError(source, token, f"levels whose objects divide the {total} "
                                  "objects being numbered", spec)
            prev = max((x for x in loop_depths if x < d), default=0)
            loops.append((total // widths[d], widths[d] // widths[prev]))
    product = 1
    for _, nb in loops:
        product *= nb
    if product != total:
        minstep = min([total] + [step for step, _ in loops])
        if total % product == 0 and minstep == total // product:
            loops.append((1, total // product))
        else:
            raise ConfigError(source, token, f"an interleaving covering the {total} objects", spec)
    values = [0] * total
    mul = 1
    for step, nb in loops:
        for j in range(total):
            values[j] += ((j // step) % nb) * mul
        mul *= nb
    if sorted(values) != list(range(total)):
        raise ConfigError(source, token, "an interleaving that numbers each object once", spec)
    return values


# -- building the topology ------------------------------------------------------------------

def parse_synthetic(text: str, *, source: str | None = None, name: str = "synthetic",
                    memory: int | None = None, arch: str = "x86_64", page_size: int = 4096,
                    cache_line: int = 64,
                    distances: tuple[tuple[int, ...], ...] | None = None) -> Topology:
    """Build a validated Topology from an hwloc synthetic string.

    ``memory``: total bytes split evenly over the NUMA nodes (exclusive with ``memory=``
    attributes in the string).  ``source`` names the string in errors; by default
    ``synthetic "<text>"``.  ``distances``: a SLIT in node-id order (default 10/20).
    """
    if not isinstance(text, str):
        raise ConfigError(source or "synthetic", "synthetic", "an hwloc synthetic string", text)
    src = source if source is not None else f'synthetic "{text.strip()}"'
    levels = _parse_levels(text.strip(), src)
    _assign_implicit_types(levels, src)
    if not any(lv.kind == "numa" or lv.attached for lv in levels):
        # hwloc enforces a NUMA level: one node right below the Machine
        levels.insert(1, _Level("numa", 1, "(implicit NUMA node)"))

    kinds = [lv.kind for lv in levels]
    widths = [1]
    for lv in levels[1:]:
        widths.append(widths[-1] * lv.arity)
    total_pus = widths[-1]

    index_cache: dict[int, list[int]] = {}

    def os_index(depth: int, logical: int) -> int:
        lv = levels[depth]
        if lv.attrs.indexes is None:
            return logical
        if depth not in index_cache:
            index_cache[depth] = _index_array(lv.attrs.indexes, widths[depth], widths, kinds, depth,
                                              src, lv.token)
        return index_cache[depth][logical]

    # Validate every indexes= even on levels slabemu ignores (caches, groups, dies).
    for d in range(1, len(levels)):
        if levels[d].attrs.indexes is not None:
            os_index(d, 0)

    # NUMA nodes: (id, memory attribute, token); owners of attached nodes → first node id
    numa_nodes: list[tuple[int, int, str]] = []
    cpu_node_of_owner: dict[tuple[int, int], int] = {}
    numa_depth = kinds.index("numa") if "numa" in kinds else None
    attached_total = sum(widths[d] * len(levels[d].attached) for d in range(len(levels)))
    if numa_depth is not None:
        if widths[numa_depth] > MAX_NODES:
            raise ConfigError(src, levels[numa_depth].token, f"at most {MAX_NODES} NUMA nodes",
                              widths[numa_depth])
        for logical in range(widths[numa_depth]):
            numa_nodes.append((os_index(numa_depth, logical), levels[numa_depth].attrs.memory,
                               levels[numa_depth].token))
    else:
        if attached_total > MAX_NODES:
            raise ConfigError(src, "[numa]", f"at most {MAX_NODES} NUMA nodes", attached_total)
        attach_specs = [a.indexes for lv in levels for a, _ in lv.attached if a.indexes is not None]
        attach_ids = None
        if attach_specs:
            # hwloc keeps one indexes= for all attached nodes: the last one given wins
            attach_ids = _index_array(attach_specs[-1], attached_total, widths, kinds, len(levels),
                                      src, "[numa]")
        counter = 0

        def visit(depth: int, logical: int) -> None:
            nonlocal counter
            if depth + 1 < len(levels):
                arity = levels[depth + 1].arity
                for child in range(arity):
                    visit(depth + 1, logical * arity + child)
            for nth, (attrs, token) in enumerate(levels[depth].attached):
                node_id = attach_ids[counter] if attach_ids is not None else counter
                counter += 1
                numa_nodes.append((node_id, attrs.memory, token))
                if nth == 0:
                    cpu_node_of_owner[(depth, logical)] = node_id

        visit(0, 0)

    # memory per node
    if memory is not None and any(mem for _, mem, _ in numa_nodes):
        raise ConfigError(src, "memory", "memory either in the synthetic string (memory=) or as a "
                          "total, not both")
    if memory is not None:
        share = (memory // len(numa_nodes)) // page_size * page_size
        if share <= 0:
            raise ConfigError(src, "memory", f"at least one {page_size}-byte page per NUMA node", memory)
        sizes = [share] * len(numa_nodes)
    else:
        sizes = []
        for _, mem, token in numa_nodes:
            size = (mem or DEFAULT_NODE_MEMORY) // page_size * page_size
            if size <= 0:
                raise ConfigError(src, token, f"memory= of at least one page ({page_size} bytes)", mem)
            sizes.append(size)

    # CPUs
    pkg_depth = kinds.index("package") if "package" in kinds else None
    core_depth = kinds.index("core") if "core" in kinds else None
    attach_depths = [d for d in range(len(levels)) if levels[d].attached]
    pu_depth = len(levels) - 1
    cpus: list[Cpu] = []
    node_cpus: dict[int, list[int]] = {node_id: [] for node_id, _, _ in numa_nodes}
    for p in range(total_pus):
        def ancestor(depth: int) -> int:
            return p // (total_pus // widths[depth])
        cpu_id = os_index(pu_depth, p)
        if numa_depth is not None:
            node = os_index(numa_depth, ancestor(numa_depth))
        else:
            deepest = attach_depths[-1]
            node = cpu_node_of_owner[(deepest, ancestor(deepest))]
        package = os_index(pkg_depth, ancestor(pkg_depth)) if pkg_depth is not None else 0
        if core_depth is not None:
            core = os_index(core_depth, ancestor(core_depth))
            thread = p % (total_pus // widths[core_depth])
        else:
            core, thread = p, 0
        cpus.append(Cpu(cpu_id, node, package, core, thread))
        node_cpus[node].append(cpu_id)

    ids = [node_id for node_id, _, _ in numa_nodes]
    if len(set(ids)) != len(ids):  # pragma: no cover - _index_array guarantees distinctness
        raise ConfigError(src, "numa", "distinct NUMA node indexes", ids)
    nodes = sorted((Node(node_id, tuple(sorted(node_cpus[node_id])), size)
                    for (node_id, _, _), size in zip(numa_nodes, sizes)), key=lambda n: n.id)
    return assemble(name=name, arch=arch, page_size=page_size, cache_line=cache_line,
                    nodes=nodes, distances=distances, cpus=cpus, source=src)
