"""A catalogue of bad inputs, each with the message fragment it must produce.

Used by test_bad_inputs.py (library) and tests/test_cli.py (exit status 2, one line on
stderr, no traceback).  Each case: (id, files to write, load_topology kwargs with
"{tmp}" standing for the directory holding those files, placement or None, fragment).
"""

OK_NODES = "[[node]]\ncpus = '0-1'\nmemory = '64MiB'\n"

CASES = [
    ("toml-syntax", {"t.toml": "[[node]\ncpus = '0'\n"}, {"spec": "{tmp}/t.toml"}, None,
     "t.toml: TOML: expected valid TOML syntax"),
    ("unknown-key", {"t.toml": "arhc = 'arm64'\n" + OK_NODES}, {"spec": "{tmp}/t.toml"}, None,
     "t.toml: arhc: expected a known key"),
    ("duplicate-cpu", {"t.toml": OK_NODES + "[[node]]\ncpus = '1-2'\nmemory = '64MiB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "node[1].cpus: expected each CPU in exactly one node"),
    ("non-square-distances", {"t.toml": "distances = [[10, 20], [20]]\n" + OK_NODES +
                              "[[node]]\ncpus = '2'\nmemory = '64MiB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "distances: expected a 2x2 matrix"),
    ("self-distance", {"t.toml": "distances = [[10, 20], [20, 12]]\n" + OK_NODES +
                       "[[node]]\ncpus = '2'\nmemory = '64MiB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "distances[1][1]: expected 10 from a node to itself"),
    ("page-size-x86", {"t.toml": "arch = 'x86_64'\npage_size = 65536\n" + OK_NODES},
     {"spec": "{tmp}/t.toml"}, None, "page_size: expected a page size x86_64 supports (4096)"),
    ("zero-cpus", {"t.toml": "[[node]]\ncpus = ''\nmemory = '64MiB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "cpus: expected at least one CPU"),
    ("zero-memory", {"t.toml": "[[node]]\ncpus = '0'\nmemory = 0\n"},
     {"spec": "{tmp}/t.toml"}, None, "memory: expected memory on at least one node"),
    ("cpulist-backwards", {"t.toml": "[[node]]\ncpus = '3-1'\nmemory = '64MiB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "node[0].cpus: expected a range a-b with a <= b, got '3-1'"),
    ("bad-size", {"t.toml": "[[node]]\ncpus = '0'\nmemory = '12XB'\n"},
     {"spec": "{tmp}/t.toml"}, None, "node[0].memory: expected a size such as"),
    ("synthetic-type", {}, {"synthetic": "banana:2 pu:2"}, None,
     'synthetic "banana:2 pu:2": banana:2: expected an hwloc object type'),
    ("synthetic-arity", {}, {"synthetic": "package:2 core:0 pu:2"}, None,
     "core:0: expected a positive number of objects"),
    ("numactl-no-available", {"n.txt": "node 0 cpus: 0 1\nnode 0 size: 100 MB\n"},
     {"numactl": "{tmp}/n.txt"}, None, "available: expected an 'available: N nodes"),
    ("unknown-name", {}, {"spec": "no-such-machine"}, None,
     "no-such-machine: topology: expected a .toml file, 'host', or one of: "),
    ("missing-file", {}, {"spec": "{tmp}/absent.toml"}, None, "expected an existing topology file"),
    ("bad-memory-cap", {}, {"synthetic": "pu:2", "memory_cap": "huge"}, None,
     "memory_cap: expected a size such as"),
    ("placement-map", {}, {"spec": "laptop-1n8c"}, "0-3:0",
     "placement map: expected EMU:HOST pairs"),
    ("placement-incomplete", {}, {"spec": "laptop-1n8c"}, "0:0,1:0",
     "expected a host CPU for every emulated CPU, got 'none for CPU 2 and 5 more'"),
    ("placement-policy", {}, {"spec": "laptop-1n8c"}, "diagonal",
     "policy: expected compact, scatter or a map"),
]


def materialise(files, kwargs, tmp_path):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {k: (v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v)
            for k, v in kwargs.items()}


def cli_args(kwargs, placement):
    args = ["topo", "place" if placement is not None else "show"]
    if "spec" in kwargs:
        args.append(kwargs["spec"])
    if "synthetic" in kwargs:
        args += ["--synthetic", kwargs["synthetic"]]
    if "numactl" in kwargs:
        args += ["--numactl", kwargs["numactl"]]
    if "memory_cap" in kwargs:
        args += ["--memory-cap", kwargs["memory_cap"]]
    if placement is not None:
        args += ["--placement", placement]
    return args
