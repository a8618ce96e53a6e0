"""The kernel build (emulator/kernel/kconfig.py): presets, the [kernel] table of a
scenario, --config, and one-line errors for every bad field."""

from __future__ import annotations

import pytest

from emulator.kernel.kconfig import (DEFAULT, PREEMPT_MODELS, KernelConfig,
                                     available_kernel_configs, load_kernel_config)
from emulator.workload.scenario import Scenario, load_scenario
from topo.errors import ConfigError

PRESETS = {
    # name: (preempt, slub_stats, slub_debug)
    "debian-jessie-3.16": ("voluntary", False, False),
    "sles12-3.12": ("none", False, False),
    "ubuntu-14.04-lowlatency": ("full", False, False),
    "fedora-20-debug": ("voluntary", False, True),
    "devel-preempt-stats": ("full", True, False),
    "devel-nopreempt-stats": ("none", True, False),
}


def test_presets():
    assert available_kernel_configs() == sorted(PRESETS)
    for name, (preempt, stats, debug) in PRESETS.items():
        k = load_kernel_config(name)
        assert (k.name, k.preempt, k.slub_stats, k.slub_debug) == (name, preempt, stats, debug)
        assert k.description


def test_default_is_todays_build():
    # every scenario without [kernel] runs the build the model had before the table
    assert DEFAULT == load_kernel_config("devel-preempt-stats")
    assert (DEFAULT.preempt, DEFAULT.slub_stats, DEFAULT.slub_debug) == ("full", True, False)
    for name in ("memcg-churn", "uaf-race", "shrink-enomem"):
        assert load_scenario(name).kernel == DEFAULT
    assert [PREEMPT_MODELS[KernelConfig(preempt=p).preempt_model] for p in PREEMPT_MODELS] == \
        list(PREEMPT_MODELS)


def test_kernel_table_and_override(tmp_path):
    base = load_scenario("uaf-race")
    text = (tmp_path / "sc.toml")
    src = open(base.path).read()
    text.write_text(src + '\n[kernel]\npreempt = "none"\nslub_stats = false\n')
    sc = load_scenario(str(text))
    assert (sc.kernel.preempt, sc.kernel.slub_stats, sc.kernel.slub_debug) == ("none", False, False)
    over = sc.with_overrides(kernel="fedora-20-debug")
    assert over.kernel == load_kernel_config("fedora-20-debug")
    assert Scenario.from_dict(over.to_dict()).kernel == over.kernel  # summary.json round trip


@pytest.mark.parametrize("table, field, expected", [
    ('preempt = "sometimes"', "kernel.preempt", 'expected "none", "voluntary" or "full"'),
    ("preempt = 1", "kernel.preempt", 'expected "none", "voluntary" or "full"'),
    ("slub_stats = 1", "kernel.slub_stats", "expected true or false"),
    ('slub_debug = "yes"', "kernel.slub_debug", "expected true or false"),
    ("numa = true", "kernel.numa", "expected a known kernel key"),
    ("description = 3", "kernel.description", "expected a string"),
])
def test_bad_kernel_table(tmp_path, table, field, expected):
    base = load_scenario("uaf-race")
    path = tmp_path / "bad.toml"
    path.write_text(open(base.path).read() + f"\n[kernel]\n{table}\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}: {field}: {expected}"), msg
    assert "\n" not in msg


def test_kernel_not_a_table(tmp_path):
    base = load_scenario("uaf-race")
    path = tmp_path / "bad.toml"
    lines = open(base.path).read().splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("["))
    lines.insert(at, 'kernel = "debian"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r": kernel: expected a table written \[kernel\]"):
        load_scenario(str(path))


def test_bad_preset_file(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('preempt = "full"\nslub_stats = "y"\n')
    with pytest.raises(ConfigError) as e:
        load_kernel_config(str(path))
    assert str(e.value).startswith(f"{path}: slub_stats: expected true or false")
    with pytest.raises(ConfigError) as e:
        load_scenario("uaf-race").with_overrides(kernel="no-such-build")
    assert str(e.value).startswith("command line: --config: expected a .toml file or one of: "
                                   "debian-jessie-3.16, ")
