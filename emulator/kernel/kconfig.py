"""The emulated kernel's build configuration: the Kconfig choices that decide a path.

What it models: the options of a 2014 kernel build that decide whether the series'
kfree/destroy race exists at all (docs/kernel-config.md):

- ``preempt``: the preemption model (kernel/Kconfig.preempt).  ``"none"``
  (CONFIG_PREEMPT_NONE): a task in the kernel is never preempted; ``"voluntary"``
  (CONFIG_PREEMPT_VOLUNTARY): only at cond_resched() and might_sleep() points;
  ``"full"`` (CONFIG_PREEMPT): wherever preemption is enabled.  ops.py's phase table
  says, per phase boundary, which model lets it be a preemption point.
- ``slub_stats`` (CONFIG_SLUB_STATS): SLUB's stat(s, item) increments a per-CPU counter
  of s; without it, stat() is an empty inline function and touches nothing.
- ``slub_debug`` (CONFIG_SLUB_DEBUG_ON, or slub_debug on the command line): every SLUB
  cache is a kmem_cache_debug() cache: no cpu partial lists, full slabs on n->full.
  (The debug checks themselves, red zones, poisoning and tracking, are not modelled.)
  Its debug flags also keep every cache from merging.
- ``slab_nomerge``: the ``slub_nomerge`` boot parameter of 3.16 (``slab_nomerge`` from
  3.19): SLUB's kmem_cache_create() never hands out an existing cache for a new one
  (emulator/kernel/merge.py).  Default false: a kernel merges.

CONFIG_NUMA is not a field: a one-node topology is what a !NUMA kernel sees (no alien
caches, no remote partial slabs), so the topology decides those paths.

Presets live in configs/kernels/*.toml, each naming the distribution kernel it stands
for.  The default (`DEFAULT`) is the configuration every run had before this module
existed: full preemption, SLUB statistics on, no debugging (the preset
devel-preempt-stats).

Invariants: a `KernelConfig` is immutable and valid (checked on construction):
``preempt`` is one of `PREEMPT_MODELS`, the three others are bools.  Every bad field
raises `topo.ConfigError` naming the file (or "command line"), the field and what was
expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from topo.configfile import find_config
from topo.errors import ConfigError
from topo.tomlfile import read_toml

__all__ = ["KernelConfig", "DEFAULT", "PREEMPT_MODELS", "PREEMPT_NONE", "PREEMPT_VOLUNTARY",
           "PREEMPT_FULL", "FIELDS", "load_kernel_config", "kernel_config_from_table",
           "available_kernel_configs", "CONFIGS_DIR"]

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs" / "kernels"

# config[CONFIG_PREEMPT_MODEL] values (ops.py's phase table columns)
PREEMPT_NONE = 0
PREEMPT_VOLUNTARY = 1
PREEMPT_FULL = 2
PREEMPT_MODELS = ("none", "voluntary", "full")
FIELDS = ("preempt", "slub_stats", "slub_debug", "slab_nomerge")
_FILE_KEYS = {"description", *FIELDS}
_KCONFIG = {"none": "CONFIG_PREEMPT_NONE", "voluntary": "CONFIG_PREEMPT_VOLUNTARY",
            "full": "CONFIG_PREEMPT"}


def _check(values: Mapping[str, Any], src: str, prefix: str) -> None:
    p = values["preempt"]
    if not isinstance(p, str) or p not in PREEMPT_MODELS:
        raise ConfigError(src, f"{prefix}preempt", '"none", "voluntary" or "full"', p)
    for key in ("slub_stats", "slub_debug", "slab_nomerge"):
        if not isinstance(values[key], bool):
            raise ConfigError(src, f"{prefix}{key}", "true or false", values[key])


@dataclass(frozen=True)
class KernelConfig:
    """One kernel build; see the module docstring."""

    name: str = "devel-preempt-stats"
    description: str = "developer build: PREEMPT and SLUB_STATS (slabemu's default)"
    preempt: str = "full"
    slub_stats: bool = True
    slub_debug: bool = False
    # the slub_nomerge boot parameter (slab_nomerge from 3.19): SLUB merges no cache
    # (kernel/merge.py); slub_debug's flags stop merging as well
    slab_nomerge: bool = False

    def __post_init__(self) -> None:
        _check({k: getattr(self, k) for k in FIELDS}, self.name, "")

    @property
    def preempt_model(self) -> int:
        """config[CONFIG_PREEMPT_MODEL]: PREEMPT_NONE, PREEMPT_VOLUNTARY or PREEMPT_FULL."""
        return PREEMPT_MODELS.index(self.preempt)

    def to_dict(self) -> dict[str, Any]:
        """summary.json's ``kernel`` (and the scenario's ``kernel`` table, with name)."""
        return {"name": self.name, "description": self.description, "preempt": self.preempt,
                "slub_stats": self.slub_stats, "slub_debug": self.slub_debug,
                "slab_nomerge": self.slab_nomerge}

    def describe(self) -> str:
        """One line for the reports: name and the Kconfig symbols it stands for."""
        syms = [_KCONFIG[self.preempt],
                "SLUB_STATS=" + ("y" if self.slub_stats else "n"),
                "SLUB_DEBUG_ON=" + ("y" if self.slub_debug else "n")]
        return f"{self.name} ({', '.join(syms)})"


DEFAULT = KernelConfig()


def kernel_config_from_table(table: Any, src: str, prefix: str = "kernel.",
                             name: str = "scenario") -> KernelConfig:
    """A scenario's ``[kernel]`` table (or a preset file's body): fields left out keep
    the default's values.  Errors name ``src`` and ``prefix + field``."""
    if not isinstance(table, Mapping):
        raise ConfigError(src, prefix.rstrip(".") or "kernel", "a table written [kernel]", table)
    for key in table:
        if key not in _FILE_KEYS and key != "name":
            raise ConfigError(src, f"{prefix}{key}", "a known kernel key (" +
                              ", ".join(sorted(_FILE_KEYS)) + ")")
    values = {k: table.get(k, getattr(DEFAULT, k)) for k in FIELDS}
    _check(values, src, prefix)
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(src, f"{prefix}description", "a string", description)
    tname = table.get("name", name)
    if not isinstance(tname, str) or not tname:
        raise ConfigError(src, f"{prefix}name", "a non-empty string", tname)
    return KernelConfig(name=tname, description=description.strip(), **values)


def available_kernel_configs(configs_dir: str | Path | None = None) -> list[str]:
    """Names of the preset files in ``configs_dir`` (default: configs/kernels)."""
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_kernel_config(spec: str | Path, configs_dir: str | Path | None = None) -> KernelConfig:
    """A preset: a name in ``configs_dir`` (default configs/kernels), with or without
    ".toml", or a path to a .toml file with the fields at top level.  Bad input raises
    `ConfigError`."""
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ConfigError("kernel config", "config", "a kernel config name or file", spec)
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    path = find_config(spec, d, "config", available_kernel_configs, plural="kernel configs")
    data = read_toml(path, "kernel config")
    if "name" in data:
        raise ConfigError(str(path), "name", "no name key (the file's name is the preset's)")
    return kernel_config_from_table(data, str(path), prefix="", name=path.stem)
