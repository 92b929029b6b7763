"""Crowd votes per image (FER+-style vote CSVs): soft targets and majority labels for a manifest.

A vote CSV has a header row and one row per image: ``file`` (the image's path, relative to
the data set's root as in ``train/angry/Training_10118481.jpg``, or absolute), then one column
of vote counts per answer. The FER+ re-annotation of FER2013 (Barsoum et al. 2016, Microsoft's
FERPlus) has the columns :data:`FERPLUS_COLUMNS`: ten votes per image over eight emotions plus
``unknown`` and ``NF`` (not a face).

**Class names.** FER+ names its emotions otherwise than the FER2013 folders: they are mapped
by :data:`FERPLUS_TO_CLASS` (``happiness`` -> ``happy``, ``anger`` -> ``angry`` ...), then
matched to a manifest's class names case-insensitively. ``contempt`` has no FER2013 class: it
maps to a class named ``contempt`` where the class list has one (an eighth class), and
otherwise its votes are dropped from the soft targets, and an image whose majority is contempt
has no majority label (reason ``contempt``). ``unknown`` and ``NF`` votes never count towards
a class.

**Probability files.** ``rdam eval --out`` writes ``probabilities.csv`` in the same form
(:func:`write_vote_csv`): a ``file`` column, then one column per class of the model, named as
the class, holding the model's (or an ensemble's) probabilities. Read with
:func:`soft_target_columns` (FER+ names and the classes' own names), it gives soft targets as
a vote CSV does: the teacher's targets for distillation (``data.soft_labels``).

**Matching rows to records.** A record matches the row whose ``file`` is the record's path
relative to ``root`` (when given), else whose path parts are the last parts of the record's
path (``train/angry/x.jpg`` matches ``/any/where/fer2013/train/angry/x.jpg``; the longest such
suffix wins). An absolute ``file`` matches that path. A record with no row gets ``None``.

**Soft targets** (:meth:`VoteTable.distributions`): the votes of the manifest's classes,
normalised to sum to 1; ``None`` for a record without a row or without a vote for any of the
classes (all votes unknown, NF or dropped contempt).

**Majority labels** (:meth:`VoteTable.majority`), two rules:

Columns that map to one class (``--class-map disgust=angry``) pool their votes into one
answer first, as they do in the soft targets.

- ``plurality`` (default): the answer with the most votes among all columns (emotions,
  ``unknown`` and ``NF``). It is the label when it is one emotion alone: a tie for the most
  votes gives no label (reason ``tie``), and so does a top answer ``unknown`` / ``NF``
  (reasons ``unknown``, ``not_face``) or contempt without a contempt class (``contempt``).
- ``ferplus``: the rule of the FERPlus reference code (``src/ferplus.py``, mode ``majority``):
  single votes are removed as outliers, then the top answer is the label only if it holds
  more than half of the remaining votes (else reason ``no_majority``); ``unknown`` / ``NF`` /
  contempt as above. Ties cannot pass the half mark.

Nothing here imports torch.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

import numpy as np

from rdam.data.manifest import ClipRecord, Manifest
from rdam.errors import ConfigError, DatasetError

FERPLUS_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
"""The vote columns of the FER+ CSV, in its order."""

FERPLUS_TO_CLASS: dict[str, str] = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
"""FER+ emotion -> the FER2013 folder name (``contempt`` keeps its name: FER2013 lacks it)."""

NON_EMOTIONS = {"unknown": "unknown", "nf": "not_face"}
"""Vote columns that are no emotion (lower-case name -> the no-label reason they give)."""

MAJORITY_RULES = ("plurality", "ferplus")
NO_LABEL_REASONS = ("no_row", "tie", "no_majority", "unknown", "not_face", "contempt")
"""Why a record has no majority label (see the module doc); ``contempt`` stands for any
majority emotion that is not one of the classes."""


def _parts(path: str) -> tuple[str, ...]:
    """Path parts with ``.`` / ``..`` / separators normalised (both ``/`` and ``\\``)."""
    text = os.path.normpath(str(path).replace("\\", "/")).replace("\\", "/")
    return tuple(p for p in PurePath(text).parts if p not in ("", "."))


class VoteTable:
    """A vote CSV read into memory: one vote vector per image path.

    Args:
        path: the CSV (``file`` column first, then vote columns; FER+ column names by default).
        class_of: vote column -> class name (default :data:`FERPLUS_TO_CLASS`); columns named
            in :data:`NON_EMOTIONS` are no emotion; any other column is an error.

    Raises:
        DatasetError: missing file, no ``file`` column, an unknown column, a non-numeric or
            negative vote, or one image listed twice.
    """

    def __init__(self, path: str | Path, class_of: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"vote file {self.path} does not exist")
        class_of = {k.lower(): v for k, v in (class_of or FERPLUS_TO_CLASS).items()}
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or header[0].strip().lower() not in ("file", "path"):
                raise DatasetError(
                    f"{self.path}: the first column must be 'file' (the image path), then one "
                    f"column per vote, e.g. {','.join(('file', *FERPLUS_COLUMNS))}"
                )
            self.columns = [c.strip() for c in header[1:]]
            for c in self.columns:
                if c.lower() not in class_of and c.lower() not in NON_EMOTIONS:
                    raise DatasetError(
                        f"{self.path}: unknown vote column {c!r}; known: "
                        f"{sorted(class_of)} and {sorted(NON_EMOTIONS)}"
                    )
            self.column_class = [class_of.get(c.lower()) for c in self.columns]
            files: list[str] = []
            rows: list[list[float]] = []
            for lineno, row in enumerate(reader, start=2):
                if not row or not row[0].strip():
                    continue
                if len(row) != len(header):
                    raise DatasetError(
                        f"{self.path} line {lineno}: {len(row)} fields, the header has "
                        f"{len(header)}"
                    )
                try:
                    values = [float(v) for v in row[1:]]
                except ValueError as exc:
                    raise DatasetError(f"{self.path} line {lineno}: {exc}") from exc
                if any(v < 0 or not np.isfinite(v) for v in values):
                    raise DatasetError(f"{self.path} line {lineno}: a vote count is negative")
                files.append(row[0].strip())
                rows.append(values)
        self.votes = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.columns))
        self.files = files
        self._absolute: dict[tuple[str, ...], int] = {}
        self._relative: dict[tuple[str, ...], int] = {}
        for i, name in enumerate(files):
            key = _parts(name)
            table = self._absolute if os.path.isabs(name) else self._relative
            if key in table:
                raise DatasetError(f"{self.path}: {name!r} is listed twice")
            table[key] = i
        self._lengths = sorted({len(k) for k in self._relative}, reverse=True)

    def __len__(self) -> int:
        return len(self.files)

    # ---- rows of records

    def row_of(self, path: str | Path, root: str | Path | None = None) -> int | None:
        """The row index of an image (see the module doc for the matching), or None."""
        path = str(path)
        full = _parts(os.path.abspath(path))
        if full in self._absolute:
            return self._absolute[full]
        if root is not None:
            try:
                rel = os.path.relpath(os.path.abspath(path), os.path.abspath(str(root)))
            except ValueError:  # another drive (Windows)
                rel = None
            if rel is not None and not rel.startswith(".."):
                found = self._relative.get(_parts(rel))
                if found is not None:
                    return found
        own = _parts(path) if not os.path.isabs(path) else full
        for n in self._lengths:
            if n <= len(own):
                found = self._relative.get(own[-n:])
                if found is not None:
                    return found
        return None

    def rows(
        self, records: Manifest | Sequence[ClipRecord], root: str | Path | None = None
    ) -> list[int | None]:
        """:meth:`row_of` for each record."""
        return [self.row_of(r.path, root) for r in records]

    # ---- soft targets

    def _class_columns(self, class_names: Sequence[str]) -> np.ndarray:
        """``(columns, classes)`` 0/1 matrix: which vote column counts for which class."""
        index = {name.lower(): i for i, name in enumerate(class_names)}
        if len(index) != len(class_names):
            raise ConfigError(f"class names must differ in more than case: {list(class_names)}")
        out = np.zeros((len(self.columns), len(class_names)))
        for j, name in enumerate(self.column_class):
            if name is not None and name.lower() in index:
                out[j, index[name.lower()]] = 1.0
        if not out.any():
            raise ConfigError(
                f"none of the vote columns of {self.path} ({self.columns}) is one of the classes "
                f"{list(class_names)}"
            )
        return out

    def class_votes(
        self, records: Manifest | Sequence[ClipRecord], class_names: Sequence[str], root=None
    ) -> list[np.ndarray | None]:
        """Per record its raw votes per class ``(C,)`` (columns without a class dropped), or
        None without a row."""
        to_class = self._class_columns(class_names)
        return [None if i is None else self.votes[i] @ to_class for i in self.rows(records, root)]

    def distributions(
        self, records: Manifest | Sequence[ClipRecord], class_names: Sequence[str], root=None
    ) -> list[np.ndarray | None]:
        """Per record the vote distribution over ``class_names`` ``(C,)`` float64 summing to 1,
        or None (no row, or no vote for any of the classes). See the module doc."""
        out: list[np.ndarray | None] = []
        for votes in self.class_votes(records, class_names, root):
            total = 0.0 if votes is None else float(votes.sum())
            out.append(None if total <= 0 else votes / total)
        return out

    # ---- majority labels

    def majority(
        self,
        records: Manifest | Sequence[ClipRecord],
        class_names: Sequence[str],
        root=None,
        rule: str = "plurality",
    ) -> tuple[list[int | None], list[str | None]]:
        """The majority label of each record (an index into ``class_names``) or None, and the
        reason of each None (:data:`NO_LABEL_REASONS`; None where there is a label).

        Raises:
            ConfigError: an unknown ``rule`` (:data:`MAJORITY_RULES`).
        """
        if rule not in MAJORITY_RULES:
            raise ConfigError(f"unknown majority rule {rule!r}; valid: {', '.join(MAJORITY_RULES)}")
        answers, pool = self._answers(self._class_columns(class_names))
        labels: list[int | None] = []
        reasons: list[str | None] = []
        for row in self.rows(records, root):
            label, reason = (
                (None, "no_row") if row is None else self._majority(row, answers, pool, rule)
            )
            labels.append(label)
            reasons.append(reason)
        return labels, reasons

    def _answers(self, to_class: np.ndarray) -> tuple[list[tuple[str, int]], np.ndarray]:
        """The answers a majority is taken over: one per class (the columns of a class pool
        their votes, as in the soft targets), and each column without a class on its own; with
        the ``(columns, answers)`` 0/1 matrix that pools the columns' votes into them."""
        of_column = [
            ("class", int(classes[0])) if len(classes) else ("column", column)
            for column, classes in enumerate(np.flatnonzero(row) for row in to_class)
        ]
        keys = list(dict.fromkeys(of_column))
        pool = np.zeros((len(of_column), len(keys)))
        pool[np.arange(len(of_column)), [keys.index(k) for k in of_column]] = 1.0
        return keys, pool

    def _majority(
        self, row: int, keys: list[tuple[str, int]], pool: np.ndarray, rule: str
    ) -> tuple[int | None, str | None]:
        votes = self.votes[row].copy()
        if rule == "ferplus":
            votes[votes <= 1.0] = 0.0  # single votes are outliers (per column, as FERPlus)
        pooled = votes @ pool
        top = float(pooled.max()) if len(pooled) else 0.0
        if top <= 0:
            return None, "no_majority"
        winners = np.flatnonzero(pooled == top)
        if rule == "plurality" and len(winners) > 1:
            return None, "tie"
        if rule == "ferplus" and not top > 0.5 * float(pooled.sum()):
            return None, "no_majority"
        kind, index = keys[int(winners[0])]
        if kind == "class":
            return index, None
        name = self.columns[index].lower()
        return None, NON_EMOTIONS.get(name, "contempt")


def soft_targets(
    records: Manifest | Sequence[ClipRecord],
    votes: VoteTable,
    class_names: Sequence[str],
    weight: float = 1.0,
    root: str | Path | None = None,
) -> tuple[np.ndarray, int]:
    """Training targets ``(N, C)`` float32, each row summing to 1: ``weight`` x the vote
    distribution + ``(1 - weight)`` x the one-hot record label where a record has votes, the
    one-hot label where it has none. Also returns how many records had votes.
    (:func:`mixed_soft_targets` with one source.)

    Raises:
        ConfigError: ``weight`` outside [0, 1].
        DatasetError: a record with neither a label nor votes.
    """
    targets, found = mixed_soft_targets(records, [(votes, weight)], class_names, root)
    return targets, found[0]


def mixed_soft_targets(
    records: Manifest | Sequence[ClipRecord],
    sources: Sequence[tuple[VoteTable, float]],
    class_names: Sequence[str],
    root: str | Path | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Training targets ``(N, C)`` float32 from several vote/probability tables, each with
    its weight ``w_s`` (summing to at most 1): per record

        target = sum_s w_s * dist_s + (1 - sum_s w_s) * one_hot(label),

    the sums over the sources with a distribution for the record (a source without one gives
    its weight to the label). A record without a label is trained towards its sources' mean,
    ``sum_s w_s dist_s / sum_s w_s``. Also returns, per source, how many records it had.

    Raises:
        ConfigError: a weight outside [0, 1], or weights summing to more than 1.
        DatasetError: a record with neither a label nor a distribution (of weight > 0).
    """
    for _, weight in sources:
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"soft label weight must be in [0, 1], got {weight}")
    if sum(w for _, w in sources) > 1.0 + 1e-9:
        raise ConfigError(
            f"soft label weights sum to {sum(w for _, w in sources):g}; at most 1 is allowed"
        )
    records = list(records)
    n = len(class_names)
    mixed = np.zeros((len(records), n), dtype=np.float64)
    mass = np.zeros(len(records), dtype=np.float64)  # the weight of the sources found
    found = []
    for votes, weight in sources:
        count = 0
        for i, dist in enumerate(votes.distributions(records, class_names, root)):
            if dist is not None:
                count += 1
                mixed[i] += weight * dist
                mass[i] += weight
        found.append(count)
    out = np.zeros_like(mixed)
    for i, record in enumerate(records):
        if record.label is not None:
            out[i] = mixed[i]
            out[i, record.label] += 1.0 - mass[i]
        elif mass[i] > 0:
            out[i] = mixed[i] / mass[i]
        else:
            tables = ", ".join(str(v.path) for v, _ in sources)
            raise DatasetError(
                f"{record.path} has no label and no votes in {tables}: it has no target"
            )
    return out.astype(np.float32), found


def soft_target_columns(class_names: Sequence[str]) -> dict[str, str]:
    """Vote column -> class for soft targets over ``class_names``: the FER+ names
    (:data:`FERPLUS_TO_CLASS`) and each class's own name, so that a FER+ vote CSV and a
    probability file of :func:`write_vote_csv` both read; any other column is refused."""
    return {**FERPLUS_TO_CLASS, **{name: name for name in class_names}}


def write_vote_csv(
    path: str | Path, files: Sequence[str], values: np.ndarray, columns: Sequence[str]
) -> Path:
    """Write per image a row of ``values`` (``(N, len(columns))``, e.g. probabilities) under
    the header ``file,<columns>``, readable by :class:`VoteTable`. The paths are written
    relative to the parent of the folder that holds all of them, so they keep that folder's
    name (``train/angry/x.jpg`` for a split folder ``train``), which rows match by the suffix
    rule of the module doc, wherever the data set lies, and never an image of another split
    with the same name (``val/angry/x.jpg``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(files), len(columns)):
        raise ValueError(
            f"values of shape {values.shape} for {len(files)} files and {len(columns)} columns"
        )
    paths = [os.path.abspath(str(f)) for f in files]
    base = os.path.dirname(os.path.commonpath([os.path.dirname(f) for f in paths])) if paths else ""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", *columns])
        for name, row in zip(paths, values, strict=True):
            rel = os.path.relpath(name, base).replace(os.sep, "/")
            writer.writerow([rel, *(f"{v:.6g}" for v in row)])
    return path


def reason_counts(reasons: Sequence[str | None]) -> dict[str, int]:
    """How many records have no label, per reason (those with a count only)."""
    counts = Counter(r for r in reasons if r is not None)
    return {r: counts[r] for r in NO_LABEL_REASONS if counts.get(r)}


__all__ = [
    "FERPLUS_COLUMNS",
    "FERPLUS_TO_CLASS",
    "MAJORITY_RULES",
    "NON_EMOTIONS",
    "NO_LABEL_REASONS",
    "VoteTable",
    "reason_counts",
    "soft_target_columns",
    "soft_targets",
    "write_vote_csv",
]
