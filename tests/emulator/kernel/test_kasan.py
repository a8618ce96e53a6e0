"""The KASAN-style shadow: poisoning, partial granules, and what a check reports."""

from __future__ import annotations

import numpy as np

from emulator.kernel.kasan import (
    KASAN_FREE_PAGE,
    KASAN_KMALLOC_FREE,
    KASAN_KMALLOC_REDZONE,
    kasan_check,
    kasan_check_at,
    kasan_poison_shadow,
    kasan_unpoison_shadow,
)


def _shadow():
    return np.full(64, KASAN_FREE_PAGE, np.uint8)  # 512 bytes of "RAM", all freed


def test_unpoison_with_partial_tail():
    s = _shadow()
    kasan_unpoison_shadow(s, 64, 13)  # a 13-byte object at 64
    assert list(s[8:10]) == [0, 5] and s[10] == KASAN_FREE_PAGE
    assert kasan_check(s, 64, 13) == 0
    assert kasan_check(s, 72, 5) == 0
    assert kasan_check(s, 64, 14) == KASAN_KMALLOC_REDZONE  # one byte past the object
    assert tuple(kasan_check_at(s, 70, 8)) == (KASAN_KMALLOC_REDZONE, 77)


def test_poison_reports_the_first_bad_byte():
    s = _shadow()
    kasan_unpoison_shadow(s, 0, 128)
    kasan_poison_shadow(s, 32, 32, KASAN_KMALLOC_FREE)
    assert kasan_check(s, 0, 32) == 0
    assert tuple(kasan_check_at(s, 24, 16)) == (KASAN_KMALLOC_FREE, 32)
    assert kasan_check(s, 64, 64) == 0
    assert kasan_check(s, 120, 16) == KASAN_FREE_PAGE


def test_zero_sized_access_is_fine():
    assert kasan_check(_shadow(), 8, 0) == 0
