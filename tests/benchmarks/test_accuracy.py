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
