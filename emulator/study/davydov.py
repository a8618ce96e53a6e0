"""Davydov's SLAB measurement from the v2 series' review, in virtual time.

The review's test (V. Davydov, LKML, June 2014, in the thread of "memcg/slab:
reintroduce dead cache self-destruction" v2): on a 2-socket x 6-core x 2-thread machine
every logical CPU frees 1M node-local objects into a live memcg cache, and into a dead
one; he reported the time per size.  Restated from that message (ms, live vs dead):
64 B 373 vs 1300, 128 B 387 vs 1337, 256 B 484 vs 1407, 512 B 686 vs 1561, 1024 B 1073
vs 1897.

Here: configs/scenarios/dead-free.toml on davydov-2s6c, SLAB, policy v2-full, in virtual
mode with a cost file; N objects per CPU (default 10000: the emulated machine has 2 x 256
MiB, 1M objects of 1 KiB on 24 CPUs would need 24 GiB).  Each CPU's free phase (summary
virtual.free_phase_ns) is averaged over CPUs and extrapolated linearly to 1M objects.
The dead case's extra time is split by where it goes (the free phase's categories,
summed over CPUs) and per node (list_lock waits, dead minus live).
"""

from __future__ import annotations

from pathlib import Path

from ..run.runner import RunOptions
from .common import list_lock_by_node, mean, table, variant
from .staged import run_staged

SIZES = (64, 128, 256, 512, 1024)
PUBLISHED_MS = {64: (373, 1300), 128: (387, 1337), 256: (484, 1407), 512: (686, 1561),
                1024: (1073, 1897)}  # live, dead: ms per CPU for 1M frees (the review)
SOURCE = "V. Davydov, LKML review of the v2 series, June 2014"


def scenario(size: int, objects: int, topology: str | None = None):
    cache = [{"name": f"obj{size}", "size": size, "kmalloc": False, "align": 0, "weight": 1}]
    kw = {"topology": topology} if topology else {}
    return variant("dead-free", caches=cache, workload={"live_objects": objects, "burst": objects},
                   ops_per_cpu=objects, **kw)


def run_pair(sc, out: Path, costs: str | None) -> tuple[dict, dict]:
    """The live and the dead variant of a staged run (staged.py)."""
    res = []
    for dead in (False, True):
        opts = RunOptions(out=str(out / ("dead" if dead else "live")), progress=False,
                          quiet=True, costs=costs)
        r = run_staged(sc, opts, dead)
        if r.exit_code != 0:
            raise RuntimeError(f"{r.out}: {r.summary.get('error')}")
        res.append(r.summary)
    return res[0], res[1]


def run(out: Path, objects: int = 10000, costs: str | None = None, sizes=SIZES) -> dict:
    rows = []
    for size in sizes:
        sl, sd = run_pair(scenario(size, objects), out / f"{size}B", costs)
        rows.append({"size": size, "live": sl, "dead": sd})
    return {"objects": objects, "rows": rows, "costs": rows[0]["live"]["virtual"]["costs"]["name"]}


def _free_ms(summary: dict, objects: int) -> float:
    """Mean per-CPU free phase, ms, extrapolated linearly to 1M objects."""
    return mean(summary["virtual"]["free_phase_ns"]) / 1e6 * (1_000_000 / objects)


def format_table(res: dict) -> str:
    n = res["objects"]
    head = ["size", "live ms", "dead ms", "dead/live", "published live", "published dead",
            "published d/l", "extra: lock wait", "lock xfer", "lock body", "grow/reap"]
    rows = []
    for r in res["rows"]:
        live, dead = _free_ms(r["live"], n), _free_ms(r["dead"], n)
        pl, pd = PUBLISHED_MS[r["size"]]
        fl = r["live"]["virtual"]["free_phase_category_ns"]
        fd = r["dead"]["virtual"]["free_phase_category_ns"]
        extra = sum(fd.values()) - sum(fl.values())
        share = lambda k: f"{100 * (fd[k] - fl[k]) / extra:.0f}%" if extra > 0 else "-"
        rows.append([r["size"], f"{live:.0f}", f"{dead:.0f}", f"{dead / live:.2f}" if live else "-",
                     pl, pd, f"{pd / pl:.2f}", share("lock_wait"), share("lock_transfer"),
                     share("lock_body"), share("slab_pages")])
    text = (f"davydov: every CPU of davydov-2s6c (24 CPUs, 2 nodes) frees N node-local objects "
            f"into a live and a dead SLAB memcg cache\n"
            f"N = {n} per CPU, times extrapolated linearly to 1M; virtual time, costs "
            f"{res['costs']}; published: {SOURCE}\n\n")
    text += table(rows, head)
    text += "\nlist_lock per node in the dead run, minus the live run (acquisitions, "
    text += "contentions, wait in virtual ms):\n"
    nrows = []
    for r in res["rows"]:
        ll, ld = list_lock_by_node(r["live"]), list_lock_by_node(r["dead"])
        for node in ld:
            a = ld[node]
            b = ll.get(node, {"acquisitions": 0, "contentions": 0, "wait_us": 0.0})
            nrows.append([r["size"], node, a["acquisitions"] - b["acquisitions"],
                          a["contentions"] - b["contentions"],
                          f"{(a['wait_us'] - b['wait_us']) / 1000:.2f}"])
    text += table(nrows, ["size", "node", "+acquisitions", "+contentions", "+wait ms"])
    zl = [sum(z["frees"] for z in r["live"]["zones"]) for r in res["rows"]]
    zd = [sum(z["frees"] for z in r["dead"]["zones"]) for r in res["rows"]]
    text += "\npages freed to the buddy allocator during the run (live / dead): " + \
        ", ".join(f"{r['size']} B {a}/{b}" for r, a, b in zip(res["rows"], zl, zd)) + "\n"
    return text


def plot(res: dict, path: Path) -> Path:
    from ..report.plot import require_matplotlib

    plt = require_matplotlib()
    n = res["objects"]
    sizes = [r["size"] for r in res["rows"]]
    live = [_free_ms(r["live"], n) for r in res["rows"]]
    dead = [_free_ms(r["dead"], n) for r in res["rows"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    x = range(len(sizes))
    a.plot(x, live, "o-", label="live (virtual)")
    a.plot(x, dead, "s-", label="dead (virtual)")
    a.plot(x, [PUBLISHED_MS[s][0] for s in sizes], "o--", color="grey", label="live (published)")
    a.plot(x, [PUBLISHED_MS[s][1] for s in sizes], "s--", color="black", label="dead (published)")
    a.set_xticks(list(x), [f"{s} B" for s in sizes])
    a.set_ylabel("ms per CPU for 1M frees")
    a.set_title(f"free 1M node-local objects per CPU (N={n}, extrapolated)")
    a.legend(fontsize="small")
    cats = ("lock_wait", "lock_transfer", "lock_body", "slab_pages", "slowpath", "fastpath")
    bottom = [0.0] * len(sizes)
    for c in cats:
        vals = [(r["dead"]["virtual"]["free_phase_category_ns"][c] -
                 r["live"]["virtual"]["free_phase_category_ns"][c]) / 24 / 1e6 * (1e6 / n)
                for r in res["rows"]]
        b.bar(list(x), vals, bottom=bottom, label=c)
        bottom = [p + max(v, 0) for p, v in zip(bottom, vals)]
    b.set_xticks(list(x), [f"{s} B" for s in sizes])
    b.set_ylabel("extra ms per CPU (dead - live)")
    b.set_title(f"where the dead case's extra time goes ({res['costs']})")
    b.legend(fontsize="small")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
