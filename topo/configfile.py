"""Finding a named config file: a name in a configs directory, or a path to one.

Models how every ``--policy`` / scenario argument is spelled: ``NAME`` or
``NAME.toml`` (a file in the configs directory), or an explicit path (a `Path`, or
text with a "/"; text ending in ".toml" is tried as a path before as a name).
The emulator's policy and scenario loaders use it; the topology loader has its own
rules ("host", synthetic strings) in `topo.load_topology`.

Invariants: the result is an existing file; every miss raises `ConfigError` whose
source is the spec as given — an explicit path that is not a file ("an existing
{what} file"), or an unknown name (listing the names in the directory, or saying
there are none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import ConfigError

__all__ = ["find_config"]


def find_config(spec: str | Path, configs_dir: Path, what: str,
                available: Callable[[Path], list[str]], base_dir: Path | None = None, *,
                plural: str | None = None, reject_dirs: bool = False) -> Path:
    """The file ``spec`` names.  ``what`` ("policy") names the kind in messages and is
    the error's field for an unknown name; ``plural`` (default ``what + "s"``) is used
    for an empty directory; ``available(configs_dir)`` lists the names for the error.
    A relative path is tried against ``base_dir`` first (when given), then as given.
    ``reject_dirs``: a path that is a directory gets its own message."""
    text = str(spec)
    explicit = isinstance(spec, Path) or "/" in text
    if explicit or text.endswith(".toml"):
        path = Path(text)
        if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
            return base_dir / path
        if reject_dirs and path.is_dir():
            raise ConfigError(text, "file", f"a {what} file (a TOML table), not a directory", text)
        if path.is_file():
            return path
        if explicit:
            raise ConfigError(text, "file", f"an existing {what} file", text)
    stem = text[:-5] if text.endswith(".toml") else text
    candidate = configs_dir / f"{stem}.toml"
    if stem and candidate.is_file():
        return candidate
    names = available(configs_dir)
    none = f"(no {plural or what + 's'} in {configs_dir})"
    raise ConfigError(text, what, "a .toml file or one of: " +
                      (", ".join(names) if names else none), text)
