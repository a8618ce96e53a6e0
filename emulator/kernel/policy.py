"""Policies: the dead-cache series' design decisions as switches (docs/series.md §3, §5).

What it models: which parts of "memcg/slab: reintroduce dead cache self-destruction"
(v2, June 2014, 8 patches) the emulated kernel has, one switch per decision:

- ``dead_caches``: ``"leak"`` (before the series: offline destroys a child cache only if
  it is already empty, else leaks it) or ``"self-destruct"`` (patches 1-3: a slab
  refcount, the dead flag, destruction work when the last slab goes);
- ``shrink_tolerates_enomem`` (patch 4): SLUB's shrink drops empty slabs even when it
  cannot allocate its sorting array;
- ``nonpreemptible_free`` (patch 5): SLUB's slab_free runs with preemption disabled;
- ``sync_before_destroy`` (patch 6): a grace period (call_rcu_sched/synchronize_sched)
  before a dead cache is destroyed;
- ``dead_discard_empty`` (patches 7-8): dead caches drop empty slabs at once;
- ``track_full_slabs``: SLUB lists the full slabs of memcg caches per node, as
  re-parenting would need (the alternative rejected in review); those caches then keep
  no cpu partial list (their lists are handled as kmem_cache_debug() caches'), root
  caches keep theirs;
- ``memcg_no_cpu_partial``: memcg caches keep no cpu partial list, and full slabs stay
  unlisted: the half of track_full_slabs' cost that losing cpu partial lists is, alone;
- ``discard_rule``: when SLUB discards a slab that became empty instead of keeping it on
  ``n->partial``: ``"3.16"`` while ``n->nr_partial > s->min_partial`` (Linux 3.16; v2's
  patch 7 keeps this test and only sets ``min_partial = 0``), ``"4.0"`` while
  ``n->nr_partial >= s->min_partial`` (Linux 4.0, where ``min_partial = 0`` keeps none:
  Joonsoo Kim's "slub: fix off by one in number of slab tests", posted in June 2014
  after v2 and acked by Davydov for the series' sake; commit d6e0b7fa1186 "slub: make
  dead caches discard free slabs immediately" relies on it);
- ``dead_cpu_partial``: how a dead SLUB cache stops keeping frozen slabs on per-CPU
  partial lists: ``"keep"`` (it does not: before patch 7), ``"put_cpu_partial"`` (v2's
  patch 7: ``put_cpu_partial`` unfreezes the list at once after its push when
  ``memcg_cache_dead(s)``), ``"has_cpu_partial"`` (the design the frozen-slab leak race
  was found in, re-parenting RFC review: ``kmem_cache_has_cpu_partial()`` is false for a
  dead cache and ``put_cpu_partial`` checks nothing) or ``"cpu_partial_zero"`` (Linux
  4.0's d6e0b7fa1186: ``s->cpu_partial = 0`` and ``put_cpu_partial`` unfreezes at once
  when ``!s->cpu_partial``).

Presets live in configs/policies/*.toml, one file each; a file may ``extends`` another
policy and override switches.

Invariants: a `Policy` is immutable and always valid (checked on construction):
``dead_caches`` is one of `DEAD_CACHES`, ``discard_rule`` one of `DISCARD_RULES`,
``dead_cpu_partial`` one of `DEAD_CPU_PARTIAL`, the other six switches are bools,
``sync_before_destroy`` and ``dead_discard_empty`` need ``dead_caches =
"self-destruct"`` (patches 6-8 build on the refcount and dead flag of patches 1-3), and
``dead_cpu_partial`` other than ``"keep"`` needs ``dead_discard_empty`` (it is part of
patch 7, or of what replaced it).  `Policy.switches` has exactly the nine keys of
`SWITCHES`.  A file that predates the last three switches gets ``discard_rule = "3.16"``,
``memcg_no_cpu_partial = false`` and ``dead_cpu_partial = "put_cpu_partial"`` with
``dead_discard_empty``, else ``"keep"`` (what the model did for v2 presets before they were switches, less the
4.0 rule).  Every bad policy file raises `topo.ConfigError` naming the file and the
field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topo.configfile import find_config
from topo.errors import ConfigError
from topo.tomlfile import read_toml

__all__ = ["Policy", "load_policy", "available_policies", "SWITCHES", "DEAD_CACHES",
           "DISCARD_RULES", "DEAD_CPU_PARTIAL", "CONFIGS_DIR"]

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs" / "policies"

DEAD_CACHES = ("leak", "self-destruct")
# config[CONFIG_DISCARD_RULE] is the index in DISCARD_RULES, config[CONFIG_DEAD_CPU_PARTIAL]
# the index in DEAD_CPU_PARTIAL (slub.py's DISCARD_RULE_* and DEAD_CPU_PARTIAL_* constants)
DISCARD_RULES = ("3.16", "4.0")
DEAD_CPU_PARTIAL = ("keep", "put_cpu_partial", "has_cpu_partial", "cpu_partial_zero")
SWITCHES = ("dead_caches", "shrink_tolerates_enomem", "nonpreemptible_free",
            "sync_before_destroy", "dead_discard_empty", "track_full_slabs",
            "discard_rule", "dead_cpu_partial", "memcg_no_cpu_partial")
_BOOL_SWITCHES = SWITCHES[1:6] + ("memcg_no_cpu_partial",)
_DEFAULTED = ("discard_rule", "dead_cpu_partial", "memcg_no_cpu_partial")  # may be absent
_FILE_KEYS = {"description", "extends", *SWITCHES}
# Switches that only exist on top of patches 1-3 (and why), checked in _check.
_NEEDS_SELF_DESTRUCT = {
    "sync_before_destroy": "patch 6 delays the destruction that patches 1-3 schedule",
    "dead_discard_empty": "patches 7-8 act on caches marked dead by patch 3",
}


def _check(values: dict[str, Any], source: str) -> None:
    dead = values["dead_caches"]
    if not isinstance(dead, str) or dead not in DEAD_CACHES:
        raise ConfigError(source, "dead_caches", "'leak' or 'self-destruct'", dead)
    for key in _BOOL_SWITCHES:
        if not isinstance(values[key], bool):
            raise ConfigError(source, key, "true or false", values[key])
    rule = values["discard_rule"]
    if not isinstance(rule, str) or rule not in DISCARD_RULES:
        raise ConfigError(source, "discard_rule", "'3.16' or '4.0'", rule)
    dcp = values["dead_cpu_partial"]
    if not isinstance(dcp, str) or dcp not in DEAD_CPU_PARTIAL:
        raise ConfigError(source, "dead_cpu_partial",
                          "one of " + ", ".join(f"'{v}'" for v in DEAD_CPU_PARTIAL), dcp)
    if dcp != "keep" and not values["dead_discard_empty"]:
        raise ConfigError(source, "dead_cpu_partial",
                          "'keep' with dead_discard_empty = false (it is part of patch 7)", dcp)
    if dead == "leak":
        for key, why in _NEEDS_SELF_DESTRUCT.items():
            if values[key]:
                raise ConfigError(source, key, f"false with dead_caches = 'leak' ({why})",
                                  values[key])


@dataclass(frozen=True)
class Policy:
    """One combination of the series' switches; see the module docstring."""

    name: str
    description: str
    dead_caches: str
    shrink_tolerates_enomem: bool
    nonpreemptible_free: bool
    sync_before_destroy: bool
    dead_discard_empty: bool
    track_full_slabs: bool
    discard_rule: str = "3.16"
    dead_cpu_partial: str = "keep"
    memcg_no_cpu_partial: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("policy", "name", "a non-empty string", self.name)
        if not isinstance(self.description, str):
            raise ConfigError(self.name, "description", "a string", self.description)
        _check({k: getattr(self, k) for k in SWITCHES}, self.name)

    def switches(self) -> dict[str, Any]:
        """The nine switches, as summary.json's ``policy.switches``."""
        return {k: getattr(self, k) for k in SWITCHES}

    def to_dict(self) -> dict[str, Any]:
        """``{name, description, switches}``: summary.json's ``policy`` (plus description)."""
        return {"name": self.name, "description": self.description,
                "switches": self.switches()}


def available_policies(configs_dir: str | Path | None = None) -> list[str]:
    """Names of the policy files in ``configs_dir`` (default: configs/policies)."""
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def _resolve(spec: str | Path, configs_dir: Path, base_dir: Path | None) -> Path:
    """A policy spec → its file: a path (relative: against ``base_dir`` first), or a name."""
    return find_config(spec, configs_dir, "policy", available_policies, base_dir,
                       plural="policies")


def _load(path: Path, configs_dir: Path, seen: tuple[Path, ...]) -> Policy:
    source = str(path)
    data = read_toml(path, "policy")
    for key in data:
        if key not in _FILE_KEYS:
            raise ConfigError(source, key, "a known key (" + ", ".join(sorted(_FILE_KEYS)) + ")")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(source, "description", "a string", description)

    overrides = {k: data[k] for k in SWITCHES if k in data}
    if "extends" in data:
        base_spec = data["extends"]
        if not isinstance(base_spec, str) or not base_spec:
            raise ConfigError(source, "extends", "a policy name or file", base_spec)
        try:
            base_path = _resolve(base_spec, configs_dir, path.parent)
        except ConfigError as e:
            raise ConfigError(source, "extends", e.expected, e.got) from None
        if base_path.resolve() in seen:
            raise ConfigError(source, "extends", "no cycle of extends",
                              " -> ".join(p.stem for p in seen) + f" -> {base_path.stem}")
        base = _load(base_path, configs_dir, seen + (base_path.resolve(),))
        values = base.switches()
        if description is None:
            description = f"{base.name} with " + (", ".join(
                f"{k} = {_fmt(v)}" for k, v in overrides.items()) or "no change")
    else:
        missing = [k for k in SWITCHES if k not in data and k not in _DEFAULTED]
        if missing:
            raise ConfigError(source, missing[0], "a value (the key is missing; every switch "
                              "is required unless the file says extends = \"...\")")
        values = {"discard_rule": "3.16", "memcg_no_cpu_partial": False,
                  "dead_cpu_partial": "put_cpu_partial" if data.get("dead_discard_empty") is True
                  else "keep"}
    values.update(overrides)
    _check(values, source)
    return Policy(name=path.stem, description=description or "", **values)


def _fmt(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else f'"{v}"'


def load_policy(spec: str | Path, configs_dir: str | Path | None = None) -> Policy:
    """Load a policy: a name in ``configs_dir`` (default configs/policies), with or
    without ".toml", or a path to a .toml file.  ``SPEC@RULE`` (RULE one of
    `DISCARD_RULES`) is SPEC with its ``discard_rule`` replaced, named ``NAME@RULE``:
    ``v2-full@4.0`` is the whole series under Linux 4.0's discard test, so that one
    ``slabemu compare`` can put the posted rule and the merged one side by side.  Bad
    input raises `ConfigError`."""
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ConfigError("policy", "policy", "a policy name or file", spec)
    if isinstance(spec, str) and "@" in spec and not Path(spec).is_file():
        base, rule = spec.rsplit("@", 1)
        if rule not in DISCARD_RULES:
            raise ConfigError(spec, "discard_rule", "NAME@3.16 or NAME@4.0 after '@'", rule)
        p = load_policy(base, configs_dir)
        values = {**p.switches(), "discard_rule": rule}
        _check(values, spec)
        return Policy(name=f"{p.name}@{rule}",
                      description=f"{p.description} (discard rule {rule})", **values)
    d = Path(configs_dir) if configs_dir is not None else CONFIGS_DIR
    path = _resolve(spec, d, None)
    return _load(path, d, (path.resolve(),))
