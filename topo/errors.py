"""The one error type for bad topology input.

Models: a user mistake in a topology source (a TOML file, an hwloc synthetic string,
`numactl --hardware` text, the host's sysfs, a placement map, a command-line value).

Invariants: every bad-input path in `topo` raises `ConfigError` and nothing else, and
`str(err)` is exactly one line naming where (``source``), what (``field``), what was
expected and, when known, what was found:

    {source}: {field}: expected {expected}[, got {got!r}]

The command line prints that line after ``slabemu: error:`` and exits with status 2.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError"]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class ConfigError(Exception):
    """Bad topology input: names the source, the field and what was expected."""

    def __init__(self, source: str, field: str, expected: str, got: Any = None) -> None:
        self.source = _one_line(source)
        self.field = _one_line(field)
        self.expected = _one_line(expected)
        if isinstance(got, str):
            got = _one_line(got)
        self.got = got
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.source}: {self.field}: expected {self.expected}"
        if self.got is not None:
            text += f", got {self.got!r}"
        return text

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.source, self.field, self.expected, self.got))

    def relocated(self, source: str | None = None, field_prefix: str = "") -> "ConfigError":
        """A copy naming another source and/or a field nested under ``field_prefix``."""
        field = f"{field_prefix}{self.field}" if field_prefix else self.field
        return ConfigError(source if source is not None else self.source, field,
                           self.expected, self.got)
