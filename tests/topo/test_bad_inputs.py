"""Every catalogued bad input raises ConfigError with its one-line message."""

import pytest

from topo import ConfigError, load_topology, place

from .bad_inputs import CASES, materialise


@pytest.mark.parametrize("case_id, files, kwargs, placement, fragment", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, case_id, files, kwargs, placement, fragment):
    kwargs = materialise(files, kwargs, tmp_path)
    with pytest.raises(ConfigError) as e:
        t = load_topology(**kwargs)
        place(t, placement, allowed=[0, 1])
    msg = str(e.value)
    assert fragment in msg
    assert "\n" not in msg and msg.count(": expected ") == 1


def test_catalogue_is_big_enough():
    assert len(CASES) >= 12 and len({c[0] for c in CASES}) == len(CASES)
