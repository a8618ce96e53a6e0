"""structs.py: the generated struct_fields.py matches the declarations, and the names
every caller uses keep their values."""

from __future__ import annotations

import pytest

from emulator.machine import struct_fields
from emulator.machine import structs as S


def test_struct_fields_is_up_to_date():
    # a struct, stat item or config field added, removed or moved in structs.py without
    # `python -m emulator.machine.structs --write` fails here
    assert S.STRUCT_FIELDS_PATH.read_text() == S.render_struct_fields(), \
        "run: python -m emulator.machine.structs --write"


def test_constants_are_the_declared_positions():
    assert S.PAGE_FREELIST == S.STRUCTS["page"].fields.index("freelist")
    assert S.LOCK_CLASS == S.STRUCTS["lock"].fields.index("class_")  # trailing _ dropped
    assert S.KMEM_CACHE_CPU_NR_FIELDS == len(S.STRUCTS["kmem_cache_cpu"].fields)
    assert S.KASAN_REPORT_FREED_MEMCG == S.KASAN_REPORT_NR_FIELDS - 1
    assert S.CPU_PARTIAL_DRAIN == S.NR_SLUB_STAT_ITEMS - 1
    assert S.STAT_GROWN == S.SLAB_STAT_ITEMS.index("GROWN")
    assert S.CONFIG_DEAD_CACHES == S.CONFIG_FIELDS.index("dead_caches")
    assert S.CPU_STAT + S.ALLOC_FASTPATH == S.KMEM_CACHE_CPU_STAT_ALLOC_FASTPATH
    assert S.CPU_SLAB_STAT + S.STAT_ALLOCHIT == S.KMEM_CACHE_CPU_SLAB_ALLOCHIT
    for _, rows in S.generated_constants():
        for name, value, _ in rows:
            assert getattr(S, name) == value and name in S.__all__


def test_a_stale_struct_fields_fails_the_import_check(monkeypatch):
    monkeypatch.setattr(struct_fields, "PAGE_FREELIST", S.PAGE_FREELIST + 1)
    with pytest.raises(ImportError, match="PAGE_FREELIST"):
        S._check_struct_fields()
    monkeypatch.undo()
    monkeypatch.setattr(struct_fields, "PAGE_GONE", 3, raising=False)
    with pytest.raises(ImportError, match="PAGE_GONE"):
        S._check_struct_fields()
