"""The end-of-run tables `slabemu run` prints and `slabemu report DIR` shows again.

Reads a summary.json (schema 1, docs/design.md §11) and prints, in this order: the
header (scenario, topology, allocator, policy and its switches, mode, seed, exit and
duration, ops in all and per second, the error and the failure when there is one); ops
per emulated CPU (min/mean/max, then eight CPUs to a line); the caches holding objects
(top `TOP_CACHES` by num_objs); list_lock statistics summed per NUMA node
(`lockstat.aggregate_per_node`); KASAN reports by bug kind; and the leak table.

Invariants: a pure function of the summary (no clock, no environment); every section
is present, saying "none" when empty, so scripts can find each heading; sections are
separated by one blank line.
"""

from __future__ import annotations

from typing import Any, Mapping

from .kasan import count_by_bug
from .leaks import format_leaks
from .lockstat import aggregate_per_node

__all__ = ["format_summary", "TOP_CACHES", "SWITCH_KEYS"]

TOP_CACHES = 15
SWITCH_KEYS = ("dead_caches", "shrink_tolerates_enomem", "nonpreemptible_free",
               "sync_before_destroy", "dead_discard_empty", "track_full_slabs",
               "discard_rule", "dead_cpu_partial", "memcg_no_cpu_partial")
_CPUS_PER_LINE = 8


def _switch(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def kernel_line(s: Mapping[str, Any]) -> str | None:
    """The kernel build of a run (summary.json's ``kernel``), e.g. ``debian-jessie-3.16:
    preempt=voluntary, slub_stats=no, slub_debug=no``; None for results written before
    runs recorded it."""
    kc = s.get("kernel")
    if not isinstance(kc, Mapping):
        return None
    return (f"{kc.get('name')}: preempt={kc.get('preempt')}, "
            f"slub_stats={_switch(kc.get('slub_stats'))}, slub_debug={_switch(kc.get('slub_debug'))}")


def kernel_lines(s: Mapping[str, Any]) -> list[str]:
    line = kernel_line(s)
    return [] if line is None else [f"kernel     {line}"]


def _header(s: Mapping[str, Any]) -> list[str]:
    t = s["topology"]
    pol = s["policy"]
    ops = s["ops"]
    sw = pol.get("switches", {})
    keys = [k for k in SWITCH_KEYS if k in sw] + sorted(k for k in sw if k not in SWITCH_KEYS)
    vt = s.get("virtual")
    where = f"commit {s['commit']}" if s.get("commit") else \
        f"costs {vt['costs']['name']}" if vt else "commit unknown"
    unit = "virtual s" if vt else "s"
    lines = [
        f"scenario   {s['scenario']} (seed {s['seed']}, {s['mode']} mode, {where})",
        f"topology   {t['name']}: {t['arch']}, {t['nodes']} nodes, {t['cpus']} cpus, "
        f"page size {t['page_size']}",
        f"allocator  {s['allocator']}",
        f"policy     {pol['name']}",
        "switches   " + (", ".join(f"{k}={_switch(sw[k])}" for k in keys) or "none"),
        *kernel_lines(s),
        f"exit       {s['exit']} after {float(s['duration_s']):.{6 if vt else 2}f} {unit}",
        f"ops        {int(ops['total'])} in all, {float(ops['per_second']):.0f} per "
        f"{'virtual second' if vt else 'second'}",
    ]
    if s.get("error"):
        lines.append(f"error      {s['error']}")
    f = s.get("failure")
    if f:
        where = "/".join(str(f[k]) for k in ("op", "phase") if f.get(k) is not None)
        lines.append(f"failure    cpu {f.get('cpu')} task {f.get('task')}"
                     + (f" in {where}" if where else "")
                     + (f" (worker pid {f['worker_pid']})" if f.get("worker_pid") else "")
                     + f": {f.get('reason')}")
    return lines


def _ops_per_cpu(per_cpu: list[int]) -> list[str]:
    if not per_cpu:
        return ["ops per cpu: none"]
    mean = sum(per_cpu) / len(per_cpu)
    lines = [f"ops per cpu: min {min(per_cpu)}, mean {mean:.0f}, max {max(per_cpu)}"]
    width = max(len(str(v)) for v in per_cpu)
    label_w = len(f"{len(per_cpu) - 1}-{len(per_cpu) - 1}")
    for start in range(0, len(per_cpu), _CPUS_PER_LINE):
        chunk = per_cpu[start:start + _CPUS_PER_LINE]
        end = start + len(chunk) - 1
        label = f"{start}-{end}" if end > start else f"{start}"
        lines.append(f"  cpu {label:>{label_w}}: " + " ".join(f"{v:>{width}}" for v in chunk))
    return lines


def _caches(caches: list[Mapping[str, Any]]) -> list[str]:
    with_objs = [c for c in caches if int(c["num_objs"]) > 0 or int(c["active_objs"]) > 0]
    if not with_objs:
        return [f"caches with objects: none ({len(caches)} caches)"]
    shown = sorted(with_objs, key=lambda c: -int(c["num_objs"]))[:TOP_CACHES]
    head = (f"caches with objects: {len(with_objs)} of {len(caches)}"
            + (f", top {len(shown)} by num_objs" if len(with_objs) > len(shown)
               else ", by num_objs"))
    name_w = max(17, *(len(str(c["name"])) for c in shown))
    cols = ("active_objs", "num_objs", "objsize", "active_slabs", "num_slabs")
    lines = [head, f"{'name':<{name_w}} " + " ".join(f"{c:>12}" for c in cols)]
    for c in shown:
        line = f"{c['name']:<{name_w}} " + " ".join(f"{int(c[k]):>12d}" for k in cols)
        if c.get("dead"):
            line += "  dead"
        if c.get("aliases"):  # SLUB merging: the names this cache serves besides its own
            line += f"  aliases {','.join(c['aliases'])} (refcount {c.get('refcount')})"
        lines.append(line)
    merged = [c for c in caches if c.get("aliases") and c not in shown]
    for c in merged:
        lines.append(f"merged: {','.join(c['aliases'])} -> {c['name']} (refcount {c.get('refcount')})")
    return lines


def _list_locks(locks: list[Mapping[str, Any]], total_ops: int) -> list[str]:
    rows = [r for r in aggregate_per_node(locks) if r.get("class") == "list_lock"
            or r["name"] == "&n->list_lock"]
    if not rows:
        return ["list_lock per node: none"]
    lines = ["list_lock per node (summed over caches):",
             f"{'node':>4} {'acquisitions':>14} {'contentions':>14} {'cont/1000 ops':>14} "
             f"{'wait total us':>16} {'wait max us':>14}"]
    for r in rows:
        per_k = f"{1000 * r['contentions'] / total_ops:.3f}" if total_ops > 0 else "-"
        lines.append(f"{r['node']:>4} {r['acquisitions']:>14d} {r['contentions']:>14d} "
                     f"{per_k:>14} {r['waittime_total_us']:>16.2f} "
                     f"{r['waittime_max_us']:>14.2f}")
    return lines


def _kasan(reports: list[Mapping[str, Any]], total: int) -> list[str]:
    if total == 0 and not reports:
        return ["KASAN reports: none"]
    by = count_by_bug(reports)
    kept = f", {len(reports)} kept" if total > len(reports) else ""
    lines = [f"KASAN reports: {total}{kept}"]
    lines += [f"  {bug:<26} {n:>8d}" for bug, n in by.items()]
    return lines


def _clock_and_memcg(s: Mapping[str, Any]) -> list[str]:
    """The machine clock, SLAB's cache_reap, and the memcg offline/creation costs
    (summaries written before these keys existed have none of them)."""
    lines = []
    c = s.get("clock")
    if c:
        step = c.get("step_ns") or 0
        how = f"{step} ns per step" if step > 0 else "virtual time" if step < 0 else "wall time"
        lines.append(f"clock      {c['jiffies']} jiffies (HZ {c['hz']}) = {c['seconds']:.3f} s "
                     f"of machine time, {how}")
    r = s.get("cache_reap")
    if r and (r.get("timer") or r.get("runs")):
        lines.append(f"cache_reap {r['runs']} passes ({'timer' if r.get('timer') else 'workload only'}"
                     f"), {r['skipped_slab_mutex']} skipped (slab_mutex held), "
                     f"{r['slabs_reaped']} slabs reaped ({r['slabs_reaped_child_caches']} of memcg caches)")
    m = s.get("memcg") or {}
    if int(m.get("created", 0)) > 0 and "offline_syncs" in m:
        lines.append(f"memcg      {m['created']} created, {m['offline_syncs']} offline "
                     f"synchronize_sched(), {m['rcu_grace_periods']} grace periods; "
                     f"{m['caches_created']} child caches created, {m['creations_waited']} "
                     f"waited for memcg_slab_mutex, latency mean {m['creation_latency_mean_us']:.1f} us "
                     f"max {m['creation_latency_max_us']:.1f} us; "
                     f"{m['root_cache_fallbacks']} allocations served by the root cache meanwhile")
    return lines


def format_summary(summary: Mapping[str, Any]) -> str:
    """The end-of-run tables for a (validated) summary, newline-terminated."""
    s = summary
    sections = [
        _header(s) + _clock_and_memcg(s),
        _ops_per_cpu([int(v) for v in s["ops"]["per_cpu"]]),
        _caches(list(s["caches"])),
        _list_locks(list(s["locks"]), int(s["ops"]["total"])),
        _kasan(list(s["kasan"]), int(s.get("kasan_total", len(s["kasan"])))),
        ["leaks:"] + ["  " + line for line in format_leaks(s["leaks"]).splitlines()],
    ]
    return "\n\n".join("\n".join(sec) for sec in sections) + "\n"
