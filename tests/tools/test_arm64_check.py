"""tools/arm64/check, end to end: the project on aarch64 under qemu user-mode emulation.

Excluded by default (tens of minutes the first time, a few minutes with its cache):
run it with `./tools/test -m arm64`, or the script itself.  It needs a Debian host
(apt-get for qemu-user-static and the arm64 packages) and PyPI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.arm64
@pytest.mark.timeout(3 * 3600)
def test_arm64_check_runs_to_the_end():
    p = subprocess.run([str(ROOT / "tools" / "arm64" / "check"), "--no-save"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-6000:]
    lines = p.stderr.splitlines()
    steps = {ln.split()[0]: ln for ln in lines if ln and ln.split()[0] in
             ("compile", "machine-tests", "twin-test", "short-runs", "same-results")}
    assert set(steps) == {"compile", "machine-tests", "twin-test", "short-runs", "same-results"}, lines
    assert all(" pass " in ln for ln in steps.values()), steps
