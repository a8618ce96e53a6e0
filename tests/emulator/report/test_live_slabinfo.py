"""slabinfo rows read from a booted emulated kernel after it ran (get_slabinfo)."""

from __future__ import annotations

import numpy as np

from emulator.kernel.ops import OP_ALLOC, OP_FREE
from emulator.report.slabinfo import format_slabinfo, kernel_slabinfo_rows, parse_slabinfo
from emulator.run.scripted import Sched, run

from ..kernel.slab_harness import make_kernel


def _rows(K, script, nslots):
    run(K.mem, Sched.new(np.array(script), K.nr_cpus, nslots, 0))
    return {r["name"]: r for r in kernel_slabinfo_rows(K)}


def test_slub_counts_cpu_slab_objects_as_active():
    with make_kernel("slub") as K:
        s = K.cache("kmalloc-64")
        rows = _rows(K, [[0, OP_ALLOC, s, -1, i, 0] for i in range(100)], 100)
        r = rows["kmalloc-64"]
        # 100 objects on 64-object slabs: two slabs, the second the cpu slab with 28 free
        # objects that SLUB's get_slabinfo still counts as active
        assert (r["num_slabs"], r["active_slabs"], r["num_objs"], r["active_objs"]) == (2, 2, 128, 128)
        assert rows["kmalloc-512"]["num_objs"] == 0
        text = format_slabinfo(kernel_slabinfo_rows(K))
        assert {d["name"]: d["active_objs"] for d in parse_slabinfo(text)}["kmalloc-64"] == 128


def test_slab_counts_array_objects_as_active():
    with make_kernel("slab") as K:
        s = K.cache("kmalloc-64")
        num = K.by_name["kmalloc-64"].geometry.num
        script = [[0, OP_ALLOC, s, -1, i, 0] for i in range(10)] + [[0, OP_FREE, -1, -1, i, 0] for i in range(10)]
        r = _rows(K, script, 10)["kmalloc-64"]
        # the first refill took 16 objects (BATCHREFILL_LIMIT) into CPU 0's array: in use
        # from the slab's point of view, and all of them are back in the array now
        assert (r["num_slabs"], r["num_objs"], r["active_objs"], r["active_slabs"]) == (1, num, 16, 1)
        assert r["limit"] == 120 and r["batchcount"] == 60
