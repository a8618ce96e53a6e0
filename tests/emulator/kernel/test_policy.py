"""Policies: every preset has the switches the series says it has; every bad file is one
clear ConfigError."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from emulator.kernel.policy import (
    CONFIGS_DIR,
    SWITCHES,
    Policy,
    available_policies,
    load_policy,
)
from topo import ConfigError

from ...conftest import assert_one_line_config_error

# Written from the series (docs/series.md §3 and §5, and the v2 cover letter), not from
# the preset files:
# (dead_caches, shrink_tolerates_enomem [4], nonpreemptible_free [5],
#  sync_before_destroy [6], dead_discard_empty [7-8], track_full_slabs [re-parenting],
#  discard_rule [3.16's ">" kept by v2; 4.0's ">="], dead_cpu_partial [patch 7's
#  put_cpu_partial check; the RFC's kmem_cache_has_cpu_partial; 4.0's cpu_partial = 0],
#  memcg_no_cpu_partial [half of re-parenting's cost])
SD = "self-destruct"
P7 = "put_cpu_partial"
EXPECTED = {
    "pre-series": ("leak", False, False, False, False, False, "3.16", "keep", False),
    "v2-1-3": (SD, False, False, False, False, False, "3.16", "keep", False),
    "v2-no-5-6": (SD, True, False, False, True, False, "3.16", P7, False),   # patches 1-4, 7-8
    "v2-no-5": (SD, True, False, True, True, False, "3.16", P7, False),      # patches 1-4, 6-8
    "v2-full": (SD, True, True, True, True, False, "3.16", P7, False),       # patches 1-8
    "reparent": (SD, True, True, True, True, True, "3.16", P7, False),       # v2-full + full-slab lists
    "v2-no-4": (SD, False, True, True, True, False, "3.16", P7, False),      # patches 1-3, 5-8 (shrink-enomem)
    # v2-no-5-6 with the RFC's way of keeping dead caches off cpu partial lists
    "v2-rfc-cpu-partial": (SD, True, False, False, True, False, "3.16", "has_cpu_partial", False),
    # Linux 4.0 (d6e0b7fa1186): no patch 5; the memcg's css_free after RCU as patch 6
    "linux-4.0": (SD, True, False, True, True, False, "4.0", "cpu_partial_zero", False),
    # v2-full with memcg caches keeping no cpu partial list (reparent's cost, half of it)
    "no-cpu-partial": (SD, True, True, True, True, False, "3.16", P7, True),
}

FULL = """\
dead_caches = "self-destruct"
shrink_tolerates_enomem = true
nonpreemptible_free = true
sync_before_destroy = true
dead_discard_empty = true
track_full_slabs = false
"""


def test_the_presets_are_shipped():
    assert available_policies() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_switches(name):
    p = load_policy(name)
    assert p.name == name
    assert tuple(p.switches().values()) == EXPECTED[name]
    assert list(p.switches()) == list(SWITCHES) == [
        "dead_caches", "shrink_tolerates_enomem", "nonpreemptible_free",
        "sync_before_destroy", "dead_discard_empty", "track_full_slabs",
        "discard_rule", "dead_cpu_partial", "memcg_no_cpu_partial"]
    assert p.description
    text = (CONFIGS_DIR / f"{name}.toml").read_text()
    assert text.startswith("#"), "every preset starts with a header comment"
    assert "patch" in text.lower() or "series" in text.lower()


def test_spec_forms(tmp_path, monkeypatch):
    by_name = load_policy("v2-full")
    assert load_policy("v2-full.toml") == by_name
    assert load_policy(str(CONFIGS_DIR / "v2-full.toml")) == by_name
    assert load_policy(CONFIGS_DIR / "v2-full.toml") == by_name
    (tmp_path / "mine.toml").write_text(FULL)
    monkeypatch.chdir(tmp_path)
    assert load_policy("mine.toml").switches() == by_name.switches()
    assert load_policy("mine.toml").name == "mine"
    assert available_policies(tmp_path) == ["mine"]


def test_description_is_optional(tmp_path):
    p = tmp_path / "nodesc.toml"
    p.write_text(FULL)
    pol = load_policy(str(p))
    assert pol.description == "" and pol.name == "nodesc"


def test_extends_overrides_switches(tmp_path):
    p = tmp_path / "v2-no-6.toml"
    p.write_text('extends = "v2-full"\nsync_before_destroy = false\n')
    pol = load_policy(str(p))
    assert pol.name == "v2-no-6"
    assert pol.switches() == {**load_policy("v2-full").switches(), "sync_before_destroy": False}
    assert pol.description == "v2-full with sync_before_destroy = false"


def test_extends_chain_and_relative_path(tmp_path):
    (tmp_path / "base.toml").write_text('description = "b"\nextends = "pre-series"\n'
                                        'track_full_slabs = true\n')
    (tmp_path / "top.toml").write_text('description = "t"\nextends = "base.toml"\n')
    pol = load_policy(str(tmp_path / "top.toml"))
    assert pol.description == "t"
    assert pol.switches() == {**load_policy("pre-series").switches(), "track_full_slabs": True}


def test_files_without_the_two_newer_switches_get_v2s(tmp_path):
    # a policy file written before discard_rule and dead_cpu_partial existed
    (tmp_path / "a.toml").write_text(FULL)
    p = load_policy(str(tmp_path / "a.toml"))
    assert (p.discard_rule, p.dead_cpu_partial) == ("3.16", "put_cpu_partial")
    (tmp_path / "b.toml").write_text(FULL.replace("dead_discard_empty = true",
                                                  "dead_discard_empty = false"))
    p = load_policy(str(tmp_path / "b.toml"))
    assert (p.discard_rule, p.dead_cpu_partial) == ("3.16", "keep")


def test_linux_4_0_differs_from_v2_no_5_in_the_two_slub_switches():
    a, b = load_policy("v2-no-5").switches(), load_policy("linux-4.0").switches()
    assert {k for k in a if a[k] != b[k]} == {"discard_rule", "dead_cpu_partial"}


def test_reparent_differs_from_v2_full_in_one_switch():
    a, b = load_policy("v2-full").switches(), load_policy("reparent").switches()
    assert {k for k in a if a[k] != b[k]} == {"track_full_slabs"}


def test_to_dict_is_json():
    p = load_policy("v2-no-5")
    d = p.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["name"] == "v2-no-5" and d["switches"] == p.switches()
    assert Policy(name=d["name"], description=d["description"], **d["switches"]) == p


def test_policy_is_frozen_and_checked():
    p = load_policy("v2-full")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.dead_caches = "leak"  # type: ignore[misc]
    with pytest.raises(ConfigError, match="dead_caches: expected 'leak' or 'self-destruct'"):
        dataclasses.replace(p, dead_caches="maybe")
    with pytest.raises(ConfigError, match="nonpreemptible_free: expected true or false"):
        dataclasses.replace(p, nonpreemptible_free=1)


# (id, file text, field, fragment of what was expected)
BAD = [
    ("toml-syntax", "dead_caches = \n", "TOML", "valid TOML syntax"),
    ("unknown-key", FULL + "patch9 = true\n", "patch9", "a known key"),
    ("missing-switch", FULL.replace("track_full_slabs = false\n", ""), "track_full_slabs",
     "the key is missing"),
    ("dead-caches-value", FULL.replace('"self-destruct"', '"reparent"'), "dead_caches",
     "'leak' or 'self-destruct'"),
    ("dead-caches-type", FULL.replace('"self-destruct"', "1"), "dead_caches",
     "'leak' or 'self-destruct'"),
    ("bool-as-string", FULL.replace("nonpreemptible_free = true", 'nonpreemptible_free = "true"'),
     "nonpreemptible_free", "true or false"),
    ("bool-as-int", FULL.replace("dead_discard_empty = true", "dead_discard_empty = 1"),
     "dead_discard_empty", "true or false"),
    ("description-type", 'description = 3\n' + FULL, "description", "a string"),
    ("leak-with-sync", 'extends = "pre-series"\nsync_before_destroy = true\n',
     "sync_before_destroy", "false with dead_caches = 'leak'"),
    ("leak-with-discard", 'extends = "pre-series"\ndead_discard_empty = true\n',
     "dead_discard_empty", "false with dead_caches = 'leak'"),
    ("extends-unknown", 'extends = "v9"\n', "extends", "one of: linux-4.0, no-cpu-partial, pre-series"),
    ("extends-type", 'extends = 2\n', "extends", "a policy name or file"),
    ("extends-cycle", 'extends = "bad.toml"\n', "extends", "no cycle"),
    ("discard-rule-value", FULL + 'discard_rule = "3.18"\n', "discard_rule", "'3.16' or '4.0'"),
    ("discard-rule-type", FULL + "discard_rule = 4.0\n", "discard_rule", "'3.16' or '4.0'"),
    ("dead-cpu-partial-value", FULL + 'dead_cpu_partial = "flush_all"\n', "dead_cpu_partial",
     "one of 'keep', 'put_cpu_partial', 'has_cpu_partial', 'cpu_partial_zero'"),
    ("dead-cpu-partial-without-7", 'extends = "v2-1-3"\ndead_cpu_partial = "put_cpu_partial"\n',
     "dead_cpu_partial", "'keep' with dead_discard_empty = false"),
]


@pytest.mark.parametrize("case_id, text, field, fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_policy_file(tmp_path, case_id, text, field, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_policy(str(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}: expected "), msg
    assert fragment in msg
    assert (e.value.source, e.value.field) == (str(path), field)


@pytest.mark.parametrize("spec, field, fragment", [
    ("no-such-policy", "policy", "one of: linux-4.0, no-cpu-partial, pre-series, reparent, v2-1-3"),
    ("no-such-policy.toml", "policy", "one of:"),
    ("./missing/p.toml", "file", "an existing policy file"),
])
def test_bad_spec(spec, field, fragment):
    assert_one_line_config_error(load_policy, spec, field, fragment)


def test_not_utf8(tmp_path):
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"TOML: expected "):
        load_policy(str(p))


def test_a_directory_is_not_a_policy(tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(ConfigError) as e:
        load_policy(str(d))
    assert "\n" not in str(e.value) and str(d) in str(e.value)


def test_configs_dir_argument(tmp_path):
    (tmp_path / "only.toml").write_text(FULL)
    assert load_policy("only", configs_dir=tmp_path).name == "only"
    with pytest.raises(ConfigError, match="one of: only"):
        load_policy("v2-full", configs_dir=tmp_path)
    assert isinstance(CONFIGS_DIR, Path)
