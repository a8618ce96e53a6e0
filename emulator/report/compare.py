"""The side-by-side table of `slabemu compare`: one scenario run under several policies.

What it shows, per policy (a column each, in the order given): what the dead-cache
series is about — dead caches still alive at the end (after every object was freed),
the pages they hold, the memcgs they pin, KASAN reports (the kfree/destroy
use-after-free) — and what each design costs: ops per second and list_lock
acquisitions and contentions per 1000 ops (summed over every cache and node).
Input: summary.json dicts (schema 1); nothing here reads a kernel.
"""

from __future__ import annotations

from typing import Any, Iterable

from .summary import kernel_line

UAF_BUGS = ("slab-use-after-free", "kmem_cache-use-after-free")


def list_lock_totals(summary: dict) -> tuple[int, int]:
    acq = cont = 0
    for lock in summary.get("locks", []):
        if lock.get("class") == "list_lock":
            acq += int(lock.get("acquisitions", 0))
            cont += int(lock.get("contentions", 0))
    return acq, cont


def compare_rows(summaries: Iterable[dict]) -> list[dict[str, Any]]:
    """One dict per run: the table's numbers, by key."""
    out = []
    for s in summaries:
        ops = int(s["ops"]["total"])
        acq, cont = list_lock_totals(s)
        leaks = s.get("leaks", {})
        memcg = s.get("memcg") or {}
        uaf = sum(1 for r in s.get("kasan", []) if r.get("bug") in UAF_BUGS)
        out.append({
            "policy": s["policy"]["name"],
            "exit": s["exit"],
            "dead_caches": int(leaks.get("dead_caches", 0)),
            "dead_cache_pages": int(leaks.get("dead_cache_pages", 0)),
            "dead_cache_frozen_slabs": int(leaks.get("dead_cache_frozen_slabs", 0)),
            "dead_cache_node_partial_slabs": int(leaks.get("dead_cache_node_partial_slabs", 0)),
            "pinned_memcgs": int(leaks.get("pinned_memcgs", 0)),
            "memcgs": int(memcg.get("created", 0)),
            "kasan_reports": int(s.get("kasan_total", 0)),
            "use_after_free_shown": uaf,
            "ops": ops,
            "ops_per_second": float(s["ops"]["per_second"]),
            "list_lock_acq_per_1000_ops": 1000.0 * acq / ops if ops else 0.0,
            "list_lock_cont_per_1000_ops": 1000.0 * cont / ops if ops else 0.0,
            "preemptions": int(memcg.get("preemptions", 0)),
            "grace_periods": int(memcg.get("rcu_grace_periods", 0)),
        })
    return out


_LINES = (
    ("dead caches leaked", "dead_caches", "{:d}"),
    ("pages leaked", "dead_cache_pages", "{:d}"),
    ("  slabs frozen (cpu lists)", "dead_cache_frozen_slabs", "{:d}"),
    ("  slabs on n->partial", "dead_cache_node_partial_slabs", "{:d}"),
    ("memcgs pinned", "pinned_memcgs", "{:d}"),
    ("use-after-frees (KASAN)", "kasan_reports", "{:d}"),
    ("ops/s", "ops_per_second", "{:,.0f}"),
    ("list_lock acq / 1000 ops", "list_lock_acq_per_1000_ops", "{:.2f}"),
    ("list_lock cont / 1000 ops", "list_lock_cont_per_1000_ops", "{:.3f}"),
    ("memcgs created", "memcgs", "{:d}"),
    ("preemptions", "preemptions", "{:d}"),
    ("RCU grace periods", "grace_periods", "{:d}"),
    ("exit", "exit", "{}"),
)


def format_compare(scenario: str, summaries: list[dict]) -> str:
    rows = compare_rows(summaries)
    if not rows:
        return f"compare {scenario}: no runs\n"
    first = summaries[0]
    head = (f"scenario {scenario} on {first['topology']['name']} ({first['allocator']}, "
            f"{first['mode']} mode, seed {first['seed']})")
    kernels = {kernel_line(s) for s in summaries} - {None}
    if kernels:  # one build for every column (compare varies the policy only)
        head += "\nkernel " + "; ".join(sorted(kernels))
    if first.get("virtual"):  # virtual mode: ops/s are per virtual second
        head += "\ncosts " + first["virtual"]["costs"]["name"] + " (ops/s in virtual time)"
    width = max(12, *(len(r["policy"]) + 2 for r in rows))
    label_w = max(len(label) for label, _, _ in _LINES) + 2
    lines = [head, "", " " * label_w + "".join(f"{r['policy']:>{width}}" for r in rows)]
    for label, key, fmt in _LINES:
        lines.append(f"{label:<{label_w}}" + "".join(f"{fmt.format(r[key]):>{width}}" for r in rows))
    return "\n".join(lines) + "\n"
