import pytest
from _fixtures import make_mars

from vidreid.cli import main
from vidreid.data import build_dataset
from vidreid.data.info import format_summary, summarize


def test_summarize_counts(tmp_path):
    make_mars(tmp_path)
    s = summarize(build_dataset("mars", tmp_path))
    train = s["splits"]["train"]
    assert (train["ids"], train["tracklets"], train["frames"], train["cameras"]) == (
        2,
        3,
        9,
        [0, 1],
    )
    assert train["length"] == {"min": 2, "p25": 2.5, "p50": 3, "p75": 3.5, "max": 4}
    assert s["splits"]["query"]["tracklets"] == 2 and s["splits"]["gallery"]["tracklets"] == 3


def test_data_info_command(tmp_path, capsys):
    make_mars(tmp_path)
    assert main(["data", "info", "mars", str(tmp_path), "--protocol", "official"]) == 0
    out = capsys.readouterr().out
    gallery = next(line for line in out.splitlines() if line.startswith("gallery"))
    assert gallery.split()[:4] == ["gallery", "4", "6", "14"]
    assert "junk pids" in out
    assert out.strip() == format_summary(build_dataset("mars", tmp_path, protocol="official"))


def test_data_info_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "info", "mars", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidreid: error: no 'mars' dataset under") and "Traceback" not in err
    assert main(["data", "info", "ilidsvid", str(tmp_path), "--protocol", "x"]) == 2
    assert "does not take option(s) protocol" in capsys.readouterr().err


def test_synth_command(tmp_path, capsys):
    args = [
        "synth",
        str(tmp_path),
        "--layout",
        "ilidsvid",
        "--ids",
        "4",
        "--cameras",
        "2",
        "--seed",
        "1",
        "--size",
        "32x16",
        "--max-len",
        "6",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    assert "vidreid data info ilidsvid" in capsys.readouterr().out
    ds = build_dataset("ilidsvid", tmp_path, split_id=9)
    assert len(ds.query) == len(ds.gallery) == 2
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "synth",
                str(tmp_path),
                "--layout",
                "mars",
                "--ids",
                "4",
                "--cameras",
                "2",
                "--seed",
                "1",
                "--size",
                "big",
            ]
        )
