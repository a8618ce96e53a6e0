"""Compile (or load from numba's cache) everything a run executes, in the parent.

The runner calls `warm_up` before it forks workers, so that no worker compiles
(docs/design.md §10); ./tools/test calls it before pytest, so that no test pays
the cold compile inside its timeout.  `warm_kernel` boots a tiny machine for each
allocator and runs one op of every kind through the scripted scheduler (the tests' entry
point; tools/bench/compile.py times it); `warm_up` warms the worker loop and the
workload generator, which is all a run needs.  (This lives in run/, not kernel/: the
kernel's warm-up uses the scripted scheduler, and kernel/ imports nothing from run/.)

While numba compiles, `CompileProgress` says so at once and counts the functions: a bar
on a terminal, plain lines otherwise (CI, pipes).  numba reports a compile only when the
machine code is missing from the cache, so a warm start prints nothing.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import threading
import time

import numpy as np
from numba.core.event import Listener

from .. import cachekey

# How many functions each module compiled last time (the progress total), kept beside
# the cache; a module never compiled before is estimated from its njit decorators.
_COUNTS_FILE = "compile-counts.json"
_NJIT = re.compile(r"^@(?:njit)\((?![^)]*inline=\"always\")", re.M)  # not IR-inlined


def _expected_compiles() -> tuple[int, dict[str, int]]:
    """(functions numba will compile, counts per module last time) for the modules whose
    cache directory holds nothing yet."""
    base = cachekey.cache_base()
    try:
        last = json.loads((base / _COUNTS_FILE).read_text())
    except (OSError, ValueError):
        last = {}
    total = 0
    for module in cachekey.module_keys():
        d = cachekey.cache_dir(module)
        if d is not None and d.is_dir() and any(d.glob("*.nbi")):
            continue
        if module in last:
            total += int(last[module])
        else:
            rel = module.split(".", 1)[1].replace(".", "/")
            path = cachekey.ROOT / f"{rel}.py"
            if not path.exists():
                path = cachekey.ROOT / rel / "__init__.py"
            total += len(_NJIT.findall(path.read_text())) if path.exists() else 0
    return total, last


class CompileProgress(Listener):
    """Reports numba compiles while it is active (a context manager).  numba fires
    "numba:compile" only on a cache miss; the first one prints at once."""

    def __init__(self, stream=None, tty: bool | None = None, quiet: bool = False,
                 interval: float = 5.0):
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.interval = interval
        self.done = 0
        self.per_module: dict[str, int] = {}
        self.compiled: list[str] = []  # every function compiled, children's included
        self._depth = 0
        self._t0 = 0.0
        self._last = 0.0
        self._bar = None

    # numba's event listener protocol
    def on_start(self, ev):
        self._depth += 1
        name = self._name(ev)
        if self._t0 == 0.0:
            self._begin(name)
        elif self._bar is not None:
            self._bar.update(self._task, description=f"compiling {name}")

    def on_end(self, ev):
        self._depth -= 1
        self.done += 1
        module = getattr(ev.data["dispatcher"].py_func, "__module__", None) or "?"
        self.per_module[module] = self.per_module.get(module, 0) + 1
        self.compiled.append(f"{self._name(ev)}{ev.data.get('args', '')}")
        if self.done > self.total:
            self.total = self.done
        now = time.monotonic()
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total)
        elif now - self._last >= self.interval:
            self._last = now
            self._line(f"[{self.done}/{self.total}] {self._name(ev)}, {now - self._t0:.0f} s")

    def child_done(self, module: str, name: str, args: str = "") -> None:
        """A function a forked compile process (`_precompile_parallel`) finished."""
        self.done += 1
        self.per_module[module] = self.per_module.get(module, 0) + 1
        self.compiled.append(f"{name}{args}")
        self.total = max(self.total, self.done)
        if self.quiet:
            return
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total)
        elif now - self._last >= self.interval:
            self._last = now
            self._line(f"[{self.done}/{self.total}] {name}, {now - self._t0:.0f} s")

    @staticmethod
    def _name(ev) -> str:
        f = ev.data["dispatcher"].py_func
        module = (getattr(f, "__module__", None) or "?").removeprefix("emulator.")
        return f"{module}.{getattr(f, '__qualname__', '?')}"

    def _line(self, text: str) -> None:
        print(f"slabemu: {text}", file=self.stream, flush=True)

    def _begin(self, first: str) -> None:
        self._t0 = self._last = time.monotonic()
        if self.quiet:
            return
        self._line(f"compiling the model: {self.total} functions are not in numba's cache "
                   f"({cachekey.cache_base()}); this happens once after an edit")
        if self.tty:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(file=self.stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(f"compiling {first}", total=self.total)

    def __enter__(self):
        from numba.core import event

        self.total, self._last_counts = _expected_compiles()
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.done:
            if not self.quiet:
                self._line(f"compiled {self.done} functions in "
                           f"{time.monotonic() - self._t0:.0f} s (cached from now on)")
            if exc[0] is None:
                counts = dict(self._last_counts) | self.per_module
                try:
                    path = cachekey.cache_base() / _COUNTS_FILE
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(counts, sort_keys=True))
                except OSError:
                    pass
        return False


def warm_up_topology():
    """The machine warm-ups boot: two nodes of one CPU and 8 MiB each."""
    from topo.model import Cpu, Node, Topology

    return Topology(name="warm-up", arch="x86_64", page_size=4096, cache_line=64,
                    nodes=(Node(0, (0,), 8 << 20), Node(1, (1,), 8 << 20)),
                    distances=((10, 20), (20, 10)),
                    cpus=(Cpu(0, 0, 0, 0, 0), Cpu(1, 1, 1, 1, 0)))


def warm_kernel(verbose: bool = False, allocators=("slub", "slab")) -> float:
    """The kernel model through the scripted scheduler (the tests' way in).  Returns the
    seconds it took (a cold compile, or a load from the cache)."""
    from ..kernel.boot import Kernel
    from ..kernel.ops import OP_ALLOC, OP_FREE, OP_KMALLOC, OP_REAP, OP_SHRINK
    from .scripted import Sched, run

    t0 = time.monotonic()
    topo = warm_up_topology()
    for allocator in allocators:
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


def warm_up(verbose: bool = False, allocators=("slub", "slab"), scripted: bool = False,
            quiet: bool = False, jobs: int | None = None,
            progress: CompileProgress | None = None, campaign: bool = False) -> float:
    """What a run executes: the worker loop, the workload generator and every kernel path
    under them, on a tiny machine of each allocator in `allocators` (the jitted code is
    the same for both: one machine compiles everything, the other only loads).  With
    `scripted`, the scripted scheduler too (what the tests use); with `campaign` or
    `scripted`, the campaign's strategy loop.  Compile progress goes to
    stderr unless `quiet`.  On a cold cache and more than one allowed CPU (`jobs`, default:
    the process's CPU affinity), independent parts compile in forked processes first
    (`_precompile_parallel`).  Returns the seconds it took."""
    with progress or CompileProgress(quiet=quiet) as progress:
        t0 = time.monotonic()
        if jobs is None:
            jobs = len(os.sched_getaffinity(0))
        if jobs > 1 and progress.total >= _PARALLEL_FROM:
            _precompile_parallel(progress, scripted)
        if scripted:
            warm_kernel(allocators=allocators)
        _warm_loop(allocators, campaign=campaign or scripted)
        _warm_virtual()
        took = time.monotonic() - t0
    if verbose:
        print(f"slabemu: model ready in {took:.1f} s", file=sys.stderr, flush=True)
    return took


def _warm_loop(allocators, campaign: bool = False) -> None:
    from ..kernel.boot import Kernel
    from ..machine import structs as S
    from ..workload.generator import WC_NR, WP_NR, seed_workload
    from ..workload import generator as G
    from .loop import RET_BATCH, WS_NR, wait_start, worker_buffers, worker_loop

    topo = warm_up_topology()
    for allocator in allocators:
        with Kernel(topo, allocator, live_cap=9, max_memcgs=64) as K:
            k = K.mem
            wp = np.zeros(WP_NR, np.int64)
            wp[G.WP_LIVE_TARGET] = 4
            wp[G.WP_LIVE_CAP] = 9
            wp[G.WP_REMOTE_NODE_PPM] = 500000
            wp[G.WP_BURST] = 1
            wp[G.WP_FREE_AT_END] = 1
            wp[G.WP_SHRINK_EVERY] = 7
            wp[G.WP_REAP_EVERY] = 11
            wp[G.WP_BUDGET] = 40
            wp[G.WP_NR_SPECS] = 2
            wp[G.WP_TOTAL_WEIGHT] = 2
            wp[G.WP_MEMCG_LIFETIME] = 13
            # every policy switch on, and preemption, so that every path compiles
            for f in (S.CONFIG_DEAD_CACHES, S.CONFIG_SYNC_BEFORE_DESTROY,
                      S.CONFIG_DEAD_DISCARD_EMPTY, S.CONFIG_SHRINK_TOLERATES_ENOMEM):
                k.config[f] = 1
            k.config[S.CONFIG_PREEMPT_PPM] = 500000
            wc = np.zeros((2, WC_NR), np.int64)
            wc[0] = (1, 64, K.cache("kmalloc-64"), 1)
            wc[1] = (0, 64, K.cache("kmalloc-64"), 2)
            seed_workload(k, 1)
            k.ctl[0, S.CTL_NR_WORKERS] = 0
            wait_start(k, 1)  # nr_workers 0: the one arrival starts it
            k.ctl[0, S.CTL_START] = 0
            k.ctl[0, S.CTL_NR_WORKERS] = 1
            ws = np.zeros(WS_NR, np.int64)
            ws[0] = 12345
            schedule = np.zeros(64, np.int64)
            for _ in range(1000):
                if worker_loop(k, wp, wc, np.arange(2, dtype=np.int64), ws, schedule, 4096,
                               *worker_buffers(k)) != RET_BATCH:
                    break
                ws[2] = 0
            # the parent's side of the control words (runner.py), before it forks
            from ..machine.hostsync import acquire_load, atomic_add, release_store
            release_store(k.ctl, 0, S.CTL_START, atomic_add(k.ctl, 0, S.CTL_START, acquire_load(k.ctl, 0, 0)))
            if campaign:  # the campaign's strategies' loop (emulator/campaign/sched.py)
                from ..campaign.strategies import warm_explore

                warm_explore(k, wp, wc)


def _warm_virtual() -> None:
    """Virtual-time mode's event loop (emulator/run/virtual.py) on the tiny machine."""
    from ..kernel.boot import Kernel
    from ..machine import structs as S
    from ..machine.costs import load_costs
    from ..machine.machine import VIRTUAL_EXTRA_LOCKS
    from ..workload.generator import WC_NR, WP_NR, seed_workload
    from ..workload import generator as G
    from .virtual import RET_BATCH, VirtualClock

    topo = warm_up_topology()
    with Kernel(topo, "slub", live_cap=9, max_memcgs=8, extra_locks=VIRTUAL_EXTRA_LOCKS) as K:
        k = K.mem
        wp = np.zeros(WP_NR, np.int64)
        wp[G.WP_LIVE_TARGET] = 4
        wp[G.WP_LIVE_CAP] = 9
        wp[G.WP_BURST] = 1
        wp[G.WP_FREE_AT_END] = 1
        wp[G.WP_BUDGET] = 20
        wp[G.WP_NR_SPECS] = 1
        wp[G.WP_TOTAL_WEIGHT] = 1
        wc = np.zeros((1, WC_NR), np.int64)
        wc[0] = (1, 64, K.cache("kmalloc-64"), 1)
        seed_workload(k, 1)
        k.ctl[0, :] = 0
        k.ctl[0, S.CTL_NR_WORKERS] = 1
        vt = VirtualClock(K, topo, load_costs(None), 1)
        for _ in range(1000):
            if vt.run(wp, wc, 4096) != RET_BATCH:
                break
        vt.finish()


# -- a cold compile on two CPUs ------------------------------------------------------------
# numba compiles one function at a time, each after its callees.  Under ops.py the call
# graph has two large independent halves, SLAB's and SLUB's with the memcg layer; above
# them sits a serial top (ops.py's phase machine, op_step, the worker loop).  On a cold
# cache a forked child compiles SLAB's half into the shared on-disk cache while the parent
# compiles the other; the parent then compiles the top, loading both halves from the
# cache, while a second child compiles the scripted scheduler when the tests need it.
# Each unit is compiled with the signature its callers use (the tables, then int64s: the
# arguments are table words, and calls between the emulator's functions are typed
# unliteral, emulator/jitconf.py) and with NRT off, as it inherits from op_step
# (docs/design.md §10); a unit whose signature drifted from its callers' only costs a
# second compile, which tests/emulator/run/test_warmup.py would show.  Nothing depends
# on the split for correctness: whatever a child did not compile, the serial warm-up does.
_PARALLEL_FROM = 40  # functions missing from the cache before forking pays off

# Each phase: (what the parent compiles, what a forked child compiles meanwhile), as
# units (module, function[, argument kinds], see unit_signature).  Whatever two halves
# both call comes in a phase of its own first, so that no two processes compile it.
_PHASES = (
    ((("kernel.memcontrol", "memcg_uncharge_slab"), ("kernel.memcontrol", "memcg_charge_slab"),
      ("kernel.page_alloc", "alloc_pages_node"), ("kernel.page_alloc", "__free_pages"),
      ("kernel.slab_common", "kasan_kmalloc")),
     ()),
    # SLUB's half | SLAB's half, then the memcg layer
    ((("kernel.slub", "__slab_alloc"), ("kernel.slub", "__flush_cpu_slab"),
      ("kernel.slub", "shrink_node"), ("kernel.slub", "slab_free_inline"),
      ("kernel.slub", "slab_free_begin"), ("kernel.slub", "slab_free_cmpxchg"),
      ("kernel.slub", "slab_free_put_partial"), ("kernel.ops", "_slub_shrink"),
      ("kernel.ops", "kmalloc_large_node")),
     (("kernel.slab", "__cache_free"), ("kernel.slab", "do_drain"),
      ("kernel.slab", "____cache_alloc_node", "iiib"), ("kernel.slab", "drain_alien_cache"),
      ("kernel.slab", "shrink_drain_shared"), ("kernel.slab", "shrink_free_node"),
      ("kernel.slab", "cache_reap_one"), ("kernel.ops", "_slab_shrink"),
      ("kernel.ops", "_reap_step"), ("kernel.memcontrol", "memcg_kmem_get_cache"),
      ("kernel.memcontrol", "memcg_create_kmem_cache"), ("kernel.memcontrol", "kmem_cache_release"),
      ("kernel.memcontrol", "mark_dead"), ("kernel.memcontrol", "memcg_release_if_unpinned"))),
    # flush_all/drain_all_cpus, the IPI check and op_start, which both sides below call
    ((("kernel.ops", "on_each_cpu_cond"), ("kernel.ops", "handle_ipis"),
      ("kernel.ops", "op_start")), ()),
    # the ops.py steps over both: frees and IPIs | shrink, offline and destroy
    ((("kernel.ops", "kfree_inline"), ("kernel.ops", "_free_step"),
      ("kernel.ops", "_handle_pending_ipis")),
     (("kernel.ops", "shrink_step"), ("kernel.ops", "_nested_shrink"),
      ("kernel.ops", "_offline_step"), ("kernel.ops", "_destroy_step"))),
    # the phase machine and its fast-path dispatcher | the workload generator and the
    # worker loop's control, which do not call them
    ((("kernel.ops", "op_step"),),
     (("workload.generator", "wl_issue", "aAaiib"), ("workload.generator", "wl_complete"),
      ("run.loop", "_maybe_preempt"), ("run.loop", "_control", "aia"),
      ("run.loop", "_pause", "a"), ("run.loop", "wait_start"))),
)


def _compile_units(units, mem_type) -> None:
    from numba.core.compiler import Flags
    from numba.core.targetconfig import ConfigStack

    inherited = Flags()
    inherited.nrt = False  # as under op_step (_nrt=False)
    with ConfigStack().enter(inherited):
        for unit in units:
            sig = unit_signature(unit, mem_type)
            if sig is not None:
                try:
                    unit_dispatcher(unit).compile(sig)
                except Exception:  # the serial warm-up compiles it from its callers
                    pass


def unit_dispatcher(unit):
    """The dispatcher a unit (module, function[, argument kinds]) names, or None."""
    import importlib

    disp = getattr(importlib.import_module(f"emulator.{unit[0]}"), unit[1], None)
    return disp if hasattr(disp, "compile") and hasattr(disp, "py_func") else None


def unit_signature(unit, mem_type):
    """The argument types a unit is compiled for: the tables, then one type per letter
    of its argument kinds (i: int64, b: boolean, a: 1-D and A: 2-D C-contiguous int64
    arrays; all int64 when not given), or None if the function is gone or its arity
    differs."""
    from numba.core import types

    kind = {"i": types.int64, "b": types.boolean, "a": types.Array(types.int64, 1, "C"),
            "A": types.Array(types.int64, 2, "C")}
    disp = unit_dispatcher(unit)
    if disp is None:
        return None
    arity = len(inspect.signature(disp.py_func).parameters)
    kinds = unit[2] if len(unit) > 2 else "i" * (arity - 1)
    if len(kinds) != arity - 1:
        return None
    return (mem_type,) + tuple(kind[c] for c in kinds)


class _PipeReport(Listener):
    """In a compile child: the name of each compiled function, one line each, to the
    parent's progress."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd

    def on_start(self, ev):
        pass

    def on_end(self, ev):
        try:
            module = getattr(ev.data["dispatcher"].py_func, "__module__", None) or "?"
            args = str(ev.data.get("args", "")).replace("\n", " ")
            os.write(self.fd, f"{module}\t{CompileProgress._name(ev)}\t{args}\n".encode())
        except OSError:
            pass


def _fork_compile(progress: CompileProgress, work) -> tuple[int, threading.Thread]:
    """Run `work()` in a forked child that reports its compiles to `progress`."""
    from numba.core import event

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compile, report, never return into the parent's code
        status = 1
        try:
            os.close(r)
            event.unregister("numba:compile", progress)
            event.register("numba:compile", _PipeReport(w))
            work()
            status = 0
        finally:
            os._exit(status)
    os.close(w)

    def pump():
        with os.fdopen(r) as f:
            for line in f:
                module, name, args = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                progress.child_done(module, name, args)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return pid, reader


def _join(child: tuple[int, threading.Thread]) -> None:
    pid, reader = child
    os.waitpid(pid, 0)
    reader.join()


def _precompile_parallel(progress: CompileProgress, scripted: bool) -> None:
    import numba

    from ..kernel.boot import Kernel

    with Kernel(warm_up_topology(), "slub") as K:
        mem_type = numba.typeof(K.mem)
    for mine, childs in _PHASES:
        child = _fork_compile(progress, lambda: _compile_units(childs, mem_type)) if childs else None
        try:
            _compile_units(mine, mem_type)
        finally:
            if child is not None:
                _join(child)
    if scripted:  # the scripted scheduler beside the worker loop
        child = _fork_compile(progress, lambda: warm_kernel(allocators=("slub",)))
        try:
            _warm_loop(("slub",))
        finally:
            _join(child)


if __name__ == "__main__":
    # ./tools/test: everything the tests run, compiled before any test's timeout starts.
    warm_up(verbose=True, scripted=True)
