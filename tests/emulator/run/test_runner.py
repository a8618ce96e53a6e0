"""The runner at library level (docs/design.md §7, §8 and §11): run_scenario on the
shipped scenarios in both modes, the results directory, determinism of the schedule,
pinning, worker logging through the parent, --duration, and mid-run invariant checks.

Every run is small (a few thousand ops per CPU, or a second or two) so the file stays
well under a minute on a two-core host.  The autouse fixture in tests/emulator/conftest.py
fails any test that leaves a /dev/shm/slabemu-<this pid>-* segment behind.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from emulator.report.results import load_summary, read_stream
from emulator.run.runner import RunOptions, plan_workers, run_scenario
from emulator.workload.scenario import load_scenario
from tests.emulator.conftest import host_cpus

SCENARIOS = ("local-fastpath", "remote-free", "node-pressure")
RESULT_FILES = ("summary.json", "stream.msgpack", "slabinfo.txt", "lock_stat.txt",
                "kasan.txt", "run.log")
OPS = 3000

# run.log: "<date> <time> <processName> <logger> <LEVEL> <message>"
WORKER_START = re.compile(r"^\S+ \S+ (worker-\d+) slabemu\.worker INFO worker (\d+) \(pid (\d+)\): "
                          r"emulated CPUs ([\d,]+) on host CPU (\S+), affinity ([\d,]+)$")


def small(name: str, ops: int = OPS, **kw):
    return load_scenario(name).with_overrides(ops_per_cpu=ops, duration=None, **kw)


def run(sc, out: Path, **opts):
    return run_scenario(sc, RunOptions(out=str(out), progress=False, quiet=True, **opts))


def worker_lines(out: Path) -> list[re.Match]:
    return [m for m in map(WORKER_START.match, (out / "run.log").read_text().splitlines()) if m]


def two_cpu_scenario(tmp_path: Path, *, placement: str | None = None, duration: float | None = None,
                     ops: int | None = OPS) -> Path:
    """A scenario on a one-node, two-CPU topology (fits a two-CPU host), both in tmp_path."""
    topo = tmp_path / "two-cpu.toml"
    topo.write_text('description = "1 node x 2 CPUs"\narch = "x86_64"\npage_size = 4096\n'
                    'cache_line = 64\n\n[[node]]\nid = 0\ncpus = "0-1"\nmemory = "64MiB"\n')
    lines = [f'topology = "{topo}"', 'allocator = "slub"', "seed = 5"]
    if ops is not None:
        lines.append(f"ops_per_cpu = {ops}")
    if duration is not None:
        lines.append(f"duration = {duration}")
    if placement is not None:
        lines.append(f'placement = "{placement}"')
    lines += ["", "[[cache]]", "kmalloc = 64", "", "[workload]", "live_objects = 64",
              "remote_cpu = 0.3"]
    path = tmp_path / "two-cpu-scenario.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- 1. every shipped scenario, both modes ------------------------------------------------------
@pytest.mark.parametrize("mode", ["parallel", "deterministic"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_shipped_scenario_runs_clean(tmp_path, name, mode):
    sc = small(name, mode=mode)
    out = tmp_path / "out"
    r = run(sc, out)
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    assert r.exit_code == 0 and s["error"] is None and s["failure"] is None
    assert s["invariants"]["checked"] is True
    assert s["invariants"]["violations"] == [] and s["invariants"]["count"] == 0
    assert r.violations == []
    assert s["mode"] == mode and s["scenario"] == name
    assert s["ops"]["total"] > 0 and s["ops"]["total"] == sum(s["ops"]["per_cpu"])
    assert len(s["ops"]["per_cpu"]) == s["topology"]["cpus"]
    assert s["workload"]["issued"] == [OPS] * s["topology"]["cpus"]  # the budget, exactly

    assert r.out == out
    for f in RESULT_FILES:
        assert (out / f).is_file(), f
    assert (out / "schedule.bin").is_file() == (mode == "deterministic")
    if mode == "deterministic":
        assert (out / "schedule.bin").stat().st_size > 0
        assert s["workers"]["count"] == 1 and s["workers"]["placement"] == []

    loaded = load_summary(out)
    assert loaded == json.loads(json.dumps(s))  # what was returned is what was written

    records, truncated = read_stream(out / "stream.msgpack")
    assert not truncated
    assert records[0]["type"] == "start" and records[0]["scenario"] == name
    assert records[-1]["type"] == "end" and records[-1]["exit"] == "ok"
    assert [x["type"] for x in records].count("start") == 1
    assert [x["type"] for x in records].count("end") == 1
    assert any(x["type"] == "snapshot" for x in records)

    # free_at_end (the shipped scenarios' default): every object allocated was freed,
    # on its own CPU or handed over to another; nothing is held at the end.
    w = s["workload"]
    assert sc.workload.free_at_end
    assert sum(w["allocs"]) > 0
    assert sum(w["allocs"]) - sum(w["alloc_failures"]) == sum(w["frees"]) + sum(w["remote_frees"])
    assert w["live"] == [0] * s["topology"]["cpus"]
    if name == "remote-free":
        assert sum(w["remote_frees"]) > 0  # the scenario's point: frees on another CPU/node


# -- 2. deterministic mode repeats itself --------------------------------------------------------
def _without_times(summary: dict) -> dict:
    s = json.loads(json.dumps(summary))
    for key in ("duration_s", "host", "commit"):  # commit: another session may commit meanwhile
        s.pop(key)
    s.pop("cpu_times", None)  # measured, where the runner reports it
    s["ops"].pop("per_second")
    for lock in s["locks"]:
        for key in [k for k in lock if k.startswith(("waittime_", "holdtime_"))]:
            lock.pop(key)
    return s


def test_deterministic_same_seed_same_run(tmp_path):
    sc = small("remote-free", mode="deterministic")
    a = run(sc, tmp_path / "a")
    b = run(sc, tmp_path / "b")
    assert a.summary["exit"] == b.summary["exit"] == "ok"
    assert _without_times(load_summary(tmp_path / "a")) == _without_times(load_summary(tmp_path / "b"))
    sched_a = (tmp_path / "a" / "schedule.bin").read_bytes()
    sched_b = (tmp_path / "b" / "schedule.bin").read_bytes()
    assert len(sched_a) > 0 and len(sched_a) % 4 == 0  # int32 CPU indices
    assert sched_a == sched_b

    c = run(small("remote-free", mode="deterministic", seed=sc.seed + 1), tmp_path / "c")
    assert c.summary["exit"] == "ok"
    assert (tmp_path / "c" / "schedule.bin").read_bytes() != sched_a


# -- 3. pinning ----------------------------------------------------------------------------------
needs_two = pytest.mark.skipif(host_cpus() < 2, reason="needs two host CPUs to pin two workers")


def _affinities(out: Path, summary: dict) -> dict[int, tuple[list[int], int, list[int]]]:
    """worker index -> (emulated CPUs, the host CPU it says, its psutil affinity)."""
    got = {}
    for m in worker_lines(out):
        assert m.group(1) == f"worker-{m.group(2)}"
        got[int(m.group(2))] = ([int(c) for c in m.group(4).split(",")],
                                int(m.group(5)), [int(c) for c in m.group(6).split(",")])
    assert sorted(got) == list(range(summary["workers"]["count"]))
    return got


@needs_two
@pytest.mark.parametrize("swap", [False, True], ids=["compact", "explicit-map"])
def test_workers_pinned_to_their_placement(tmp_path, swap):
    a, b = sorted(os.sched_getaffinity(0))[:2]
    placement = f"0:{b},1:{a}" if swap else None
    r = run(load_scenario(two_cpu_scenario(tmp_path, placement=placement)), tmp_path / "out")
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    w = s["workers"]
    assert w["count"] == 2 and w["per_worker_cpus"] == [[0], [1]]
    want = {0: b, 1: a} if swap else {0: a, 1: b}
    assert {p["cpu"]: p["host_cpu"] for p in w["placement"]} == want
    for j, (cpus, said, affinity) in _affinities(tmp_path / "out", s).items():
        assert cpus == w["per_worker_cpus"][j]
        assert said == want[cpus[0]]
        assert affinity == [want[cpus[0]]], f"worker {j} runs on {affinity}"


@needs_two
def test_grouped_workers_follow_an_explicit_map(tmp_path):
    # twonode-2n4c, 2 workers: worker 0 hosts CPUs 0,1 and worker 1 CPUs 2,3; the map puts
    # CPUs 0,1 on the second host CPU and 2,3 on the first.
    a, b = sorted(os.sched_getaffinity(0))[:2]
    sc = small("remote-free", workers=2, placement=f"0:{b},1:{b},2:{a},3:{a}")
    r = run(sc, tmp_path / "out")
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    host_of = {p["cpu"]: p["host_cpu"] for p in s["workers"]["placement"]}
    for j, (cpus, said, affinity) in _affinities(tmp_path / "out", s).items():
        for c in cpus:
            assert affinity == [host_of[c]], f"worker {j} hosts CPU {c} on {affinity}, " \
                                             f"placement says {host_of[c]}"


def test_plan_workers_one_per_cpu_follows_the_placement():
    from topo import load_topology, place

    t = load_topology("twonode-2n4c")
    allowed = sorted(os.sched_getaffinity(0))
    p = place(t, {c: allowed[-1 - (c % len(allowed))] for c in t.cpu_ids})
    plans = plan_workers(t, p, t.nr_cpus, "parallel")
    assert [pl.cpus for pl in plans] == [[0], [1], [2], [3]]
    assert [pl.host_cpu for pl in plans] == list(p.mapping)
    det = plan_workers(t, None, 0, "deterministic")
    assert len(det) == 1 and det[0].cpus == [0, 1, 2, 3] and det[0].host_cpu is None


# -- 4. worker log records reach run.log ----------------------------------------------------------
def test_worker_log_records_in_run_log(tmp_path):
    out = tmp_path / "out"
    r = run(small("remote-free"), out)
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    n = s["workers"]["count"]
    lines = (out / "run.log").read_text().splitlines()
    by_proc: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split(" ", 4)
        assert len(parts) == 5, line
        by_proc.setdefault(parts[2], []).append(parts[4])
    assert set(by_proc) == {"MainProcess"} | {f"worker-{j}" for j in range(n)}
    for j in range(n):
        msgs = by_proc[f"worker-{j}"]
        assert any(m.startswith(f"INFO worker {j} (pid ") for m in msgs), msgs
        assert any(re.fullmatch(rf"INFO worker {j}: finished, \d+ ops", m) for m in msgs), msgs
    started = worker_lines(out)
    assert sorted(c for m in started for c in map(int, m.group(4).split(","))) == \
        list(range(s["topology"]["cpus"]))
    assert [[int(c) for c in m.group(4).split(",")] for m in
            sorted(started, key=lambda m: int(m.group(2)))] == s["workers"]["per_worker_cpus"]
    assert any("run ended: ok" in m for m in by_proc["MainProcess"])


# -- 7. a duration ends the run ------------------------------------------------------------------
def test_duration_run_stops_by_itself(tmp_path):
    sc = load_scenario("remote-free").with_overrides(duration=1.0, ops_per_cpu=None)
    r = run(sc, tmp_path / "out")
    s = r.summary
    assert s["exit"] == "ok" and r.exit_code == 0, s["error"]
    assert 0.9 <= s["duration_s"] <= 10.0, s["duration_s"]
    assert s["ops"]["total"] > 0
    assert s["invariants"]["checked"] is True and s["invariants"]["violations"] == []
    assert s["workload"]["live"] == [0] * s["topology"]["cpus"]  # stop frees what CPUs hold
    records, _ = read_stream(tmp_path / "out" / "stream.msgpack")
    stops = [x for x in records if x["type"] == "event" and x["event"] == "stop"]
    assert [x["reason"] for x in stops] == ["duration"]


# -- 8. invariant checks while the run goes ------------------------------------------------------
def _checked_run(tmp_path, interval, **opts):
    sc = load_scenario("remote-free").with_overrides(duration=2.0, ops_per_cpu=None)
    r = run(sc, tmp_path / "out", check_interval=interval, **opts)
    s = r.summary
    assert s["exit"] == "ok", s["error"]
    records, truncated = read_stream(tmp_path / "out" / "stream.msgpack")
    assert not truncated
    return s, records


def test_check_interval_pauses_and_checks_mid_run(tmp_path):
    s, records = _checked_run(tmp_path, 0.2)
    assert s["invariants"]["checked"] is True
    assert s["invariants"]["violations"] == [] and s["invariants"]["count"] == 0
    consistent = [x for x in records if x["type"] == "snapshot" and x.get("consistent") is True]
    assert consistent, "no paused (consistent) snapshot in the stream"
    assert any(x["t"] < 2.0 and sum(x["ops"]) > 0 for x in consistent)  # mid-run, not after
    checks = [x for x in records if x["type"] == "event" and x["event"] == "check"]
    assert checks and all(x["violations"] == 0 for x in checks)


def test_check_interval_is_honoured_below_the_sample_interval(tmp_path):
    # --check-interval 0.2 with --sample-interval 2: checks ~0.2 s apart, not one per sample
    # (the runner used to look at the check interval only when it woke up to sample).
    s, records = _checked_run(tmp_path, 0.2, sample_interval=2.0)
    start = next(x["t"] for x in records if x["type"] == "event" and x["event"] == "start")
    stop = next(x["t"] for x in records if x["type"] == "event" and x["event"] == "stop")
    mid = [x["t"] for x in records if x["type"] == "event" and x["event"] == "check"
           and start < x["t"] < stop]
    # 2 s at one check per 0.2 s (plus the pause itself) is ~7; one per sample is 0 or 1.
    assert len(mid) >= 3, f"{len(mid)} checks in {stop - start:.2f} s: {mid}"
    assert s["invariants"]["violations"] == []


def test_plan_workers_groups_by_host_cpu():
    from topo import load_topology, place

    t = load_topology("twonode-2n4c")
    # CPUs 0 and 2 on host 5, 1 and 3 on host 7: two workers, one per host CPU
    p = place(t, {0: 5, 1: 7, 2: 5, 3: 7}, allowed=[5, 7])
    plans = plan_workers(t, p, 2, "parallel")
    assert [(pl.cpus, pl.host_cpu) for pl in plans] == [([0, 2], 5), ([1, 3], 7)]
    # one worker: every group merged
    plans = plan_workers(t, p, 1, "parallel")
    assert [(pl.cpus, pl.host_cpu) for pl in plans] == [([0, 1, 2, 3], 5)]
    # three workers on two host CPUs: a group is split, both halves stay on its host
    plans = plan_workers(t, p, 3, "parallel")
    assert sorted(c for pl in plans for c in pl.cpus) == [0, 1, 2, 3]
    for pl in plans:
        assert all(p.host_cpu_of(c) == pl.host_cpu for c in pl.cpus)
