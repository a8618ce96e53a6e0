"""Scenarios: the workload a run drives, from configs/scenarios/*.toml (docs/design.md §8).

What it models: one experiment — the machine (a topology), the allocator, the policy
(the series' switches), the seed and mode, the op budget or duration, the caches the
per-CPU workload allocates from (kmalloc sizes, named caches with their weights), the
alloc/free mix (live objects per CPU, bursts, frees handed to another CPU of the node or
to another node, periodic shrink and reap), memcg churn, and fault injection (page
allocation failures, preemption at preemption points, delays in race windows, the
shrink's allocation failing), and the kernel build (``[kernel]``: preemption model,
SLUB statistics, slab debugging; emulator/kernel/kconfig.py).

File layout (the shipped files in configs/scenarios are examples): top-level
description, topology, allocator, policy, seed, mode, placement, workers, ops_per_cpu,
duration (the `Scenario` fields; with both budgets the run ends at the first reached);
``[[cache]]`` tables, each ``kmalloc = SIZE`` or ``name = "..."`` + ``size`` (+ ``align``),
with an optional ``weight``; optional ``[workload]``, ``[memcg]`` and ``[faults]`` tables
(the `Workload`, `Memcg` and `Faults` fields) and an optional ``[kernel]`` table (the
`KernelConfig` fields; left out: `kconfig.DEFAULT`, the full-preemption build with SLUB
statistics that every scenario ran before the table existed).  Relative topology and policy paths resolve against the
scenario file's directory first, then as given; the scenario keeps the resolved path.

Invariants: every `Scenario` that `load_scenario`, `Scenario.with_overrides` or
`Scenario.from_dict` returns has passed every check below — types (a bool is not an
int), ranges, unknown keys anywhere, distinct cache names, a topology that loads, a
policy that loads, remote frees the topology can do (remote_cpu needs a node with two
CPUs, remote_node CPUs on two nodes; remote_cpu + remote_node <= 1), fault nodes and an
explicit placement map that name the topology's nodes and CPUs, workers <= the
topology's CPUs, and at least one of ops_per_cpu / duration.  Every bad input raises
`topo.ConfigError` whose one line names the file (or "command line"), the dotted field
(``workload.remote_cpu``, ``cache[2].size``, ``--seed``) and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from topo.configfile import find_config
from topo.errors import ConfigError
from topo.model import Topology
from topo.tomlfile import read_toml

from ..kernel.kconfig import DEFAULT as DEFAULT_KERNEL
from ..kernel.kconfig import KernelConfig, kernel_config_from_table, load_kernel_config

__all__ = ["CacheSpec", "Workload", "Faults", "Scenario", "load_scenario", "available_scenarios",
           "CONFIGS_DIR", "ALLOCATORS", "MODES", "PLACEMENTS", "OPTIONS"]

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs" / "scenarios"

ALLOCATORS = ("slub", "slab")
MODES = ("parallel", "deterministic", "virtual")
PLACEMENTS = ("compact", "scatter")
DEFAULT_POLICY = "v2-full"
KMALLOC_MAX = 8192            # kmalloc-served request sizes: 1..KMALLOC_MAX
NAMED_MAX = 1 << 20           # named caches' object sizes: 1..NAMED_MAX
MAX_ALIGN = 4096
MAX_CACHES = 64               # the generator packs a spec index in 8 bits
MAX_WEIGHT = 1_000_000
MAX_LIVE = 1_000_000
MAX_BURST = 100_000
MAX_INT64 = (1 << 63) - 1
MAX_NAME = 64
# Command-line options for the fields `Scenario.with_overrides` accepts.
OPTIONS = {"allocator": "--allocator", "policy": "--policy", "seed": "--seed", "mode": "--mode",
           "placement": "--placement", "workers": "--workers", "ops_per_cpu": "--ops",
           "duration": "--duration", "topology": "--topology", "kernel": "--config"}

_TOP_KEYS = {"description", "topology", "allocator", "policy", "seed", "mode", "placement",
             "workers", "ops_per_cpu", "duration", "cache", "workload", "memcg", "faults",
             "kernel"}
_KMALLOC_KEYS = ("kmalloc", "weight")
_NAMED_KEYS = ("name", "size", "align", "weight")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
# Boot caches (kmem_cache_init: SLUB's kmem_cache/kmem_cache_node, SLAB's kmalloc-ac and
# kmalloc-node) and the kmalloc caches: a named cache may not take these names.
_RESERVED = ("kmem_cache", "kmem_cache_node")
_RESERVED_PREFIXES = ("kmalloc-", "dma-kmalloc-")


# -- the data ------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheSpec:
    """One cache the workload allocates from."""

    name: str        # "kmalloc-<size>" for kmalloc entries (the request size), else the cache
    size: int        # request size (kmalloc, 1..8192) or object size (named, 1..1 MiB)
    kmalloc: bool    # True: kmalloc(size)/kfree; False: kmem_cache_create + alloc/free
    align: int = 0   # named caches only: 0 or a power of two <= 4096
    weight: int = 1  # relative share of allocations, >= 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Workload:
    """The per-CPU alloc/free mix."""

    live_objects: int = 256    # target live objects per CPU (1..1_000_000)
    remote_cpu: float = 0.0    # fraction of frees handed to another CPU of the same node
    remote_node: float = 0.0   # fraction handed to a CPU on another node; sum <= 1
    burst: int = 1             # decisions in a row of the same kind (1..100000)
    free_at_end: bool = True   # each CPU frees its remaining live objects at the end
    shrink_every: int = 0      # every N ops per CPU: kmem_cache_shrink of a random cache; 0 never
    reap_every: int = 0        # every N ops per CPU: SLAB's cache_reap there (SLUB: ignored); 0 never

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Memcg:
    """memcg churn: each CPU's workload task moves to a new memcg every `lifetime` ops it
    issues and takes the previous one offline; 0 = every task stays in the root memcg."""

    lifetime: int = 0          # ops issued per CPU between two moves (0: no memcgs)
    max_memcgs: int = 0        # memcg rows (ids are not reused); 0: enough for the budget
    handover_at_offline: bool = False  # hand every held object to other CPUs at the move

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Faults:
    """Fault injection."""

    page_alloc_fail: float = 0.0      # probability that a page allocation fails, [0, 1)
    nodes: tuple[int, ...] = ()       # topology node ids it applies to; () = every node
    preempt: float = 0.0              # probability of a preemption at a preemption point
    #                                   (where the policy leaves one and work is waiting)
    race_delay: int = 0               # race windows widened: slab_free stalls this many steps
    #                                   after put_cpu_partial, spins as long after a discard
    shrink_alloc_fail: bool = False   # __kmem_cache_shrink's kmalloc always fails

    def to_dict(self) -> dict[str, Any]:
        return {"page_alloc_fail": self.page_alloc_fail, "nodes": list(self.nodes),
                "preempt": self.preempt, "race_delay": self.race_delay,
                "shrink_alloc_fail": self.shrink_alloc_fail}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; see the module docstring."""

    name: str
    path: str
    description: str
    topology: str
    allocator: str
    policy: str
    seed: int
    mode: str
    placement: str
    workers: int
    ops_per_cpu: int | None
    duration: float | None
    caches: tuple[CacheSpec, ...]
    workload: Workload
    faults: Faults
    memcg: Memcg = Memcg()
    kernel: KernelConfig = DEFAULT_KERNEL

    def with_overrides(self, **kw: Any) -> "Scenario":
        """A copy with command-line options applied, re-validated.

        Keys: the fields of `OPTIONS` (allocator, policy, seed, mode, placement, workers,
        ops_per_cpu, duration, topology, kernel: a preset name in configs/kernels or a
        file, replacing the scenario's ``[kernel]``).  A key present overrides, so leave out options
        that were not given; ``ops_per_cpu=None`` / ``duration=None`` drop that budget
        (one must remain).  Relative paths resolve against the current directory.
        Errors name ``command line`` and the option, e.g. ``--seed``.
        """
        unknown = sorted(set(kw) - set(OPTIONS))
        if unknown:
            raise TypeError(f"with_overrides() got unknown fields: {', '.join(unknown)}")
        if not kw:
            return self
        src = "command line"
        values: dict[str, Any] = {}
        for key, value in kw.items():
            opt = OPTIONS[key]
            if key == "topology":
                values[key] = _str(value, src, opt)
            elif key == "policy":
                values[key] = _policy(value, src, opt, None)
            elif key == "kernel":
                values[key] = _kernel_preset(value, src, opt)
            elif key in ("ops_per_cpu", "duration") and value is None:
                values[key] = None
            else:
                values[key] = _SCALAR_CHECKS[key](value, src, opt)
        new = dataclasses.replace(self, **values)

        def rename(field: str) -> tuple[str, str]:
            top = field.split(".")[0].split("[")[0]
            if top in kw:
                return src, OPTIONS[top]
            if top in ("ops_per_cpu", "duration"):  # the budget check: blame the option given
                return src, OPTIONS["ops_per_cpu" if "ops_per_cpu" in kw else "duration"]
            if "topology" in kw:
                return src, f"--topology (for the scenario's {field})"
            return self.path, field

        _cross_check(new, _load_topology_checked(new.topology, src, OPTIONS["topology"])
                     if "topology" in kw else None, rename)
        return new

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for summary.json; `from_dict` reads it back."""
        return {
            "name": self.name, "path": self.path, "description": self.description,
            "topology": self.topology, "allocator": self.allocator, "policy": self.policy,
            "seed": self.seed, "mode": self.mode, "placement": self.placement,
            "workers": self.workers, "ops_per_cpu": self.ops_per_cpu, "duration": self.duration,
            "caches": [c.to_dict() for c in self.caches],
            "workload": self.workload.to_dict(),
            "memcg": self.memcg.to_dict(),
            "faults": self.faults.to_dict(),
            "kernel": self.kernel.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "Scenario":
        """The inverse of `to_dict`, re-validated (errors name ``source``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(source, "scenario", "a table", data)
        body = dict(data)
        name = body.pop("name", "scenario")
        path = body.pop("path", source)
        caches = body.pop("caches", None)
        if isinstance(caches, list):
            tables = []
            for c in caches:
                if isinstance(c, Mapping) and c.get("kmalloc") is True:
                    tables.append({"kmalloc": c.get("size"), "weight": c.get("weight", 1)})
                elif isinstance(c, Mapping):
                    tables.append({k: v for k, v in c.items() if k != "kmalloc"})
                else:
                    tables.append(c)
            body["cache"] = tables
        return _parse(body, source=source, name=_str(name, source, "name"),
                      path=_str(path, source, "path"), base_dir=None)

    def load_topology(self) -> Topology:
        """The scenario's `Topology`."""
        from topo import load_topology
        return load_topology(self.topology)

    def load_policy(self):
        """The scenario's `emulator.kernel.policy.Policy`."""
        from ..kernel.policy import load_policy
        return load_policy(self.policy)


# -- value checks ----------------------------------------------------------------------
def _int(value: Any, src: str, field: str, lo: int, hi: int = MAX_INT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(src, field, f"an integer in {lo}..{hi}", value)
    if not lo <= value <= hi:
        raise ConfigError(src, field, f"an integer in {lo}..{hi}", value)
    return value


def _number(value: Any, src: str, field: str, what: str, ok: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(src, field, what, value)
    v = float(value)
    if not math.isfinite(v) or not ok(v):
        raise ConfigError(src, field, what, value)
    return v


def _fraction(value: Any, src: str, field: str) -> float:
    return _number(value, src, field, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)


def _str(value: Any, src: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(src, field, "a non-empty string", value)
    return value.strip()


def _bool(value: Any, src: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(src, field, "true or false", value)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any, str, str], str]:
    def check(value: Any, src: str, field: str) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise ConfigError(src, field, " or ".join(repr(o) for o in options), value)
        return text
    return check


def _placement(value: Any, src: str, field: str) -> str:
    expected = "'compact', 'scatter' or a map of emulated:host CPUs such as '0:3,1:5'"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(src, field, expected, value)
    text = value.strip()
    if ":" in text:
        return text  # checked against the topology in _cross_check
    if text.lower() not in PLACEMENTS:
        raise ConfigError(src, field, expected, value)
    return text.lower()


def _duration(value: Any, src: str, field: str) -> float:
    return _number(value, src, field, "a number of seconds > 0", lambda v: v > 0)


_SCALAR_CHECKS: dict[str, Callable[[Any, str, str], Any]] = {
    "allocator": _choice(ALLOCATORS),
    "mode": _choice(MODES),
    "seed": lambda v, s, f: _int(v, s, f, 0),
    "placement": _placement,
    "workers": lambda v, s, f: _int(v, s, f, 0),
    "ops_per_cpu": lambda v, s, f: _int(v, s, f, 1),
    "duration": _duration,
}


def _resolve_path(text: str, base_dir: Path | None) -> str:
    """A relative path (it has a "/" or ends in .toml) found next to the scenario file
    wins; anything else is kept as given (a name, "host", a path from the cwd)."""
    if base_dir is None or ("/" not in text and not text.endswith(".toml")):
        return text
    p = Path(text)
    if not p.is_absolute() and (base_dir / p).is_file():
        return str(base_dir / p)
    return text


def _policy(value: Any, src: str, field: str, base_dir: Path | None) -> str:
    from ..kernel.policy import load_policy
    text = _resolve_path(_str(value, src, field), base_dir)
    try:
        load_policy(text)
    except ConfigError as e:
        raise _relocate(e, text, src, field) from None
    return text


def _kernel_preset(value: Any, src: str, field: str) -> KernelConfig:
    if isinstance(value, KernelConfig):
        return value
    text = _str(value, src, field)
    try:
        return load_kernel_config(text)
    except ConfigError as e:
        raise _relocate(e, text, src, field) from None


def _kernel(data: dict[str, Any], src: str) -> KernelConfig:
    """The ``[kernel]`` table: the build's fields (kconfig.py), each checked."""
    if "kernel" not in data:
        return DEFAULT_KERNEL
    t = _table(data, "kernel", src)
    return kernel_config_from_table(t, src, prefix="kernel.", name=t.get("name", "scenario"))


def _relocate(e: ConfigError, spec: str, src: str, field: str) -> ConfigError:
    """An error from loading ``spec`` (a topology or policy), re-told under ``field``."""
    if e.source == spec and e.field in ("topology", "policy", "config", "file", "source"):
        return ConfigError(src, field, e.expected, e.got)  # an unknown name, a missing file
    return ConfigError(src, f"{field}: {e.source}: {e.field}", e.expected, e.got)


def _load_topology_checked(text: str, src: str, field: str) -> Topology:
    from topo import load_topology
    try:
        return load_topology(text)
    except ConfigError as e:
        raise _relocate(e, text, src, field) from None


def _cache_name(value: Any, src: str, field: str) -> str:
    expected = (f"a cache name of up to {MAX_NAME} letters, digits and _.:- (not kmem_cache, "
                "kmem_cache_node or kmalloc-*)")
    if not isinstance(value, str) or not _NAME_RE.match(value) or len(value) > MAX_NAME:
        raise ConfigError(src, field, expected, value)
    if value in _RESERVED or value.startswith(_RESERVED_PREFIXES):
        raise ConfigError(src, field, expected, value)
    return value


def _table(data: dict[str, Any], key: str, src: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(src, key, f"a table written [{key}]", value)
    return value


def _unknown(table: Mapping[str, Any], allowed, src: str, prefix: str, what: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(src, f"{prefix}{key}", f"a known {what} key (" +
                              ", ".join(sorted(allowed)) + ")")


# -- parsing -------------------------------------------------------------------------
def _caches(value: Any, src: str) -> tuple[CacheSpec, ...]:
    if value is None:
        raise ConfigError(src, "cache", "at least one [[cache]] table")
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(src, "cache", "an array of tables written [[cache]]", value)
    if not 1 <= len(value) <= MAX_CACHES:
        raise ConfigError(src, "cache", f"1..{MAX_CACHES} [[cache]] tables", len(value))
    specs: list[CacheSpec] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(value):
        here = f"cache[{i}]"
        if "kmalloc" in t and "name" in t:
            raise ConfigError(src, here, "either kmalloc = SIZE or name = \"...\" with size, "
                              "not both")
        if "kmalloc" in t:
            _unknown(t, _KMALLOC_KEYS, src, f"{here}.", "kmalloc cache")
            key = f"{here}.kmalloc"
            size = _int(t["kmalloc"], src, key, 1, KMALLOC_MAX)
            name, align, kmalloc = f"kmalloc-{size}", 0, True
        elif "name" in t:
            _unknown(t, _NAMED_KEYS, src, f"{here}.", "named cache")
            key = f"{here}.name"
            name = _cache_name(t["name"], src, key)
            if "size" not in t:
                raise ConfigError(src, f"{here}.size", "a value (the key is missing)")
            size = _int(t["size"], src, f"{here}.size", 1, NAMED_MAX)
            align = _int(t.get("align", 0), src, f"{here}.align", 0, MAX_ALIGN)
            if align & (align - 1):
                raise ConfigError(src, f"{here}.align", f"0 or a power of two <= {MAX_ALIGN}",
                                  align)
            kmalloc = False
        else:
            raise ConfigError(src, here, "kmalloc = SIZE, or name = \"...\" with size = SIZE")
        weight = _int(t.get("weight", 1), src, f"{here}.weight", 1, MAX_WEIGHT)
        if name in seen:
            raise ConfigError(src, key, f"distinct cache names (cache[{seen[name]}] is already "
                              f"{name})", t["kmalloc"] if kmalloc else name)
        seen[name] = i
        specs.append(CacheSpec(name, size, kmalloc, align, weight))
    return tuple(specs)


def _workload(data: dict[str, Any], src: str) -> Workload:
    t = _table(data, "workload", src)
    allowed = [f.name for f in dataclasses.fields(Workload)]
    _unknown(t, allowed, src, "workload.", "workload")
    d = Workload()
    w = Workload(
        live_objects=_int(t.get("live_objects", d.live_objects), src, "workload.live_objects",
                          1, MAX_LIVE),
        remote_cpu=_fraction(t.get("remote_cpu", d.remote_cpu), src, "workload.remote_cpu"),
        remote_node=_fraction(t.get("remote_node", d.remote_node), src, "workload.remote_node"),
        burst=_int(t.get("burst", d.burst), src, "workload.burst", 1, MAX_BURST),
        free_at_end=_bool(t.get("free_at_end", d.free_at_end), src, "workload.free_at_end"),
        shrink_every=_int(t.get("shrink_every", d.shrink_every), src, "workload.shrink_every", 0),
        reap_every=_int(t.get("reap_every", d.reap_every), src, "workload.reap_every", 0),
    )
    if w.remote_cpu + w.remote_node > 1.0 + 1e-12:
        raise ConfigError(src, "workload.remote_node", "remote_cpu + remote_node <= 1",
                          f"{w.remote_cpu} + {w.remote_node}")
    return w


def _memcg(data: dict[str, Any], src: str) -> Memcg:
    t = _table(data, "memcg", src)
    _unknown(t, ("lifetime", "max_memcgs", "handover_at_offline"), src, "memcg.", "memcg")
    return Memcg(lifetime=_int(t.get("lifetime", 0), src, "memcg.lifetime", 0, 1 << 40),
                 max_memcgs=_int(t.get("max_memcgs", 0), src, "memcg.max_memcgs", 0, 1 << 16),
                 handover_at_offline=_bool(t.get("handover_at_offline", False), src,
                                           "memcg.handover_at_offline"))


def _faults(data: dict[str, Any], src: str) -> Faults:
    t = _table(data, "faults", src)
    _unknown(t, ("page_alloc_fail", "nodes", "preempt", "race_delay", "shrink_alloc_fail"), src,
             "faults.", "faults")
    p = _number(t.get("page_alloc_fail", 0.0), src, "faults.page_alloc_fail",
                "a probability in [0, 1)", lambda v: 0.0 <= v < 1.0)
    nodes = t.get("nodes", [])
    if not isinstance(nodes, list):
        raise ConfigError(src, "faults.nodes", "a list of node ids, e.g. [0, 1]", nodes)
    ids: list[int] = []
    for i, n in enumerate(nodes):
        n = _int(n, src, f"faults.nodes[{i}]", 0)
        if n in ids:
            raise ConfigError(src, f"faults.nodes[{i}]", "each node once", n)
        ids.append(n)
    preempt = _number(t.get("preempt", 0.0), src, "faults.preempt", "a probability in [0, 1]",
                      lambda v: 0.0 <= v <= 1.0)
    delay = _int(t.get("race_delay", 0), src, "faults.race_delay", 0, 1_000_000)
    shrink_fail = _bool(t.get("shrink_alloc_fail", False), src, "faults.shrink_alloc_fail")
    return Faults(p, tuple(sorted(ids)), preempt, delay, shrink_fail)


def _cross_check(s: Scenario, topology: Topology | None,
                 rename: Callable[[str], tuple[str, str]]) -> None:
    """The checks that involve several fields or the topology; ``rename(field)`` says
    which source and field to blame.  Loads the topology if not given."""
    def fail(field: str, expected: str, got: Any = None) -> ConfigError:
        src, where = rename(field)
        return ConfigError(src, where, expected, got)

    if s.ops_per_cpu is None and s.duration is None:
        raise fail("ops_per_cpu", "ops_per_cpu (--ops) or duration (--duration), or both: the "
                   "run ends at the first reached")
    if topology is None:
        src, where = rename("topology")
        topology = _load_topology_checked(s.topology, src, where)
    if s.workers > topology.nr_cpus:
        raise fail("workers", f"0 (the default) or 1..{topology.nr_cpus} (the topology's "
                   "CPUs)", s.workers)
    w = s.workload
    if w.remote_node > 0 and sum(1 for n in topology.nodes if n.cpus) < 2:
        raise fail("workload.remote_node", "0 on this topology (frees on another node need "
                   f"CPUs on two nodes; {topology.name} has CPUs on one)", w.remote_node)
    if w.remote_cpu > 0 and max(len(n.cpus) for n in topology.nodes) < 2:
        raise fail("workload.remote_cpu", "0 on this topology (frees on another CPU of the node "
                   f"need two CPUs on a node; {topology.name} has one per node)", w.remote_cpu)
    node_ids = topology.node_ids
    for i, n in enumerate(s.faults.nodes):
        if n not in node_ids:
            raise fail(f"faults.nodes[{i}]", f"a node of {topology.name} "
                       f"({', '.join(map(str, node_ids))})", n)
    if ":" in s.placement:
        from topo.placement import _parse_map
        try:
            _parse_map(s.placement, topology)
        except ConfigError as e:
            raise fail("placement", e.expected, e.got) from None


def _parse(data: dict[str, Any], *, source: str, name: str, path: str,
           base_dir: Path | None) -> Scenario:
    src = source
    _unknown(data, _TOP_KEYS, src, "", "top-level")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(src, "description", "a string", description)
    for key in ("topology", "allocator"):
        if key not in data:
            raise ConfigError(src, key, "a value (the key is missing)")
    topo_text = _resolve_path(_str(data["topology"], src, "topology"), base_dir)
    topology = _load_topology_checked(topo_text, src, "topology")
    ops = data.get("ops_per_cpu")
    duration = data.get("duration")
    s = Scenario(
        name=name, path=path, description=description.strip(),
        topology=topo_text,
        allocator=_SCALAR_CHECKS["allocator"](data["allocator"], src, "allocator"),
        policy=_policy(data.get("policy", DEFAULT_POLICY), src, "policy", base_dir),
        seed=_SCALAR_CHECKS["seed"](data.get("seed", 0), src, "seed"),
        mode=_SCALAR_CHECKS["mode"](data.get("mode", "parallel"), src, "mode"),
        placement=_placement(data.get("placement", "compact"), src, "placement"),
        workers=_SCALAR_CHECKS["workers"](data.get("workers", 0), src, "workers"),
        ops_per_cpu=None if ops is None else _SCALAR_CHECKS["ops_per_cpu"](ops, src, "ops_per_cpu"),
        duration=None if duration is None else _duration(duration, src, "duration"),
        caches=_caches(data.get("cache"), src),
        workload=_workload(data, src),
        faults=_faults(data, src),
        memcg=_memcg(data, src),
        kernel=_kernel(data, src),
    )
    _cross_check(s, topology, lambda field: (src, field))
    return s


# -- loading -------------------------------------------------------------------------
def available_scenarios(configs_dir: str | Path | None = None) -> list[str]:
    """Names of the scenario files in ``configs_dir`` (default: configs/scenarios)."""
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_scenario(spec: str | Path, configs_dir: str | Path | None = None) -> Scenario:
    """Load and validate a scenario: a path to a .toml file, or a name in ``configs_dir``
    (default configs/scenarios), with or without ".toml".  Bad input: `ConfigError`."""
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ConfigError("scenario", "scenario", "a scenario name or file", spec)
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    path = find_config(spec, d, "scenario", available_scenarios, reject_dirs=True)
    data = read_toml(path, "scenario")
    source = str(path)
    return _parse(data, source=source, name=path.stem, path=source, base_dir=path.parent)
