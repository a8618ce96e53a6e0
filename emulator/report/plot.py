"""Figures of a results directory's stream (`slabemu plot DIR`), with matplotlib's Agg
backend (no display needed).

What it draws, from stream.msgpack's snapshots (emulator/run/collect.py `snapshot`):
list_lock acquisitions, contentions and wait time per node over time, ops/s per CPU
(between two snapshots), and dead caches alive and memcgs pinned over time.  Times are
the snapshots' `t`: host seconds in parallel and deterministic mode, virtual seconds in
virtual mode (the axis says which).

matplotlib is an optional extra (`pip install slabemu[plot]`; the `test` extra installs
it too).  Without it, `require_matplotlib` raises PlotUnavailable, which the command line
reports as one line (exit status 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from topo.errors import ConfigError

from .results import read_stream


class PlotUnavailable(ConfigError):
    pass


def require_matplotlib():
    """pyplot with the Agg backend, or PlotUnavailable naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("matplotlib", "import",
                              "matplotlib installed (pip install 'slabemu[plot]')") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _mode(results: Path) -> str:
    try:
        return json.loads((results / "summary.json").read_text()).get("mode", "parallel")
    except (OSError, ValueError):
        return "parallel"


def stream_series(results: Path) -> dict[str, Any]:
    """The time series the figure draws, from DIR/stream.msgpack."""
    records, _ = read_stream(results / "stream.msgpack")
    snaps = [r for r in records if r.get("type") == "snapshot"]
    if not snaps:
        raise ConfigError(str(results / "stream.msgpack"), "snapshot",
                          "at least one snapshot record in the stream")
    t = [float(s["t"]) for s in snaps]
    nodes = sorted({int(l["node"]) for s in snaps for l in s.get("locks", [])})
    per_node = {key: {n: [sum(int(l.get(key, 0)) for l in s.get("locks", []) if int(l["node"]) == n)
                          for s in snaps] for n in nodes}
                for key in ("acquisitions", "contentions", "wait_ns")}
    ncpu = len(snaps[0].get("ops", []))
    rates: list[list[float]] = [[] for _ in range(ncpu)]
    t_rate: list[float] = []
    prev_t, prev_ops = 0.0, [0] * ncpu
    for s in snaps:
        dt = float(s["t"]) - prev_t
        if dt > 0:
            t_rate.append(float(s["t"]))
            for c in range(ncpu):
                rates[c].append((int(s["ops"][c]) - prev_ops[c]) / dt)
        prev_t, prev_ops = float(s["t"]), [int(v) for v in s["ops"]]
    leaks = [s.get("leaks", {}) for s in snaps]
    return {"t": t, "nodes": nodes, "per_node": per_node, "t_rate": t_rate, "rates": rates,
            "dead_caches": [int(x.get("dead_caches", 0)) for x in leaks],
            "pinned_memcgs": [int(x.get("pinned_memcgs", 0)) for x in leaks]}


def plot_results(results: str | Path, out: str | Path | None = None) -> Path:
    """Draw DIR's stream to `out` (default DIR/plot.png); returns the file written."""
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(str(results), "results directory", "an existing results directory")
    plt = require_matplotlib()
    d = stream_series(results)
    unit = "virtual s" if _mode(results) == "virtual" else "s"
    fig, axes = plt.subplots(3, 2, figsize=(12, 10), constrained_layout=True)
    for ax, key, title in ((axes[0, 0], "acquisitions", "list_lock acquisitions"),
                           (axes[0, 1], "contentions", "list_lock contentions"),
                           (axes[1, 0], "wait_ns", "list_lock wait time (us)")):
        for n in d["nodes"]:
            ys = d["per_node"][key][n]
            if key == "wait_ns":
                ys = [y / 1000 for y in ys]
            ax.plot(d["t"], ys, label=f"node {n}")
        ax.set_title(title + " per node, cumulative")
        ax.set_xlabel(unit)
        if d["nodes"]:
            ax.legend(fontsize="small")
    ax = axes[1, 1]
    for c, ys in enumerate(d["rates"]):
        ax.plot(d["t_rate"], ys, lw=0.8, label=f"cpu {c}" if len(d["rates"]) <= 8 else None)
    ax.set_title(f"ops per {unit} per CPU")
    ax.set_xlabel(unit)
    if 0 < len(d["rates"]) <= 8:
        ax.legend(fontsize="small")
    ax = axes[2, 0]
    ax.step(d["t"], d["dead_caches"], where="post", label="dead caches alive")
    ax.step(d["t"], d["pinned_memcgs"], where="post", label="memcgs pinned")
    ax.set_title("dead caches and pinned memcgs")
    ax.set_xlabel(unit)
    ax.legend(fontsize="small")
    axes[2, 1].axis("off")
    axes[2, 1].text(0.0, 0.9, f"results: {results.name}\nsnapshots: {len(d['t'])}",
                    va="top", family="monospace")
    path = Path(out) if out else results / "plot.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
