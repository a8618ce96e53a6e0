"""Compile (or load from numba's cache) every jitted entry point of the kernel model.

The runner calls this in the parent before it forks workers, so that no worker compiles;
./tools/test calls it before pytest, so that no test pays the cold compile inside its
timeout.  It boots a tiny machine for each allocator and runs one op of every kind
through the deterministic scheduler.
"""

from __future__ import annotations

import time

import numpy as np


def warm_up_topology():
    """The machine warm-ups boot: two nodes of one CPU and 8 MiB each."""
    from topo.model import Cpu, Node, Topology

    return Topology(name="warm-up", arch="x86_64", page_size=4096, cache_line=64,
                    nodes=(Node(0, (0,), 8 << 20), Node(1, (1,), 8 << 20)),
                    distances=((10, 20), (20, 10)),
                    cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 1, 1, 1, 0)))


def warm_up(verbose: bool = False) -> float:
    """Returns the seconds it took (a cold compile, or a load from the cache)."""
    from ..run.deterministic import Sched, run
    from .boot import Kernel
    from .ops import OP_ALLOC, OP_FREE, OP_KMALLOC, OP_REAP, OP_SHRINK

    t0 = time.monotonic()
    topo = warm_up_topology()
    for allocator in ("slub", "slab"):
        with Kernel(topo, allocator) as K:
            s = K.cache("kmalloc-64")
            script = np.array([[0, OP_ALLOC, s, -1, 0, 0], [0, OP_KMALLOC, 100, -1, 1, 0],
                               [1, OP_FREE, -1, -1, 0, 0], [1, OP_FREE, -1, -1, 1, 0],
                               [0, OP_SHRINK, s, -1, -1, 0], [1, OP_REAP, -1, -1, -1, 0]],
                              np.int64)
            run(K.mem, Sched.new(script, K.nr_cpus, 2, 0, capacity=64))
    took = time.monotonic() - t0
    if verbose:
        print(f"slabemu: kernel model ready in {took:.1f} s", flush=True)
    return took


if __name__ == "__main__":
    warm_up(verbose=True)
