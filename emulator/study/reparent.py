"""The re-parenting RFC's cost: contended same-node kfree into a memcg cache with and
without full-slab tracking, in virtual time.

Re-parenting a dead memcg cache's slabs to its root cache needs SLUB to list the memcg
cache's full slabs (n->full), so every slab that fills or gets its first free moves
between lists under list_lock, and (as for kmem_cache_debug() caches, whose full slabs
are listed) the cache keeps no per-CPU partial list, so every partial slab a CPU frees
into is taken and put back under list_lock too.  The RFC measured contended same-node
kfree into a memcg cache up to 25% slower with full slabs tracked (restated from the
series' review; Christoph Lameter objected to the fast-path cost).  Root caches are
never re-parented and are not touched by the policy.

Here: configs/scenarios/contended-kfree.toml (SLUB kmalloc-256, every object freed by
another CPU of its node) with every CPU's workload task in one memcg (staged.py's
SharedMemcgRun), so all CPUs of a node allocate from and free into the same child cache
`kmalloc-256(m)` and share its node's list_lock.  Policies: v2-full (no tracking),
no-cpu-partial (memcg caches lose their cpu partial lists, full slabs stay unlisted: that
half of the cost alone) and reparent (track_full_slabs: both), on a machine with 2 CPUs
per node and on davydov-2s6c (12 per node).  Reported: busy virtual ns per op (every
CPU's time less idle, over ops), the run's virtual duration, and list_lock per 1000 ops.
"""

from __future__ import annotations

from pathlib import Path

from ..run.runner import RunOptions
from .common import list_lock_by_node, table, variant
from .staged import run_shared

PUBLISHED = ("up to 25% slower contended same-node kfree into a memcg cache (the re-parenting "
             "RFC, series review)")
TOPOLOGIES = ("twonode-2n4c", "davydov-2s6c")
POLICIES = ("v2-full", "no-cpu-partial", "reparent")


def run(out: Path, ops: int = 20000, costs: str | None = None, topologies=TOPOLOGIES) -> dict:
    rows = []
    for topo in topologies:
        for pol in POLICIES:
            sc = variant("contended-kfree", topology=topo, policy=pol, ops_per_cpu=ops)
            rows.append({"topology": topo, "policy": pol,
                         "summary": run_in_memcg(sc, out / f"{topo}-{pol}", costs)})
    return {"ops": ops, "rows": rows, "costs": rows[0]["summary"]["virtual"]["costs"]["name"]}


def run_in_memcg(sc, out: Path, costs: str | None) -> dict:
    """`sc` with every CPU's task in one memcg (SharedMemcgRun); its summary."""
    r = run_shared(sc, RunOptions(out=str(out), progress=False, quiet=True, costs=costs))
    if r.exit_code != 0:
        raise RuntimeError(f"{r.out}: {r.summary.get('error')}")
    return r.summary


def memcg_share(s: dict) -> float:
    """The share of the run's allocations served by memcg child caches (the caches named
    "<root>(<id>:<cgroup>)"): what says that the study frees into a memcg cache."""
    alloc = lambda c: sum(int((c.get("stats") or {}).get(k, 0))
                          for k in ("ALLOC_FASTPATH", "ALLOC_SLOWPATH"))
    tot = sum(alloc(c) for c in s["caches"])
    return sum(alloc(c) for c in s["caches"] if c.get("root")) / tot if tot else 0.0


def busy_per_op(s: dict) -> float:
    """Busy virtual ns per op: every CPU's time less idle, over the run's ops."""
    c = s["virtual"]["per_category_ns"]
    return (sum(c.values()) - c["idle"]) / max(1, s["ops"]["total"])


def list_lock_per_op(s: dict) -> dict[str, float]:
    """list_lock acquisitions and contentions per 1000 ops, and wait ns per op (all nodes)."""
    nodes = list_lock_by_node(s).values()
    ops = max(1, s["ops"]["total"])
    return {"acq": 1000 * sum(n["acquisitions"] for n in nodes) / ops,
            "cont": 1000 * sum(n["contentions"] for n in nodes) / ops,
            "wait_ns": 1000 * sum(n["wait_us"] for n in nodes) / ops}


def format_table(res: dict) -> str:
    head = ["topology", "cpus/node", "policy", "memcg allocs", "ns/op", "slowdown",
            "share of reparent's", "duration us", "ll acq/1k ops", "ll cont/1k ops",
            "ll wait ns/op"]
    per = {(r["topology"], r["policy"]): busy_per_op(r["summary"]) for r in res["rows"]}
    rows = []
    for r in res["rows"]:
        s, t = r["summary"], r["topology"]
        base, rep = per.get((t, "v2-full")), per.get((t, "reparent"))
        mine = per[(t, r["policy"])]
        slow = f"{100 * (mine / base - 1):+.0f}%" if base else "-"
        share = f"{100 * (mine - base) / (rep - base):.0f}%" \
            if base and rep and rep > base and r["policy"] != "v2-full" else "-"
        ll = list_lock_per_op(s)
        rows.append([t, s["topology"]["cpus"] // s["topology"]["nodes"], r["policy"],
                     f"{100 * memcg_share(s):.0f}%", f"{mine:.1f}", slow, share,
                     f"{s['virtual']['duration_ns'] / 1000:.0f}", f"{ll['acq']:.1f}",
                     f"{ll['cont']:.1f}", f"{ll['wait_ns']:.1f}"])
    return (f"reparent: contended same-node kfree (SLUB kmalloc-256) into one memcg's child "
            f"cache: v2-full, without cpu partial lists (no-cpu-partial), with full-slab "
            f"tracking (reparent)\n"
            f"{res['ops']} ops per CPU, every CPU's task in one memcg, virtual time, costs "
            f"{res['costs']}; published: {PUBLISHED}\n\n" + table(rows, head))


def plot(res: dict, path: Path) -> Path:
    from ..report.plot import require_matplotlib

    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    topos = list(dict.fromkeys(r["topology"] for r in res["rows"]))
    pols = [p for p in POLICIES if any(r["policy"] == p for r in res["rows"])]
    width = 0.8 / len(pols)
    for j, pol in enumerate(pols):
        vals = [next(busy_per_op(r["summary"]) for r in res["rows"]
                     if r["topology"] == t and r["policy"] == pol) for t in topos]
        bars = ax.bar([i + j * width for i in range(len(topos))], vals, width, label=pol)
        ax.bar_label(bars, fmt="%.0f", fontsize="small")
    for i, t in enumerate(topos):  # the RFC's worst case over this topology's v2-full
        base = next(busy_per_op(r["summary"]) for r in res["rows"]
                    if r["topology"] == t and r["policy"] == "v2-full")
        ax.hlines(1.25 * base, i - width / 2, i + width * (len(pols) - 0.5), colors="black",
                  linestyles="dashed", label="v2-full +25% (RFC)" if i == 0 else None)
    per_node = {r["topology"]: r["summary"]["topology"]["cpus"] // r["summary"]["topology"]["nodes"]
                for r in res["rows"]}
    ax.set_xticks([i + width * (len(pols) - 1) / 2 for i in range(len(topos))],
                  [f"{t}\n({per_node[t]} CPUs per node)" for t in topos])
    ax.set_ylabel("busy virtual ns per op")
    ax.set_title(f"contended same-node kfree into a memcg cache ({res['costs']}); RFC: up to +25%",
                 fontsize="medium")
    ax.legend()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
