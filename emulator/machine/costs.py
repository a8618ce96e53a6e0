"""The cost model of virtual-time mode: what each thing the kernel does costs, in ns.

What it models: one host class (configs/costs/*.toml: a 2014 two-socket Xeon, an AMD
EPYC, an arm64 server), every number citing its public source in the file.  The costs:

  [line]      an atomic on a cache line, by where the line was last written: the same
              CPU, its SMT sibling, another core of its package, another package of its
              node, another node (`remote`, measured at SLIT distance `remote_distance`;
              at distance d it costs remote * d / remote_distance);
  [lock]      the body of a critical section, per lock class (list_lock, zone, alien,
              shared, other): what the holder does between spin_lock and spin_unlock;
  [slub]      SLUB's fast and slow paths, one number per CONFIG_SLUB_STATS event (an
              event's cost stands for the kernel path that counts it: 3.16 counts
              ALLOC_SLOWPATH once per __slab_alloc call, in slab_alloc_node after it
              returns (Dave Hansen's "mm: slub: fix ALLOC_SLOWPATH stat"), so the way
              to new_slab from no cpu slab costs alloc_slowpath + alloc_slab);
  [slab]      SLAB's, one per STATS_INC_* event of mm/slab.c;
  [ipi]       smp_call_function: sending one IPI (the sender, per target) and handling
              one (the target);
  [rcu]       a synchronize_sched() grace period (the shortest wait it costs);
  [run]       the poll of a CPU that waits (IPI acks, a grace period, nothing to do)
              and the workload's hand-over of an object to another CPU.

Invariants: every field is present, an integer >= 0 (ns), no unknown key; a bad file is
one ConfigError naming the file, the field and what was expected.

Simplifications (README, docs/virtual-time.md): costs are per event, not per instruction;
SLAB's free_block and cache_alloc_refill cost per call, not per object moved; the
page allocator's work is its zone->lock body; a line's transfer cost depends only on the
level of the topology between writer and reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from topo.configfile import find_config
from topo.errors import ConfigError
from topo.tomlfile import read_toml

from . import structs as S

COSTS_DIR = Path(__file__).resolve().parents[2] / "configs" / "costs"
DEFAULT_COSTS = "xeon-2s-2014"

SECTIONS: dict[str, tuple[str, ...]] = {
    "line": ("same_cpu", "smt", "package", "node", "remote", "remote_distance"),
    "lock": ("list_lock", "zone", "alien", "shared", "other"),
    "slub": ("alloc_fastpath", "free_fastpath", "alloc_slowpath", "free_slowpath",
             "alloc_from_partial", "alloc_slab", "free_slab", "deactivate", "cpuslab_flush",
             "cmpxchg_fail", "cpu_partial_free", "cpu_partial_drain"),
    "slab": ("alloc_hit", "free_hit", "alloc_miss", "free_miss", "node_alloc", "node_free",
             "alien_overflow", "grow", "reaped"),
    "ipi": ("send", "handle"),
    "rcu": ("grace_period",),
    "run": ("poll", "handoff"),
}
_TOP = {"name", "description", "host"} | set(SECTIONS)

# CONFIG_SLUB_STATS item -> [slub] field (None: no cost of its own, part of another event)
SLUB_ITEM_COST = {
    "ALLOC_FASTPATH": "alloc_fastpath", "ALLOC_SLOWPATH": "alloc_slowpath",
    "FREE_FASTPATH": "free_fastpath", "FREE_SLOWPATH": "free_slowpath",
    "FREE_FROZEN": None, "FREE_ADD_PARTIAL": None, "FREE_REMOVE_PARTIAL": None,
    "ALLOC_FROM_PARTIAL": "alloc_from_partial", "ALLOC_SLAB": "alloc_slab",
    "ALLOC_REFILL": None, "ALLOC_NODE_MISMATCH": "deactivate", "FREE_SLAB": "free_slab",
    "CPUSLAB_FLUSH": "cpuslab_flush", "DEACTIVATE_FULL": "deactivate",
    "DEACTIVATE_EMPTY": "deactivate", "DEACTIVATE_TO_HEAD": "deactivate",
    "DEACTIVATE_TO_TAIL": "deactivate", "DEACTIVATE_REMOTE_FREES": None,
    "DEACTIVATE_BYPASS": None, "ORDER_FALLBACK": None,
    "CMPXCHG_DOUBLE_CPU_FAIL": "cmpxchg_fail", "CMPXCHG_DOUBLE_FAIL": "cmpxchg_fail",
    "CPU_PARTIAL_ALLOC": None, "CPU_PARTIAL_FREE": "cpu_partial_free",
    "CPU_PARTIAL_NODE": None, "CPU_PARTIAL_DRAIN": "cpu_partial_drain",
}
SLAB_ITEM_COST = {
    "ALLOCHIT": "alloc_hit", "ALLOCMISS": "alloc_miss", "FREEHIT": "free_hit",
    "FREEMISS": "free_miss", "NODEALLOCS": "node_alloc", "NODEFREES": "node_free",
    "NODE_OVERFLOW": "alien_overflow", "ALIEN_FREE_HIT": None, "ALIEN_FREE_MISS": None,
    "REAPED": "reaped", "GROWN": "grow", "FREELIMIT": None,
}
assert set(SLUB_ITEM_COST) == set(S.SLUB_STAT_ITEMS) and set(SLAB_ITEM_COST) == set(S.SLAB_STAT_ITEMS)

# Item costs by where the time goes (emulator/run/virtual.py's CATEGORIES).
_FAST = {"alloc_fastpath", "free_fastpath", "alloc_hit", "free_hit"}
_PAGES = {"alloc_slab", "free_slab", "grow", "reaped"}


@dataclass(frozen=True)
class CostModel:
    name: str
    path: str
    values: dict  # section -> {field: int}

    def __getitem__(self, key: str) -> int:
        sec, field = key.split(".")
        return self.values[sec][field]

    def remote(self, distance: int) -> int:
        """An atomic on a line last written on another node at this SLIT distance."""
        line = self.values["line"]
        return (line["remote"] * distance + line["remote_distance"] // 2) // line["remote_distance"]

    def hold_by_class(self) -> list[int]:
        """Critical-section bodies in LOCK_CLASS_* order."""
        lk = self.values["lock"]
        return [lk["zone"], lk["list_lock"], lk["alien"], lk["shared"], lk["other"]]

    def item_costs(self) -> tuple[np.ndarray, np.ndarray]:
        """(cost, category) per kmem_cache_cpu stat column from S.CPU_STAT on: SLUB's
        items, then SLAB's (the table's order)."""
        from ..run.virtual import CAT

        n = S.NR_SLUB_STAT_ITEMS + S.NR_SLAB_STAT_ITEMS
        cost = np.zeros(n, np.int64)
        cat = np.zeros(n, np.int64)
        items = [("slub", SLUB_ITEM_COST[i]) for i in S.SLUB_STAT_ITEMS] + \
                [("slab", SLAB_ITEM_COST[i]) for i in S.SLAB_STAT_ITEMS]
        for j, (sec, field) in enumerate(items):
            if field is None:
                cat[j] = CAT["slowpath"]
                continue
            cost[j] = self.values[sec][field]
            cat[j] = CAT["fastpath"] if field in _FAST else \
                CAT["slab_pages"] if field in _PAGES else CAT["slowpath"]
        return cost, cat

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.path, **self.values}


def available_costs(configs_dir: Path = COSTS_DIR) -> list[str]:
    return sorted(p.stem for p in configs_dir.glob("*.toml"))


def load_costs(name_or_path: str | None) -> CostModel:
    """A cost file by name (configs/costs/NAME.toml) or path; ConfigError if bad."""
    path = find_config(name_or_path or DEFAULT_COSTS, COSTS_DIR, "cost file", available_costs,
                       reject_dirs=True)
    data = read_toml(path, "cost")
    src = str(path)
    for key in data:
        if key not in _TOP:
            raise ConfigError(src, key, "one of " + ", ".join(sorted(_TOP)), key)
    values: dict[str, dict[str, int]] = {}
    for sec, fields in SECTIONS.items():
        table = data.get(sec)
        if not isinstance(table, dict):
            raise ConfigError(src, sec, f"a [{sec}] table with {', '.join(fields)}")
        for key in table:
            if key not in fields:
                raise ConfigError(src, f"{sec}.{key}", "one of " + ", ".join(fields), key)
        out = {}
        for f in fields:
            if f not in table:
                raise ConfigError(src, f"{sec}.{f}", "an integer number of ns >= 0 (missing)")
            v = table[f]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 10**12:
                raise ConfigError(src, f"{sec}.{f}", "an integer number of ns >= 0", v)
            out[f] = v
        values[sec] = out
    if values["line"]["remote_distance"] < 10:
        raise ConfigError(src, "line.remote_distance", "a SLIT distance >= 10",
                          values["line"]["remote_distance"])
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(src, "name", "a non-empty string", name)
    return CostModel(name, _display_path(path), values)


def _display_path(path: Path) -> str:
    """The file as summary.json names it: relative to the project for shipped files, so
    that the summary does not depend on where the checkout lives."""
    try:
        return str(path.resolve().relative_to(COSTS_DIR.parents[1]))
    except ValueError:
        return path.name
