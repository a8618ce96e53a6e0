"""Shared fixtures for the emulator tests: small topologies and forked workers."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

import emulator  # noqa: F401  (sets numba's cache directory before numba is imported)
from topo.model import Cpu, Node, Topology

FORK = mp.get_context("fork")


def small_topology(node_mib=(8, 4), cpus_per_node=2, distances=None, page_size=4096,
                   arch="x86_64", cache_line=64) -> Topology:
    """A hand-made topology: node k has cpus_per_node CPUs and node_mib[k] MiB."""
    n = len(node_mib)
    if distances is None:
        distances = tuple(tuple(10 if i == j else 20 for j in range(n)) for i in range(n))
    nodes = []
    cpus = []
    for k, mib in enumerate(node_mib):
        ids = tuple(range(k * cpus_per_node, (k + 1) * cpus_per_node))
        nodes.append(Node(k, ids, mib << 20))
        cpus += [Cpu(c, k, k, c, 0) for c in ids]
    return Topology(name="test", arch=arch, page_size=page_size, cache_line=cache_line,
                    nodes=tuple(nodes), distances=distances, cpus=tuple(cpus))


def host_cpus() -> int:
    return len(os.sched_getaffinity(0))


def run_forked(target, args_list, timeout=120):
    """Run target(*args) in one forked process per args; fail on timeout or bad exit."""
    procs = [FORK.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout)
            if p.is_alive():
                raise AssertionError(f"worker {p.pid} did not finish in {timeout}s")
            assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


needs_two_cpus = pytest.mark.skipif(host_cpus() < 2, reason="needs two host CPUs to race")

