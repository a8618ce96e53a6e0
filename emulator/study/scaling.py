"""Scaling of one dead cache's frees with CPUs per node, in virtual time.

One node with 1, 2, 4, 6 or 12 CPUs (no SMT); every CPU allocates N objects of one memcg,
the memcg goes offline, then every CPU frees its N objects into the now dead SLAB cache
(staged.py), and the same with the memcg left online.  A dead SLAB cache (v2: limit 0)
frees every object through free_block under the node's list_lock, so the node's free
throughput is bounded by 1 / (hold + line transfer) of that lock; reported: each CPU's
free time, the node's frees per virtual second, the list_lock's utilization over the
free phase ((hold + line transfers) / free phase), and its wait share.  Where throughput
stops growing and utilization nears 1 is where list_lock saturates.
"""

from __future__ import annotations

from pathlib import Path

from .common import list_lock_by_node, mean, table, variant
from .davydov import run_pair

CPUS = (1, 2, 4, 6, 12)


def topology_file(out: Path, n: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"one-node-{n}c.toml"
    p.write_text(f'# one node, {n} cores, no SMT (slabemu study scaling)\n'
                 f'description = "1 node x {n} cores"\narch = "x86_64"\npage_size = 4096\n'
                 f'cache_line = 64\n[[node]]\nid = 0\ncpus = "0-{n - 1}"\nmemory = "512MiB"\n'
                 f'package = 0\n')
    return p


def run(out: Path, objects: int = 10000, costs: str | None = None, cpus=CPUS, size: int = 64) -> dict:
    rows = []
    for n in cpus:
        topo = topology_file(out / "topologies", n)
        cache = [{"name": f"obj{size}", "size": size, "kmalloc": False, "align": 0, "weight": 1}]
        sc = variant("dead-free", topology=str(topo), caches=cache,
                     workload={"live_objects": objects, "burst": objects}, ops_per_cpu=objects)
        live, dead = run_pair(sc, out / f"{n}cpus", costs)
        rows.append({"cpus": n, "live": live, "dead": dead})
    return {"objects": objects, "size": size, "rows": rows,
            "costs": rows[0]["live"]["virtual"]["costs"]["name"]}


def _metrics(s: dict, objects: int, n: int) -> dict:
    fp = mean(s["virtual"]["free_phase_ns"])
    phase = max(x for x in s["virtual"]["free_phase_ns"] if x is not None)
    c = s["virtual"]["free_phase_category_ns"]
    busy = sum(c.values()) - c["idle"]
    node = list_lock_by_node(s).get(0, {"hold_us": 0.0, "wait_us": 0.0})
    return {"per_cpu_ms": fp / 1e6, "frees_per_s": n * objects / (phase / 1e9),
            "wait_share": c["lock_wait"] / busy if busy else 0.0, "phase_ns": phase}


def _util(s_dead: dict, s_live: dict, phase_ns: int) -> float:
    """How busy the node's list_lock is in the dead run's free phase: its hold time
    (dead minus live run) plus the free phase's lock-line transfers (the lock is in
    flight between holders then), over the phase's length."""
    d = list_lock_by_node(s_dead).get(0, {"hold_us": 0.0})["hold_us"]
    l = list_lock_by_node(s_live).get(0, {"hold_us": 0.0})["hold_us"]
    xfer = s_dead["virtual"]["free_phase_category_ns"]["lock_transfer"]
    return ((d - l) * 1000 + xfer) / phase_ns if phase_ns else 0.0


def format_table(res: dict) -> str:
    n_obj = res["objects"]
    head = ["cpus", "live ms/cpu", "dead ms/cpu", "live Mfrees/s", "dead Mfrees/s",
            "dead/live", "dead wait share", "list_lock util"]
    rows = []
    for r in res["rows"]:
        ml, md = _metrics(r["live"], n_obj, r["cpus"]), _metrics(r["dead"], n_obj, r["cpus"])
        rows.append([r["cpus"], f"{ml['per_cpu_ms']:.3f}", f"{md['per_cpu_ms']:.3f}",
                     f"{ml['frees_per_s'] / 1e6:.1f}", f"{md['frees_per_s'] / 1e6:.1f}",
                     f"{md['per_cpu_ms'] / ml['per_cpu_ms']:.2f}" if ml["per_cpu_ms"] else "-",
                     f"{100 * md['wait_share']:.0f}%",
                     f"{100 * _util(r['dead'], r['live'], md['phase_ns']):.0f}%"])
    return (f"scaling: one node, N = {n_obj} frees of {res['size']} B per CPU into one SLAB "
            f"memcg cache, live and dead; virtual time, costs {res['costs']}\n"
            "(no published numbers: the review's test ran 12 CPUs per node only)\n\n"
            + table(rows, head))


def plot(res: dict, path: Path) -> Path:
    from ..report.plot import require_matplotlib

    plt = require_matplotlib()
    n_obj = res["objects"]
    cpus = [r["cpus"] for r in res["rows"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for key, mark in (("live", "o-"), ("dead", "s-")):
        m = [_metrics(r[key], n_obj, r["cpus"]) for r in res["rows"]]
        a.plot(cpus, [x["frees_per_s"] / 1e6 for x in m], mark, label=key)
        b.plot(cpus, [x["per_cpu_ms"] for x in m], mark, label=key)
    a.set_xlabel("CPUs on the node")
    a.set_ylabel("node frees per virtual us (M/s)")
    a.set_title(f"one cache's frees on one node ({res['costs']})")
    a.legend()
    b.set_xlabel("CPUs on the node")
    b.set_ylabel(f"ms per CPU for {n_obj} frees")
    b.set_title("per-CPU free time")
    b.legend()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
