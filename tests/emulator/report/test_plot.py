"""`slabemu plot DIR` (emulator/report/plot.py): a figure file that opens, from a virtual
run's stream; bad directories are one line and exit status 2."""

from __future__ import annotations

import matplotlib.image as mpimg

from emulator.cli import main
from emulator.report.plot import stream_series


def test_plot_of_a_virtual_run_opens(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "remote-free", "--mode", "virtual", "--ops", "12000", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    capsys.readouterr()
    d = stream_series(out)
    assert len(d["t"]) >= 2 and d["nodes"] == [0, 1]
    assert d["per_node"]["acquisitions"][0][-1] >= d["per_node"]["acquisitions"][0][0]
    png = tmp_path / "fig.png"
    assert main(["plot", str(out), "--out", str(png)]) == 0
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 600
    assert img.std() > 0  # something was drawn


def test_plot_of_a_bad_dir_is_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results directory" in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stream.msgpack" in err[0]
