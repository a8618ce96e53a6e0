"""/proc/lock_stat ("lock_stat version 0.4"): formatting, per-node aggregation, parsing.

Models kernel/locking/lockdep_proc.c (3.16-4.0): seq_header() and seq_stats().  The
layout is the kernel's: the version line, a rule of 221 '-', the column header ("%40s"
then twelve " %14s"), the rule again and a blank line; then one line per lock class,

    "%40s:" name, "%14lu " con-bounces, "%14lu" contentions, 4 x " %14s" wait times,
    " %14lu " acq-bounces, "%14lu" acquisitions, 4 x " %14s" hold times,

classes sorted by contentions, most first (lock_stat_cmp; ties keep their input order).
Times are microseconds with two decimals, rounded as snprint_time() rounds nanoseconds
(+5 ns, then truncated to 10 ns); the averages are total / count in whole nanoseconds.
A class that was never acquired prints nothing (seq_stats() prints only classes with
hold times).  A contended class ends its block as the kernel does after its contention
points: a blank line, a rule of 221 '.', a blank line.  The emulator records no call
sites, so the contention-point lines themselves are not printed.

Class names.  The kernel has one lockdep class per lock *site*, so every cache's
list_lock is the single class "&n->list_lock".  The emulator keeps one row per lock
instance and names it

    [<cache>:]<lock name>/<node>      e.g. "kmalloc-64:&n->list_lock/0",
                                           "kmalloc-64(2:m1):&alc->lock/1", "&zone->lock/0"

(`lock_class_name`).  The cache part is left out when the row has no cache (zone locks,
and rows summed over caches by `aggregate_per_node`).  Unlike the kernel (which cuts names
at 37 characters), names are never truncated: a longer name only widens its own line.
`parse_lock_stat` splits such names back into cache, lock name and node.

Invariant: ``parse_lock_stat(format_lock_stat(rows))`` gives back every acquired row's
name, cache, node, counts, and times rounded to 0.01 us.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["VERSION_LINE", "COLUMNS", "LOCK_CLASSES", "COUNT_KEYS", "TIME_KEYS",
           "lock_class_name", "split_lock_class_name", "format_lock_stat",
           "aggregate_per_node", "parse_lock_stat", "format_time_us"]

VERSION_LINE = "lock_stat version 0.4"
COLUMNS = ("class name", "con-bounces", "contentions", "waittime-min", "waittime-max",
           "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
           "holdtime-max", "holdtime-total", "holdtime-avg")
_WIDTH = 40 + 1 + 12 * (14 + 1)  # seq_line(m, '-', 0, 40 + 1 + 12 * (14 + 1))
_RULE = "-" * _WIDTH
_DOTS = "." * _WIDTH
HEADER_LINE = f"{COLUMNS[0]:>40}" + "".join(f" {c:>14}" for c in COLUMNS[1:])

# The lock names the emulator uses, and their summary.json "class".
LOCK_CLASSES = {"&n->list_lock": "list_lock", "&zone->lock": "zone", "&alc->lock": "alien"}

COUNT_KEYS = ("con_bounces", "contentions", "acq_bounces", "acquisitions")
TIME_KEYS = ("waittime_min_us", "waittime_max_us", "waittime_total_us",
             "holdtime_min_us", "holdtime_max_us", "holdtime_total_us")
_EXTRA_SUMS = ("spins", "yields")

_CLASS_NAME = re.compile(r"^(?:(?P<cache>.+):)?(?P<lock>&[^:]+?)/(?P<node>\d+)$")
# a class's statistics line: "<name>[-W|-R]:" and twelve numbers (the name may hold ':')
_STATS_LINE = re.compile(
    r"^\s*(?P<name>.*?)(?P<rw>-[WR])?:(?P<nums>(?:\s+-?\d+(?:\.\d+)?){12})\s*$")


def lock_class_name(lock: Mapping[str, Any]) -> str:
    """The class name printed for a lock row: ``[<cache>:]<name>[/<node>]``."""
    name = str(lock["name"])
    cache = lock.get("cache")
    node = lock.get("node")
    if cache is not None:
        name = f"{cache}:{name}"
    if node is not None:
        name = f"{name}/{node}"
    return name


def split_lock_class_name(text: str) -> tuple[str | None, str, int | None]:
    """(cache, lock name, node) of a printed class name; (None, text, None) for a name
    not in the emulator's scheme (a real kernel's class, e.g. "&rq->lock")."""
    m = _CLASS_NAME.match(text)
    if m is None:
        return None, text, None
    return m["cache"], m["lock"], int(m["node"])


def _ns(us: float) -> int:
    return int(round(float(us) * 1000))


def _fmt_ns(ns: int) -> str:
    # snprint_time(): nr += 5; div_s64_rem(nr, 1000, &rem); "%lld.%02d", div, rem / 10
    # (times are never negative; a negative one prints as 0.00)
    div, rem = divmod(max(ns, 0) + 5, 1000)
    return f"{div}.{rem // 10:02d}"


def format_time_us(us: float) -> str:
    """A time in microseconds as lock_stat prints it ("%lld.%02d" of the rounded ns)."""
    return _fmt_ns(_ns(us))


def _lock_time(nr: int, mn: float, mx: float, total: float) -> str:
    # seq_lock_time(): "%14lu" nr, then " %14s" min, max, total, avg
    total_ns = _ns(total)
    avg_ns = total_ns // nr if nr else 0
    return (f"{nr:14d}" + "".join(f" {_fmt_ns(v):>14}"
                                  for v in (_ns(mn), _ns(mx), total_ns, avg_ns)))


def _stats_line(lock: Mapping[str, Any]) -> str:
    name = lock_class_name(lock)
    return (f"{name:>40}:" + f"{int(lock['con_bounces']):14d} "
            + _lock_time(int(lock["contentions"]), lock["waittime_min_us"],
                         lock["waittime_max_us"], lock["waittime_total_us"])
            + f" {int(lock['acq_bounces']):14d} "
            + _lock_time(int(lock["acquisitions"]), lock["holdtime_min_us"],
                         lock["holdtime_max_us"], lock["holdtime_total_us"]))


def format_lock_stat(locks: Iterable[Mapping[str, Any]], per_node: bool = False) -> str:
    """The text of /proc/lock_stat for these lock rows (summary.json "locks" entries),
    newline-terminated.  ``per_node`` first sums the rows per (lock name, node) with
    `aggregate_per_node`."""
    rows = aggregate_per_node(locks) if per_node else list(locks)
    lines = [VERSION_LINE, _RULE, HEADER_LINE, _RULE, ""]
    shown = [r for r in rows if int(r["acquisitions"]) > 0]
    shown.sort(key=lambda r: -int(r["contentions"]))  # stable: ties keep input order
    for r in shown:
        lines.append(_stats_line(r))
        if int(r["contentions"]) > 0:
            lines += ["", _DOTS, ""]
    return "\n".join(lines) + "\n"


def _class_of(lock: Mapping[str, Any]) -> str | None:
    return lock.get("class") or LOCK_CLASSES.get(str(lock["name"]))


def aggregate_per_node(locks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The lock rows summed per (lock name, node): for "&n->list_lock" the list_lock
    statistics of each NUMA node over all caches.

    Counts, totals, spins and yields are summed; waittime min/max are the min/max over
    the rows that had contentions, holdtime min/max over the rows that had acquisitions
    (0 when there are none).  Each result has cache None and ``instances``, the number of
    rows summed.  Order: lock names in order of first appearance, then node."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    first: dict[str, int] = {}
    for r in locks:
        name = str(r["name"])
        first.setdefault(name, len(first))
        groups.setdefault((name, r.get("node")), []).append(r)
    out = []
    order = sorted(groups, key=lambda k: (first[k[0]], -1 if k[1] is None else k[1]))
    for name, node in order:
        rs = groups[(name, node)]
        d: dict[str, Any] = {"name": name, "class": _class_of(rs[0]), "cache": None,
                             "node": node}
        for k in COUNT_KEYS:
            d[k] = sum(int(r[k]) for r in rs)
        for prefix, count in (("waittime", "contentions"), ("holdtime", "acquisitions")):
            active = [r for r in rs if int(r[count]) > 0]
            d[f"{prefix}_min_us"] = min((float(r[f"{prefix}_min_us"]) for r in active),
                                        default=0.0)
            d[f"{prefix}_max_us"] = max((float(r[f"{prefix}_max_us"]) for r in active),
                                        default=0.0)
            d[f"{prefix}_total_us"] = sum(float(r[f"{prefix}_total_us"]) for r in rs)
        for k in _EXTRA_SUMS:
            if any(k in r for r in rs):
                d[k] = sum(int(r.get(k, 0)) for r in rs)
        d["instances"] = len(rs)
        out.append(d)
    return out


def parse_lock_stat(text: str) -> list[dict[str, Any]]:
    """Lock rows from /proc/lock_stat text, ours or a kernel's, in file order.

    Each row has name, class (None for a lock the emulator does not know), cache, node,
    the `COUNT_KEYS`, the `TIME_KEYS` and waittime_avg_us / holdtime_avg_us; a rwlock's
    "-W"/"-R" lines give two rows with ``rw`` "W" / "R".  Contention-point lines, rules
    and blank lines are skipped.  Raises ValueError on a missing version line."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("lock_stat version"):
        got = lines[0] if lines else ""
        raise ValueError(f"lock_stat line 1: expected {VERSION_LINE!r}, got {got!r}")
    rows = []
    for line in lines[1:]:
        m = _STATS_LINE.match(line)
        if m is None:
            continue
        nums = m["nums"].split()
        cache, name, node = split_lock_class_name(m["name"].strip())
        row: dict[str, Any] = {"name": name, "class": LOCK_CLASSES.get(name), "cache": cache,
                               "node": node}
        row["con_bounces"] = int(float(nums[0]))
        row["contentions"] = int(float(nums[1]))
        row["waittime_min_us"], row["waittime_max_us"], row["waittime_total_us"], \
            row["waittime_avg_us"] = (float(v) for v in nums[2:6])
        row["acq_bounces"] = int(float(nums[6]))
        row["acquisitions"] = int(float(nums[7]))
        row["holdtime_min_us"], row["holdtime_max_us"], row["holdtime_total_us"], \
            row["holdtime_avg_us"] = (float(v) for v in nums[8:12])
        if m["rw"]:
            row["rw"] = m["rw"][1]
        rows.append(row)
    return rows
