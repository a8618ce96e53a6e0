"""The campaign's tables: findings by signature, and time/ops to first finding per strategy.

`format_findings`: one row per signature: runs that hit it, the first hit in run time
and in ops, the parameters, and the reproducer (its file and minimal size next to the
original's) or why there is none (with the parallel runs that hit it).
`strategy_rows`/`format_strategies`: per (scenario, policy, faults, mode, strategy): runs,
runs with a finding, and the median time and ops to the first finding over all runs (a
run without a finding counts as infinitely late, so a median is shown only when at least
half the runs found something); PCT rows say d and the per-run bound; bounded rows say
what the search explored.
"""

from __future__ import annotations

import statistics


def _label(spec: dict) -> str:
    if spec["mode"] == "parallel":
        return "true-parallel"
    return f"{spec['mode']} {spec['strategy']}"


def _faults(spec: dict) -> str:
    f = spec.get("faults") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(f.items())) or "scenario's"


def _median_censored(values: list, n: int):
    """Median over n runs where the runs missing from `values` never found it."""
    if n == 0 or len(values) * 2 < n:
        return None
    vals = sorted(values) + [float("inf")] * (n - len(values))
    m = statistics.median(vals)
    return None if m == float("inf") else m


def strategy_rows(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list] = {}
    for r in runs:
        s = r["spec"]
        key = (s["scenario"], s["policy"], s["allocator"], s.get("topology") or "-",
               _faults(s), _label(s))
        groups.setdefault(key, []).append(r)
    rows = []
    for (scn, pol, alloc, topo, faults, label), rs in groups.items():
        hits = [r for r in rs if any(sg["kind"] not in ("dead-cache-leak", "pinned-memcgs")
                                     for sg in r.get("signatures") or [])]
        kinds = sorted({sg["key"] for r in hits for sg in r["signatures"]})
        row = {"scenario": scn, "policy": pol, "allocator": alloc, "topology": topo,
               "faults": faults, "strategy": label, "runs": len(rs), "found": len(hits),
               "median_s": _median_censored([r["duration_s"] for r in hits
                                             if r.get("duration_s") is not None], len(rs)),
               "median_ops": _median_censored([r["ops"] for r in hits
                                               if r.get("ops") is not None], len(rs)),
               "findings": kinds}
        pct = [r["pct"] for r in rs if r.get("pct")]
        if pct:
            row["pct"] = {"d": pct[0]["depth"], "n": pct[0]["cpus_n"], "k": pct[0]["steps_k"],
                          "bound": pct[0]["bound"]}
        bnd = [r["bounded"] for r in rs if r.get("bounded")]
        if bnd:
            row["bounded"] = {"B": bnd[0]["bound"],
                              "explored_median": statistics.median(b["explored"] for b in bnd),
                              "no_finding": sum(1 for b in bnd if not b["found"] and b["complete"]),
                              "cut": sum(1 for b in bnd if not b["complete"])}
        rows.append(row)
    return rows


def _fmt_s(v) -> str:
    if v is None:
        return "-"
    if v < 0.01:
        return f"{v * 1000:.2f} ms"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def format_strategies(rows: list[dict]) -> str:
    pw = max([len(r["policy"]) for r in rows] + [9]) + 2
    fw = max([len(r["faults"]) for r in rows] + [9]) + 2
    head = (f"{'policy':<{pw}}{'faults':<{fw}}{'strategy':<23}{'runs':>5}{'found':>6}"
            f"{'median time':>13}{'median ops':>12}  notes")
    lines = [head]
    for r in rows:
        notes = []
        if r.get("pct"):
            p = r["pct"]
            notes.append(f"d={p['d']}, n={p['n']}, k={p['k']}: bound {p['bound']:.2g}/run")
        if r.get("bounded"):
            b = r["bounded"]
            notes.append(f"B={b['B']}, {b['explored_median']:.0f} schedules (median)"
                         + (f", {b['no_finding']} with no finding within B={b['B']}"
                            if b["no_finding"] else "")
                         + (f", {b['cut']} cut" if b["cut"] else ""))
        lines.append(f"{r['policy']:<{pw}}{r['faults']:<{fw}}{r['strategy']:<23}{r['runs']:>5}"
                     f"{r['found']:>6}{_fmt_s(r['median_s']):>13}"
                     f"{(str(int(r['median_ops'])) if r['median_ops'] is not None else '-'):>12}"
                     f"  {'; '.join(notes)}".rstrip())
    return "\n".join(lines)


def format_findings(data: dict) -> str:
    findings = data.get("findings") or []
    repros = {r["finding"]: r for r in data.get("reproducers") or []}
    if not findings:
        return "findings: none\n"
    lines = [f"findings: {len(findings)} signature(s)"]
    for i, f in enumerate(findings, 1):
        sig = f["signature"]
        lines.append(f"{i:>2}. {sig['kind']} [{sig['flavour']}]")
        lines.append(f"    access   {sig['access']}")
        lines.append(f"    freed in {sig['freed']}")
        ft, fo = f.get("first_time"), f.get("first_ops")
        lines.append(f"    runs     {f['count']}; first hit {_fmt_s(ft['seconds']) if ft else '-'}"
                     f" ({ft['run'] if ft else '-'}), {fo['ops'] if fo else '-'} ops"
                     f" ({fo['run'] if fo else '-'})")
        params = sorted({f"{p['policy']} {_label(p)}" for p in f["params"]})
        lines.append(f"    under    {', '.join(params)}")
        r = repros.get(sig["key"])
        if r is None:
            lines.append("    repro    (not searched yet)")
        elif r.get("reproducer"):
            o, m = r["size"]["original"], r["size"]["minimal"]
            lines.append(f"    repro    {r['reproducer']}")
            lines.append(f"    size     original {o['cpus']} CPUs, {o['ops_per_cpu']} ops/CPU "
                         f"({o['ops_run']} run), {o['memcgs']} memcgs, {o['steps']} steps; "
                         f"minimal {m['cpus']} CPUs, {m['ops_per_cpu']} ops/CPU ({m['ops_run']} "
                         f"run), {m['memcgs']} memcgs, {m['steps']} steps")
        else:
            runs = r.get("parallel_runs") or r.get("runs") or []
            lines.append(f"    repro    none: {r.get('why')}"
                         + (f"; hit by {', '.join(runs[:5])}" + (" ..." if len(runs) > 5 else "")
                            if runs else ""))
    return "\n".join(lines) + "\n"


def format_campaign(data: dict) -> str:
    runs = data.get("runs") or []
    p = data.get("params") or {}
    lines = [f"campaign: {len(runs)} runs of {', '.join(p.get('scenarios', []))} "
             f"(policies {', '.join(p.get('policies', []))}; engine {data.get('engine')})"
             + ("" if data.get("complete") else "; not complete (resume with --resume)")]
    lines.append("")
    lines.append(format_strategies(strategy_rows(runs)))
    lines.append("")
    return "\n".join(lines) + "\n" + format_findings(data)
