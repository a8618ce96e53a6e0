"""A run's results directory: loading and validating summary.json, reading the stream.

Models the results contract of docs/design.md §11.  A results directory holds summary.json
(schema 1), stream.msgpack (msgpack maps appended during the run, each with a "type":
"start", "snapshot", "event", "end"), slabinfo.txt, lock_stat.txt, kasan.txt and run.log.

Invariants: `load_summary` returns a summary only if it has every key of `SUMMARY_SPEC`
with the right type (more keys are welcome); any problem - no directory, no summary.json,
bad JSON, another schema, a missing or mistyped key - raises ONE `topo.ConfigError`
naming the file, the key (as a path such as ``caches[3].num_objs``) and what was expected.
`read_stream` returns every complete record; a killed run's partial last record is
dropped and reported as ``truncated``; bytes that are not a stream of msgpack maps raise
ConfigError.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from topo import ConfigError

__all__ = ["SCHEMA", "SUMMARY_FILE", "STREAM_FILE", "SUMMARY_SPEC", "RECORD_TYPES",
           "load_summary", "validate_summary", "read_stream", "open_results", "Results"]

SCHEMA = 1
SUMMARY_FILE = "summary.json"
STREAM_FILE = "stream.msgpack"
RECORD_TYPES = ("start", "snapshot", "event", "end")


# -- the schema: a small type language ------------------------------------------------------

class _T:
    """A type check: ``ok(v)`` and the words for what was expected."""

    def __init__(self, what: str, ok) -> None:
        self.what = what
        self.ok = ok


def _isint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


INT = _T("an integer", _isint)
NUM = _T("a number", lambda v: _isint(v) or isinstance(v, float))
STR = _T("a string", lambda v: isinstance(v, str))
BOOL = _T("true or false", lambda v: isinstance(v, bool))
ANYOBJ = _T("an object", lambda v: isinstance(v, dict))


def _null(t: "_T | dict | _List") -> "_Nullable":
    return _Nullable(t)


def _one_of(*values: Any) -> _T:
    return _T("one of " + ", ".join(json.dumps(v) for v in values), lambda v: v in values)


def _either(a: _T, b: _T) -> _T:
    return _T(f"{a.what} or {b.what}", lambda v: a.ok(v) or b.ok(v))


@dataclass(frozen=True)
class _List:
    item: Any


@dataclass(frozen=True)
class _Nullable:
    inner: Any


@dataclass(frozen=True)
class _Optional:
    """A key that may be absent; checked when present."""

    inner: Any


def _what(spec: Any) -> str:
    if isinstance(spec, _T):
        return spec.what
    if isinstance(spec, _Nullable):
        return f"{_what(spec.inner)} or null"
    if isinstance(spec, _Optional):
        return _what(spec.inner)
    if isinstance(spec, _List):
        return "a list"
    return "an object"


_LOCK = {"name": STR, "class": STR, "cache": _null(STR), "node": INT,
         "acquisitions": INT, "contentions": INT, "con_bounces": INT, "acq_bounces": INT,
         "waittime_min_us": NUM, "waittime_max_us": NUM, "waittime_total_us": NUM,
         "holdtime_min_us": NUM, "holdtime_max_us": NUM, "holdtime_total_us": NUM,
         "spins": INT, "yields": INT}
_CACHE = {"name": STR, "memcg": _null(_either(STR, INT)), "dead": BOOL, "active_objs": INT,
          "num_objs": INT, "objsize": INT, "objperslab": INT, "pagesperslab": INT,
          "active_slabs": INT, "num_slabs": INT,
          # the SLAB tunables nested (or flat, as slabinfo rows have them)
          "tunables": _Optional({"limit": INT, "batchcount": INT, "sharedfactor": INT}),
          "limit": _Optional(INT), "batchcount": _Optional(INT),
          "sharedfactor": _Optional(INT), "sharedavail": _Optional(INT),
          "stats": _Optional(ANYOBJ),
          "aliases": _Optional(_List(STR)), "refcount": _Optional(INT)}
_KASAN = {"bug": STR, "cpu": INT, "task": _either(INT, STR), "op": STR, "phase": STR,
          "object": INT, "size": INT, "cache": _null(STR),
          "freed_by": _null({"cpu": INT, "op": STR, "phase": STR})}

# Every key summary.json (schema 1) must have, nested (those under _Optional may be
# absent, and are checked when present); more keys are allowed anywhere.
SUMMARY_SPEC: dict[str, Any] = {
    "schema": INT,
    "scenario": STR,
    "allocator": _one_of("slub", "slab"),
    "mode": _one_of("parallel", "deterministic", "virtual"),
    "seed": INT,
    "commit": _Optional(STR),  # absent in virtual mode (host.json has it)
    "exit": _one_of("ok", "failed", "crashed", "interrupted"),
    "duration_s": NUM,
    "error": _null(STR),
    "topology": {"name": STR, "arch": STR, "page_size": INT, "nodes": INT, "cpus": INT},
    "policy": {"name": STR,
               "switches": {"dead_caches": STR, "shrink_tolerates_enomem": BOOL,
                            "nonpreemptible_free": BOOL, "sync_before_destroy": BOOL,
                            "dead_discard_empty": BOOL, "track_full_slabs": BOOL}},
    "ops": {"total": INT, "per_cpu": _List(INT), "per_second": NUM},
    "workers": {"count": INT, "per_worker_cpus": _List(_List(INT)),
                "placement": _List({"cpu": INT, "host_cpu": INT})},
    "caches": _List(_CACHE),
    "locks": _List(_LOCK),
    "kasan": _List(_KASAN),
    "kasan_total": INT,
    "leaks": {"dead_caches": INT, "dead_cache_slabs": INT, "dead_cache_objects": INT,
              "dead_cache_pages": INT, "pinned_memcgs": INT,
              "dead_cache_frozen_slabs": _Optional(INT),
              "dead_cache_node_partial_slabs": _Optional(INT)},
    "failure": _null({"cpu": _null(INT), "task": _null(_either(INT, STR)), "op": _null(STR),
                      "phase": _null(STR), "worker_pid": _null(INT), "reason": STR}),
}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, str):
        return "a string"
    return "a number"


def _got(v: Any) -> Any:
    """What to show of a bad value: short scalars as they are, containers by type."""
    if isinstance(v, (dict, list)):
        return _json_type(v)
    if isinstance(v, str) and len(v) > 40:
        return v[:37] + "..."
    return v if v is not None else "null"


def _check(source: str, path: str, value: Any, spec: Any) -> None:
    if isinstance(spec, _Nullable):
        if value is not None:
            _check(source, path, value, spec.inner)
        return
    if isinstance(spec, _T):
        if not spec.ok(value):
            raise ConfigError(source, path, spec.what, _got(value))
        return
    if isinstance(spec, _List):
        if not isinstance(value, list):
            raise ConfigError(source, path, "a list", _got(value))
        for i, item in enumerate(value):
            _check(source, f"{path}[{i}]", item, spec.item)
        return
    if not isinstance(value, dict):
        raise ConfigError(source, path or "(top level)", "a JSON object", _got(value))
    for key, sub in spec.items():
        where = f"{path}.{key}" if path else key
        if isinstance(sub, _Optional):
            if key in value:
                _check(source, where, value[key], sub.inner)
            continue
        if key not in value:
            raise ConfigError(source, where, f"{_what(sub)} (the key is missing)")
        _check(source, where, value[key], sub)


def validate_summary(summary: Any, source: str = SUMMARY_FILE) -> dict[str, Any]:
    """``summary`` if it is a schema-1 summary; else raise ConfigError naming ``source``."""
    if not isinstance(summary, dict):
        raise ConfigError(source, "(top level)", "a JSON object", _got(summary))
    if "schema" not in summary:
        raise ConfigError(source, "schema", f"{SCHEMA} (the key is missing)")
    if summary["schema"] != SCHEMA or isinstance(summary["schema"], bool):
        raise ConfigError(source, "schema",
                          f"{SCHEMA} (this slabemu reads summary schema {SCHEMA})",
                          _got(summary["schema"]))
    _check(source, "", summary, SUMMARY_SPEC)
    return summary


def _results_dir(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    if not d.exists():
        raise ConfigError(str(d), "results directory",
                          "a directory written by 'slabemu run --out'", "no such path")
    if not d.is_dir():
        raise ConfigError(str(d), "results directory",
                          "a directory written by 'slabemu run --out'", "not a directory")
    return d


def load_summary(directory: str | os.PathLike) -> dict[str, Any]:
    """The validated summary.json of a results directory (see the module docstring)."""
    path = _results_dir(directory) / SUMMARY_FILE
    source = str(path)
    if not path.is_file():
        raise ConfigError(source, SUMMARY_FILE, "the run's summary, a JSON file",
                          "no such file" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(source, f"byte {e.start}", "UTF-8 JSON text", e.reason) from None
    except OSError as e:
        raise ConfigError(source, SUMMARY_FILE, "a readable file", e.strerror) from None
    try:
        summary = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(source, f"line {e.lineno} column {e.colno}", "valid JSON",
                          e.msg) from None
    return validate_summary(summary, source)


# -- the stream -------------------------------------------------------------------------------

def _is_map_header(b: int) -> bool:
    return 0x80 <= b <= 0x8F or b in (0xDE, 0xDF)  # fixmap, map 16, map 32


def read_stream(path: str | os.PathLike) -> tuple[list[dict[str, Any]], bool]:
    """(records, truncated) of a stream.msgpack: every complete record in order, and
    whether a partial record (a run killed mid-write) was dropped from the end.

    Each record must be a msgpack map with a string "type" (`RECORD_TYPES` today; other
    types are passed through).  Raises ConfigError for a missing file or bytes that are
    not such a stream."""
    p = Path(path)
    source = str(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, STREAM_FILE, "the run's msgpack stream",
                          "no such file") from None
    except OSError as e:
        raise ConfigError(source, STREAM_FILE, "a readable file", e.strerror) from None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                max_buffer_size=max(len(data), 1 << 20))
    unpacker.feed(data)
    records: list[dict[str, Any]] = []
    truncated = False
    expected = "a msgpack map with a string 'type' key"
    while True:
        pos = unpacker.tell()
        if pos >= len(data):
            break
        field = f"record {len(records)} (byte {pos})"
        if not _is_map_header(data[pos]):
            raise ConfigError(source, field, expected, f"byte 0x{data[pos]:02x}")
        try:
            rec = unpacker.unpack()
        except msgpack.OutOfData:
            truncated = True
            break
        except (ValueError, msgpack.UnpackException) as e:  # FormatError, StackError, ...
            raise ConfigError(source, field, expected, str(e) or type(e).__name__) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
            raise ConfigError(source, field, expected,
                              "a map without 'type'" if isinstance(rec, dict)
                              else type(rec).__name__)
        records.append(rec)
    return records, truncated


# -- the bundle -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Results:
    """A loaded results directory: its path and validated summary; the other files are
    read on demand."""

    path: Path
    summary: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name

    def stream(self) -> tuple[list[dict[str, Any]], bool]:
        """`read_stream` of stream.msgpack."""
        return read_stream(self.path / STREAM_FILE)

    def text(self, name: str) -> str | None:
        """The text of one of the report files (slabinfo.txt, ...), None if absent."""
        p = self.path / name
        return p.read_text(encoding="utf-8", errors="replace") if p.is_file() else None


def open_results(directory: str | os.PathLike) -> Results:
    """The results directory, its summary validated (raises ConfigError otherwise)."""
    summary = load_summary(directory)
    return Results(Path(directory), summary)
