"""Finding signatures: what makes two runs' findings the same bug.

A signature is a small dict, and its `key` a string, of:
  kind      cache-use-after-free | object-use-after-free | double-free | invalid-free |
            out-of-bounds | dead-cache-leak | pinned-memcgs | invariant-violation | crash
  access    "op/phase" of the bad access (the free, for double/invalid frees; the op and
            phase a crashed worker was in; the invariant's name for a violation)
  freed     "op/phase" that freed what was accessed ("-" when it does not apply)
  flavour   preempted (the task was preempted inside the op before the access) or
            parallel (another CPU freed it while this one ran straight on); "-" for
            leaks, violations and crashes

CPU numbers, addresses, cache rows and memcg ids are left out on purpose: they change
with the seed and the schedule while the bug stays the same.  A run gives its first
KASAN report's signature (campaign runs stop there), and, when it ran to its end, one
for leaked dead caches, pinned memcgs, a broken invariant or a crashed worker.
"""

from __future__ import annotations

import re

KINDS = {
    "kmem_cache-use-after-free": "cache-use-after-free",
    "slab-use-after-free": "object-use-after-free",
    "double-free": "double-free",
    "invalid-free": "invalid-free",
    "slab-out-of-bounds": "out-of-bounds",
}


def _where(op, phase) -> str:
    if op is None:
        return "-"
    return f"{op}/{phase}" if phase is not None else str(op)


def signature_key(sig: dict) -> str:
    return f"{sig['kind']} at {sig['access']} freed in {sig['freed']} [{sig['flavour']}]"


def _sig(kind: str, access: str, freed: str = "-", flavour: str = "-") -> dict:
    s = {"kind": kind, "access": access, "freed": freed, "flavour": flavour}
    s["key"] = signature_key(s)
    return s


def kasan_signature(r: dict) -> dict:
    """The signature of one KASAN report (a summary.json "kasan" row)."""
    freed = r.get("freed_by") or {}
    return _sig(KINDS.get(r["bug"], str(r["bug"])), _where(r.get("op"), r.get("phase")),
                _where(freed.get("op"), freed.get("phase")) if freed else "-",
                "preempted" if r.get("preempted") else "parallel")


def _invariant_name(text: str) -> str:
    """A violation's text without its numbers: which invariant, not which row."""
    head = text.split(":", 1)[0]
    return re.sub(r"\d+", "N", head).strip()[:80] or "invariant"


def run_signatures(summary: dict) -> list[dict]:
    """Every signature of a run's summary.json: its first KASAN report's, then, for a run
    that reached its end, leaks, pinned memcgs, broken invariants; a crash."""
    out = []
    if summary.get("kasan"):
        out.append(kasan_signature(summary["kasan"][0]))
    failure = summary.get("failure")
    if failure:
        out.append(_sig("crash", _where(failure.get("op"), failure.get("phase")),
                        flavour="-"))
    inv = summary.get("invariants") or {}
    if inv.get("count"):
        first = (inv.get("violations") or ["invariant"])[0]
        out.append(_sig("invariant-violation", _invariant_name(first)))
    if summary.get("exit") == "ok" and summary.get("kasan_total", 0) == 0:
        leaks = summary.get("leaks") or {}
        if leaks.get("dead_caches"):
            out.append(_sig("dead-cache-leak", "memcg_offline", "-", "-"))
        if leaks.get("pinned_memcgs"):
            out.append(_sig("pinned-memcgs", "memcg_offline", "-", "-"))
    return out
