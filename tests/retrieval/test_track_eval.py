"""``vidreid track-eval PRED GT`` on MOTChallenge text files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidreid.cli import main

pytest.importorskip("motmetrics", reason="MOT metrics come with vidreid[retrieval]")

# two people over three frames; the prediction swaps their ids at frame 3 and misses one box
GT = """1,1,10,10,20,40,1,1,1
1,2,100,10,20,40,1,1,1
2,1,12,10,20,40,1,1,1
2,2,98,10,20,40,1,1,1
3,1,14,10,20,40,1,1,1
3,2,96,10,20,40,1,1,1
3,9,200,10,20,40,0,1,1
"""
PRED = """1,5,10,10,20,40,0.9,-1,-1,-1
1,6,100,10,20,40,0.9,-1,-1,-1
2,5,12,10,20,40,0.9,-1,-1,-1
3,6,14,10,20,40,0.9,-1,-1,-1
3,5,96,10,20,40,0.9,-1,-1,-1
"""


def test_track_eval_prints_mota_and_idf1(tmp_path: Path, capsys) -> None:
    (tmp_path / "gt.txt").write_text(GT)
    (tmp_path / "pred.txt").write_text(PRED)
    assert main(["track-eval", str(tmp_path / "pred.txt"), str(tmp_path / "gt.txt")]) == 0
    out = capsys.readouterr().out
    # 6 objects (the flag-0 row is left out), 1 miss, 2 switches, 0 false positives:
    # MOTA = 1 - (1 + 0 + 2) / 6 = 50.0
    assert "mota 50.0" in out and "num_objects 6" in out and "num_switches 2" in out
    assert "num_misses 1" in out and "num_false_positives 0" in out


def test_track_eval_names_a_bad_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "gt.txt").write_text(GT)
    (tmp_path / "bad.txt").write_text("frame id x\n")
    assert main(["track-eval", str(tmp_path / "bad.txt"), str(tmp_path / "gt.txt")]) == 2
    assert "bad.txt" in capsys.readouterr().err
