"""Engines: where a campaign's runs execute.  Both take `RunSpec`s and hand back what
`execute_run` returns; the campaign (campaign/campaign.py) does not know which ran them.

  LocalEngine  forked pool processes on this host.  Runs are packed onto the host's CPUs:
               a run claims as many host CPUs as it has worker processes
               (RunSpec.cpus_needed), gets those CPUs (its workers are pinned to them,
               through the run's placement), and no two runs share a CPU.  A run waits
               until enough CPUs are free.
  DaskEngine   Dask distributed: an embedded LocalCluster (one worker per host CPU, each
               with resource CPU=1), or an existing cluster (`--scheduler ADDRESS`).  A
               task is one run and claims resource CPU = the CPUs it needs, so a Dask
               worker started with `--resources CPU=N` runs at most N CPUs' worth at
               once.  Simplification: a Dask worker does not say which of its machine's
               CPUs are free, so the run is placed over the worker process's CPU affinity
               (start one worker per machine, or pin workers with taskset).

Worker processes of Dask must be allowed to fork the run's own workers
(distributed.worker.daemon = False; set here for the embedded cluster, and in the
environment for `dask worker`: DASK_DISTRIBUTED__WORKER__DAEMON=False, docs/campaigns.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from topo import ConfigError

from .spec import execute_run


def _pool_init() -> None:
    import signal

    # Ctrl-C is the campaign's to handle: it stops submitting and lets the pool's runs
    # be interrupted by the shutdown instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalEngine:
    name = "local"

    def __init__(self, cpus: list[int] | None = None):
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self.free = list(self.cpus)
        self.pool = ProcessPoolExecutor(max_workers=len(self.cpus),
                                        mp_context=mp.get_context("fork"),
                                        initializer=_pool_init)
        self.running = {}  # future -> (spec, cpus)

    @property
    def capacity(self) -> int:
        return len(self.cpus)

    def can_submit(self, need: int) -> bool:
        return len(self.free) >= need

    def submit(self, spec, need: int):
        cpus, self.free = self.free[:need], self.free[need:]
        fut = self.pool.submit(execute_run, spec.to_dict(), cpus)
        self.running[fut] = (spec, cpus)
        return fut

    def wait_any(self, timeout: float):
        done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for fut in done:
            spec, cpus = self.running.pop(fut)
            self.free = sorted(self.free + cpus)
            out.append((spec, fut))
        return out

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskEngine:
    name = "dask"

    def __init__(self, address: str | None = None, n_workers: int | None = None,
                 processes: bool = True, connect_timeout: float = 5.0):
        import dask

        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - the cluster extra is not installed
            raise ConfigError("command line", "--scheduler",
                              "the dask[distributed] package (pip install slabemu[cluster])",
                              "it is not installed") from None
        dask.config.set({"distributed.worker.daemon": False})
        self.cluster = None
        if address is None:
            n = n_workers or len(os.sched_getaffinity(0))
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                        resources={"CPU": 1}, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(address, timeout=connect_timeout)
            except (OSError, TimeoutError, ValueError) as e:
                raise ConfigError("command line", "--scheduler",
                                  "the address of a running dask scheduler "
                                  "(e.g. tcp://host:8786)",
                                  f"{address}: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                                  ) from None
        info = self.client.scheduler_info()
        caps = [int((w.get("resources") or {}).get("CPU", 0)) for w in info["workers"].values()]
        self.max_claim = max(caps, default=0)
        if self.max_claim < 1:
            raise ConfigError("command line", "--scheduler",
                              "a cluster with workers started with --resources CPU=N",
                              f"{address or 'the local cluster'} has no worker with a CPU resource")
        self.capacity = sum(caps)
        self.running = {}
        self.claimed = 0

    def can_submit(self, need: int) -> bool:
        return self.claimed + min(need, self.max_claim) <= self.capacity

    def submit(self, spec, need: int):
        need = min(need, self.max_claim)
        fut = self.client.submit(execute_run, spec.to_dict(), None, resources={"CPU": need},
                                 pure=False, key=f"slabemu-run-{spec.id}-{os.getpid()}")
        self.running[fut] = (spec, need)
        self.claimed += need
        return fut

    def wait_any(self, timeout: float):
        from distributed import wait as dwait

        futs = list(self.running)
        if not futs:
            return []
        try:
            dwait(futs, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        out = []
        for fut in futs:
            if fut.done():
                spec, need = self.running.pop(fut)
                self.claimed -= need
                out.append((spec, fut))
        return out

    def close(self, cancel: bool = False) -> None:
        try:
            if cancel and self.running:
                self.client.cancel(list(self.running))
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
