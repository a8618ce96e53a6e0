"""`slabemu run` and `slabemu report` on real runs (docs/design.md §11, §12): a worker
killed mid-run, Ctrl-C, one-line errors for bad scenarios and options, --json, and every
report view of a real results directory.

Signal tests start `python -m emulator.cli run ...` as a subprocess; each waits for a
condition with a deadline (never a bare sleep) and bounds the parent's exit with a
timeout.  No test may leave a /dev/shm/slabemu-* segment of its own processes behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from emulator.cli import main
from emulator.machine.arena import leftover_segments
from emulator.report.lockstat import parse_lock_stat
from emulator.report.results import load_summary, read_stream
from emulator.report.slabinfo import parse_slabinfo
from emulator.report.summary import format_summary

REPO = Path(__file__).resolve().parents[1]
RESULT_FILES = ("summary.json", "stream.msgpack", "slabinfo.txt", "lock_stat.txt",
                "kasan.txt", "run.log")
WORKER_START = re.compile(r"^\S+ \S+ worker-(\d+) slabemu\.worker INFO worker \d+ \(pid (\d+)\): "
                          r"emulated CPUs ([\d,]+) on host CPU")



def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# -- the subprocess runs -------------------------------------------------------------------------
def wait_for(what: str, cond, proc, timeout: float = 60.0, step: float = 0.02):
    """Poll cond() until it returns something truthy; fail if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"slabemu exited ({proc.returncode}) before {what}:\n{err}\n{out[-2000:]}")
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def started_workers(out: Path, nr_cpus: int):
    """{worker index: (pid, emulated CPUs)} once every emulated CPU's worker logged its start."""
    try:
        text = (out / "run.log").read_text()
    except FileNotFoundError:
        return None
    workers = {int(m.group(1)): (int(m.group(2)), [int(c) for c in m.group(3).split(",")])
               for m in map(WORKER_START.match, text.splitlines()) if m}
    cpus = sorted(c for _, cs in workers.values() for c in cs)
    return workers if cpus == list(range(nr_cpus)) else None


def running(out: Path):
    """True once the stream has a snapshot with ops done (the run is under way)."""
    try:
        records, _ = read_stream(out / "stream.msgpack")
    except Exception:  # not there yet
        return False
    return any(r["type"] == "snapshot" and sum(r["ops"]) > 0 for r in records)


class SlabemuRun:
    """`slabemu run local-fastpath --duration 30` in a subprocess, SIGINT at its default
    (deterministic mode: an op budget of some seconds instead)."""

    NR_CPUS = 8  # laptop-1n8c

    def __init__(self, out: Path, mode: str = "parallel"):
        self.out = out
        self.mode = mode
        budget = ["--duration", "30"] if mode == "parallel" else ["--ops", "5000000"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.cli", "run", "local-fastpath", "--mode", mode,
             *budget, "--out", str(out), "--no-progress"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_running(self):
        self.workers = {}
        if self.mode == "parallel":
            self.workers = wait_for("every worker's start in run.log",
                                    lambda: started_workers(self.out, self.NR_CPUS), self.proc)
        wait_for("a snapshot with ops in the stream", lambda: running(self.out), self.proc)
        return self.workers

    def finish(self, timeout: float = 60.0):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail(f"slabemu did not exit within {timeout:.0f} s of the signal")
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def assert_clean(self):
        left = [n for n in leftover_segments() if n.startswith(f"slabemu-{self.proc.pid}-")]
        assert not left, f"shared memory left behind: {left}"
        for pid, _ in self.workers.values():
            try:
                status = psutil.Process(pid).status()
            except psutil.NoSuchProcess:
                continue
            pytest.fail(f"worker {pid} outlived the run ({status})")


@pytest.fixture
def slabemu_run(tmp_path):
    runs = []

    def start(mode="parallel"):
        r = SlabemuRun(tmp_path / "out", mode)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.kill()


def test_sigkill_of_a_worker_is_a_crash_by_cpu(slabemu_run):
    r = slabemu_run()
    workers = r.wait_running()
    index = max(workers)  # the last worker
    pid, cpus = workers[index]
    os.kill(pid, signal.SIGKILL)
    code, out, err = r.finish()

    assert code == 1, err
    s = load_summary(r.out)
    assert s["exit"] == "crashed"
    f = s["failure"]
    assert f is not None and f["worker_pid"] == pid and f["worker"] == index
    assert f["cpu"] in cpus, (f, cpus)
    assert "SIGKILL" in f["reason"]
    assert s["workers"]["per_worker_cpus"][index] == cpus
    line = one_line(err)
    assert f"emulated CPU {f['cpu']}" in line and str(pid) in line and "SIGKILL" in line
    assert "exit       crashed" in out

    for name in RESULT_FILES:
        assert (r.out / name).is_file(), name
    records, truncated = read_stream(r.out / "stream.msgpack")
    assert records and not truncated
    assert records[0]["type"] == "start"
    assert records[-1] == {"type": "end", "t": records[-1]["t"], "exit": "crashed"}
    assert any(x["type"] == "event" and x["event"] == "failure" for x in records)
    r.assert_clean()


@pytest.mark.parametrize("mode", ["parallel", "deterministic"])
def test_sigint_interrupts_the_run(slabemu_run, mode):
    r = slabemu_run(mode)
    r.wait_running()
    os.kill(r.proc.pid, signal.SIGINT)  # the parent only, as a terminal's Ctrl-C would not be
    code, out, err = r.finish()

    assert code == 130, err
    s = load_summary(r.out)
    assert s["exit"] == "interrupted"
    assert s["failure"] is None and s["ops"]["total"] > 0
    assert s["mode"] == mode and s["duration_s"] < 30
    assert sum(s["workload"]["issued"]) < 5_000_000 * 8
    if mode == "deterministic":
        assert (r.out / "schedule.bin").stat().st_size > 0  # the steps taken so far
    assert "interrupted" in one_line(err)
    for name in RESULT_FILES:
        assert (r.out / name).is_file(), name
    records, truncated = read_stream(r.out / "stream.msgpack")
    assert not truncated
    assert records[0]["type"] == "start"
    assert records[-1]["type"] == "end" and records[-1]["exit"] == "interrupted"
    r.assert_clean()


# -- bad input: exit status 2, one line ------------------------------------------------------------
GOOD = """topology = "twonode-2n4c"
allocator = "slub"
ops_per_cpu = 100

[[cache]]
kmalloc = 64
"""

BAD_SCENARIOS = {
    "unknown-key": (GOOD.replace("[[cache]]", 'colour = "red"\n\n[[cache]]'), "colour"),
    "unknown-cache-key": (GOOD + "align = 8\n", "cache[0].align"),
    "bad-allocator": (GOOD.replace('"slub"', '"slob"'), "allocator"),
    "remote-over-1": (GOOD + "\n[workload]\nremote_cpu = 0.6\nremote_node = 0.5\n",
                      "workload.remote_node"),
    "no-budget": (GOOD.replace("ops_per_cpu = 100\n", ""), "ops_per_cpu"),
    "bad-cache-size": (GOOD.replace("kmalloc = 64", "kmalloc = 0"), "cache[0].kmalloc"),
    "unknown-topology": (GOOD.replace("twonode-2n4c", "no-such-machine"), "topology"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_bad_scenario_is_one_line_naming_file_and_field(capsys, tmp_path, case):
    text, field = BAD_SCENARIOS[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    code, out, err = run(capsys, "run", path, "--out", tmp_path / "out")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("slabemu: error: ")
    assert str(path) in line and f" {field}: " in line, line
    assert not (tmp_path / "out").exists()


BAD_OPTIONS = {
    "ops-0": (["--ops", "0"], "--ops"),
    "duration-negative": (["--duration", "-1"], "--duration"),
    "duration-nan": (["--duration", "nan"], "--duration"),
    "seed-not-int": (["--seed", "x"], "--seed"),
    "unknown-policy": (["--policy", "no-such-policy"], "--policy"),
    "unknown-mode": (["--mode", "fast"], "--mode"),
    "unknown-topology": (["--topology", "no-such-machine"], "--topology"),
    "workers-over-cpus": (["--workers", "5"], "--workers"),
    "deterministic-duration-only": (["--mode", "deterministic", "--duration", "1"], "ops_per_cpu"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option_is_one_line(capsys, tmp_path, case):
    argv, option = BAD_OPTIONS[case]
    code, out, err = run(capsys, "run", "remote-free", *argv, "--out", tmp_path / "out")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("slabemu: error: ") and option in line, line
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_new_or_empty_directory(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("keep me\n")
    full = tmp_path / "full"
    full.mkdir()
    (full / "old").write_text("old results\n")
    for target in (a_file, full):
        code, out, err = run(capsys, "run", "remote-free", "--ops", "100", "--out", target)
        assert code == 2 and out == ""
        line = one_line(err)
        assert "--out" in line and str(target) in line, line
    assert a_file.read_text() == "keep me\n"
    assert [p.name for p in full.iterdir()] == ["old"]


def test_json_prints_only_the_summary(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "run", "remote-free", "--ops", "2000", "--out", out_dir, "--json")
    assert code == 0, err
    s = json.loads(out)  # all of stdout is one JSON document
    assert s == load_summary(out_dir)
    assert s["exit"] == "ok" and s["ops"]["total"] > 0


def test_text_output_and_results_line(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "run", "remote-free", "--ops", "2000", "--out", out_dir,
                         "--no-progress")
    assert code == 0 and err == ""
    assert out == format_summary(load_summary(out_dir)) + f"results: {out_dir}\n"


# -- slabemu report on a real run ------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", "remote-free", "--ops", "3000", "--out", str(out), "--no-progress",
                 "--json"]) == 0
    return out


def test_report_views_of_a_real_run(capsys, real_run):
    s = load_summary(real_run)
    code, out, err = run(capsys, "report", real_run)
    assert code == 0 and err == ""
    assert out == format_summary(s)
    assert run(capsys, "report", real_run, "summary")[1] == out

    code, out, err = run(capsys, "report", real_run, "slabinfo")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "slabinfo - version: 2.1"
    rows = parse_slabinfo(out)
    assert [r["name"] for r in rows] == [c["name"] for c in s["caches"]]
    assert {"kmalloc-128", "skbuff_like"} <= {r["name"] for r in rows}
    assert out == (real_run / "slabinfo.txt").read_text()

    code, out, err = run(capsys, "report", real_run, "lockstat")
    assert code == 0 and err == ""
    assert out == (real_run / "lock_stat.txt").read_text()
    parsed = parse_lock_stat(out)
    assert parsed and sum(r["acquisitions"] for r in parsed) == \
        sum(r["acquisitions"] for r in s["locks"])
    code, per_node, _ = run(capsys, "report", real_run, "lockstat", "--per-node")
    assert code == 0 and per_node.startswith("lock_stat version 0.4")

    code, out, err = run(capsys, "report", real_run, "kasan")
    assert code == 0 and err == "" and out == "no KASAN reports\n"
    code, out, err = run(capsys, "report", real_run, "leaks")
    assert code == 0 and err == "" and "no leak" in out


@pytest.mark.parametrize("view,key", [("summary", None), ("slabinfo", "caches"),
                                      ("lockstat", "locks"), ("kasan", "kasan"),
                                      ("leaks", "leaks")])
def test_report_json_of_a_real_run(capsys, real_run, view, key):
    s = load_summary(real_run)
    code, out, err = run(capsys, "report", real_run, view, "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == (s if key is None else s[key])


# -- slabemu compare ----------------------------------------------------------------------------
def test_compare_prints_one_table_and_a_run_per_policy(tmp_path, capsys):
    from emulator.cli import main

    out = tmp_path / "cmp"
    rc = main(["compare", "memcg-churn", "--policies", "pre-series,v2-full@4.0", "--ops", "4000",
               "--mode", "deterministic", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    lines = text.splitlines()
    header = next(l for l in lines if "pre-series" in l and "v2-full@4.0" in l)
    assert header.split() == ["pre-series", "v2-full@4.0"]
    leaked = next(l for l in lines if l.startswith("dead caches leaked")).split()
    assert int(leaked[-2]) > 0 and int(leaked[-1]) == 0
    for label in ("pages leaked", "memcgs pinned", "use-after-frees (KASAN)", "ops/s",
                  "list_lock acq / 1000 ops", "list_lock cont / 1000 ops"):
        assert any(l.startswith(label) for l in lines), label
    assert (out / "pre-series" / "summary.json").exists()
    assert (out / "v2-full@4.0" / "summary.json").exists()


def test_compare_json_and_bad_policies(tmp_path, capsys):
    import json

    from emulator.cli import main

    rc = main(["compare", "memcg-churn", "--policies", "v2-1-3", "--ops", "2000", "--mode",
               "deterministic", "--out", str(tmp_path / "j"), "--no-progress", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["scenario"] == "memcg-churn"
    assert [r["policy"]["name"] for r in doc["runs"]] == ["v2-1-3"]
    for bad in ("nope", "v2-full,v2-full", ","):
        rc = main(["compare", "memcg-churn", "--policies", bad, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("slabemu: error:"), (bad, err)
        assert not (tmp_path / "x").exists()
