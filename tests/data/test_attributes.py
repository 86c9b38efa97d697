"""Attribute tables (vidreid/data/attributes.py): coding, missing labels, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidreid.data.attributes import (
    MISSING,
    attribute_groups,
    load_attribute_table,
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
    with pytest.raises(DatasetError, match=r"a\.csv, line 3: unknown value 'suitcase' in "
                                           r"column 'bag'; expected one of none, backpack"):
        load_attribute_table(f, vocab=VOCAB)


@pytest.mark.parametrize(("text", "message"), [
    ("id,gender\n1,male\n", "no 'pid' or 'tracklet' key column"),
    ("pid,gender\nx,male\n", "line 2: pid 'x' is not an integer"),
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


def test_tracklet_table_takes_each_identitys_majority_value(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "tracklet,bag\np1/a0.jpg,none\np1/b0.jpg,backpack\n"
                                  "p1/c0.jpg,backpack\np2/a0.jpg,\n")
    ds = _dataset(tmp_path, f, raw=[1, 2])
    labels = train_identity_labels(load_attribute_table(f, vocab=VOCAB), ds)
    assert labels.tolist() == [[1], [MISSING]]


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
