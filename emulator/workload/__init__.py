"""Workloads: scenario files (`scenario`, pure Python) and the jitted per-CPU op generator
(`generator`, imported on its own so that reading a scenario never loads numba)."""

from .scenario import CacheSpec, Faults, Scenario, Workload, available_scenarios, load_scenario

__all__ = ["CacheSpec", "Faults", "Scenario", "Workload", "available_scenarios", "load_scenario"]
