"""The arena: one shared-memory segment per run, carved into typed numpy tables.

What it models: all of the emulated machine's memory — kernel structs (one int64 table
per struct of `structs.py`), emulated RAM (one byte range per NUMA node) and its
KASAN-style shadow — in one `multiprocessing.shared_memory` segment, so that worker
processes (one per emulated CPU) see the same state.

The layout descriptor (`Layout`) is picklable: the segment's name plus each table's
dtype, shape and byte offset.  The creating process builds it, workers either inherit the
mapping through fork or `Arena.attach(layout)`.

Invariants:
  - every segment is named `slabemu-<pid>-<token>` and created mode 0600;
  - the creator unlinks it on every exit path it survives: normal end, exception,
    SIGINT, SIGTERM, and the death of any worker (SIGKILL included: workers never own
    it).  An atexit hook and the resource tracker are the backstops; only the creating
    pid ever unlinks (a forked child that exits through Python does not);
  - tables start on cache-line boundaries (no false sharing between tables);
  - `offset + nbytes <= size` for every table.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import sys
import weakref
from dataclasses import dataclass, field
from multiprocessing import resource_tracker, shared_memory

import numpy as np

SEGMENT_PREFIX = "slabemu-"
_ALIGN = 256  # table start alignment: a multiple of every cache-line size we model


@dataclass(frozen=True)
class TableSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64)))


@dataclass(frozen=True)
class Layout:
    """Picklable description of an arena: enough for a worker to attach."""

    tables: tuple[TableSpec, ...]
    size: int
    name: str = ""  # the segment name, set when the arena is created
    meta: dict = field(default_factory=dict, compare=False)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


class LayoutBuilder:
    """Collects tables, then fixes offsets.  Layers add their own tables."""

    def __init__(self) -> None:
        self._tables: list[tuple[str, str, tuple[int, ...]]] = []
        self.meta: dict = {}

    def add(self, name: str, dtype, shape) -> None:
        if any(n == name for n, _, _ in self._tables):
            raise ValueError(f"table {name!r} declared twice")
        shape = tuple(int(d) for d in (shape if isinstance(shape, tuple) else (shape,)))
        if any(d < 0 for d in shape):
            raise ValueError(f"table {name!r}: negative dimension in {shape}")
        self._tables.append((name, np.dtype(dtype).str, shape))

    def build(self) -> Layout:
        specs = []
        off = 0
        for name, dtype, shape in self._tables:
            off = -(-off // _ALIGN) * _ALIGN
            spec = TableSpec(name, dtype, shape, off)
            specs.append(spec)
            off += spec.nbytes
        size = max(_ALIGN, -(-off // _ALIGN) * _ALIGN)
        return Layout(tuple(specs), size, meta=dict(self.meta))


class Tables:
    """Attribute access to an arena's numpy views: `arena.t.page`, `arena.t.lock`."""

    def __init__(self, views: dict[str, np.ndarray]) -> None:
        self.__dict__.update(views)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.__dict__[name]

    def names(self) -> list[str]:
        return list(self.__dict__)


def _views(buf, layout: Layout) -> dict[str, np.ndarray]:
    out = {}
    for t in layout.tables:
        count = int(np.prod(t.shape, dtype=np.int64))
        arr = np.ndarray(t.shape, dtype=np.dtype(t.dtype), buffer=buf, offset=t.offset)
        assert arr.size == count
        out[t.name] = arr
    return out


_live: "weakref.WeakSet[Arena]" = weakref.WeakSet()


def _attach_untracked(name: str) -> shared_memory.SharedMemory:
    """Map a segment without registering it with the resource tracker.

    Only the creator's registration may exist: the tracker is shared with forked
    children, and a second register/unregister pair would drop the creator's backstop.
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


class Arena:
    """One run's shared memory.  Use `Arena.create(layout)` as a context manager."""

    def __init__(self, shm: shared_memory.SharedMemory, layout: Layout, owner: bool):
        self._shm = shm
        self.layout = layout
        self.owner_pid = os.getpid() if owner else -1
        self.t = Tables(_views(shm.buf, layout))
        self._closed = False

    # -- creation and attachment -------------------------------------------------
    @classmethod
    def create(cls, layout: Layout) -> "Arena":
        name = f"{SEGMENT_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        # SharedMemory creates with O_CREAT|O_EXCL and mode 0600, and registers the
        # segment with the resource tracker: our last-resort cleanup if we are SIGKILLed.
        shm = shared_memory.SharedMemory(name=name, create=True, size=layout.size)
        if shm.name.lstrip("/") != name:  # pragma: no cover - defensive
            shm.close()
            shared_memory.SharedMemory(name=shm.name).unlink()
            raise RuntimeError(f"shared memory created as {shm.name}, wanted {name}")
        laid = Layout(layout.tables, layout.size, name, layout.meta)
        arena = cls(shm, laid, owner=True)
        _live.add(arena)
        _install_cleanup_hooks()
        return arena

    @classmethod
    def attach(cls, layout: Layout) -> "Arena":
        """Map an existing arena (a worker not forked from the creator)."""
        shm = _attach_untracked(layout.name)
        if shm.size < layout.size:
            shm.close()
            raise ValueError(f"segment {layout.name} is smaller than its layout")
        return cls(shm, layout, owner=False)

    # -- teardown ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def is_owner(self) -> bool:
        return self.owner_pid == os.getpid()

    def unlink(self) -> None:
        """Remove the segment's name (creator only; idempotent; mappings stay valid)."""
        if not self.is_owner or self._shm is None:
            return
        self.owner_pid = -1
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Unlink (if we own it) and drop our mapping.  Views must not be used after."""
        if self._closed:
            return
        self.unlink()
        self._closed = True
        self.t = Tables({})
        try:
            self._shm.close()
        except BufferError:
            # numpy views still alive elsewhere keep the mapping; the name is already
            # gone, so the memory is freed when the last view dies.
            pass

    def __enter__(self) -> "Arena":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unlink_all_owned() -> None:
    """Unlink every arena this process created and still holds (exit hooks)."""
    for arena in list(_live):
        arena.unlink()


_hooks_installed = False
_hooks_pid = -1


def _signal_cleanup(signum, frame):
    if os.getpid() != _hooks_pid:
        # A forked child (a worker) inherited this handler: it owns no arena, so it
        # dies of the signal as it would have without us.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    unlink_all_owned()
    # Re-raise the default behaviour as an exception so `finally` blocks still run and
    # the process exits with the conventional status (130 for SIGINT, 143 for SIGTERM).
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _install_cleanup_hooks() -> None:
    global _hooks_installed, _hooks_pid
    if _hooks_installed and _hooks_pid == os.getpid():
        return
    _hooks_installed = True
    _hooks_pid = os.getpid()
    atexit.register(unlink_all_owned)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _signal_cleanup)
        except ValueError:  # not the main thread: the atexit hook still runs
            pass


def leftover_segments() -> list[str]:
    """Names of slabemu segments present in /dev/shm (for tests and CI checks)."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(SEGMENT_PREFIX))
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return []
