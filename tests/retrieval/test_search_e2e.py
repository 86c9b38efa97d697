"""extract -> index -> search through the command line, on a small on-disk folder dataset."""

import json

import pytest
from _extract_data import make_folder_dataset, tiny_config, write_model

from vidreid.cli import main
from vidreid.retrieval.features_file import read_features


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory):
    """Dataset, config, weights, a flat index of the gallery and the query features."""
    tmp = tmp_path_factory.mktemp("e2e")
    root = make_folder_dataset(tmp / "data")
    config, weights = write_model(tmp, tiny_config())
    common = [str(config), "--weights", str(weights), "--data", str(root), "--dataset",
              "folder", "--quiet"]
    assert main(["extract", *common, "--split", "gallery", "--out", str(tmp / "g")]) == 0
    assert main(["extract", *common, "--split", "query", "--out", str(tmp / "q")]) == 0
    assert main(["index", "build", str(tmp / "g"), "--out", str(tmp / "g.index")]) == 0
    return tmp, root, config, weights


def test_query_folder_finds_its_identity_with_report(gallery, capsys):
    tmp, root, config, weights = gallery
    for pid in (1, 2, 3, 4):
        query = root / "query" / str(pid) / "0_001"
        out = tmp / f"hits-{pid}.json"
        report = tmp / f"report-{pid}.html"
        code = main(["index", "search", str(tmp / "g.index"), str(query), "--config",
                     str(config), "--weights", str(weights), "-k", "2", "--label", str(pid),
                     "--json", str(out), "--report", str(report)])
        assert code == 0
        hits = json.loads(out.read_text())[0]["hits"]
        assert [h["pid"] for h in hits] == [pid, pid]  # both gallery tracklets of the identity
        assert hits[0]["distance"] <= hits[1]["distance"]
        assert report.is_file() and report.with_suffix(".png").is_file()
    # the query features from `vidreid extract` rank the same way
    assert main(["index", "search", str(tmp / "g.index"), "--feats", str(tmp / "q"), "-k", "1",
                 "--json", str(tmp / "all.json")]) == 0
    results = json.loads((tmp / "all.json").read_text())
    table = read_features(tmp / "q")
    pid_of = dict(zip(table.tracklet_ids, table.pids.tolist(), strict=True))
    assert sorted(pid_of.values()) == [1, 2, 3, 4]
    assert [r["hits"][0]["pid"] for r in results] == [pid_of[r["query"]] for r in results]


def test_query_by_single_image(gallery):
    tmp, root, config, weights = gallery
    image = root / "query" / "3" / "0_001" / "0002.jpg"
    out = tmp / "image.json"
    assert main(["index", "search", str(tmp / "g.index"), str(image), "--config", str(config),
                 "--weights", str(weights), "-k", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())[0]["hits"][0]["pid"] == 3


def test_query_errors_are_clear(gallery, tmp_path, capsys):
    tmp, root, config, weights = gallery
    index = str(tmp / "g.index")
    (tmp_path / "empty").mkdir()
    args = ["--config", str(config), "--weights", str(weights)]
    assert main(["index", "search", index, str(tmp_path / "empty"), *args]) == 2
    assert "no frames" in capsys.readouterr().err
    assert main(["index", "search", index, str(root / "query" / "1" / "0_001")]) == 2
    assert "--config" in capsys.readouterr().err
    _, other = write_model(tmp_path, tiny_config(), seed=7)  # same architecture, other weights
    query = str(root / "query" / "1" / "0_001")
    assert main(["index", "search", index, query, "--config", str(config),
                 "--weights", str(other)]) == 2
    assert "not the model the index was built with" in capsys.readouterr().err


def test_query_by_video_file_with_report(gallery):
    import cv2

    tmp, root, config, weights = gallery
    video = tmp / "walk-2.avi"
    frames = sorted((root / "query" / "2" / "0_001").glob("*.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 64))
    for f in frames:
        writer.write(cv2.imread(str(f)))  # BGR in, BGR out
    writer.release()
    out, report = tmp / "video.json", tmp / "video.html"
    assert main(["index", "search", str(tmp / "g.index"), str(video), "--config", str(config),
                 "--weights", str(weights), "-k", "2", "--json", str(out), "--report",
                 str(report), "--label", "2"]) == 0
    assert [h["pid"] for h in json.loads(out.read_text())[0]["hits"]] == [2, 2]
    assert "<img" in report.read_text() and report.with_suffix(".png").is_file()
