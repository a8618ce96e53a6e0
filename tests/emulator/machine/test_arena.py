"""The arena: naming, permissions, attachment and cleanup on every exit path."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from emulator.machine.arena import Arena, LayoutBuilder, leftover_segments
from emulator.machine.machine import Machine, MachineConfig, build_layout, node_ranges
from emulator.machine.structs import MACHINE_NR_PFNS, MACHINE_PAGE_SIZE

from ..conftest import FORK, small_topology

ROOT = Path(__file__).resolve().parents[3]


def _layout():
    b = LayoutBuilder()
    b.add("a", np.int64, (3, 5))
    b.add("b", np.uint8, 100)
    b.add("c", np.int64, 7)
    return b.build()


def test_name_mode_alignment_and_unlink():
    lay = _layout()
    with Arena.create(lay) as a:
        assert a.name.startswith("slabemu-")
        st = os.stat(f"/dev/shm/{a.name}")
        assert stat.S_IMODE(st.st_mode) == 0o600
        for t in a.layout.tables:
            assert t.offset % 256 == 0 and t.offset + t.nbytes <= a.layout.size
        a.t.a[2, 4] = 9
        assert a.t["a"][2, 4] == 9 and a.t.b.dtype == np.uint8 and a.t.c.shape == (7,)
        name = a.name
    assert not os.path.exists(f"/dev/shm/{name}")


def test_layout_is_picklable_and_attach_sees_the_same_memory():
    with Arena.create(_layout()) as a:
        lay = pickle.loads(pickle.dumps(a.layout))
        b = Arena.attach(lay)
        b.t.c[3] = 1234
        assert a.t.c[3] == 1234
        b.close()  # not the owner: must not unlink
        assert os.path.exists(f"/dev/shm/{a.name}")


def _child_attach(layout):
    b = Arena.attach(layout)
    b.t.c[0] = os.getpid()
    b.close()


def test_forked_child_attaches_by_descriptor():
    with Arena.create(_layout()) as a:
        p = FORK.Process(target=_child_attach, args=(a.layout,))
        p.start()
        p.join(60)
        assert p.exitcode == 0 and a.t.c[0] == p.pid
        assert os.path.exists(f"/dev/shm/{a.name}")


def test_duplicate_table_is_refused():
    b = LayoutBuilder()
    b.add("x", np.int64, 1)
    with pytest.raises(ValueError):
        b.add("x", np.int64, 1)


def test_unlinked_after_exception():
    name = None
    with pytest.raises(RuntimeError):
        with Arena.create(_layout()) as a:
            name = a.name
            raise RuntimeError("boom")
    assert not os.path.exists(f"/dev/shm/{name}")


def test_machine_layout_follows_topology():
    topo = small_topology(node_mib=(8, 0, 4))  # a memoryless node in the middle
    assert node_ranges(topo) == [(1, 2048), (2049, 0), (2049, 1024)]
    lay = build_layout(topo, MachineConfig(inbox_capacity=16))
    assert lay.table("ram").shape == ((1 + 3072) * 4096,)
    assert lay.table("shadow").shape == ((1 + 3072) * 512,)
    with Machine(topo, MachineConfig(inbox_capacity=16)) as m:
        assert m.mem.machine[0, MACHINE_PAGE_SIZE] == 4096
        assert m.mem.machine[0, MACHINE_NR_PFNS] == 3073
        assert m.mem.lock.shape[1] == 24  # 19 fields padded to 3 cache lines of 8 words


# -- the process-level exit paths, each in a fresh interpreter --------------------------
_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    import multiprocessing as mp
    from emulator.machine.arena import Arena, LayoutBuilder
    b = LayoutBuilder(); b.add("w", np.int64, 8)
    mode = sys.argv[1]
    # A shell's background jobs start with SIGINT ignored, and Python then keeps it
    # ignored: restore the interactive behaviour that this test is about.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with Arena.create(b.build()) as a:
        r, w = os.pipe()
        up_r, up_w = os.pipe()
        def worker():
            os.write(up_w, b"u")  # started (a signal in fork's aftermath is lost)
            os.read(r, 1)         # blocks until killed
        p = mp.get_context("fork").Process(target=worker, daemon=True)
        p.start()
        os.read(up_r, 1)
        print("ready", a.name, p.pid, flush=True)
        if mode == "worker-killed":
            p.join()
            raise RuntimeError(f"worker died with {{p.exitcode}}")
        signal.pause()          # SIGINT / SIGTERM / SIGKILL arrive here
""")


def _start(mode):
    script = _SCRIPT.format(root=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line and line[0] == "ready", proc.stderr.read()
    return proc, line[1], int(line[2])


def _wait_gone(name, timeout=20.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/dev/shm/{name}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return not os.path.exists(f"/dev/shm/{name}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_parent_signal_unlinks(sig):
    proc, name, wpid = _start("signal")
    proc.send_signal(sig)
    proc.wait(30)
    try:
        os.kill(wpid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr.read() or sig == signal.SIGINT
    assert not os.path.exists(f"/dev/shm/{name}")


def test_worker_sigkill_unlinks():
    proc, name, wpid = _start("worker-killed")
    os.kill(wpid, signal.SIGKILL)
    proc.wait(30)
    err = proc.stderr.read()
    assert proc.returncode == 1 and "worker died with -9" in err
    assert not os.path.exists(f"/dev/shm/{name}")


def test_parent_sigkill_is_cleaned_by_the_resource_tracker():
    proc, name, wpid = _start("signal")
    proc.kill()
    proc.wait(30)
    os.kill(wpid, signal.SIGKILL)  # the orphaned worker holds the tracker's pipe open
    assert _wait_gone(name), f"{name} left after the parent was SIGKILLed"
    assert name not in leftover_segments()
