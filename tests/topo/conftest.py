"""Shared helpers for the topology tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CONFIGS = REPO / "configs" / "topologies"


@pytest.fixture
def write_toml(tmp_path):
    """Write TOML text to a file and return its path."""
    def write(text: str, name: str = "t.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write
