import json

import numpy as np
import pytest
from PIL import Image

from vidreid.metrics.protocols import aggregate_splits
from vidreid.metrics.rank import RankResult
from vidreid.metrics.report import format_table, plot_cmc, results_to_json


def result(cmc, m_ap=0.5, m_inp=0.25):
    cmc = np.asarray(cmc, dtype=float)
    return RankResult(cmc=cmc, mAP=m_ap, mINP=m_inp, num_valid_queries=4, ap=np.zeros(4),
                      inp=np.zeros(4), valid_queries=np.arange(4),
                      first_match_rank=np.zeros(4, int))


def test_table_rows_in_percent_and_dash_beyond_max_rank():
    cmc = np.linspace(0.5, 1.0, 20)
    table = format_table({"v2v": result(cmc), "i2v": result(cmc[:5], 0.125)})
    lines = table.splitlines()
    assert lines[0].split() == ["protocol", "R1", "R5", "R10", "R20", "mAP", "mINP"]
    v2v = lines[2].split()
    assert v2v[0] == "v2v" and v2v[1] == "50.0" and v2v[4] == "100.0" and v2v[5] == "50.0"
    i2v = lines[3].split()
    assert i2v[3] == "-" and i2v[4] == "-" and i2v[5] == "12.5"


def test_json_is_serialisable_and_has_std_for_splits():
    agg = aggregate_splits([{"v2v": result([0.5, 1.0], 0.4)}, {"v2v": result([0.7, 1.0], 0.6)}])
    out = json.loads(json.dumps(results_to_json(agg)))
    assert out["v2v"]["R1"] == pytest.approx(60.0) and out["v2v"]["R1_std"] == pytest.approx(10.0)
    assert out["v2v"]["mAP"] == pytest.approx(50.0) and out["v2v"]["num_splits"] == 2
    assert out["v2v"]["R5"] is None and out["v2v"]["cmc"] == pytest.approx([60.0, 100.0])
    assert "±" in format_table(agg)


def test_plot_cmc_writes_png_atomically(tmp_path):
    path = plot_cmc({"v2v": result(np.linspace(0.2, 1, 10))}, tmp_path / "sub" / "cmc.png")
    assert Image.open(path).format == "PNG"
    assert [p.name for p in path.parent.iterdir()] == ["cmc.png"]  # no temp file left
    with pytest.raises(ValueError, match="at least one"):
        plot_cmc({}, tmp_path / "x.png")
