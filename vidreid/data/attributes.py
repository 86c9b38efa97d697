"""Attribute tables: per-identity (or per-tracklet) categorical labels beside a dataset.

The file is a CSV with a header row of named columns: a key column, ``pid`` (one row per
identity, raw pids as the dataset's files write them) or ``tracklet`` (one row per tracklet:
the path of its first frame relative to the dataset folder, ``/`` separated), then one
column per attribute. The synthetic generator writes ``attributes.csv`` with a ``pid`` column
and the renderer's attributes (:data:`vidreid.data.synth.render.ATTRIBUTE_COLUMNS`).

Values are category names (``male``, ``backpack``) or codes (``0``, ``1``); an empty cell
(or ``NA``, ``n/a``, ``nan``, ``?`` when the attribute has no such value) is a missing label.
:func:`load_attribute_table` codes every value as its index in the attribute's vocabulary
(given, or the sorted distinct values of the column) with -1 for missing, so labels can go
straight to ``cross_entropy(..., ignore_index=-1)``.

Public tracklet-level files are read too (one row per tracklet, integer-coded attributes):

- MARS-Attribute (Chen et al., ``yuange250/MARS-Attribute`` ``mars_attributes.csv``): header
  ``person-id,camera,tracklet,Tops.c,Bottoms.c,Age,Tops.l,Bottoms.l,shoulder bag,backpack,
  hat,handbag,hair,gender,Bottoms.t``; a tracklet is named by its raw pid, camera (1-6) and
  tracklet number, as in the MARS file name ``0001C1T0001F001.jpg``. The README gives the
  value names of ``Tops.c`` (0-8), ``Bottoms.c`` (0-9) and ``Age`` (0-3); the other columns
  are 0/1 flags whose polarity it does not state (:data:`MARS_ATTRIBUTE_VALUES` calls them
  ``"0"`` / ``"1"``). Groups for them: :data:`MARS_ATTRIBUTE_GROUPS` (``groups: mars``).
- The later BUAA release (``irip.buaa.edu.cn/mars_duke_attributes``; MARS and
  DukeMTMC-VideoReID ``duke_attributes.csv``) keys rows by ``person_id,camera_id,
  tracklets_id``. We could not read that release's header ourselves (only a third-party
  loader that selects those three columns by name), so its key columns are accepted but no
  attribute names, values or groups are defined for it: list its columns in
  ``model.groups`` / ``model.attribute_values``. For DukeV the tracklet number is the
  tracklet folder's name.

Per-tracklet labels (:func:`tracklet_labels`) keep every tracklet's own annotation; an
identity's tracklets often disagree (e.g. a jacket opened between cameras).
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

PID_KEY = "pid"
TRACKLET_KEY = "tracklet"
#: Key of the public tracklet-level files: (raw pid, camera 1-based, tracklet number).
TRACKLET_ID_KEY = "tracklet_id"
#: Their key columns (pid, camera, tracklet), per release (see the module docstring).
TRACKLET_ID_COLUMNS = (
    ("person-id", "camera", "tracklet"),  # yuange250/MARS-Attribute mars_attributes.csv
    ("person_id", "camera_id", "tracklets_id"),  # irip.buaa.edu.cn release
)
#: MARS-Attribute's value names in code order (README of yuange250/MARS-Attribute); the
#: README does not name the 0/1 flags' values.
MARS_ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "Tops.c": ("black", "purple", "green", "blue", "gray", "white", "yellow", "red", "complex"),
    "Bottoms.c": ("white", "purple", "black", "green", "gray", "pink", "yellow", "blue", "brown",
                  "complex"),
    "Age": ("young", "teenager", "adult", "old"),
    **{flag: ("0", "1") for flag in ("Tops.l", "Bottoms.l", "shoulder bag", "backpack", "hat",
                                     "handbag", "hair", "gender", "Bottoms.t")},
}
#: Semantic groups of the MARS-Attribute columns (ours; the attribute paper's groups are
#: body, head, upper body, lower body, accessories).
MARS_ATTRIBUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "body": ("gender", "Age"),
    "head": ("hat", "hair"),
    "upper": ("Tops.c", "Tops.l"),
    "lower": ("Bottoms.c", "Bottoms.l", "Bottoms.t"),
    "accessories": ("shoulder bag", "backpack", "handbag"),
}
#: Names a config may give as ``groups`` instead of a mapping.
ATTRIBUTE_SETS = ("synth", "mars")
MISSING = -1  # code of a missing label (cross_entropy's ignore_index)
#: Cells read as a missing label (case-insensitive) unless the attribute has such a value.
MISSING_CELLS = ("", "na", "n/a", "nan", "?")
SHOWN_IDS = 5  # ids named in a "missing from the table" warning

Key = int | str | tuple[int, int, int]


@dataclass(frozen=True)
class AttributeTable:
    """An attribute file read and coded.

    ``key`` is ``"pid"``, ``"tracklet"`` or ``"tracklet_id"``; ``columns`` the attributes,
    in order; ``vocab`` each attribute's values (code = index); ``codes`` maps a key (``int``
    pid, ``str`` tracklet path or ``(pid, camera, tracklet)``) to an ``int64 [len(columns)]``
    row of codes, -1 = missing.
    """

    path: str
    key: str
    columns: tuple[str, ...]
    vocab: dict[str, tuple[str, ...]]
    codes: dict[Key, np.ndarray]

    def labels(self, keys: Sequence[Key], what: str = "identities") -> np.ndarray:
        """Codes of ``keys`` as ``int64 [len(keys), len(columns)]``.

        Keys absent from the table get -1 everywhere and are reported in one warning (their
        count and a few of them), so the caller still trains its other losses on them.
        """
        out = np.full((len(keys), len(self.columns)), MISSING, dtype=np.int64)
        missing = []
        for i, k in enumerate(keys):
            row = self.codes.get(k)
            if row is None:
                missing.append(k)
            else:
                out[i] = row
        if missing:
            shown = ", ".join(str(k) for k in missing[:SHOWN_IDS])
            more = ", ..." if len(missing) > SHOWN_IDS else ""
            warnings.warn(
                f"{self.path}: {len(missing)} of {len(keys)} {what} have no row "
                f"({shown}{more}); their attribute labels are missing (-1)",
                stacklevel=2,
            )
        return out

    def decode(self, column: str, code: int) -> str | None:
        """The value name of ``code`` in ``column`` (None for missing)."""
        return None if code == MISSING else self.vocab[column][code]


def _infer_vocab(values: list[str]) -> tuple[str, ...]:
    distinct = set(values)
    try:  # numeric codes sort as numbers ("2" before "10")
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def _key_columns(header: list[str], path: str) -> tuple[str, list[str]]:
    """Which key the header uses, and its column names."""
    for names in TRACKLET_ID_COLUMNS:  # first: MARS-Attribute also has a 'tracklet' column
        if all(n in header for n in names):
            return TRACKLET_ID_KEY, list(names)
    if PID_KEY in header:
        return PID_KEY, [PID_KEY]
    if TRACKLET_KEY in header:
        return TRACKLET_KEY, [TRACKLET_KEY]
    expected = " or ".join(f"'{','.join(n)}'" for n in TRACKLET_ID_COLUMNS)
    raise DatasetError(
        f"{path}, line 1: no key columns in the header {header or '(empty file)'}; expected "
        f"'{PID_KEY}', '{TRACKLET_KEY}' or {expected}"
    )


def _int_cell(path: str, line: int, header: list[str], col: int, cell: str, what: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise DatasetError(
            f"{path}, line {line}, column {col + 1} ({header[col]!r}): {what} {cell!r} is not "
            "an integer"
        ) from None


def load_attribute_table(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    vocab: Mapping[str, Sequence[str]] | None = None,
) -> AttributeTable:
    """Read the attribute CSV at ``path`` (see the module doc for the formats).

    ``columns``: attributes to keep, in this order (default: every column but the key).
    ``vocab``: the values of some or all attributes, in code order; a value outside it is an
    error naming the file, line, column and value. Attributes without a vocabulary use the
    sorted distinct values of their column (integer-coded files: codes 0..max). In the
    integer-coded public files a cell is the code itself.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"attribute table {path} not found; it is a CSV with a 'pid' (or 'tracklet') column "
            "and one column per attribute (`vidreid synth` writes one beside every dataset), "
            "or a public tracklet-level file (MARS-Attribute's mars_attributes.csv)"
        )
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        body = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    key, key_cols = _key_columns(header, path)
    coded = key == TRACKLET_ID_KEY
    available = [h for h in header if h not in key_cols]
    columns = tuple(available if columns is None else columns)
    absent = [c for c in columns if c not in header]
    if absent:
        raise DatasetError(
            f"{path}: attribute column(s) {', '.join(absent)} not in the header; "
            f"it has {', '.join(available) or '(none)'}"
        )
    vocab = {k: tuple(str(v) for v in vs) for k, vs in (vocab or {}).items()}
    key_idx = [header.index(c) for c in key_cols]
    col_idx = [header.index(c) for c in columns]
    raw: dict[Key, list[str]] = {}
    lines: dict[Key, int] = {}
    for line, row in body:
        if len(row) != len(header):
            raise DatasetError(
                f"{path}, line {line}: {len(row)} cells, the header has {len(header)}"
            )
        cells = [row[i].strip() for i in key_idx]
        k: Key
        if key == PID_KEY:
            k = _int_cell(path, line, header, key_idx[0], cells[0], "pid")
        elif key == TRACKLET_KEY:
            k = cells[0].replace(os.sep, "/")
        else:
            k = tuple(_int_cell(path, line, header, i, c, key_cols[j])
                      for j, (i, c) in enumerate(zip(key_idx, cells, strict=True)))
        if k in raw:
            raise DatasetError(f"{path}, line {line}: {key} {k} already has a row (line {lines[k]})")
        raw[k] = [row[i].strip() for i in col_idx]
        lines[k] = line
    if coded:
        return _coded_table(path, header, columns, col_idx, vocab, raw, lines)
    given = [vals for vals in raw.values()]
    full_vocab: dict[str, tuple[str, ...]] = {}
    for j, col in enumerate(columns):
        if col in vocab:
            full_vocab[col] = vocab[col]
        else:
            full_vocab[col] = _infer_vocab(
                [v[j] for v in given if v[j].lower() not in MISSING_CELLS])
    index = {c: {v: i for i, v in enumerate(full_vocab[c])} for c in columns}
    codes: dict[Key, np.ndarray] = {}
    for k, vals in raw.items():
        row_codes = np.full(len(columns), MISSING, dtype=np.int64)
        for j, (col, v) in enumerate(zip(columns, vals, strict=True)):
            code = index[col].get(v)
            if code is None and v.lower() in MISSING_CELLS:
                continue
            if code is None:
                raise DatasetError(
                    f"{path}, line {lines[k]}, column {col_idx[j] + 1} ({col!r}): unknown value "
                    f"{v!r}; expected one of {', '.join(full_vocab[col])} (or an empty cell)"
                )
            row_codes[j] = code
        codes[k] = row_codes
    return AttributeTable(path=path, key=key, columns=columns, vocab=full_vocab, codes=codes)


def _coded_table(
    path: str,
    header: list[str],
    columns: tuple[str, ...],
    col_idx: list[int],
    vocab: dict[str, tuple[str, ...]],
    raw: dict[Key, list[str]],
    lines: dict[Key, int],
) -> AttributeTable:
    """An integer-coded file: each cell is the code (an empty cell is missing)."""
    codes: dict[Key, np.ndarray] = {}
    high = np.full(len(columns), -1, dtype=np.int64)
    for k, vals in raw.items():
        row_codes = np.full(len(columns), MISSING, dtype=np.int64)
        for j, v in enumerate(vals):
            if v.lower() in MISSING_CELLS:
                continue
            code = _int_cell(path, lines[k], header, col_idx[j], v, "attribute code")
            size = len(vocab[columns[j]]) if columns[j] in vocab else None
            if code < 0 or (size is not None and code >= size):
                limit = f"0..{size - 1} ({', '.join(vocab[columns[j]])})" if size else ">= 0"
                raise DatasetError(
                    f"{path}, line {lines[k]}, column {col_idx[j] + 1} ({columns[j]!r}): code "
                    f"{code} is outside {limit}"
                )
            row_codes[j] = code
            high[j] = max(high[j], code)
        codes[k] = row_codes
    full_vocab = {
        col: vocab[col] if col in vocab else tuple(str(i) for i in range(max(high[j], 0) + 1))
        for j, col in enumerate(columns)
    }
    return AttributeTable(path=path, key=TRACKLET_ID_KEY, columns=columns, vocab=full_vocab,
                          codes=codes)


#: MARS frame name: pid (``00-1`` junk), camera, tracklet, frame.
_MARS_FRAME = re.compile(r"(\d{4}|00-1)C(\d)T(\d{4})F\d{3}\.jpg")
#: DukeMTMC-VideoReID frame name: pid, camera, frame index, video frame.
_DUKE_FRAME = re.compile(r"(\d+)_?C(\d+)_?F\d+_?X\d+\.jpg")


def tracklet_id(tracklet: Tracklet) -> tuple[int, int, int]:
    """``(raw pid, camera 1-based, tracklet number)`` of a MARS or DukeMTMC-VideoReID tracklet,
    from its first frame's name (DukeV: the tracklet number is the folder's name)."""
    first = tracklet.frames[0]
    name = os.path.basename(first)
    m = _MARS_FRAME.fullmatch(name)
    if m:
        pid = -1 if m.group(1) == "00-1" else int(m.group(1))
        return pid, int(m.group(2)), int(m.group(3))
    m = _DUKE_FRAME.fullmatch(name)
    folder = os.path.basename(os.path.dirname(first))
    if m and folder.isdigit():
        return int(m.group(1)), int(m.group(2)), int(folder)
    raise DatasetError(
        f"cannot tell the (pid, camera, tracklet) of a tracklet from its frame {first}: a "
        "tracklet-level attribute file needs MARS (0001C1T0001F001.jpg) or DukeMTMC-VideoReID "
        "(<pid>/<tracklet>/0001_C1_F0001_X00001.jpg) frame names"
    )


def tracklet_labels(
    table: AttributeTable, tracklets: Sequence[Tracklet], root: str,
    raw_pids: Sequence[int] | None = None,
) -> np.ndarray:
    """Every tracklet's own labels, ``int64 [len(tracklets), len(columns)]`` (-1 = missing).

    ``tracklet`` / ``tracklet_id`` tables give each tracklet its row; a ``pid`` table gives
    it its identity's row (``raw_pids[t.pid]`` for relabelled train tracklets). Tracklets
    without a row are reported in one warning.
    """
    if table.key == PID_KEY:
        keys: list[Key] = [int(raw_pids[t.pid]) if raw_pids is not None else t.pid
                           for t in tracklets]
    elif table.key == TRACKLET_KEY:
        keys = [tracklet_key(t, root) for t in tracklets]
    else:
        keys = [tracklet_id(t) for t in tracklets]
    return table.labels(keys, what="tracklets")


def tracklet_key(tracklet: Tracklet, root: str) -> str:
    """The ``tracklet`` key of a tracklet: its first frame relative to ``root``, ``/``-separated."""
    return os.path.relpath(tracklet.frames[0], root).replace(os.sep, "/")


def train_identity_labels(table: AttributeTable, dataset: VideoDataset) -> np.ndarray:
    """Labels of the relabelled train identities, ``int64 [num_train_pids, len(columns)]``.

    A ``pid`` table is looked up with ``dataset.extra["train_raw_pids"]`` (label -> raw pid).
    A tracklet-level table is *not* reduced to a majority: an identity gets a value only
    where all its labelled train tracklets agree; where they disagree the label is missing
    (-1) and the count is reported. (Per-tracklet supervision: :func:`tracklet_labels` with
    the batch's tracklet labels, see :class:`vidreid.losses.attribute.AttributeLoss`.)
    """
    n = dataset.num_train_pids
    raw = dataset.extra.get("train_raw_pids")
    if table.key == PID_KEY:
        if raw is None or len(raw) != n:
            raise DatasetError(
                f"dataset {dataset.name!r} does not list the raw pids of its {n} train labels "
                "(extra['train_raw_pids']); a per-identity attribute table needs them"
            )
        return table.labels([int(p) for p in raw], what="train identities")
    per_tracklet = tracklet_labels(table, dataset.train, dataset.root)
    out = np.full((n, len(table.columns)), MISSING, dtype=np.int64)
    conflicts = 0
    for j, col in enumerate(table.columns):
        counts = np.zeros((n, len(table.vocab[col])), dtype=np.int64)
        for t, code in zip(dataset.train, per_tracklet[:, j], strict=True):
            if code != MISSING:
                counts[t.pid, code] += 1
        distinct = (counts > 0).sum(axis=1)
        agree = distinct == 1
        out[agree, j] = counts[agree].argmax(axis=1)
        conflicts += int((distinct > 1).sum())
    if conflicts:
        warnings.warn(
            f"{table.path}: {conflicts} (identity, attribute) pairs have train tracklets that "
            "disagree; those identity-level labels are left missing (-1)",
            stacklevel=2,
        )
    return out


def attribute_groups(
    groups: Mapping[str, Sequence[str]] | str | None = None,
    values: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Check and complete the semantic attribute groups and the attributes' vocabularies.

    ``groups`` is a mapping, or the name of a known set (``ATTRIBUTE_SETS``): ``"synth"``
    (the synthetic renderer's body / head / upper / lower / accessories, also the default)
    or ``"mars"`` (:data:`MARS_ATTRIBUTE_GROUPS` over MARS-Attribute's columns); a named set
    brings its vocabularies unless ``values`` is given. Returns ``(groups, values)`` with
    ``values`` restricted to the grouped attributes, in group order. Errors name the group
    or attribute at fault.
    """
    from vidreid.data.synth.render import ATTRIBUTE_GROUPS, ATTRIBUTE_VALUES

    sets = {"synth": (ATTRIBUTE_GROUPS, ATTRIBUTE_VALUES),
            "mars": (MARS_ATTRIBUTE_GROUPS, MARS_ATTRIBUTE_VALUES)}
    if groups is None:
        groups = "synth"
    if isinstance(groups, str):
        if groups not in sets:
            raise ValueError(f"unknown attribute set {groups!r}; use one of "
                             f"{', '.join(ATTRIBUTE_SETS)} or a mapping group -> attributes")
        groups, default_values = sets[groups]
        values = default_values if values is None else values
    values = ATTRIBUTE_VALUES if values is None else values
    if not groups:
        raise ValueError("attribute groups: need at least one group of attributes")
    out_groups: dict[str, tuple[str, ...]] = {}
    out_values: dict[str, tuple[str, ...]] = {}
    for name, attrs in groups.items():
        if isinstance(attrs, str) or not attrs:
            raise ValueError(f"attribute group {name!r} must list at least one attribute, "
                             f"got {attrs!r}")
        for a in attrs:
            if a in out_values:
                raise ValueError(f"attribute {a!r} is in more than one group")
            if a not in values:
                raise ValueError(
                    f"attribute {a!r} of group {name!r} has no vocabulary; known: "
                    f"{', '.join(values)} (give its values in attribute_values)")
            vocab = tuple(str(v) for v in values[a])
            if len(vocab) < 2 or len(set(vocab)) != len(vocab):
                raise ValueError(f"attribute {a!r} needs at least two distinct values, got {vocab}")
            out_values[a] = vocab
        out_groups[str(name)] = tuple(attrs)
    return out_groups, out_values
