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
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

PID_KEY = "pid"
TRACKLET_KEY = "tracklet"
MISSING = -1  # code of a missing label (cross_entropy's ignore_index)
#: Cells read as a missing label (case-insensitive) unless the attribute has such a value.
MISSING_CELLS = ("", "na", "n/a", "nan", "?")
SHOWN_IDS = 5  # ids named in a "missing from the table" warning


@dataclass(frozen=True)
class AttributeTable:
    """An attribute file read and coded.

    ``key`` is ``"pid"`` or ``"tracklet"``; ``columns`` the attributes, in order; ``vocab``
    each attribute's values (code = index); ``codes`` maps a key (``int`` pid or ``str``
    tracklet path) to an ``int64 [len(columns)]`` row of codes, -1 = missing.
    """

    path: str
    key: str
    columns: tuple[str, ...]
    vocab: dict[str, tuple[str, ...]]
    codes: dict[int | str, np.ndarray]

    def labels(self, keys: Sequence[int | str], what: str = "identities") -> np.ndarray:
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


def load_attribute_table(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    vocab: Mapping[str, Sequence[str]] | None = None,
) -> AttributeTable:
    """Read the attribute CSV at ``path`` (see the module doc for the format).

    ``columns``: attributes to keep, in this order (default: every column but the key).
    ``vocab``: the values of some or all attributes, in code order; a value outside it is an
    error naming the file, line, column and value. Attributes without a vocabulary use the
    sorted distinct values of their column.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"attribute table {path} not found; it is a CSV with a 'pid' (or 'tracklet') column "
            "and one column per attribute (`vidreid synth` writes one beside every dataset)"
        )
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        body = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    if PID_KEY in header:
        key = PID_KEY
    elif TRACKLET_KEY in header:
        key = TRACKLET_KEY
    else:
        raise DatasetError(
            f"{path}: no '{PID_KEY}' or '{TRACKLET_KEY}' key column in the header "
            f"{header or '(empty file)'}"
        )
    available = [h for h in header if h != key]
    columns = tuple(available if columns is None else columns)
    absent = [c for c in columns if c not in header]
    if absent:
        raise DatasetError(
            f"{path}: attribute column(s) {', '.join(absent)} not in the header; "
            f"it has {', '.join(available) or '(none)'}"
        )
    vocab = {k: tuple(str(v) for v in vs) for k, vs in (vocab or {}).items()}
    key_idx = header.index(key)
    col_idx = [header.index(c) for c in columns]
    raw: dict[int | str, list[str]] = {}
    lines: dict[int | str, int] = {}
    for line, row in body:
        if len(row) != len(header):
            raise DatasetError(
                f"{path}, line {line}: {len(row)} cells, the header has {len(header)}"
            )
        cell = row[key_idx].strip()
        k: int | str = cell.replace(os.sep, "/")
        if key == PID_KEY:
            try:
                k = int(cell)
            except ValueError:
                raise DatasetError(f"{path}, line {line}: pid {cell!r} is not an integer") from None
        if k in raw:
            raise DatasetError(f"{path}, line {line}: {key} {k} already has a row (line {lines[k]})")
        raw[k] = [row[i].strip() for i in col_idx]
        lines[k] = line
    given = [vals for vals in raw.values()]
    full_vocab: dict[str, tuple[str, ...]] = {}
    for j, col in enumerate(columns):
        if col in vocab:
            full_vocab[col] = vocab[col]
        else:
            full_vocab[col] = _infer_vocab(
                [v[j] for v in given if v[j].lower() not in MISSING_CELLS])
    index = {c: {v: i for i, v in enumerate(full_vocab[c])} for c in columns}
    codes: dict[int | str, np.ndarray] = {}
    for k, vals in raw.items():
        row_codes = np.full(len(columns), MISSING, dtype=np.int64)
        for j, (col, v) in enumerate(zip(columns, vals, strict=True)):
            code = index[col].get(v)
            if code is None and v.lower() in MISSING_CELLS:
                continue
            if code is None:
                raise DatasetError(
                    f"{path}, line {lines[k]}: unknown value {v!r} in column {col!r}; "
                    f"expected one of {', '.join(full_vocab[col])} (or an empty cell)"
                )
            row_codes[j] = code
        codes[k] = row_codes
    return AttributeTable(path=path, key=key, columns=columns, vocab=full_vocab, codes=codes)


def tracklet_key(tracklet: Tracklet, root: str) -> str:
    """The ``tracklet`` key of a tracklet: its first frame relative to ``root``, ``/``-separated."""
    return os.path.relpath(tracklet.frames[0], root).replace(os.sep, "/")


def train_identity_labels(table: AttributeTable, dataset: VideoDataset) -> np.ndarray:
    """Labels of the relabelled train identities, ``int64 [num_train_pids, len(columns)]``.

    A ``pid`` table is looked up with ``dataset.extra["train_raw_pids"]`` (label -> raw pid).
    A ``tracklet`` table gives each identity, per attribute, the most frequent labelled value
    of its train tracklets (ties: the lowest code). Missing identities are reported and -1.
    """
    n = dataset.num_train_pids
    if table.key == PID_KEY:
        raw = dataset.extra.get("train_raw_pids")
        if raw is None or len(raw) != n:
            raise DatasetError(
                f"dataset {dataset.name!r} does not list the raw pids of its {n} train labels "
                "(extra['train_raw_pids']); a per-identity attribute table needs them"
            )
        return table.labels([int(p) for p in raw], what="train identities")
    per_tracklet = table.labels(
        [tracklet_key(t, dataset.root) for t in dataset.train], what="train tracklets")
    out = np.full((n, len(table.columns)), MISSING, dtype=np.int64)
    for j, col in enumerate(table.columns):
        counts = np.zeros((n, len(table.vocab[col])), dtype=np.int64)
        for t, code in zip(dataset.train, per_tracklet[:, j], strict=True):
            if code != MISSING:
                counts[t.pid, code] += 1
        has = counts.sum(axis=1) > 0
        out[has, j] = counts[has].argmax(axis=1)
    return out


def attribute_groups(
    groups: Mapping[str, Sequence[str]] | None = None,
    values: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Check and complete the semantic attribute groups and the attributes' vocabularies.

    Defaults: the synthetic renderer's groups (body / head / upper / lower / accessories)
    and vocabularies. Returns ``(groups, values)`` with ``values`` restricted to the grouped
    attributes, in group order. Errors name the group or attribute at fault.
    """
    from vidreid.data.synth.render import ATTRIBUTE_GROUPS, ATTRIBUTE_VALUES

    groups = ATTRIBUTE_GROUPS if groups is None else groups
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
