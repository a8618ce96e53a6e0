import pytest

from topo.errors import ConfigError
from topo.sizes import GiB, KiB, MiB, format_size, parse_size


@pytest.mark.parametrize("text, expected", [
    ("4096", 4096), (4096, 4096), ("0", 0), ("4096B", 4096),
    ("64K", 64 * KiB), ("64k", 64 * KiB), ("64KiB", 64 * KiB), ("64kb", 64 * KiB),
    ("512M", 512 * MiB), ("512MiB", 512 * MiB), ("512mb", 512 * MiB), ("256 MiB", 256 * MiB),
    ("2G", 2 * GiB), ("1GiB", GiB), ("1gib", GiB), ("1.5GiB", 3 * GiB // 2), ("1T", 1 << 40),
])
def test_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("value, fragment", [
    ("12XB", "a size such as"), ("", "a size such as"), ("MiB", "a size such as"),
    ("-1", "a size such as"), (-5, "non-negative"), (True, "a size such as"),
    (1.5, "a size such as"), ("0.3K", "whole number of bytes"),
])
def test_parse_errors(value, fragment):
    with pytest.raises(ConfigError) as e:
        parse_size(value, source="x.toml", field="node[0].memory")
    assert fragment in str(e.value)
    assert str(e.value).startswith("x.toml: node[0].memory: expected")


def test_format():
    assert format_size(256 * MiB) == "256 MiB"
    assert format_size(GiB) == "1 GiB"
    assert format_size(1536 * MiB) == "1536 MiB"
    assert format_size(4 * KiB) == "4 KiB"
    assert format_size(100) == "100 B"
    assert format_size(0) == "0 B"
