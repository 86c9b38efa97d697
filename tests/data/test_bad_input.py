"""Each kind of bad input gives a DatasetError / FileNotFoundError naming the file at fault."""

import numpy as np
import pytest
from _fixtures import make_ilidsvid, make_lsvid, make_mars, touch
from scipy.io import savemat

from vidreid.data import DatasetError, build_dataset


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        build_dataset("mars", tmp_path / "nope")


def test_root_without_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mars/info"):
        build_dataset("mars", tmp_path)


def test_missing_info_file(tmp_path):
    make_mars(tmp_path)
    (tmp_path / "mars/info/tracks_test_info.mat").unlink()
    with pytest.raises(FileNotFoundError, match="tracks_test_info.mat"):
        build_dataset("mars", tmp_path)


def test_malformed_file_name(tmp_path):
    make_mars(tmp_path)
    path = tmp_path / "mars/info/train_name.txt"
    path.write_text(path.read_text().replace("0001C1T0001F002.jpg", "0001C1T1F2.jpg"))
    with pytest.raises(DatasetError, match=r"train_name.txt, non-empty line 2.*0001C1T1F2"):
        build_dataset("mars", tmp_path)


def test_mat_wrong_variable(tmp_path):
    make_mars(tmp_path)
    savemat(tmp_path / "mars/info/tracks_train_info.mat", {"tracks": np.ones((3, 4))})
    with pytest.raises(
        DatasetError,
        match=r"tracks_train_info.mat has no variable 'track_train_info' \(found: tracks\)",
    ):
        build_dataset("mars", tmp_path)


def test_mat_wrong_shape(tmp_path):
    make_mars(tmp_path)
    savemat(tmp_path / "mars/info/tracks_train_info.mat", {"track_train_info": np.ones((3, 3))})
    with pytest.raises(DatasetError, match=r"tracks_train_info.mat.*shape \(3, 3\)"):
        build_dataset("mars", tmp_path)


def test_track_index_out_of_range(tmp_path):
    make_mars(tmp_path)
    rows = np.array([[1, 3, 1, 1], [4, 99, 1, 2]])
    savemat(tmp_path / "mars/info/tracks_train_info.mat", {"track_train_info": rows})
    with pytest.raises(DatasetError, match=r"tracks_train_info.mat.*row 2 has start=4, end=99"):
        build_dataset("mars", tmp_path)


def test_query_index_out_of_range(tmp_path):
    make_mars(tmp_path)
    savemat(tmp_path / "mars/info/query_IDX.mat", {"query_IDX": np.array([[0, 1]])})
    with pytest.raises(DatasetError, match=r"query_IDX.mat: query_IDX entry 1 is 0"):
        build_dataset("mars", tmp_path)


def test_zero_based_track_table_is_caught(tmp_path):
    make_mars(tmp_path)
    savemat(
        tmp_path / "mars/info/tracks_train_info.mat", {"track_train_info": np.array([[0, 2, 1, 1]])}
    )
    with pytest.raises(DatasetError, match="1-based inclusive"):
        build_dataset("mars", tmp_path)


def test_listed_frame_missing(tmp_path):
    make_mars(tmp_path)
    (tmp_path / "mars/bbox_test/0004/0004C1T0001F002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"bbox_test/0004/0004C1T0001F002.jpg"):
        build_dataset("mars", tmp_path)


def test_empty_tracklet_folder(tmp_path):
    make_ilidsvid(tmp_path, (1, 2))
    folder = tmp_path / "ilids-vid/i-LIDS-VID/sequences/cam2/person002"
    for f in folder.iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"cam2/person002 holds no image files"):
        build_dataset("ilidsvid", tmp_path)


def test_malformed_duke_name(tmp_path):
    base = tmp_path / "dukemtmc-vidreid/DukeMTMC-VideoReID"
    touch(base / "train/0001/0001/frame1.jpg")
    for split in ("query", "gallery"):
        (base / split).mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"train/0001/0001/frame1.jpg"):
        build_dataset("dukev", tmp_path)


def test_lsvid_prefix_without_frames(tmp_path):
    make_lsvid(tmp_path)
    lst = tmp_path / "LS-VID/list_sequence/list_seq_train.txt"
    lst.write_text("tracklet_train/0001/0009_ 1\n")
    with pytest.raises(DatasetError, match=r"list_seq_train.txt, entry 1: no image .* '0009_'"):
        build_dataset("lsvid", tmp_path)


def test_lsvid_query_wrong_variable(tmp_path):
    import h5py

    make_lsvid(tmp_path)
    with h5py.File(tmp_path / "LS-VID/test/data/info_test.mat", "w") as f:
        f.create_dataset("gallery", data=np.ones((1, 2)))
    with pytest.raises(DatasetError, match=r"info_test.mat has no dataset 'query'"):
        build_dataset("lsvid", tmp_path)


def test_unknown_option_and_dataset(tmp_path):
    make_ilidsvid(tmp_path, (1, 2))
    with pytest.raises(DatasetError, match="'ilidsvid' does not take option.*protocol.*split_id"):
        build_dataset("ilidsvid", tmp_path, protocol="official")
    with pytest.raises(KeyError, match="unknown dataset 'market'"):
        build_dataset("market", tmp_path)
