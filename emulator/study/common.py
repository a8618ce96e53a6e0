"""What the studies share: building scenario variants and reading the numbers they
report from summary.json (the runs themselves: staged.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..workload.scenario import Scenario, load_scenario


def variant(base: str | Scenario, **changes: Any) -> Scenario:
    """`base` (a scenario name or Scenario) with fields replaced, re-validated through
    Scenario.from_dict (nested tables: pass a dict of their fields to merge)."""
    sc = load_scenario(base) if isinstance(base, str) else base
    d = sc.to_dict()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    d["mode"] = "virtual"
    return Scenario.from_dict(d, source=f"study variant of {sc.name}")


def list_lock_by_node(summary: dict) -> dict[int, dict[str, float]]:
    """acquisitions, contentions, wait (virtual us) and hold (virtual us) per node."""
    out: dict[int, dict[str, float]] = {}
    for l in summary["locks"]:
        if l["class"] != "list_lock":
            continue
        n = out.setdefault(int(l["node"]), {"acquisitions": 0, "contentions": 0,
                                            "wait_us": 0.0, "hold_us": 0.0})
        n["acquisitions"] += l["acquisitions"]
        n["contentions"] += l["contentions"]
        n["wait_us"] += l["waittime_total_us"]
        n["hold_us"] += l["holdtime_total_us"]
    return dict(sorted(out.items()))


def cache_stat(summary: dict, name_prefix: str, item: str) -> int:
    """A stat item summed over the caches whose name starts with `name_prefix`."""
    return sum(int((c.get("stats") or {}).get(item, 0)) for c in summary["caches"]
               if str(c["name"]).startswith(name_prefix))


def mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else 0.0


def table(rows: list[list[str]], head: list[str]) -> str:
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).rjust(w[i]) for i, v in enumerate(r))
    return "\n".join([line(head), "  ".join("-" * x for x in w)] + [line(r) for r in rows]) + "\n"
