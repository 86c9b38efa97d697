"""Attribute tables (vidreid/data/attributes.py): coding, missing labels, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidreid.data.attributes import (
    MISSING,
    attribute_groups,
    load_attribute_table,
    tracklet_id,
    tracklet_labels,
    train_identity_labels,
)
from vidreid.data.errors import DatasetError
from vidreid.data.synth.render import ATTRIBUTE_GROUPS, ATTRIBUTE_VALUES
from vidreid.data.tracklet import Tracklet, VideoDataset

VOCAB = {"gender": ("male", "female"), "bag": ("none", "backpack", "handbag")}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_pid_table_codes_values_by_vocab_and_empty_cells_as_missing(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,gender,bag\n3,female,handbag\n7,male,\n")
    table = load_attribute_table(f, ["bag", "gender"], VOCAB)
    assert table.key == "pid" and table.columns == ("bag", "gender")
    assert table.codes[3].tolist() == [2, 1]
    assert table.codes[7].tolist() == [MISSING, 0]
    assert table.decode("bag", 2) == "handbag" and table.decode("bag", MISSING) is None


def test_inferred_vocabulary_sorts_numeric_codes_as_numbers(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,age\n1,10\n2,2\n3,1\n")
    table = load_attribute_table(f)
    assert table.vocab["age"] == ("1", "2", "10")
    assert table.codes[1].tolist() == [2]


def test_missing_identities_warn_with_count_and_ids_and_get_minus_one(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,gender\n1,male\n")
    table = load_attribute_table(f, vocab=VOCAB)
    with pytest.warns(UserWarning, match=r"2 of 3 identities have no row \(5, 9\)"):
        labels = table.labels([1, 5, 9])
    assert labels.tolist() == [[0], [MISSING], [MISSING]]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_attribute_table(tmp_path / "nope.csv")


def test_missing_column_names_it_and_the_file(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,gender\n1,male\n")
    with pytest.raises(DatasetError, match=r"a\.csv.*column\(s\) hat not in the header"):
        load_attribute_table(f, ["gender", "hat"])


def test_unknown_value_names_file_line_column_and_value(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,gender,bag\n1,male,none\n2,female,suitcase\n")
    with pytest.raises(DatasetError, match=r"a\.csv, line 3, column 3 \('bag'\): unknown value "
                                           r"'suitcase'; expected one of none, backpack"):
        load_attribute_table(f, vocab=VOCAB)


@pytest.mark.parametrize(("text", "message"), [
    ("id,gender\n1,male\n", "line 1: no key columns in the header"),
    ("pid,gender\nx,male\n", r"line 2, column 1 \('pid'\): pid 'x' is not an integer"),
    ("pid,gender\n1,male\n1,female\n", r"line 3: pid 1 already has a row \(line 2\)"),
    ("pid,gender\n1,male,extra\n", "line 2: 3 cells, the header has 2"),
])
def test_malformed_tables_are_reported(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_attribute_table(write(tmp_path / "a.csv", text))


def _dataset(root: Path, attributes_file: Path, raw: list[int]) -> VideoDataset:
    train = [
        Tracklet((str(root / "p1" / "a0.jpg"),), 0, 0),
        Tracklet((str(root / "p1" / "b0.jpg"),), 0, 1),
        Tracklet((str(root / "p1" / "c0.jpg"),), 0, 1),
        Tracklet((str(root / "p2" / "a0.jpg"),), 1, 0),
    ]
    return VideoDataset("toy", str(root), train, [], [], attributes_file=str(attributes_file),
                        extra={"train_raw_pids": raw})


def test_train_identity_labels_follow_raw_pids(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "pid,gender\n20,female\n10,male\n")
    ds = _dataset(tmp_path, f, raw=[20, 30])
    with pytest.warns(UserWarning, match="1 of 2 train identities"):
        labels = train_identity_labels(load_attribute_table(f, vocab=VOCAB), ds)
    assert labels.tolist() == [[1], [MISSING]]


def test_tracklet_table_is_not_reduced_to_a_majority(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "tracklet,bag,gender\np1/a0.jpg,none,male\n"
                                  "p1/b0.jpg,backpack,male\np1/c0.jpg,backpack,\np2/a0.jpg,,\n")
    ds = _dataset(tmp_path, f, raw=[1, 2])
    table = load_attribute_table(f, vocab=VOCAB)
    # per tracklet: every tracklet keeps its own annotation
    per_tracklet = tracklet_labels(table, ds.train, ds.root)
    assert per_tracklet.tolist() == [[0, 0], [1, 0], [1, MISSING], [MISSING, MISSING]]
    # per identity: only labels all of an identity's tracklets agree on (no majority vote)
    with pytest.warns(UserWarning, match="1 \\(identity, attribute\\) pairs"):
        labels = train_identity_labels(table, ds)
    assert labels.tolist() == [[MISSING, 0], [MISSING, MISSING]]


def test_default_groups_are_the_renderers_and_bad_groups_are_named() -> None:
    groups, values = attribute_groups()
    assert groups == ATTRIBUTE_GROUPS
    assert list(values) == [a for attrs in ATTRIBUTE_GROUPS.values() for a in attrs]
    assert values["bag"] == ATTRIBUTE_VALUES["bag"]
    with pytest.raises(ValueError, match="'bag' is in more than one group"):
        attribute_groups({"a": ["bag"], "b": ["bag"]})
    with pytest.raises(ValueError, match="'wings' of group 'a' has no vocabulary"):
        attribute_groups({"a": ["wings"]})


def test_generated_attribute_file_keys_the_layouts_raw_pids(tmp_path: Path) -> None:
    # iLIDS-VID / PRID number person folders with gaps, so the raw pid a loader reports is not
    # the rendered identity's number: the attribute rows must follow the raw pid.
    from vidreid.data.synth.generate import _write_attributes
    from vidreid.data.synth.layouts import Plan
    from vidreid.data.synth.render import sample_identities

    idents = sample_identities(3, np.random.default_rng(0), first_pid=1)
    plan = Plan("ilidsvid", "i-LIDS-VID", "png", num_identities=3)
    for identity, folder_number in ((1, 4), (2, 9), (3, 12)):
        for cam in (0, 1):
            plan.add("all", folder_number, cam, identity, [f"p{folder_number}_{cam}.png"])
    plan.add("test", 0, 0, 2, ["distractor.png"])  # shared pids 0 / -1 get no row
    path = tmp_path / "attributes.csv"
    _write_attributes(str(path), idents, plan)
    _, values = attribute_groups()
    table = load_attribute_table(path, list(values), values)
    assert sorted(table.codes) == [4, 9, 12]
    for ident, raw in zip(idents, (4, 9, 12), strict=True):
        decoded = [table.decode(c, int(v)) for c, v in zip(values, table.codes[raw], strict=True)]
        assert decoded == [ident.attributes[c] for c in values]


MARS_ATTRIBUTE_HEADER = ("person-id,camera,tracklet,Tops.c,Bottoms.c,Age,Tops.l,Bottoms.l,"
                         "shoulder bag,backpack,hat,handbag,hair,gender,Bottoms.t")


def test_mars_attribute_file_labels_each_tracklet_by_pid_camera_and_number(tmp_path: Path) -> None:
    """MARS-Attribute's format (yuange250/MARS-Attribute): one row per tracklet, codes."""
    f = write(tmp_path / "mars_attributes.csv", MARS_ATTRIBUTE_HEADER + "\n"
              "1,2,58,8,0,1,1,1,0,0,0,0,1,1,0\n"
              "1,5,165,5,0,1,1,1,0,0,0,0,1,1,0\n"
              "2,2,19,7,7,1,1,1,0,1,0,0,0,0,1\n")
    groups, values = attribute_groups("mars")
    table = load_attribute_table(f, list(values), values)
    assert table.key == "tracklet_id" and table.codes[(1, 5, 165)][list(values).index("Tops.c")] == 5
    assert table.decode("Tops.c", 8) == "complex" and table.decode("Bottoms.c", 7) == "blue"
    root = tmp_path / "bbox_train"
    tracklets = [
        Tracklet((str(root / "0001" / "0001C5T0165F001.jpg"),), 0, 4),
        Tracklet((str(root / "0001" / "0001C2T0058F001.jpg"),), 0, 1),
        Tracklet((str(root / "0002" / "0002C2T0019F003.jpg"),), 1, 1),
        Tracklet((str(root / "0002" / "0002C1T0001F001.jpg"),), 1, 0),  # not annotated
    ]
    assert tracklet_id(tracklets[0]) == (1, 5, 165)
    with pytest.warns(UserWarning, match="1 of 4 tracklets have no row"):
        labels = tracklet_labels(table, tracklets, str(tmp_path))
    tops = list(values).index("Tops.c")
    assert labels[:, tops].tolist() == [5, 8, 7, MISSING]  # identity 1's two tracklets differ
    assert set(groups) == {"body", "head", "upper", "lower", "accessories"}


def test_buaa_key_columns_and_dukev_tracklet_folders(tmp_path: Path) -> None:
    f = write(tmp_path / "duke_attributes.csv", "person_id,camera_id,tracklets_id,hat\n"
              "640,1,1000,1\n640,2,1001,0\n")
    table = load_attribute_table(f)
    assert table.key == "tracklet_id" and table.vocab["hat"] == ("0", "1")
    t = Tracklet((str(tmp_path / "train" / "0640" / "1000" / "0640_C1_F0087_X163321.jpg"),), 0, 0)
    assert tracklet_id(t) == (640, 1, 1000)
    assert tracklet_labels(table, [t], str(tmp_path)).tolist() == [[1]]


@pytest.mark.parametrize(("row", "message"), [
    ("1,2,58,9,0,1,1,1,0,0,0,0,1,1,0", r"line 2, column 4 \('Tops.c'\): code 9 is outside 0..8"),
    ("1,2,58,8,0,x,1,1,0,0,0,0,1,1,0", r"line 2, column 6 \('Age'\): attribute code 'x'"),
    ("1,two,58,8,0,1,1,1,0,0,0,0,1,1,0", r"line 2, column 2 \('camera'\): camera 'two'"),
    ("1,2,58,8,0,1", "line 2: 6 cells, the header has 15"),
])
def test_bad_mars_attribute_rows_name_file_line_and_column(tmp_path, row, message) -> None:
    f = write(tmp_path / "mars_attributes.csv", MARS_ATTRIBUTE_HEADER + "\n" + row + "\n")
    _, values = attribute_groups("mars")
    with pytest.raises(DatasetError, match=r"mars_attributes\.csv, " + message):
        load_attribute_table(f, list(values), values)
