"""/proc/lock_stat: the kernel's exact layout, rounding, round trips, per-node sums."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.report.lockstat import (COUNT_KEYS, TIME_KEYS, aggregate_per_node,
                                      format_lock_stat, format_time_us, lock_class_name,
                                      parse_lock_stat, split_lock_class_name)
from tests.emulator.report.summary_example import example_summary

RULE = "-" * 221
DOTS = "." * 221
# seq_header() of kernel/locking/lockdep_proc.c: "%40s" and twelve " %14s"
HEADER = ("                              class name    con-bounces    contentions   "
          "waittime-min   waittime-max waittime-total   waittime-avg    acq-bounces   "
          "acquisitions   holdtime-min   holdtime-max holdtime-total   holdtime-avg")


def lock(name="&n->list_lock", cache="kmalloc-64", node=0, **kw):
    d = {"name": name, "class": None, "cache": cache, "node": node, "acquisitions": 0,
         "contentions": 0, "con_bounces": 0, "acq_bounces": 0, "waittime_min_us": 0.0,
         "waittime_max_us": 0.0, "waittime_total_us": 0.0, "holdtime_min_us": 0.0,
         "holdtime_max_us": 0.0, "holdtime_total_us": 0.0}
    d.update(kw)
    return d


def test_exact_layout():
    rows = [
        lock(cache="kmalloc-64", node=1, acquisitions=5, acq_bounces=1, holdtime_min_us=1.0,
             holdtime_max_us=2.0, holdtime_total_us=7.0),
        lock(cache="kmalloc-64", node=0, acquisitions=1000, contentions=10, con_bounces=3,
             acq_bounces=40, waittime_min_us=0.25, waittime_max_us=12.5,
             waittime_total_us=30.0, holdtime_min_us=0.1, holdtime_max_us=3.33,
             holdtime_total_us=250.5),
        lock(cache="kmalloc-128", node=0),  # never acquired: not printed, as in the kernel
    ]
    assert format_lock_stat(rows).splitlines() == [
        "lock_stat version 0.4",
        RULE,
        HEADER,
        RULE,
        "",
        # the contended class first (lock_stat_cmp), then its block's closing rule
        "              kmalloc-64:&n->list_lock/0:             3             10"
        "           0.25          12.50          30.00           3.00             40"
        "           1000           0.10           3.33         250.50           0.25",
        "",
        DOTS,
        "",
        "              kmalloc-64:&n->list_lock/1:             0              0"
        "           0.00           0.00           0.00           0.00              1"
        "              5           1.00           2.00           7.00           1.40",
    ]
    assert len(HEADER) == 220 and len(format_lock_stat(rows).splitlines()[5]) == 220


def test_sorted_by_contentions_ties_keep_order():
    rows = [lock(cache=c, acquisitions=10, contentions=n) for c, n in
            (("a", 1), ("b", 5), ("c", 1), ("d", 0), ("e", 5))]
    names = [r["cache"] for r in parse_lock_stat(format_lock_stat(rows))]
    assert names == ["b", "e", "a", "c", "d"]


@pytest.mark.parametrize("us, text", [
    (0.0, "0.00"), (0.004, "0.00"), (0.005, "0.01"), (1.0, "1.00"), (12.345, "12.35"),
    (1234.567, "1234.57"), (17464026916.32, "17464026916.32"), (-1.0, "0.00"),
])
def test_time_rounding_is_snprint_times(us, text):
    assert format_time_us(us) == text


def test_average_is_whole_nanoseconds():
    # total 10 us over 3: div_s64(10000, 3) = 3333 ns -> "3.33"; 0 acquisitions -> 0
    line = format_lock_stat([lock(acquisitions=3, holdtime_total_us=10.0)]).splitlines()[5]
    assert line.split()[-1] == "3.33"


@pytest.mark.parametrize("row, name", [
    ({"name": "&n->list_lock", "cache": "kmalloc-64", "node": 0}, "kmalloc-64:&n->list_lock/0"),
    ({"name": "&alc->lock", "cache": "kmalloc-64(2:m1)", "node": 1},
     "kmalloc-64(2:m1):&alc->lock/1"),
    ({"name": "&zone->lock", "cache": None, "node": 3}, "&zone->lock/3"),
    ({"name": "&n->list_lock", "node": 0}, "&n->list_lock/0"),
])
def test_class_names(row, name):
    assert lock_class_name(row) == name
    assert split_lock_class_name(name) == (row.get("cache"), row["name"], row["node"])


def test_foreign_class_names_pass_through():
    assert split_lock_class_name("&mm->mmap_sem") == (None, "&mm->mmap_sem", None)
    assert split_lock_class_name("clockevents_lock") == (None, "clockevents_lock", None)


def test_long_names_are_not_truncated():
    cache = "a_cache_with_a_rather_long_name(123:some-cgroup)"
    text = format_lock_stat([lock(cache=cache, node=2, acquisitions=1)])
    (row,) = parse_lock_stat(text)
    assert row["cache"] == cache and row["node"] == 2 and row["acquisitions"] == 1


def test_parses_a_kernel_file():
    text = "\n".join([
        "lock_stat version 0.4",
        RULE,
        HEADER,
        RULE,
        "",
        "                         &mm->mmap_sem-W:            12             34"
        "           0.50         100.00         200.00           5.88           4000"
        "          50000           0.10         900.00       10000.00           0.20",
        "                         &mm->mmap_sem-R:             1              2"
        "           1.00           2.00           3.00           1.50            500"
        "           6000           0.10           9.00          30.00           0.01",
        "                         ---------------",
        "                           &mm->mmap_sem             30          "
        "[<ffffffff81000000>] do_page_fault+0x1d4/0x510",
        "",
        DOTS,
        "",
        "                        clockevents_lock:             0              0"
        "           0.00           0.00           0.00           0.00              7"
        "             70           0.05           1.25          11.11           0.16",
    ]) + "\n"
    w, r, c = parse_lock_stat(text)
    assert (w["name"], w["rw"], w["contentions"], w["acquisitions"]) == ("&mm->mmap_sem", "W",
                                                                        34, 50000)
    assert w["waittime_avg_us"] == 5.88 and w["holdtime_total_us"] == 10000.0
    assert (r["rw"], r["con_bounces"], r["acq_bounces"]) == ("R", 1, 500)
    assert c["name"] == "clockevents_lock" and c["class"] is None and c["node"] is None
    assert c["holdtime_max_us"] == 1.25


def test_parse_needs_the_version_line():
    with pytest.raises(ValueError, match="lock_stat line 1"):
        parse_lock_stat("class name con-bounces\n")
    with pytest.raises(ValueError):
        parse_lock_stat("")


_cache_names = st.from_regex(r"[a-z][a-z0-9_-]{0,20}(\([0-9]{1,3}:[a-z0-9_-]{1,12}\))?",
                             fullmatch=True)
_centi_us = st.integers(0, 10 ** 12).map(lambda k: k / 100)


@st.composite
def _locks(draw):
    name = draw(st.sampled_from(["&n->list_lock", "&zone->lock", "&alc->lock"]))
    acq = draw(st.integers(1, 10 ** 12))
    return {
        "name": name, "class": {"&n->list_lock": "list_lock", "&zone->lock": "zone",
                                "&alc->lock": "alien"}[name],
        "cache": None if name == "&zone->lock" else draw(_cache_names),
        "node": draw(st.integers(0, 63)), "acquisitions": acq,
        "contentions": draw(st.integers(0, acq)), "con_bounces": draw(st.integers(0, 10 ** 9)),
        "acq_bounces": draw(st.integers(0, 10 ** 9)),
        **{k: draw(_centi_us) for k in TIME_KEYS},
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(_locks(), max_size=8))
def test_round_trip(rows):
    back = parse_lock_stat(format_lock_stat(rows))
    want = sorted(rows, key=lambda r: -r["contentions"])
    keys = ("name", "class", "cache", "node") + COUNT_KEYS + TIME_KEYS
    assert [{k: b[k] for k in keys} for b in back] == [{k: w[k] for k in keys} for w in want]


def test_aggregate_per_node_arithmetic():
    agg = aggregate_per_node(example_summary()["locks"])
    assert [(r["name"], r["node"], r["instances"]) for r in agg] == [
        ("&n->list_lock", 0, 2), ("&n->list_lock", 1, 2), ("&zone->lock", 0, 1)]
    n0, n1, zone = agg
    assert n0 == {
        "name": "&n->list_lock", "class": "list_lock", "cache": None, "node": 0,
        "con_bounces": 6, "contentions": 15, "acq_bounces": 400, "acquisitions": 1500,
        "waittime_min_us": 0.25,   # min of 0.5 and 0.25
        "waittime_max_us": 20.0,   # max of 12.25 and 20.0
        "waittime_total_us": 75.5,
        "holdtime_min_us": 0.1, "holdtime_max_us": 3.0, "holdtime_total_us": 450.25,
        "spins": 150, "yields": 1, "instances": 2,
    }
    # node 1: nothing contended -> wait min/max 0; the never-acquired kmalloc-128 row's
    # zero hold time does not become the minimum
    assert (n1["contentions"], n1["waittime_min_us"], n1["waittime_max_us"]) == (0, 0.0, 0.0)
    assert (n1["acquisitions"], n1["holdtime_min_us"], n1["holdtime_max_us"]) == (800, 0.15, 1.0)
    assert zone["acquisitions"] == 40 and zone["waittime_min_us"] == 3.0


def test_per_node_format_uses_node_names():
    text = format_lock_stat(example_summary()["locks"], per_node=True)
    rows = parse_lock_stat(text)
    assert [(lock_class_name(r), r["contentions"], r["acquisitions"]) for r in rows] == [
        ("&n->list_lock/0", 15, 1500), ("&zone->lock/0", 1, 40), ("&n->list_lock/1", 0, 800)]
    assert rows[0]["waittime_avg_us"] == 5.03  # 75.5 us / 15 = 5033 ns


def test_aggregate_of_nothing():
    assert aggregate_per_node([]) == []
    assert format_lock_stat([]).splitlines() == ["lock_stat version 0.4", RULE, HEADER, RULE, ""]
