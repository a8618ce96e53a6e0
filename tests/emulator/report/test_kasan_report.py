"""KASAN-style reports: exact blocks per bug kind, the count of reports not kept."""

from __future__ import annotations

from emulator.report.kasan import SEPARATOR, count_by_bug, format_kasan, format_kasan_report
from tests.emulator.report.summary_example import example_summary


def test_separator_is_kasans():
    assert SEPARATOR == "=" * 66


def test_exact_report_blocks():
    s = example_summary()
    assert format_kasan(s["kasan"], s["kasan_total"]).splitlines() == [
        SEPARATOR,
        "BUG: KASAN: slab-use-after-free in kfree/slab_free",
        "Access of size 8 at addr 0000000000012340 by task 0 on cpu 1",
        "The buggy address belongs to the cache kmalloc-64(2:m1)",
        "Freed by cpu 3 in kmem_cache_destroy/free_partial",
        SEPARATOR,
        SEPARATOR,
        "BUG: KASAN: double-free in kfree/slab_free",
        "Free of addr 0000000000020000 by task 1 on cpu 2",
        "The buggy address belongs to the cache kmalloc-64",
        SEPARATOR,
        SEPARATOR,
        "BUG: KASAN: slab-use-after-free in kfree/slab_free",
        "Access of size 8 at addr 0000000000012380 by task 0 on cpu 0",
        SEPARATOR,
        "... 2 more KASAN reports not shown (5 in all, the first 3 kept)",
    ]


def test_access_kinds_and_unknown_size():
    base = {"bug": "slab-out-of-bounds", "cpu": 0, "task": 0, "op": "kmalloc",
            "phase": "fastpath", "object": 0x40, "size": 4, "cache": None, "freed_by": None}
    assert format_kasan_report({**base, "access": "read"})[1] == (
        "Read of size 4 at addr 0000000000000040 by task 0 on cpu 0")
    assert format_kasan_report({**base, "access": "write"})[1].startswith("Write of size 4 ")
    assert format_kasan_report({**base, "size": 0})[1] == (
        "Access at addr 0000000000000040 by task 0 on cpu 0")


def test_cache_use_after_free_and_invalid_free():
    r = {"bug": "kmem_cache-use-after-free", "cpu": 2, "task": 0, "op": "kfree",
         "phase": "memcg_uncharge", "object": 0x1000, "size": 0, "cache": "kmalloc-64(2:m1)",
         "freed_by": {"cpu": 1, "op": "destroy_work", "phase": "kmem_cache_free"}}
    assert format_kasan_report(r) == [
        "BUG: KASAN: kmem_cache-use-after-free in kfree/memcg_uncharge",
        "Access to freed kmem_cache (descriptor row 4096) by task 0 on cpu 2",
        "The buggy address belongs to the cache kmalloc-64(2:m1)",
        "Freed by cpu 1 in destroy_work/kmem_cache_free",
    ]
    # what the runner adds: preemption, the creating CPU, both CPUs' last events
    full = {**r, "preempted": True, "previous_op": "kmalloc",
            "allocated_by": {"cpu": 0, "op": "memcg_create_kmem_cache", "phase": "create"},
            "freeing_cpu_now": {"op": "kfree", "phase": "slab_free"}}
    assert format_kasan_report(full)[3:] == [
        "The task was preempted inside kfree before this access",
        "Allocated by cpu 0 in memcg_create_kmem_cache/create",
        "Freed by cpu 1 in destroy_work/kmem_cache_free",
        "Last events: cpu 1 is now in kfree/slab_free; cpu 2 ran kmalloc before kfree",
    ]
    inv = {**r, "bug": "invalid-free", "freed_by": None, "cache": None}
    assert format_kasan_report(inv)[1] == "Free of addr 0000000000001000 by task 0 on cpu 2"


def test_nothing_and_all_kept():
    assert format_kasan([], 0) == ""
    s = example_summary()
    text = format_kasan(s["kasan"])  # total defaults to the reports given
    assert "not shown" not in text and text.count(SEPARATOR) == 6
    assert format_kasan([], 3) == (
        "... 3 more KASAN reports not shown (3 in all, the first 0 kept)\n")


def test_count_by_bug_order():
    reports = [{"bug": b} for b in ("double-free", "zz-new", "slab-use-after-free",
                                    "double-free", "aa-new")]
    assert list(count_by_bug(reports).items()) == [
        ("slab-use-after-free", 1), ("double-free", 2), ("aa-new", 1), ("zz-new", 1)]
