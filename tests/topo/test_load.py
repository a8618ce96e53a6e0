"""load_topology: resolving specs, and the layering rule that topo never imports emulator (docs/design.md §2)."""

import subprocess
import sys
from pathlib import Path

import pytest

from topo import CONFIGS_DIR, ConfigError, available_topologies, load_topology

from .conftest import CONFIGS, REPO


def test_configs_dir_is_the_repos():
    assert CONFIGS_DIR == CONFIGS


def test_name_path_and_suffix_resolve_to_the_same_topology():
    a = load_topology("xeon-2s12c")
    b = load_topology("xeon-2s12c.toml")
    c = load_topology(str(CONFIGS / "xeon-2s12c.toml"))
    d = load_topology(CONFIGS / "xeon-2s12c.toml")
    assert a == b == c == d


def test_other_configs_dir(tmp_path):
    (tmp_path / "mine.toml").write_text("[[node]]\ncpus = '0'\nmemory = '4MiB'\n")
    assert load_topology("mine", configs_dir=tmp_path).name == "mine"
    assert available_topologies(tmp_path) == ["mine"]
    with pytest.raises(ConfigError, match="one of: mine"):
        load_topology("theirs", configs_dir=tmp_path)


@pytest.mark.parametrize("kwargs", [{}, {"spec": "laptop-1n8c", "synthetic": "pu:2"},
                                    {"synthetic": "pu:2", "numactl": "x"}])
def test_exactly_one_source(kwargs):
    with pytest.raises(ConfigError, match="exactly one of"):
        load_topology(**kwargs)


def test_topo_does_not_import_emulator():
    code = "import sys, topo; topo.load_topology('xeon-2s12c'); " \
           "print(sorted(m for m in sys.modules if m == 'emulator' or m.startswith('emulator.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    for path in Path(REPO / "topo").rglob("*.py"):
        text = path.read_text()
        assert "import emulator" not in text and "from emulator" not in text, path
