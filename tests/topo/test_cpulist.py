from hypothesis import given, strategies as st
import pytest

from topo.cpulist import format_cpulist, parse_cpulist
from topo.errors import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("", ()),
    ("  \n", ()),
    ("0", (0,)),
    ("0-3", (0, 1, 2, 3)),
    ("0-11,24-35\n", tuple(range(12)) + tuple(range(24, 36))),
    ("5,1,3", (1, 3, 5)),
    ("0-15:2/4", (0, 1, 4, 5, 8, 9, 12, 13)),   # kernel-parameters.rst group syntax
    ("100-130:2/25", (100, 101, 125, 126)),
])
def test_parse(text, expected):
    assert parse_cpulist(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("3-1", "a <= b"),
    ("a", "Linux cpulist"),
    ("1,,2", "Linux cpulist"),
    ("-1", "Linux cpulist"),
    ("0-3,2", "each CPU listed once"),
    ("0-7:0/4", "0 < used <= group"),
    ("0-7:5/4", "0 < used <= group"),
    ("0-99999999", "CPU numbers up to"),
])
def test_parse_errors(text, fragment):
    with pytest.raises(ConfigError) as e:
        parse_cpulist(text, source="f.toml", field="node[0].cpus")
    assert fragment in str(e.value)
    assert str(e.value).startswith("f.toml: node[0].cpus: expected ")


def test_not_a_string():
    with pytest.raises(ConfigError):
        parse_cpulist(7)  # type: ignore[arg-type]


def test_format():
    assert format_cpulist([]) == ""
    assert format_cpulist([3]) == "3"
    assert format_cpulist(list(range(12)) + list(range(24, 36))) == "0-11,24-35"
    assert format_cpulist([5, 1, 2, 3, 9]) == "1-3,5,9"


@given(st.sets(st.integers(min_value=0, max_value=600), max_size=80))
def test_roundtrip(cpus):
    text = format_cpulist(cpus)
    assert parse_cpulist(text) == tuple(sorted(cpus))
    assert format_cpulist(parse_cpulist(text)) == text
