"""Placement: which host CPU plays each emulated CPU.

Models the pinning of emulated CPUs (worker processes) onto the host CPUs this process
may run on (``os.sched_getaffinity(0)``):

- ``compact``: emulated CPU i (in ``topology.cpus`` order) → the i-th allowed host CPU
  in ascending order, wrapping around when there are more emulated than host CPUs;
- ``scatter``: the allowed host CPUs are ordered so that consecutive emulated CPUs land
  on different packages first, then different cores, then different threads: by
  (thread rank in its core, core rank in its package, package rank), using the host
  Topology's package/core/thread data; then dealt out like ``compact``;
- an explicit map: "0:3,1:5,..." or ``{emulated: host}`` naming every emulated CPU
  exactly once, each onto an allowed host CPU.

Invariants: ``mapping[i]`` is the host CPU of ``topology.cpus[i]``; every host CPU in
the mapping is allowed; a bad policy name, an incomplete map or a host CPU outside the
allowed set is a ConfigError.  More emulated CPUs than host CPUs is legal
(oversubscription): ``oversubscription`` is emulated CPUs per distinct host CPU used
(32 on 2 → 16.0) and ``max_per_host_cpu`` the largest number of emulated CPUs pinned to
one host CPU; the runner must then make spinning workers yield.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .model import Topology

__all__ = ["Placement", "place", "POLICIES"]

POLICIES = ("compact", "scatter")
_MAP_ITEM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Placement:
    """Emulated CPU → host CPU, for one topology on this host."""

    policy: str                        # "compact", "scatter" or "map"
    cpus: tuple[int, ...]              # emulated CPU ids, in topology.cpus order
    mapping: tuple[int, ...]           # host CPU for each of ``cpus``
    host_cpus: tuple[int, ...]         # the allowed host CPUs, ascending

    @property
    def host_cpus_used(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.mapping)))

    @property
    def max_per_host_cpu(self) -> int:
        counts: dict[int, int] = {}
        for h in self.mapping:
            counts[h] = counts.get(h, 0) + 1
        return max(counts.values(), default=0)

    @property
    def oversubscription(self) -> float:
        """Emulated CPUs per distinct host CPU used (1.0 when every worker has its own CPU)."""
        used = len(set(self.mapping))
        return len(self.mapping) / used if used else 0.0

    @property
    def oversubscribed(self) -> bool:
        return self.max_per_host_cpu > 1

    def host_cpu_of(self, cpu_id: int) -> int:
        return self.mapping[self.cpus.index(cpu_id)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "host_cpus": list(self.host_cpus),
            "host_cpus_used": list(self.host_cpus_used),
            "map": [{"cpu": c, "host_cpu": h} for c, h in zip(self.cpus, self.mapping)],
            "oversubscription": self.oversubscription,
            "max_per_host_cpu": self.max_per_host_cpu,
        }


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return set(range(os.cpu_count() or 1))


def _allowed(allowed: Iterable[int] | None, host: Topology | None,
             use_affinity: bool) -> tuple[int, ...]:
    """The host CPUs to place on: ``allowed``, else our affinity (a discovered host) or
    every CPU of the given host topology."""
    if allowed is None:
        if use_affinity:
            cpus = _affinity()
            if host is not None:
                cpus = (cpus & set(host.cpu_ids)) or cpus
        else:
            cpus = set(host.cpu_ids)
    else:
        cpus = set()
        for c in allowed:
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise ConfigError("placement", "allowed host CPUs", "non-negative CPU ids", c)
            cpus.add(c)
        if host is not None:
            unknown = sorted(cpus - set(host.cpu_ids))
            if unknown:
                raise ConfigError("placement", "allowed host CPUs",
                                  f"CPUs of the host topology {host.name!r}", unknown[:8])
    if not cpus:
        raise ConfigError("placement", "allowed host CPUs", "at least one host CPU", [])
    return tuple(sorted(cpus))


def _scatter_order(host: Topology, allowed: tuple[int, ...]) -> list[int]:
    allowed_set = set(allowed)
    cpus = [c for c in host.cpus if c.id in allowed_set]
    packages = sorted({c.package for c in cpus})
    core_rank: dict[int, int] = {}
    for pkg in packages:
        cores = sorted({c.core for c in cpus if c.package == pkg},
                       key=lambda core: min(c.id for c in cpus if c.core == core))
        for rank, core in enumerate(cores):
            core_rank[core] = rank
    thread_rank: dict[int, int] = {}
    for core in core_rank:
        for rank, c in enumerate(sorted((c for c in cpus if c.core == core), key=lambda c: c.id)):
            thread_rank[c.id] = rank
    pkg_rank = {pkg: r for r, pkg in enumerate(packages)}
    return [c.id for c in sorted(cpus, key=lambda c: (thread_rank[c.id], core_rank[c.core],
                                                       pkg_rank[c.package], c.id))]


def _parse_map(spec: str | Mapping[int, int], topology: Topology) -> dict[int, int]:
    field = "placement map"
    if isinstance(spec, Mapping):
        items = list(spec.items())
        for k, v in items:
            for x in (k, v):
                if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                    raise ConfigError("placement", field, "emulated:host pairs of CPU ids", f"{k}:{v}")
        result = dict(items)
    else:
        result = {}
        for part in spec.split(","):
            m = _MAP_ITEM.match(part)
            if not m:
                raise ConfigError("placement", field, "EMU:HOST pairs separated by commas, e.g. "
                                  "'0:3,1:5'", part.strip())
            emu, hst = int(m.group(1)), int(m.group(2))
            if emu in result:
                raise ConfigError("placement", field, "each emulated CPU once", f"{emu}:{hst}")
            result[emu] = hst
    ids = set(topology.cpu_ids)
    extra = sorted(set(result) - ids)
    if extra:
        raise ConfigError("placement", field, f"emulated CPUs of {topology.name!r} "
                          f"({len(ids)} CPUs)", f"CPU {extra[0]}")
    missing = sorted(ids - set(result))
    if missing:
        raise ConfigError("placement", field, "a host CPU for every emulated CPU",
                          f"none for CPU {missing[0]}" + (f" and {len(missing) - 1} more"
                                                          if len(missing) > 1 else ""))
    return result


def place(topology: Topology, policy: str | Mapping[int, int] = "compact", *,
          host: Topology | None = None, allowed: Iterable[int] | None = None) -> Placement:
    """Map every emulated CPU of ``topology`` onto an allowed host CPU.

    ``policy``: "compact", "scatter", a map string "0:3,1:5,..." or a dict.
    ``host``: the host Topology (scatter needs packages/cores; default: discovered from
    this machine).  ``allowed``: host CPU ids to use; default: this process's affinity
    (``os.sched_getaffinity(0)``) when ``host`` is not given, else every CPU of ``host``
    (tests pass a fake host; pass ``allowed`` to restrict it).
    """
    if isinstance(policy, str) and ":" not in policy:
        name = policy.strip().lower()
        if name not in POLICIES:
            raise ConfigError("placement", "policy", "compact, scatter or a map like '0:3,1:5'",
                              policy)
        use_affinity = host is None
        if name == "scatter" and host is None:
            from .host import discover_host
            host = discover_host()
        host_cpus = _allowed(allowed, host, use_affinity)
        if name == "compact":
            order = list(host_cpus)
        else:
            order = _scatter_order(host, host_cpus)
        mapping = tuple(order[i % len(order)] for i in range(topology.nr_cpus))
        return Placement(name, topology.cpu_ids, mapping, host_cpus)
    if not isinstance(policy, (str, Mapping)):
        raise ConfigError("placement", "policy", "compact, scatter or a map like '0:3,1:5'", policy)
    host_cpus = _allowed(allowed, host, host is None)
    chosen = _parse_map(policy, topology)
    allowed_set = set(host_cpus)
    for emu, hst in chosen.items():
        if hst not in allowed_set:
            from .cpulist import format_cpulist
            raise ConfigError("placement", f"placement map {emu}:{hst}",
                              f"an allowed host CPU ({format_cpulist(host_cpus)})", hst)
    mapping = tuple(chosen[c] for c in topology.cpu_ids)
    return Placement("map", topology.cpu_ids, mapping, host_cpus)
