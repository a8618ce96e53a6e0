"""/proc/slabinfo, version 2.1: rows, formatting, parsing, and the boot caches' rows.

Models mm/slab_common.c (3.16): print_slabinfo_header() and cache_show(), whose format is

    "%-17s %6lu %6lu %6u %4u %4d" : tunables "%4u %4u %4u" : slabdata "%6lu %6lu %6lu"

with name, active_objs, num_objs, objsize (s->size, the object stride), objperslab,
pagesperslab (1 << order); the SLAB tunables limit, batchcount, sharedfactor (SLUB prints
zeros); active_slabs, num_slabs, sharedavail.  s_show() lists slab_caches from its head,
and every new cache is list_add()ed there, so the most recently created cache comes first.

Memcg child caches are named as memcg_create_kmem_cache() names them,
"<root>(<memcg cache id>:<cgroup name>)".  In 3.16 /proc/slabinfo shows root caches only,
each with its children's counts added in (memcg_accumulate_slabinfo(); see
`fold_memcg_children`); a memcg's memory.kmem.slabinfo shows its own children, same
format.  `format_slabinfo` prints the rows it is given, so it serves both.

A row carries the summary.json cache keys of docs/design.md §11 (name, memcg, dead,
active_objs, num_objs, objsize, objperslab, pagesperslab, active_slabs, num_slabs) plus
limit, batchcount, sharedfactor and sharedavail.  ``memcg`` is the cgroup name of a child
cache (None for a root cache); ``dead`` is only printed, as a trailing " : dead", with
``extended=True``: plain output stays byte-compatible with the kernel's, so scripts that
read /proc/slabinfo read it.

Row building (`SlabinfoRow.from_geometry`, `boot_slabinfo_rows`) is kept apart from
formatting: the boot rows carry the geometry with zero object and slab counts, and the
live emulator replaces the counts with those of the booted emulated kernel.
`created_slabinfo_rows` adds named caches as kmem_cache_create() would (SLUB merging by
kernel/merge.py's find_mergeable, as the booted model does: a merged name is no line of
its own, as in the kernel), and `format_aliases` prints the merges as tools/vm/slabinfo -a.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping

from ..kernel.geometry import (
    MachineParams,
    SlabGeometry,
    SlubGeometry,
    boot_geometries,
    cache_geometry,
)
from ..kernel.merge import UNMERGEABLE_BOOT_CACHES, find_mergeable

__all__ = ["SlabinfoRow", "ROW_KEYS", "VERSION_LINE", "HEADER_LINE", "DEAD_MARKER",
           "format_row", "format_slabinfo", "parse_slabinfo", "fold_memcg_children",
           "boot_slabinfo_rows", "created_slabinfo_rows", "format_aliases",
           "kernel_slabinfo_rows", "split_memcg_name"]

VERSION_LINE = "slabinfo - version: 2.1"
HEADER_LINE = ("# name            <active_objs> <num_objs> <objsize> <objperslab> "
               "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata "
               "<active_slabs> <num_slabs> <sharedavail>")
DEAD_MARKER = " : dead"

_COUNT_KEYS = ("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab",
               "active_slabs", "num_slabs", "limit", "batchcount", "sharedfactor",
               "sharedavail")
ROW_KEYS = ("name", "memcg", "dead") + _COUNT_KEYS
# The numbers of a line, in the order cache_show() prints them.
_LINE_KEYS = ("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab", "limit",
              "batchcount", "sharedfactor", "active_slabs", "num_slabs", "sharedavail")

_MEMCG_NAME = re.compile(r"^(?P<root>.+)\((?P<id>\d+):(?P<cgroup>[^()]*)\)$")


def split_memcg_name(name: str) -> tuple[str, int, str] | None:
    """(root name, memcg cache id, cgroup name) of a memcg child cache's name, else None."""
    m = _MEMCG_NAME.match(name)
    if m is None:
        return None
    return m["root"], int(m["id"]), m["cgroup"]


@dataclass(frozen=True)
class SlabinfoRow:
    """One /proc/slabinfo line (see the module docstring for the fields)."""

    name: str
    active_objs: int = 0
    num_objs: int = 0
    objsize: int = 0
    objperslab: int = 0
    pagesperslab: int = 0
    active_slabs: int = 0
    num_slabs: int = 0
    limit: int = 0
    batchcount: int = 0
    sharedfactor: int = 0
    sharedavail: int = 0
    memcg: str | None = None
    dead: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() and c != " "
                                                                    for c in self.name):
            raise ValueError(f"slabinfo row: bad cache name {self.name!r}")
        for key in _COUNT_KEYS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"slabinfo row {self.name!r}: {key} must be an integer "
                                 f">= 0, not {v!r}")

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "SlabinfoRow":
        """From a dict with the row keys (extra keys, e.g. "geometry", are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in m.items() if k in names})

    @classmethod
    def from_geometry(cls, geom: SlubGeometry | SlabGeometry, *, name: str | None = None,
                      memcg: str | None = None, dead: bool = False, active_objs: int = 0,
                      num_objs: int = 0, active_slabs: int = 0, num_slabs: int = 0,
                      sharedavail: int = 0) -> "SlabinfoRow":
        """A row for a cache of this geometry: get_slabinfo()'s static part (objsize,
        objects per slab, 1 << order, the tunables) plus the counts given."""
        limit, batchcount, shared = geom.tunables
        return cls(name=name if name is not None else geom.name, active_objs=active_objs,
                   num_objs=num_objs, objsize=geom.size, objperslab=geom.objects_per_slab,
                   pagesperslab=geom.pages_per_slab, active_slabs=active_slabs,
                   num_slabs=num_slabs, limit=limit, batchcount=batchcount,
                   sharedfactor=shared, sharedavail=sharedavail, memcg=memcg, dead=dead)

    def to_dict(self) -> dict[str, Any]:
        """The row as a dict with keys in `ROW_KEYS` order."""
        d = asdict(self)
        return {k: d[k] for k in ROW_KEYS}


def _as_row(row: SlabinfoRow | Mapping[str, Any]) -> SlabinfoRow:
    return row if isinstance(row, SlabinfoRow) else SlabinfoRow.from_mapping(row)


def format_row(row: SlabinfoRow | Mapping[str, Any], extended: bool = False) -> str:
    """One line as cache_show() prints it (no newline)."""
    r = _as_row(row)
    line = (f"{r.name:<17} {r.active_objs:6d} {r.num_objs:6d} {r.objsize:6d} "
            f"{r.objperslab:4d} {r.pagesperslab:4d}"
            f" : tunables {r.limit:4d} {r.batchcount:4d} {r.sharedfactor:4d}"
            f" : slabdata {r.active_slabs:6d} {r.num_slabs:6d} {r.sharedavail:6d}")
    if extended and r.dead:
        line += DEAD_MARKER
    return line


def format_slabinfo(rows: Iterable[SlabinfoRow | Mapping[str, Any]],
                    extended: bool = False) -> str:
    """The text of /proc/slabinfo for these rows, in the order given, newline-terminated.

    ``extended`` appends " : dead" to the lines of dead caches (an emulator extension;
    the header stays the kernel's)."""
    lines = [VERSION_LINE, HEADER_LINE]
    lines += [format_row(r, extended) for r in rows]
    return "\n".join(lines) + "\n"


def parse_slabinfo(text: str) -> list[dict[str, Any]]:
    """Rows (dicts with `ROW_KEYS`) from /proc/slabinfo 2.1 text, ours or a kernel's.

    ``memcg`` is recovered from a child cache's name, ``dead`` from the extended marker.
    CONFIG_DEBUG_SLAB's extra " : globalstat ..." and " : cpustat ..." columns are
    ignored.  Raises ValueError naming the line on anything else.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith(VERSION_LINE):
        got = lines[0] if lines else ""
        raise ValueError(f"slabinfo line 1: expected {VERSION_LINE!r}, got {got!r}")
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(" : ")
        try:
            head = parts[0].rsplit(None, 5)
            if len(head) != 6:
                raise ValueError("expected a name and 5 numbers before ' : tunables'")
            sections = {p.split(None, 1)[0]: p.split()[1:] for p in parts[1:] if p.strip()}
            tunables = sections.get("tunables")
            slabdata = sections.get("slabdata")
            if tunables is None or len(tunables) != 3:
                raise ValueError("expected ' : tunables <limit> <batchcount> <sharedfactor>'")
            if slabdata is None or len(slabdata) != 3:
                raise ValueError("expected ' : slabdata <active_slabs> <num_slabs> "
                                 "<sharedavail>'")
            nums = [int(v) for v in head[1:] + tunables + slabdata]
        except ValueError as e:
            raise ValueError(f"slabinfo line {lineno}: {e}: {line!r}") from None
        name = head[0]
        split = split_memcg_name(name)
        row = SlabinfoRow(name=name, **dict(zip(_LINE_KEYS, nums)),
                          memcg=split[2] if split else None, dead="dead" in sections)
        rows.append(row.to_dict())
    return rows


def fold_memcg_children(rows: Iterable[SlabinfoRow | Mapping[str, Any]]
                        ) -> list[dict[str, Any]]:
    """What 3.16's /proc/slabinfo shows of these rows: root caches only (s_show() skips
    !is_root_cache), each with its memcg children's active_objs, num_objs, active_slabs,
    num_slabs and sharedavail added in (memcg_accumulate_slabinfo()).  Children are
    matched to their root by name; the order of the roots is kept."""
    rs = [_as_row(r) for r in rows]
    totals: dict[str, dict[str, int]] = {}
    for r in rs:
        if r.memcg is None:
            continue
        split = split_memcg_name(r.name)
        if split is None:
            continue
        t = totals.setdefault(split[0], dict.fromkeys(
            ("active_objs", "num_objs", "active_slabs", "num_slabs", "sharedavail"), 0))
        for k in t:
            t[k] += getattr(r, k)
    out = []
    for r in rs:
        if r.memcg is not None:
            continue
        d = r.to_dict()
        for k, v in totals.get(r.name, {}).items():
            d[k] += v
        out.append(d)
    return out


def boot_slabinfo_rows(allocator: str, topology: Any, with_geometry: bool = False,
                       zone_dma: bool = False) -> list[dict[str, Any]]:
    """The caches that exist right after kmem_cache_init(), as slabinfo rows, newest first
    (slab_caches order, as /proc/slabinfo lists them).

    ``topology`` is a `topo.Topology` or a `MachineParams`.  Objects and slabs are zero:
    a real boot already holds some (kmem_cache_node and kmem_cache objects, the bootstrap
    slabs), which only running the allocator gives; the live emulator fills the counts in
    from the booted emulated kernel.  ``with_geometry`` adds each cache's full geometry
    under "geometry".
    """
    mp = topology if isinstance(topology, MachineParams) else MachineParams.from_topology(topology)
    rows = []
    for geom in reversed(boot_geometries(allocator, mp, zone_dma=zone_dma)):
        row = SlabinfoRow.from_geometry(geom).to_dict()
        if with_geometry:
            row["geometry"] = geom.to_dict()
        rows.append(row)
    return rows


@dataclass
class _Created:
    """One cache on the modelled slab_caches list, with the fields find_mergeable() reads
    (name, root, geometry, ctor) and what kmem_cache_create() changes (refcount, aliases)."""

    name: str
    geometry: SlubGeometry | SlabGeometry
    refcount: int
    root: int = -1
    ctor: bool = False
    aliases: list[str] = field(default_factory=list)


def created_slabinfo_rows(allocator: str, topology: Any,
                          caches: Iterable[tuple[str, int, int]] = (), *,
                          nomerge: bool = False, with_geometry: bool = False
                          ) -> list[dict[str, Any]]:
    """The caches after kmem_cache_init() and then kmem_cache_create(name, size, align, 0,
    NULL) for each of ``caches`` in order, as slabinfo rows, newest first.

    Models mm/slab_common.c's kmem_cache_create() (3.16): under SLUB, __kmem_cache_alias()
    first asks find_mergeable() (kernel/merge.py, the same rules the booted model uses)
    and, when it finds a cache, the name becomes an alias of it (refcount + 1) and gets no
    /proc/slabinfo line of its own; otherwise a new cache with its own geometry is
    list_add()ed at the head of slab_caches.  SLAB's __kmem_cache_alias() returns NULL in
    3.16: it never merges.  ``nomerge`` is the slub_nomerge boot parameter.

    Each row adds "refcount" (create_boot_cache() leaves -1 on kmem_cache and
    kmem_cache_node, "exempt from merging"; create_kmalloc_cache() and kmem_cache_create()
    set 1) and "aliases" (the names merged into it, oldest first; sysfs_slab_alias()).
    The object and slab counts are zero, as in `boot_slabinfo_rows`.
    """
    mp = topology if isinstance(topology, MachineParams) else MachineParams.from_topology(topology)
    made = [_Created(g.name, g, -1 if g.name in UNMERGEABLE_BOOT_CACHES else 1)
            for g in boot_geometries(allocator, mp)]
    for name, size, align in caches:
        if any(c.name == name or name in c.aliases for c in made):
            raise ValueError(f"a cache named {name!r} exists")  # kmem_cache_sanity_check()
        target = None
        if allocator == "slub":  # mm/slab.c's __kmem_cache_alias() is NULL in 3.16
            target = find_mergeable(made, size, align, 0, False, mp, nomerge=nomerge)
        if target is not None:
            target.refcount += 1
            target.aliases.append(name)
            continue
        made.append(_Created(name, cache_geometry(allocator, name, size, mp, align=align),
                             1))
    rows = []
    for c in reversed(made):
        row = SlabinfoRow.from_geometry(c.geometry, name=c.name).to_dict()
        row["refcount"] = c.refcount
        row["aliases"] = list(c.aliases)
        if with_geometry:
            row["geometry"] = c.geometry.to_dict()
        rows.append(row)
    return rows


def format_aliases(rows: Iterable[Mapping[str, Any]]) -> str:
    """The alias list that the kernel's tools/vm/slabinfo -a prints: one line per merged
    cache, "<cache> <- <alias> <alias>..." (its "%-12s <- %s"), in the order of the rows
    given; "" when no cache has an alias."""
    lines = [f"{r['name']:<12} <- {' '.join(r['aliases'])}" for r in rows if r.get("aliases")]
    return "".join(line + "\n" for line in lines)


def kernel_slabinfo_rows(kernel) -> list[dict[str, Any]]:
    """The live caches of a booted emulated kernel as slabinfo rows, newest first.

    The counts are what get_slabinfo() computes in 3.16:
      SLUB: num_slabs = active_slabs = sum of nr_slabs, num_objs = total_objects, and
            active_objs = num_objs - the free objects of slabs on the node partial lists
            (count_partial): free objects of CPU slabs count as active, as in the kernel;
      SLAB: active_objs = objects in use on full and partial slabs, num_objs = num_slabs
            * num, active_slabs = full + partial slabs, sharedavail = objects waiting in
            the shared arrays.
    """
    from ..machine import structs as S  # the report layer reads the kernel's tables

    mem = kernel.mem
    nodes = kernel.nr_nodes
    rows = []
    for info in reversed(kernel.caches):
        s = info.row
        if mem.kmem_cache[s, S.KMEM_CACHE_STATE] != S.CACHE_ACTIVE:
            continue
        geom = info.geometry
        # a memcg child cache goes by its own name, "<root>(<id>:<cgroup>)", as in
        # memory.kmem.slabinfo (memcg_create_kmem_cache); its geometry is its root's
        name = info.name if info.root >= 0 else None
        nrow = mem.kmem_cache_node[s * nodes:(s + 1) * nodes]
        num_slabs = int(nrow[:, S.KMEM_CACHE_NODE_NR_SLABS].sum())
        if isinstance(geom, SlubGeometry):
            num_objs = int(nrow[:, S.KMEM_CACHE_NODE_TOTAL_OBJECTS].sum())
            free = 0
            for n in range(nodes):
                p = int(nrow[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD])
                while p:
                    w = int(mem.page[p, S.PAGE_FREELIST])
                    objects = (w >> S.SLUB_FC_OBJECTS_SHIFT) & S.MAX_OBJS_PER_PAGE
                    inuse = (w >> S.SLUB_FC_INUSE_SHIFT) & 0xFFFF
                    free += objects - inuse
                    p = int(mem.page[p, S.PAGE_LRU_NEXT])
            row = SlabinfoRow.from_geometry(geom, name=name, active_objs=num_objs - free,
                                            num_objs=num_objs,
                                            active_slabs=num_slabs, num_slabs=num_slabs)
        else:
            num = geom.num
            full = int(nrow[:, S.KMEM_CACHE_NODE_NR_FULL].sum())
            partial_active = 0
            shared = 0
            for n in range(nodes):
                p = int(nrow[n, S.KMEM_CACHE_NODE_PARTIAL_HEAD])
                while p:
                    partial_active += int(mem.page[p, S.PAGE_COUNTERS])
                    p = int(mem.page[p, S.PAGE_LRU_NEXT])
                sh = int(nrow[n, S.KMEM_CACHE_NODE_SHARED])
                if sh >= 0:
                    shared += int(mem.array_cache[sh, S.ARRAY_CACHE_AVAIL])
            active_slabs = full + int(nrow[:, S.KMEM_CACHE_NODE_NR_PARTIAL].sum())
            row = SlabinfoRow.from_geometry(geom, name=name,
                                            active_objs=full * num + partial_active,
                                            num_objs=num_slabs * num, active_slabs=active_slabs,
                                            num_slabs=num_slabs, sharedavail=shared)
        rows.append(row.to_dict())
    return rows
