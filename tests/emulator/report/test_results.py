"""Results directories: summary.json validation (every bad case) and the msgpack stream."""

from __future__ import annotations

import json

import msgpack
import pytest

from emulator.report.results import (SUMMARY_SPEC, load_summary, open_results, read_stream,
                                     validate_summary)
from tests.emulator.report.summary_example import EXAMPLE, example_summary, write_results
from topo import ConfigError


def test_example_loads(tmp_path):
    d = write_results(tmp_path / "run")
    assert load_summary(d) == EXAMPLE
    assert load_summary(str(d)) == EXAMPLE
    r = open_results(d)
    assert r.summary == EXAMPLE and r.path == d and r.text("slabinfo.txt") is None
    (d / "run.log").write_text("hello\n")
    assert r.text("run.log") == "hello\n" and r.file("run.log") == d / "run.log"


def test_spec_covers_the_example():
    assert set(SUMMARY_SPEC) == set(EXAMPLE)


def test_extra_keys_and_flat_tunables_are_welcome(tmp_path):
    s = example_summary(host={"cpus": 16})
    s["caches"][0].pop("tunables")
    s["caches"][0].update(limit=120, batchcount=60, sharedfactor=8, sharedavail=3, memcg=2)
    s["kasan"][0]["shadow"] = 0xFB
    assert load_summary(write_results(tmp_path, s))["host"] == {"cpus": 16}


def error_of(directory):
    with pytest.raises(ConfigError) as ei:
        load_summary(directory)
    e = ei.value
    assert "\n" not in str(e)
    return e


def test_missing_directory(tmp_path):
    e = error_of(tmp_path / "nope")
    assert e.source == str(tmp_path / "nope") and e.field == "results directory"
    assert e.got == "no such path"


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "summary.json"
    f.write_text(json.dumps(EXAMPLE))
    e = error_of(f)
    assert e.field == "results directory" and e.got == "not a directory"


def test_no_summary(tmp_path):
    e = error_of(tmp_path)
    assert e.source == str(tmp_path / "summary.json") and e.field == "summary.json"
    assert e.got == "no such file"


def test_summary_is_a_directory(tmp_path):
    (tmp_path / "summary.json").mkdir()
    assert error_of(tmp_path).got == "not a file"


@pytest.mark.parametrize("text, field, got", [
    ("{\"schema\": 1,\n  oops}", "line 2 column 3", "Expecting property name enclosed in "
                                                    "double quotes"),
    ("", "line 1 column 1", "Expecting value"),
    ("{\"schema\": 1", "line 1 column 13", "Expecting ',' delimiter"),
])
def test_invalid_json(tmp_path, text, field, got):
    e = error_of(write_results(tmp_path, text=text))
    assert (e.field, e.expected, e.got) == (field, "valid JSON", got)


def test_not_utf8(tmp_path):
    (tmp_path / "summary.json").write_bytes(b'{"scenario": "\xff"}')
    e = error_of(tmp_path)
    assert e.field == "byte 14" and e.expected == "UTF-8 JSON text"


@pytest.mark.parametrize("value, got", [([EXAMPLE], "an array"), ("text", "text"), (3, 3),
                                        (None, "null")])
def test_not_an_object(tmp_path, value, got):
    e = error_of(write_results(tmp_path, text=json.dumps(value)))
    assert (e.field, e.expected, e.got) == ("(top level)", "a JSON object", got)


@pytest.mark.parametrize("schema", [2, 0, "1", True, 1.5])
def test_other_schema(tmp_path, schema):
    e = error_of(write_results(tmp_path, example_summary(schema=schema)))
    assert e.field == "schema" and e.got == schema
    assert e.expected == "1 (this slabemu reads summary schema 1)"


def _without(path):
    s = example_summary()
    *parents, last = path
    target = s
    for p in parents:
        target = target[p]
    del target[last]
    return s


@pytest.mark.parametrize("path, field, expected", [
    (("schema",), "schema", "1 (the key is missing)"),
    (("scenario",), "scenario", "a string (the key is missing)"),
    (("error",), "error", "a string or null (the key is missing)"),
    (("ops",), "ops", "an object (the key is missing)"),
    (("caches",), "caches", "a list (the key is missing)"),
    (("ops", "per_cpu"), "ops.per_cpu", "a list (the key is missing)"),
    (("policy", "switches", "dead_caches"), "policy.switches.dead_caches",
     "a string (the key is missing)"),
    (("caches", 2, "num_objs"), "caches[2].num_objs", "an integer (the key is missing)"),
    (("locks", 1, "waittime_total_us"), "locks[1].waittime_total_us",
     "a number (the key is missing)"),
    (("kasan", 0, "freed_by", "phase"), "kasan[0].freed_by.phase",
     "a string (the key is missing)"),
    (("leaks", "pinned_memcgs"), "leaks.pinned_memcgs", "an integer (the key is missing)"),
    (("workers", "placement", 0, "host_cpu"), "workers.placement[0].host_cpu",
     "an integer (the key is missing)"),
])
def test_missing_key(tmp_path, path, field, expected):
    e = error_of(write_results(tmp_path, _without(path)))
    assert e.source == str(tmp_path / "summary.json")
    assert (e.field, e.expected, e.got) == (field, expected, None)
    assert str(e) == f"{tmp_path / 'summary.json'}: {field}: expected {expected}"


def _with(path, value):
    s = example_summary()
    *parents, last = path
    target = s
    for p in parents:
        target = target[p]
    target[last] = value
    return s


@pytest.mark.parametrize("path, value, field, expected, got", [
    (("seed",), "42", "seed", "an integer", "42"),
    (("seed",), True, "seed", "an integer", True),
    (("duration_s",), "2.5", "duration_s", "a number", "2.5"),
    (("allocator",), "slob", "allocator", 'one of "slub", "slab"', "slob"),
    (("mode",), "fast", "mode", 'one of "parallel", "deterministic", "virtual"', "fast"),
    (("exit",), 0, "exit", 'one of "ok", "failed", "crashed", "interrupted"', 0),
    (("error",), 1, "error", "a string", 1),
    (("topology",), [], "topology", "a JSON object", "an array"),
    (("topology", "cpus"), 4.0, "topology.cpus", "an integer", 4.0),
    (("policy", "switches", "track_full_slabs"), 0, "policy.switches.track_full_slabs",
     "true or false", 0),
    (("ops", "per_cpu"), {"0": 1}, "ops.per_cpu", "a list", "an object"),
    (("ops", "per_cpu", 3), None, "ops.per_cpu[3]", "an integer", "null"),
    (("caches", 1, "dead"), "no", "caches[1].dead", "true or false", "no"),
    (("caches", 1, "tunables"), [0, 0, 0], "caches[1].tunables", "a JSON object", "an array"),
    (("locks", 0, "cache"), 5, "locks[0].cache", "a string", 5),
    (("kasan", 1, "object"), "0x20000", "kasan[1].object", "an integer", "0x20000"),
    (("kasan", 1, "freed_by"), "cpu 3", "kasan[1].freed_by", "a JSON object", "cpu 3"),
    (("kasan_total",), None, "kasan_total", "an integer", "null"),
    (("failure",), "boom", "failure", "a JSON object", "boom"),
    (("failure",), {"cpu": 1, "task": 0, "op": "kfree", "phase": "x", "worker_pid": 9},
     "failure.reason", "a string (the key is missing)", None),
    (("scenario",), "x" * 100, "scenario", "a string", None),  # fine: long strings are ok
])
def test_wrong_type(tmp_path, path, value, field, expected, got):
    d = write_results(tmp_path, _with(path, value))
    if field == "scenario":
        assert load_summary(d)["scenario"] == "x" * 100
        return
    e = error_of(d)
    assert (e.field, e.expected, e.got) == (field, expected, got)


def test_long_bad_values_are_cut(tmp_path):
    e = error_of(write_results(tmp_path, example_summary(seed="9" * 100)))
    assert e.got == "9" * 37 + "..."


def test_nullable_values(tmp_path):
    s = example_summary(error="it broke", failure={"cpu": None, "task": None, "op": None,
                                                   "phase": None, "worker_pid": None,
                                                   "reason": "compile failed"})
    assert load_summary(write_results(tmp_path, s))["failure"]["reason"] == "compile failed"


def test_validate_summary_names_its_source():
    with pytest.raises(ConfigError, match=r"^x\.json: seed: expected an integer"):
        validate_summary(example_summary(seed=None), "x.json")


# -- the stream -------------------------------------------------------------------------------

RECORDS = [
    {"type": "start", "scenario": "memcg-churn", "cpus": 4, "workers": 4},
    {"type": "snapshot", "t": 0.5, "ops": [10, 20, 30, 40], "caches": [["kmalloc-64", 2, 128]]},
    {"type": "event", "t": 0.7, "event": "memcg_offline", "memcg": 3, "name": "m1" * 40},
    {"type": "snapshot", "t": 1.0, "ops": [20, 40, 60, 80], "per_node": {0: 5, 1: 7}},
    {"type": "end", "t": 1.2, "exit": "ok"},
]


def stream_bytes(records=RECORDS):
    packer = msgpack.Packer()
    return b"".join(packer.pack(r) for r in records)


def test_stream_complete(tmp_path):
    p = tmp_path / "stream.msgpack"
    p.write_bytes(stream_bytes())
    records, truncated = read_stream(p)
    assert records == RECORDS and truncated is False
    assert open_results(write_results(tmp_path)).stream() == (RECORDS, False)


def test_stream_empty(tmp_path):
    p = tmp_path / "stream.msgpack"
    p.write_bytes(b"")
    assert read_stream(p) == ([], False)


def test_stream_truncated_at_every_cut(tmp_path):
    data = stream_bytes()
    ends = []
    acc = 0
    for r in RECORDS:
        acc += len(msgpack.packb(r))
        ends.append(acc)
    p = tmp_path / "stream.msgpack"
    for cut in range(1, len(data) + 1):
        p.write_bytes(data[:cut])
        records, truncated = read_stream(p)
        complete = sum(1 for e in ends if e <= cut)
        assert records == RECORDS[:complete], cut
        assert truncated == (cut not in ends), cut


@pytest.mark.parametrize("data, field, got", [
    (b"this is not msgpack at all\n", "record 0 (byte 0)", "byte 0x74"),
    (b"\xc1\x00\x00", "record 0 (byte 0)", "byte 0xc1"),
    (msgpack.packb([1, 2, 3]), "record 0 (byte 0)", "byte 0x93"),
    (msgpack.packb({"t": 1}), "record 0 (byte 0)", "a map without 'type'"),
    (msgpack.packb({"type": 5}), "record 0 (byte 0)", "a map without 'type'"),
    (msgpack.packb(RECORDS[0]) + b"\x01garbage", None, "byte 0x01"),
    (b"\x81\xa4type\xc1", "record 0 (byte 0)", None),
    (b"\xdf\xff\xff\xff\xff", "record 0 (byte 0)", None),
])
def test_stream_garbage(tmp_path, data, field, got):
    p = tmp_path / "stream.msgpack"
    p.write_bytes(data)
    with pytest.raises(ConfigError) as ei:
        read_stream(p)
    e = ei.value
    assert e.source == str(p) and e.expected == "a msgpack map with a string 'type' key"
    if field is not None:
        assert e.field == field
    else:
        assert e.field.startswith("record 1 (byte ")
    if got is not None:
        assert e.got == got


def test_stream_missing(tmp_path):
    with pytest.raises(ConfigError, match="stream.msgpack: expected the run's msgpack stream"):
        read_stream(tmp_path / "stream.msgpack")
