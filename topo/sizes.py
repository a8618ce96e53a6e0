"""Memory sizes: parse "512MiB"-style strings, format byte counts.

Models: the sizes users write in topology files and on the command line.  Like the
kernel's ``memparse()`` (``mem=512M``), every suffix is a power of 1024, whether
written K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB or TiB; case does not matter; a bare
number is bytes.  A decimal fraction is allowed when the result is a whole number of
bytes ("1.5GiB").

Invariants: `parse_size` returns a non-negative int or raises `ConfigError`; booleans
are not sizes; `format_size` never loses information (it only uses a unit that divides
the value exactly).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import ConfigError

__all__ = ["parse_size", "format_size", "KiB", "MiB", "GiB", "TiB"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:I?B)?|B)?\s*$", re.IGNORECASE)
EXPECTED = "a size such as 4096, 64K, 512MiB or 1GiB"


def parse_size(value: object, *, source: str = "size", field: str = "size") -> int:
    """Parse an int (bytes) or a size string into bytes."""
    if isinstance(value, bool):
        raise ConfigError(source, field, EXPECTED, value)
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(source, field, "a non-negative size", value)
        return value
    if not isinstance(value, str):
        raise ConfigError(source, field, EXPECTED, value)
    m = _SIZE.match(value)
    if not m:
        raise ConfigError(source, field, EXPECTED, value)
    unit = _UNITS[(m.group(2) or "").upper()]
    try:
        amount = Decimal(m.group(1)) * unit
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        raise ConfigError(source, field, EXPECTED, value) from None
    if amount != amount.to_integral_value():
        raise ConfigError(source, field, "a whole number of bytes", value)
    return int(amount)


def format_size(nbytes: int) -> str:
    """Format a byte count with the largest binary unit that divides it exactly."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if nbytes and nbytes % unit == 0:
            return f"{nbytes // unit} {name}"
    return f"{nbytes} B"
