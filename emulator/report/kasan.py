"""KASAN-style reports of a run: the text a kernel log would show for each finding.

Models the layout of mm/kasan/report.c (4.x): each report between lines of 66 '=',
opening with "BUG: KASAN: <bug> in <where>", then the access ("Read/Write of size N at
addr A by task T"), the object's cache and where the object was freed.  The emulator has
no stacks: "where" is the emulated op and phase, and a task is named by its index on its
emulated CPU.  Per bug kind (summary.json "bug"):

  slab-use-after-free, slab-out-of-bounds   "<Access> of size N at addr A by task T on cpu C"
  double-free, invalid-free                 "Free of addr A by task T on cpu C"
  kmem_cache-use-after-free                 "Access to freed kmem_cache at addr A by ..."

<Access> is "Read" or "Write" from the report's optional "access" key ("read" | "write"),
"Access" when the emulator did not record it; a size of 0 (unknown) prints no "of size".
Addresses are emulated physical addresses, printed as 16 hex digits like the kernel's %p.

Invariant: reports print in the order given, one block each; when ``total`` (reports
counted) exceeds the reports kept, a last line says how many were not shown.  No reports
and a total of 0 give the empty string, as a clean kernel log has no KASAN lines.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

__all__ = ["BUG_KINDS", "SEPARATOR", "format_kasan", "format_kasan_report",
           "count_by_bug"]

BUG_KINDS = ("slab-use-after-free", "double-free", "invalid-free",
             "kmem_cache-use-after-free", "slab-out-of-bounds")
SEPARATOR = "=" * 66
_FREES = ("double-free", "invalid-free")


def _where(op: Any, phase: Any) -> str:
    return f"{op}/{phase}" if op is not None and phase is not None else str(
        op if op is not None else phase)


def _addr(a: Any) -> str:
    return f"{int(a):016x}" if isinstance(a, int) and a >= 0 else str(a)


def format_kasan_report(r: Mapping[str, Any]) -> list[str]:
    """The lines of one report, without the separators."""
    bug = r["bug"]
    who = f"by task {r.get('task')} on cpu {r.get('cpu')}"
    addr = _addr(r.get("object"))
    lines = [f"BUG: KASAN: {bug} in {_where(r.get('op'), r.get('phase'))}"]
    if bug in _FREES:
        lines.append(f"Free of addr {addr} {who}")
    elif bug == "kmem_cache-use-after-free":
        lines.append(f"Access to freed kmem_cache (descriptor row {r.get('object')}) {who}")
    else:
        verb = {"read": "Read", "write": "Write"}.get(str(r.get("access", "")).lower(), "Access")
        size = r.get("size") or 0
        lines.append(f"{verb} of size {size} at addr {addr} {who}" if size
                     else f"{verb} at addr {addr} {who}")
    cache = r.get("cache")
    if cache is not None:
        lines.append(f"The buggy address belongs to the cache {cache}")
    if r.get("preempted"):
        lines.append(f"The task was preempted inside {r.get('op')} before this access")
    alloc = r.get("allocated_by")
    if alloc:
        lines.append(f"Allocated by cpu {alloc.get('cpu')} in "
                     f"{_where(alloc.get('op'), alloc.get('phase'))}")
    freed = r.get("freed_by")
    if freed:
        lines.append(f"Freed by cpu {freed.get('cpu')} in "
                     f"{_where(freed.get('op'), freed.get('phase'))}")
    now = r.get("freeing_cpu_now")
    if freed and now:
        lines.append(f"Last events: cpu {freed.get('cpu')} is now in "
                     f"{_where(now.get('op'), now.get('phase'))}; cpu {r.get('cpu')} ran "
                     f"{r.get('previous_op') or 'nothing'} before {r.get('op')}")
    return lines


def format_kasan(reports: Iterable[Mapping[str, Any]], total: int | None = None,
                 kernel: str | None = None) -> str:
    """The text of kasan.txt: every report, then the count of reports not kept.

    ``total`` is summary.json "kasan_total" (None: the reports given are all);
    ``kernel`` (summary.kernel_line) heads the text: which build the reports are from."""
    reports = list(reports)
    total = len(reports) if total is None else int(total)
    lines: list[str] = [f"kernel: {kernel}"] if kernel and reports else []
    for r in reports:
        lines += [SEPARATOR, *format_kasan_report(r), SEPARATOR]
    if total > len(reports):
        lines.append(f"... {total - len(reports)} more KASAN reports not shown "
                     f"({total} in all, the first {len(reports)} kept)")
    return "\n".join(lines) + "\n" if lines else ""


def count_by_bug(reports: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Reports per bug kind, in `BUG_KINDS` order then any other kind by name."""
    c = Counter(str(r["bug"]) for r in reports)
    order = [k for k in BUG_KINDS if k in c] + sorted(k for k in c if k not in BUG_KINDS)
    return {k: c[k] for k in order}
