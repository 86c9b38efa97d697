"""benchmarks/accuracy.py: a row whose training was stopped stops the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import vidreid.engine.run

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy.py"


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["accuracy"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("accuracy", None)


def test_a_row_stopped_before_its_evaluation_raises(accuracy, monkeypatch, tmp_path) -> None:
    """SIGTERM makes the trainer stop gracefully without a final evaluation: the script must
    not go on to the next config as if the row were done."""
    stopped = SimpleNamespace(last_eval={})
    monkeypatch.setattr(vidreid.engine.run, "run_training",
                        lambda cfg: (stopped, tmp_path / "run", None, None))
    path = accuracy.bench_configs(["tp"])[0]
    with pytest.raises(RuntimeError, match="without its final evaluation"):
        accuracy.run_row(path, str(tmp_path), 1, tmp_path)
