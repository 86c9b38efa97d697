"""Bad dataset files and metric inputs (issue 17, items 6 and 7): one-line errors naming the
file or argument instead of tracebacks from scipy / numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _faults_cli import copy_tree, error_line, make_synth, run_cli

from vidreid.metrics.rank import evaluate_rank

INFO = Path("mars") / "info" / "tracks_train_info.mat"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.mark.parametrize("content", [b"", b"garbage, not MATLAB\n"], ids=["empty", "garbage"])
def test_unreadable_mat_info_file_is_named(synth: Path, tmp_path: Path, content: bytes) -> None:
    """Item 6: scipy's MatReadError becomes one line naming the .mat file."""
    data = copy_tree(synth, tmp_path / "data")
    (data / INFO).write_bytes(content)
    line = error_line(run_cli(["data", "info", "mars", str(data)], tmp_path), 2)
    assert str(data / INFO) in line and "MATLAB" in line
    assert (synth / INFO).stat().st_size > 0  # the original set is untouched


def test_string_pids_name_the_argument() -> None:
    """Item 7: string labels fail with the argument's name, not inside numpy."""
    distmat = np.zeros((2, 3))
    with pytest.raises(ValueError, match="q_pids must hold integer labels"):
        evaluate_rank(distmat, ["a", "b"], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="g_camids must hold integer labels"):
        evaluate_rank(distmat, [1, 2], [1, 2, 3], [0, 0], np.array(["x", "y", "z"]))
    # integer-valued floats stay accepted
    res = evaluate_rank(distmat, [1.0, 2.0], [1, 2, 3], [0, 0], [1, 1, 1], max_rank=3)
    assert res.cmc.shape == (3,)
