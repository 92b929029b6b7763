"""Manifests: the labelled clips of a data set (:class:`ClipRecord`, :class:`Manifest`), saved
as CSV or JSON and read back.

The adapters that read folder layouts and public data sets into a manifest, and
``load_manifest``, which picks one, are :mod:`rdam.data.layouts`. Nothing here imports torch,
so preprocessing workers and ``rdam validate`` start without it.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdam.errors import DatasetError


@dataclass(frozen=True)
class ClipRecord:
    """One clip: a video file, an image-sequence folder or a single image.

    Attributes:
        path: absolute path of the file or folder.
        label: class index into the manifest's ``class_names``; None when unlabelled.
        split: split name (``train``, ``val``, ``test``, ``all`` ...).
        group: subject / group id (e.g. CK+ subject ``S005``) for subject-wise splits.
    """

    path: str
    label: int | None
    split: str
    group: str | None = None


@dataclass
class Manifest:
    """A list of clips and the ordered class names their labels index."""

    records: list[ClipRecord]
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.class_names)
        for r in self.records:
            if r.label is not None and not 0 <= r.label < n:
                raise DatasetError(
                    f"record {r.path} has label {r.label} outside the {n} classes "
                    f"{self.class_names}; fix the manifest or its class list"
                )

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index: int) -> ClipRecord:
        return self.records[index]

    @property
    def splits(self) -> list[str]:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(r.split for r in self.records))

    def split(self, name: str) -> Manifest:
        """The records of one split (same class names). Raises DatasetError if it is empty."""
        records = [r for r in self.records if r.split == name]
        if not records:
            raise DatasetError(
                f"split {name!r} has no clips; splits present: {self.splits or 'none'}"
            )
        return Manifest(records, list(self.class_names))

    def label_counts(self) -> dict[str, int]:
        """Clips per class name in class order, plus ``"<unlabelled>"`` if any are unlabelled."""
        counts = Counter(r.label for r in self.records)
        out = {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}
        if counts.get(None):
            out["<unlabelled>"] = counts[None]
        return out

    def label_name(self, record: ClipRecord) -> str | None:
        return None if record.label is None else self.class_names[record.label]

    # ---- serialisation

    def to_csv(self, path: str | Path) -> None:
        """Write ``path,label,split,group`` rows (label = class name, blank when unlabelled).

        Paths under the manifest's folder are written relative to it. A first comment line
        ``# classes: a,b,c`` keeps the class order.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            fh.write("# classes: " + ",".join(self.class_names) + "\n")
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "split", "group"])
            for r in self.records:
                writer.writerow(
                    [
                        _relative_to(r.path, path.parent),
                        self.label_name(r) or "",
                        r.split,
                        r.group or "",
                    ]
                )

    def to_json(self, path: str | Path) -> None:
        """Write ``{"class_names": [...], "records": [{path, label, split, group}]}``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "class_names": list(self.class_names),
            "records": [
                {
                    "path": _relative_to(r.path, path.parent),
                    "label": self.label_name(r),
                    "split": r.split,
                    "group": r.group,
                }
                for r in self.records
            ],
        }
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[dict[str, Any]],
        base: str | Path,
        class_names: Sequence[str] | None = None,
        source: str = "<rows>",
    ) -> Manifest:
        """Build from dict rows with ``path``, ``label`` (class name), ``split``, ``group``.

        Relative paths are resolved against ``base``. Without ``class_names`` the classes are
        the sorted distinct labels.
        """
        rows = list(rows)
        base = Path(base)
        for i, row in enumerate(rows):
            if not row.get("path"):
                raise DatasetError(f"{source}: row {i + 1} has no path")
        labels = [str(row["label"]) if row.get("label") not in (None, "") else None for row in rows]
        if class_names is None:
            class_names = sorted({lab for lab in labels if lab is not None})
        index = {name: i for i, name in enumerate(class_names)}
        records = []
        for i, (row, lab) in enumerate(zip(rows, labels)):
            if lab is not None and lab not in index:
                raise DatasetError(
                    f"{source}: row {i + 1} has label {lab!r} not among the classes "
                    f"{list(class_names)}"
                )
            p = Path(str(row["path"])).expanduser()
            records.append(
                ClipRecord(
                    path=str(p if p.is_absolute() else (base / p).resolve()),
                    label=None if lab is None else index[lab],
                    split=str(row.get("split") or "all"),
                    group=str(row["group"]) if row.get("group") not in (None, "") else None,
                )
            )
        return cls(records, list(class_names))

    @classmethod
    def from_csv(cls, path: str | Path, class_names: Sequence[str] | None = None) -> Manifest:
        """Read a CSV manifest (header ``path,label,split[,group]``; ``#`` lines are comments,
        ``# classes: a,b,c`` gives the class order). Relative paths are resolved against the
        CSV's folder."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"manifest {path} does not exist; give the path of a .csv file")
        text = path.read_text(encoding="utf-8").splitlines()
        data_lines = []
        for line in text:
            if line.startswith("#"):
                m = re.match(r"#\s*classes:\s*(.*)$", line)
                if m and class_names is None and m.group(1).strip():
                    class_names = [c.strip() for c in m.group(1).split(",")]
                continue
            if line.strip():
                data_lines.append(line)
        reader = csv.DictReader(data_lines)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise DatasetError(
                f"manifest {path} needs a header row with at least a 'path' column "
                f"(path,label,split,group); found {reader.fieldnames}"
            )
        return cls.from_rows(reader, path.parent, class_names, source=str(path))

    @classmethod
    def from_json(cls, path: str | Path, class_names: Sequence[str] | None = None) -> Manifest:
        """Read a JSON manifest written by :meth:`to_json` (or a bare list of records)."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"manifest {path} does not exist; give the path of a .json file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"manifest {path} is not valid JSON: {exc}") from exc
        if isinstance(data, list):
            rows = data
        elif isinstance(data, dict) and isinstance(data.get("records"), list):
            rows = data["records"]
            if class_names is None and data.get("class_names"):
                class_names = [str(c) for c in data["class_names"]]
        else:
            raise DatasetError(
                f"manifest {path} must be a list of records or an object with 'records'"
            )
        if not all(isinstance(r, dict) for r in rows):
            raise DatasetError(f"manifest {path}: every record must be an object")
        return cls.from_rows(rows, path.parent, class_names, source=str(path))


def _relative_to(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def default_data_name(kind: str, root: str) -> str:
    """The report name of a data set: its root folder's name (a manifest file's stem), else
    the kind (``synthetic``)."""
    if kind == "synthetic" or not root:
        return kind
    path = Path(root)
    if path.suffix.lower() in (".csv", ".json"):
        return path.stem
    return path.resolve().name or kind


__all__ = ["ClipRecord", "Manifest", "default_data_name"]
