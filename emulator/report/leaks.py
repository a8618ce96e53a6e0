"""The leak report: what dead memcg caches still hold when a run ends.

Models the leak the patch series is about: a memcg's kmem caches are marked dead when the
memcg goes offline, and (before self-destruction, or when it fails) they stay alive as
long as they hold a slab, pinning their memcg.  summary.json "leaks" counts the dead
caches still alive, their slabs (for SLUB also: how many are frozen, i.e. a cpu slab or
on a cpu partial list, and how many are on a node's partial list), objects and pages,
and the memcgs pinned by them.

Invariant: every count is printed, zeros included, so scripts can grep the lines; the
last line is the verdict ("no leak" iff no dead cache is alive and no memcg is pinned).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["LEAK_KEYS", "format_leaks", "has_leak"]

LEAK_KEYS = ("dead_caches", "dead_cache_slabs", "dead_cache_frozen_slabs",
             "dead_cache_node_partial_slabs", "dead_cache_objects", "dead_cache_pages",
             "pinned_memcgs")
_LABELS = {
    "dead_caches": "dead caches alive",
    "dead_cache_slabs": "  their slabs",
    "dead_cache_frozen_slabs": "    frozen",  # SLUB: cpu slabs, cpu partial lists
    "dead_cache_node_partial_slabs": "    on n->partial",  # SLUB
    "dead_cache_objects": "  their objects",
    "dead_cache_pages": "  their pages",
    "pinned_memcgs": "memcgs pinned",
}


def has_leak(leaks: Mapping[str, Any]) -> bool:
    """Is a dead cache still alive, or a memcg pinned?"""
    return bool(leaks.get("dead_caches") or leaks.get("pinned_memcgs"))


def format_leaks(leaks: Mapping[str, Any]) -> str:
    """The leak table, newline-terminated; keys missing from ``leaks`` are left out."""
    lines = [f"{_LABELS[k] + ':':<20}{int(leaks[k]):>12d}" for k in LEAK_KEYS if k in leaks]
    if has_leak(leaks):
        pages = leaks.get("dead_cache_pages")
        held = f" holding {int(pages)} page(s)" if pages is not None else ""
        lines.append(f"leak: {int(leaks.get('dead_caches', 0))} dead cache(s) alive{held}, "
                     f"{int(leaks.get('pinned_memcgs', 0))} memcg(s) pinned")
    else:
        lines.append("no leak: no dead cache is alive")
    return "\n".join(lines) + "\n"
