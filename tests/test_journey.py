"""The practitioner's journey of the README, as typed, through the ``vidreid`` entry point in
subprocesses from an empty folder (issue 19's "Done when", at tiny sizes): synth -> train
(a packaged config name) -> eval RUN -> extract RUN -> index build -> index search --model RUN
-> extract imagenet. Each step must succeed and leave the file the next one reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STEP_TIMEOUT_S = 300


def vidreid(cwd: Path, *args: str) -> str:
    """Run ``vidreid ARGS`` as a user would (the console entry ``vidreid.cli:main``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from vidreid.cli import main; sys.exit(main())",
         *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
    )
    assert proc.returncode == 0, (f"vidreid {' '.join(args)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.mark.slow
def test_the_readme_journey_from_an_empty_folder(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    vidreid(tmp_path, "synth", "data", "--layout", "mars", "--ids", "8", "--cameras", "2",
            "--seed", "0", "--size", "64x32", "--max-len", "10", "--workers", "1")
    out = vidreid(tmp_path, "train", "baselines/tp_synth", "data.root=data", "train.epochs=1",
                  "data.height=64", "data.width=32", "data.batch_size=8",
                  "data.num_workers=0", "train.progress=false", "train.num_threads=1",
                  "train.tensorboard=false")
    run = re.search(r"^run folder: (.+)$", out, re.M).group(1)
    assert f"next: vidreid eval {run}" in out
    assert (tmp_path / run / "last.pt").is_file()

    out = vidreid(tmp_path, "eval", run)
    assert "mAP" in out and (tmp_path / run / "eval" / "results.json").is_file()

    vidreid(tmp_path, "viz", "ranks", run, "--num-queries", "2", "-k", "3", "--out", "ranks")
    pages = sorted((tmp_path / "ranks").glob("query-*.html"))
    assert len(pages) == 2 and all(p.with_suffix(".png").is_file() for p in pages)
    assert all(p.read_text().count('class="hit ') == 3 for p in pages)

    vidreid(tmp_path, "extract", run, "--data", "data", "--dataset", "mars", "--split",
            "gallery", "--out", "feats", "--quiet")
    vidreid(tmp_path, "index", "build", "feats", "--out", "g.index")
    query = next(p for p in sorted((tmp_path / "data" / "mars" / "bbox_test").rglob("*"))
                 if p.is_dir() and any(p.glob("*.jpg")))
    out = vidreid(tmp_path, "index", "search", "g.index", str(query), "--model", run,
                  "-k", "5", "--report", "r.html", "--json", "hits.json")
    hits = json.loads((tmp_path / "hits.json").read_text())[0]["hits"]
    assert len(hits) == 5 and (tmp_path / "r.html").is_file()

    vidreid(tmp_path, "extract", "imagenet", "--data", str(query.parent), "--out", "feats2",
            "--quiet")
    manifest = json.loads((tmp_path / "feats2" / "manifest.json").read_text())
    assert manifest["dim"] == 1280  # MobileNetV2 frame features, averaged over time


def test_quiet_and_verbose_set_what_is_logged(capsys) -> None:
    import logging

    from vidreid.cli import main

    assert main(["--quiet", "configs", "mars"]) == 0
    assert "cosam/mars" in capsys.readouterr().out  # results still on stdout
    assert logging.getLogger("vidreid").level == logging.WARNING
    assert main(["--verbose", "configs"]) == 0
    assert logging.getLogger("vidreid").level == logging.DEBUG
    assert main(["configs", "no-such-name"]) == 2
    assert "vidreid: error: no packaged config name contains" in capsys.readouterr().err
