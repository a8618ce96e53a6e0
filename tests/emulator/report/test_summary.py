"""The end-of-run tables: header, ops per CPU, caches, per-node list_lock, KASAN, leaks."""

from __future__ import annotations

from emulator.report.summary import TOP_CACHES, format_summary
from tests.emulator.report.summary_example import example_summary


def sections(text):
    return [sec.splitlines() for sec in text.rstrip("\n").split("\n\n")]


def test_exact_tables():
    header, ops, caches, locks, kasan, leaks = sections(format_summary(example_summary()))
    assert header == [
        "scenario   memcg-churn (seed 42, deterministic mode, commit abc1234)",
        "topology   twonode-2n4c: x86_64, 2 nodes, 4 cpus, page size 4096",
        "allocator  slub",
        "policy     v2-full",
        "switches   dead_caches=self-destruct, shrink_tolerates_enomem=yes, "
        "nonpreemptible_free=yes, sync_before_destroy=yes, dead_discard_empty=yes, "
        "track_full_slabs=no",
        "exit       ok after 2.50 s",
        "ops        20000 in all, 8000 per second",
    ]
    assert ops == ["ops per cpu: min 4000, mean 5000, max 6000",
                   "  cpu 0-3: 5000 4000 6000 5000"]
    assert caches == [
        "caches with objects: 3 of 4, by num_objs",
        "name               active_objs     num_objs      objsize active_slabs    num_slabs",
        "kmalloc-64                1000         1024           64           16           16",
        "kmalloc-256                200          256          256           16           16",
        "kmalloc-64(2:m1)            10           64           64            1            1"
        "  dead",
    ]
    assert locks == [
        "list_lock per node (summed over caches):",
        "node   acquisitions    contentions  cont/1000 ops    wait total us    wait max us",
        "   0           1500             15          0.750            75.50          20.00",
        "   1            800              0          0.000             0.00           0.00",
    ]
    assert kasan == ["KASAN reports: 5, 3 kept",
                     "  slab-use-after-free               2",
                     "  double-free                       1"]
    assert leaks[0] == "leaks:" and leaks[1] == "  dead caches alive:             1"


def test_failure_and_error_lines():
    s = example_summary(exit="crashed", error="worker for cpu 2 died",
                        failure={"cpu": 2, "task": 0, "op": "kfree", "phase": "slab_free",
                                 "worker_pid": 4242, "reason": "killed by signal 9"})
    header = sections(format_summary(s))[0]
    assert header[5] == "exit       crashed after 2.50 s"
    assert header[-2:] == [
        "error      worker for cpu 2 died",
        "failure    cpu 2 task 0 in kfree/slab_free (worker pid 4242): killed by signal 9"]


def test_empty_sections_say_none():
    s = example_summary(ops={"total": 0, "per_cpu": [], "per_second": 0.0}, caches=[], locks=[],
                        kasan=[], kasan_total=0,
                        leaks=dict.fromkeys(example_summary()["leaks"], 0))
    secs = sections(format_summary(s))
    assert secs[1] == ["ops per cpu: none"]
    assert secs[2] == ["caches with objects: none (0 caches)"]
    assert secs[3] == ["list_lock per node: none"]
    assert secs[4] == ["KASAN reports: none"]
    assert secs[5][-1] == "  no leak: no dead cache is alive"


def test_zero_ops_has_no_contention_rate():
    s = example_summary(ops={"total": 0, "per_cpu": [0, 0, 0, 0], "per_second": 0.0})
    assert "   0           1500             15              -" in format_summary(s)


def test_top_caches_and_many_cpus():
    caches = [dict(example_summary()["caches"][2], name=f"c{i}", num_objs=i, active_objs=i)
              for i in range(1, 21)]
    per_cpu = list(range(100, 118))
    s = example_summary(caches=caches, ops={"total": sum(per_cpu), "per_cpu": per_cpu,
                                            "per_second": 1.0})
    ops, cache_lines = sections(format_summary(s))[1:3]
    assert ops[1:] == ["  cpu   0-7: 100 101 102 103 104 105 106 107",
                       "  cpu  8-15: 108 109 110 111 112 113 114 115",
                       "  cpu 16-17: 116 117"]
    assert cache_lines[0] == f"caches with objects: 20 of 20, top {TOP_CACHES} by num_objs"
    assert [line.split()[0] for line in cache_lines[2:]] == [f"c{i}" for i in range(20, 5, -1)]
