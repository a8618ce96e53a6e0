"""Shared helpers for the allocator tests: a small kernel, random scripts, checked runs."""

from __future__ import annotations

import random

import numpy as np

from emulator.kernel.boot import Kernel
from emulator.kernel.check import check_kernel
from emulator.kernel.geometry import kmalloc_slab
from emulator.kernel.ops import OP_ALLOC, OP_FREE, OP_KMALLOC, OP_SHRINK
from emulator.machine import structs as S
from emulator.run.scripted import RUN_OK, Sched, run

from ..conftest import small_topology
from .slab_oracle import SlabOracle

NR_CPUS = 4  # two nodes of two CPUs


def make_kernel(allocator="slub", **kw):
    topo = small_topology(node_mib=(16, 16), cpus_per_node=2)
    K = Kernel(topo, allocator, **kw)
    K.kmem_cache_create("test-200", 200)
    return K


def kmalloc_cache_of(K):
    def f(size):
        name = kmalloc_slab(size, K.mp, K.allocator)
        return K.cache(name) if name else -1
    return f


def random_script(K, rng: random.Random, n_ops: int, remote: float = 0.5, shrink: float = 0.01,
                  sizes=(8, 24, 100, 200, 512, 700, 3000, 20000)):
    """A script with allocations, local and remote frees and a few shrinks."""
    caches = [K.cache("kmalloc-64"), K.cache("kmalloc-512"), K.cache("test-200")]
    rows, live, slot = [], [], 0
    for _ in range(n_ops):
        cpu = rng.randrange(NR_CPUS)
        r = rng.random()
        if r < shrink:
            rows.append([cpu, OP_SHRINK, rng.choice(caches), -1, -1, 0])
        elif r < 0.55 or not live:
            if rng.random() < 0.5:
                rows.append([cpu, OP_ALLOC, rng.choice(caches), rng.choice([-1, -1, 0, 1]), slot, 0])
            else:
                rows.append([cpu, OP_KMALLOC, rng.choice(sizes), -1, slot, 0])
            live.append((slot, cpu))
            slot += 1
        else:
            s, owner = live.pop(rng.randrange(len(live)))
            if rng.random() >= remote:
                cpu = owner
            rows.append([cpu, OP_FREE, -1, -1, s, 0])
    for s, owner in live:  # free everything at the end, from anywhere
        rows.append([rng.randrange(NR_CPUS), OP_FREE, -1, -1, s, 0])
    return np.array(rows, np.int64), slot


def run_checked(K, script, nslots, seed, check_every=1, oracle=None):
    """Run a script one step at a time, checking the oracle and every invariant.

    Pass the oracle of an earlier run on the same kernel to carry its live objects."""
    sched = Sched.new(script, K.nr_cpus, nslots, seed)
    if oracle is None:
        oracle = SlabOracle(K, kmalloc_cache_of(K))
    else:
        oracle.expected_reports = []
        oracle.reports_before = int(K.mem.kasan_report[0, 0])
    mem = K.mem
    step = 0
    while not sched.finished():
        assert run(mem, sched, budget=1) == RUN_OK
        for row in np.flatnonzero(sched.done_at == step):
            r = script[row]
            addr = sched.slots[r[4], 0] if r[4] >= 0 else r[5]
            oracle.apply(r, sched.results[row], addr)
        assert oracle.errors == [], oracle.errors[:3]
        if step % check_every == 0:
            bad = check_kernel(mem, K.nr_cpus, K.nr_nodes, live=oracle.live)
            assert bad == [], f"step {step}: {bad[:5]}"
        step += 1
    assert oracle.reports() == oracle.expected_reports
    return sched, oracle




def slub_stats(K, name):
    s = K.cache(name)
    rows = K.mem.kmem_cache_cpu[s * K.nr_cpus:(s + 1) * K.nr_cpus]
    return {n: int(rows[:, S.CPU_STAT + i].sum()) for i, n in enumerate(S.SLUB_STAT_ITEMS)}


def slab_stats(K, name):
    s = K.cache(name)
    rows = K.mem.kmem_cache_cpu[s * K.nr_cpus:(s + 1) * K.nr_cpus]
    return {n: int(rows[:, S.CPU_SLAB_STAT + i].sum()) for i, n in enumerate(S.SLAB_STAT_ITEMS)}
