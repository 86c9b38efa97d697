"""benchmarks/accuracy.py: a row whose training was stopped stops the table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from _scripts import load_script

import vidreid.engine.run


@pytest.fixture(scope="module")
def accuracy():
    yield from load_script("accuracy")


def test_a_row_stopped_before_its_evaluation_raises(accuracy, monkeypatch, tmp_path) -> None:
    """SIGTERM makes the trainer stop gracefully without a final evaluation: the script must
    not go on to the next config as if the row were done."""
    stopped = SimpleNamespace(last_eval={})
    monkeypatch.setattr(vidreid.engine.run, "run_training",
                        lambda cfg: (stopped, tmp_path / "run", None, None))
    path = accuracy.bench_configs(["tp"])[0]
    with pytest.raises(RuntimeError, match="without its final evaluation"):
        accuracy.run_row(path, str(tmp_path), 1, tmp_path)


def test_the_table_is_written_after_every_row(accuracy, monkeypatch, tmp_path) -> None:
    """A run stopped at its third row keeps the two rows it finished."""
    done = []

    def row(path, root, epochs, runs_dir, protocols=("v2v",), init="scratch"):
        if len(done) == 2:
            raise RuntimeError("stopped")
        done.append(path)
        return {"name": f"row {len(done)}", "config": "c", "v2v/R1": 50.0, "v2v/mAP": 40.0,
                "v2v/mINP": 30.0, "minutes": 1.0, "params_m": 1.0, "gflops": 0.1}

    monkeypatch.setattr(accuracy, "run_row", row)
    monkeypatch.setattr(accuracy, "dataset_root", lambda *a: str(tmp_path))
    out = tmp_path / "table.md"
    with pytest.raises(RuntimeError, match="stopped"):
        accuracy.main(["synth-smoke", "--init", "scratch", "--methods", "baselines",
                       "--out", str(out)])
    lines = out.read_text().splitlines()
    assert [ln.split(" | ")[0] for ln in lines if ln.startswith("| row")] == ["| row 1",
                                                                           "| row 2"]
