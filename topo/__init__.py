"""Hardware topologies: parse, validate, discover and place.

Models the machine slabemu emulates: NUMA nodes, CPUs with their package/core/thread,
the SLIT distances, page and cache-line size (see `topo.model`), read from a TOML file
in configs/topologies/, an hwloc synthetic string, ``numactl --hardware`` text or the
host itself, and placed onto host CPUs (`topo.placement`).

Invariants: this package never imports from ``emulator`` (data flows config → topo →
emulator); every loader returns a validated, immutable `Topology`; every bad input
raises `ConfigError` (one line: source, field, what was expected).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .model import Cpu, Node, Topology, scale_memory, validate
from .numactl import DEFAULT_MEMORY_CAP, load_numactl, parse_numactl
from .placement import Placement, place
from .sizes import parse_size
from .synthetic import parse_synthetic
from .tomlfile import load_toml

__all__ = [
    "Topology", "Node", "Cpu", "ConfigError", "Placement", "DEFAULT_MEMORY_CAP", "CONFIGS_DIR",
    "load_topology", "place", "available_topologies", "validate", "scale_memory",
    "parse_synthetic", "parse_numactl", "load_numactl", "load_toml",
]

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs" / "topologies"


def available_topologies(configs_dir: str | Path | None = None) -> list[str]:
    """Names of the topology files shipped in ``configs_dir`` (default: configs/topologies)."""
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def _cap(memory_cap: int | str | None, source: str) -> int | None:
    if memory_cap is None:
        return None
    cap = parse_size(memory_cap, source=source, field="memory_cap")
    if cap <= 0:
        raise ConfigError(source, "memory_cap", "a positive size", memory_cap)
    return cap


def load_topology(spec: str | Path | None = None, *, synthetic: str | None = None,
                  numactl: str | Path | None = None, memory_cap: int | str | None = None,
                  configs_dir: str | Path | None = None) -> Topology:
    """Load a topology from exactly one source.

    ``spec``: a path to a .toml file, a name in configs/topologies ("xeon-2s12c" or
    "xeon-2s12c.toml"), or "host".  ``synthetic``: an hwloc synthetic string.
    ``numactl``: a file holding ``numactl --hardware`` output ("-": standard input).
    ``memory_cap``: bytes or a size string; caps the total emulated memory (default:
    the file's own memory_cap for TOML, none for synthetic strings, DEFAULT_MEMORY_CAP
    for numactl dumps and the host).
    """
    given = [x for x in (spec, synthetic, numactl) if x is not None]
    if len(given) != 1:
        raise ConfigError("topology", "source",
                          "exactly one of a TOPOLOGY (file, name or 'host'), a synthetic string "
                          "or a numactl dump", f"{len(given)} given")
    if synthetic is not None:
        source = f'synthetic "{synthetic}"' if isinstance(synthetic, str) else "synthetic"
        cap = _cap(memory_cap, source)
        topo = parse_synthetic(synthetic, source=source)
        return scale_memory(topo, cap) if cap is not None else topo
    if numactl is not None:
        cap = _cap(memory_cap, str(numactl))
        return load_numactl(numactl, memory_cap=cap if cap is not None else DEFAULT_MEMORY_CAP)

    text = str(spec)
    if text == "host":
        from .host import discover_host
        cap = _cap(memory_cap, "host")
        return discover_host(memory_cap=cap if cap is not None else DEFAULT_MEMORY_CAP)
    cap = _cap(memory_cap, text)
    path = Path(text)
    looks_like_path = path.suffix == ".toml" and (path.parent != Path(".") or path.exists())
    if isinstance(spec, Path) or "/" in text or looks_like_path:
        if not path.is_file():
            raise ConfigError(text, "file", "an existing topology file", text)
        return load_toml(path, memory_cap=cap)
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    stem = text[:-5] if text.endswith(".toml") else text
    candidate = d / f"{stem}.toml"
    if stem and candidate.is_file():
        return load_toml(candidate, memory_cap=cap)
    names = available_topologies(d)
    raise ConfigError(text, "topology",
                      "a .toml file, 'host', or one of: " + (", ".join(names) if names else
                                                              f"(no topologies in {d})"), text)
