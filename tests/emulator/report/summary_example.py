"""`example_summary()`: a small, complete summary.json (schema 1) as the runner writes it,
and `write_results()` to lay one out as a results directory."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any


def _lock(name, cls, cache, node, acq, cont, **kw) -> dict[str, Any]:
    d = {"name": name, "class": cls, "cache": cache, "node": node, "acquisitions": acq,
         "contentions": cont, "con_bounces": 0, "acq_bounces": 0, "waittime_min_us": 0.0,
         "waittime_max_us": 0.0, "waittime_total_us": 0.0, "holdtime_min_us": 0.0,
         "holdtime_max_us": 0.0, "holdtime_total_us": 0.0, "spins": 0, "yields": 0}
    d.update(kw)
    return d


def _cache(name, memcg, dead, active, num, objsize, perslab, pages, slabs) -> dict[str, Any]:
    return {"name": name, "memcg": memcg, "dead": dead, "active_objs": active,
            "num_objs": num, "objsize": objsize, "objperslab": perslab,
            "pagesperslab": pages, "active_slabs": slabs, "num_slabs": slabs,
            "tunables": {"limit": 0, "batchcount": 0, "sharedfactor": 0},
            "stats": {"ALLOC_FASTPATH": active * 3, "FREE_SLOWPATH": 1}}


EXAMPLE: dict[str, Any] = {
    "schema": 1,
    "scenario": "memcg-churn",
    "allocator": "slub",
    "mode": "deterministic",
    "seed": 42,
    "commit": "abc1234",
    "exit": "ok",
    "duration_s": 2.5,
    "error": None,
    "topology": {"name": "twonode-2n4c", "arch": "x86_64", "page_size": 4096, "nodes": 2,
                 "cpus": 4},
    "policy": {"name": "v2-full",
               "switches": {"dead_caches": "self-destruct", "shrink_tolerates_enomem": True,
                            "nonpreemptible_free": True, "sync_before_destroy": True,
                            "dead_discard_empty": True, "track_full_slabs": False}},
    "ops": {"total": 20000, "per_cpu": [5000, 4000, 6000, 5000], "per_second": 8000.0},
    "workers": {"count": 4, "per_worker_cpus": [[0], [1], [2], [3]],
                "placement": [{"cpu": c, "host_cpu": c} for c in range(4)]},
    "caches": [
        _cache("kmalloc-64(2:m1)", "m1", True, 10, 64, 64, 64, 1, 1),
        _cache("kmalloc-128", None, False, 0, 0, 128, 32, 1, 0),
        _cache("kmalloc-64", None, False, 1000, 1024, 64, 64, 1, 16),
        _cache("kmalloc-256", None, False, 200, 256, 256, 16, 1, 16),
    ],
    "locks": [
        _lock("&n->list_lock", "list_lock", "kmalloc-64", 0, 1000, 10, con_bounces=4,
              acq_bounces=300, waittime_min_us=0.5, waittime_max_us=12.25,
              waittime_total_us=40.0, holdtime_min_us=0.1, holdtime_max_us=2.5,
              holdtime_total_us=300.0, spins=120),
        _lock("&n->list_lock", "list_lock", "kmalloc-256", 0, 500, 5, con_bounces=2,
              acq_bounces=100, waittime_min_us=0.25, waittime_max_us=20.0,
              waittime_total_us=35.5, holdtime_min_us=0.2, holdtime_max_us=3.0,
              holdtime_total_us=150.25, spins=30, yields=1),
        _lock("&n->list_lock", "list_lock", "kmalloc-64", 1, 800, 0, acq_bounces=50,
              holdtime_min_us=0.15, holdtime_max_us=1.0, holdtime_total_us=160.0),
        _lock("&n->list_lock", "list_lock", "kmalloc-128", 1, 0, 0),
        _lock("&zone->lock", "zone", None, 0, 40, 1, con_bounces=1, acq_bounces=7,
              waittime_min_us=3.0, waittime_max_us=3.0, waittime_total_us=3.0,
              holdtime_min_us=1.0, holdtime_max_us=4.0, holdtime_total_us=80.0),
    ],
    "kasan": [
        {"bug": "slab-use-after-free", "cpu": 1, "task": 0, "op": "kfree",
         "phase": "slab_free", "object": 0x12340, "size": 8, "cache": "kmalloc-64(2:m1)",
         "freed_by": {"cpu": 3, "op": "kmem_cache_destroy", "phase": "free_partial"}},
        {"bug": "double-free", "cpu": 2, "task": 1, "op": "kfree", "phase": "slab_free",
         "object": 0x20000, "size": 0, "cache": "kmalloc-64", "freed_by": None},
        {"bug": "slab-use-after-free", "cpu": 0, "task": 0, "op": "kfree",
         "phase": "slab_free", "object": 0x12380, "size": 8, "cache": None,
         "freed_by": None},
    ],
    "kasan_total": 5,
    "leaks": {"dead_caches": 1, "dead_cache_slabs": 1, "dead_cache_objects": 64,
              "dead_cache_pages": 1, "pinned_memcgs": 1},
    "failure": None,
}


def example_summary(**changes: Any) -> dict[str, Any]:
    """A deep copy of `EXAMPLE` with top-level keys replaced by ``changes``."""
    s = copy.deepcopy(EXAMPLE)
    s.update(copy.deepcopy(changes))
    return s


def write_results(directory: Path, summary: Any = None, *, text: str | None = None) -> Path:
    """A results directory holding summary.json (``summary`` dumped, or raw ``text``)."""
    directory.mkdir(parents=True, exist_ok=True)
    body = text if text is not None else json.dumps(
        example_summary() if summary is None else summary, indent=2)
    (directory / "summary.json").write_text(body)
    return directory
