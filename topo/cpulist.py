"""Linux cpulist syntax: parse and format.

Models the "List Format" of cpuset(7) and the kernel's ``bitmap_parselist()`` as used
by /sys/devices/system/node/node*/cpulist, ``isolcpus=`` and friends:

    ""                      no CPUs
    "0-11,24-35"            ranges and single numbers, comma separated
    "0-15:2/4"              a range with a group pattern: of every 4 CPUs use the first 2
                            (0,1,4,5,8,9,12,13), as in kernel-parameters.rst

Invariants: `parse_cpulist` returns a sorted tuple of distinct non-negative ints, or
raises `ConfigError`; a range must not run backwards ("3-1"), every number is decimal,
and a CPU listed twice is an error (a topology file that names a CPU twice is a typo,
not a union).  Surrounding whitespace and a trailing newline (as sysfs prints) are
ignored.  `format_cpulist` is the inverse: ``parse_cpulist(format_cpulist(s)) == s``.
"""

from __future__ import annotations

import re
from typing import Iterable

from .errors import ConfigError

__all__ = ["parse_cpulist", "format_cpulist"]

# Linux NR_CPUS tops out at 8192 (x86 MAXSMP); anything far above is a typo that would
# otherwise make us build enormous tuples.
MAX_CPU_ID = 65535

_ITEM = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+)/(\d+))?)?$")
EXPECTED = "a Linux cpulist such as '0-11,24-35' (numbers, ranges a-b, optional :used/group)"


def parse_cpulist(text: str, *, source: str = "cpulist", field: str = "cpus") -> tuple[int, ...]:
    """Parse a cpulist string into a sorted tuple of CPU ids."""
    if not isinstance(text, str):
        raise ConfigError(source, field, "a cpulist string such as '0-3,8-11'", text)
    body = text.strip()
    if not body:
        return ()
    seen: set[int] = set()
    for raw in body.split(","):
        item = raw.strip()
        m = _ITEM.match(item)
        if not m:
            raise ConfigError(source, field, EXPECTED, item if item else text)
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        if end < start:
            raise ConfigError(source, field, "a range a-b with a <= b", item)
        if end > MAX_CPU_ID:
            raise ConfigError(source, field, f"CPU numbers up to {MAX_CPU_ID}", item)
        if m.group(3) is not None:
            used, group = int(m.group(3)), int(m.group(4))
            if group == 0 or used == 0 or used > group:
                raise ConfigError(source, field, "a group pattern :used/group with 0 < used <= group",
                                  item)
            ids = [c for c in range(start, end + 1) if (c - start) % group < used]
        else:
            ids = range(start, end + 1)
        for cpu in ids:
            if cpu in seen:
                raise ConfigError(source, field, "each CPU listed once", f"{cpu} again in {text.strip()!r}")
            seen.add(cpu)
    return tuple(sorted(seen))


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPU ids as a compact cpulist ("0-11,24-35"); the empty set gives ""."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)
