"""Labelled clips: manifests, data-set adapters and the clip data set.

A :class:`Manifest` is the list of clips (path, label, split, optional group) plus the ordered
class names. Adapters turn the layouts of public data sets into manifests; :class:`ClipDataset`
composes a manifest with the video reader (:mod:`rdam.data.video`), the segment sampler
(:mod:`rdam.data.sampling`), the face cropper (:mod:`rdam.data.faces`) or the preprocessing
cache (:mod:`rdam.data.cache`), and returns one dict per clip; :func:`collate_clips` pads a list
of them into a batch with a mask.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from rdam.data.transforms import fit_frames
from rdam.errors import (
    ConfigError,
    CorruptVideoError,
    DatasetError,
    EmptyVideoError,
    VideoNotFoundError,
)

if TYPE_CHECKING:
    from rdam.data.cache import CacheEntry, ClipCache

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)
#: Folder names recognised as split folders (``root/<split>/<class>/...``).
SPLIT_NAMES = frozenset(
    {"train", "training", "val", "valid", "validation", "test", "testing", "dev", "publictest"}
)
EKMAN6_CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
VIDEOEMOTION8_CLASSES = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "sadness",
    "surprise",
    "trust",
)
STREAMS = ("frames", "faces", "both")
SAMPLER_MODES = ("random", "center")
_CKPLUS_NAME = re.compile(r"^(S\d+)_\d+$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Records and manifests


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


# --------------------------------------------------------------------------------------------
# Adapters


def clip_kind(path: str | Path) -> str:
    """``image`` (single image file), ``sequence`` (folder of frames) or ``video``."""
    p = Path(path)
    if p.is_dir():
        return "sequence"
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    return "video"


def _list_files(folder: Path, extensions: frozenset[str]) -> list[Path]:
    with os.scandir(folder) as it:
        names = sorted(
            e.name for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in extensions
        )
    return [folder / n for n in names]


def _list_dirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        return [folder / n for n in sorted(e.name for e in it if e.is_dir())]


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data set root {root} is not a folder; check the path")
    return root.resolve()


def _split_folders(root: Path, split: str | None) -> list[tuple[str, Path]]:
    """``[(split_name, folder_with_class_dirs)]`` for a class layout or a split layout."""
    if split is not None:
        return [(split, root)]
    subdirs = _list_dirs(root)
    if subdirs and all(d.name.lower() in SPLIT_NAMES for d in subdirs):
        return [(d.name, d) for d in subdirs]
    return [("all", root)]


def _folder_manifest(
    root: str | Path,
    split: str | None,
    class_names: Sequence[str] | None,
    items: Callable[[Path], list[Path]],
    what: str,
    group_of: Callable[[Path], str | None] = lambda p: None,
) -> Manifest:
    root = _check_root(root)
    layout = _split_folders(root, split)
    found: list[tuple[str, str, Path]] = []  # (split, class folder name, item)
    for split_name, folder in layout:
        for class_dir in _list_dirs(folder):
            found.extend((split_name, class_dir.name, p) for p in items(class_dir))
    if class_names is None:
        class_names = sorted({c for _, c, _ in found})
    index = {name.lower(): i for i, name in enumerate(class_names)}
    records = []
    for split_name, cls_name, p in found:
        if cls_name.lower() not in index:
            continue  # a folder outside the given class list is not part of the data set
        records.append(ClipRecord(str(p), index[cls_name.lower()], split_name, group_of(p)))
    if not records:
        raise DatasetError(
            f"no {what} found under {root}; expected {root}/<class>/... or "
            f"{root}/<split>/<class>/... with split folders named one of {sorted(SPLIT_NAMES)}"
        )
    return Manifest(records, list(class_names))


def image_folder_manifest(
    root: str | Path, split: str | None = None, class_names: Sequence[str] | None = None
) -> Manifest:
    """Images in class folders, each image a one-frame clip (FER2013 layout).

    Layouts: ``root/<split>/<class>/*.jpg`` (split folders named train/val/test/...) or
    ``root/<class>/*.jpg``, whose split is ``split`` (default ``all``). Classes are the sorted
    class folder names unless ``class_names`` is given (folders outside it are ignored).
    """
    return _folder_manifest(
        root, split, class_names, lambda d: _list_files(d, IMAGE_EXTENSIONS), "images"
    )


def video_folder_manifest(
    root: str | Path, split: str | None = None, class_names: Sequence[str] | None = None
) -> Manifest:
    """Videos in class folders: ``root/[<split>/]<class>/*.mp4`` (see image_folder_manifest)."""
    return _folder_manifest(
        root, split, class_names, lambda d: _list_files(d, VIDEO_EXTENSIONS), "videos"
    )


def ckplus_group(name: str) -> str | None:
    """Subject id of a CK+-style sequence name (``S005_001`` -> ``S005``), else None."""
    m = _CKPLUS_NAME.match(name)
    return m.group(1).upper() if m else None


def sequence_folder_manifest(
    root: str | Path, split: str | None = None, class_names: Sequence[str] | None = None
) -> Manifest:
    """Image sequences: ``root/[<split>/]<class>/<sequence>/*.png``, one clip per sequence.

    A sequence folder named like CK+ (``S005_001``) gets its subject (``S005``) as group, so
    subject-independent splits can be made.
    """

    def sequences(class_dir: Path) -> list[Path]:
        return [d for d in _list_dirs(class_dir) if _list_files(d, IMAGE_EXTENSIONS)]

    return _folder_manifest(
        root,
        split,
        class_names,
        sequences,
        "image sequences",
        group_of=lambda p: ckplus_group(p.name),
    )


def _read_split_list(
    list_file: Path, split: str, root: Path, class_names: Sequence[str], strict: bool
) -> list[ClipRecord]:
    """Parse a split list: one clip per line, ``relative/path [label]``; ``#`` comments.

    The label is the optional second token (class name, any case) or else the first folder of
    the path. A path that does not exist under ``root`` is looked up by file name among the
    videos under ``root``.
    """
    index = {name.lower(): i for i, name in enumerate(class_names)}
    by_name: dict[str, list[Path]] | None = None
    records, missing = [], []
    for lineno, raw in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1) if " " in line or "\t" in line else [line]
        rel, label_tok = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)
        if label_tok is not None and label_tok.lower() not in index:
            rel, label_tok = line, None  # a path with spaces and no label
        p = root / rel
        if not p.exists():
            if by_name is None:
                by_name = {}
                for v in root.rglob("*"):
                    if v.suffix.lower() in VIDEO_EXTENSIONS:
                        by_name.setdefault(v.name, []).append(v)
            hits = by_name.get(Path(rel).name, [])
            if len(hits) == 1:
                p = hits[0]
            else:
                missing.append(f"line {lineno}: {rel}")
                continue
        rel_parts = p.relative_to(root).parts
        lab = (
            label_tok.lower()
            if label_tok
            else next((q.lower() for q in rel_parts[:-1] if q.lower() in index), None)
        )
        if lab is None:
            raise DatasetError(
                f"{list_file} line {lineno}: cannot tell the class of {rel!r}; put the clip in "
                f"a class folder or add the class name after the path ({list(class_names)})"
            )
        records.append(ClipRecord(str(p.resolve()), index[lab], split))
    if missing and strict:
        shown = "; ".join(missing[:5]) + (
            f"; ... ({len(missing)} in all)" if len(missing) > 5 else ""
        )
        raise DatasetError(
            f"{list_file} names clips that are not under {root}: {shown}. "
            "Fix the split list or pass strict=False to skip them"
        )
    if missing:
        log.warning("%s: %d listed clips are missing and were skipped", list_file, len(missing))
    return records


def _find_list(folder: Path, stems: Sequence[str]) -> Path | None:
    if not folder.is_dir():
        return None
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for stem in stems:
        for ext in (".txt", ".lst", ".csv"):
            if stem.lower() + ext in files:
                return files[stem.lower() + ext]
    return None


def _fixed_class_manifest(
    root: Path, class_names: Sequence[str], lists: dict[str, Path] | None, strict: bool
) -> Manifest:
    if lists:
        records = []
        for split, list_file in lists.items():
            records.extend(_read_split_list(list_file, split, root, class_names, strict))
        if not records:
            raise DatasetError(f"split lists {list(lists.values())} name no clips")
        return Manifest(records, list(class_names))
    return video_folder_manifest(root, split="all", class_names=class_names)


def ekman6_manifest(
    root: str | Path, split_file: str | Path | None = None, strict: bool = True
) -> Manifest:
    """Ekman-6 (Xu et al.): videos in ``root/<class>/`` for anger, disgust, fear, joy, sadness,
    surprise (folder names matched case-insensitively).

    Split lists: ``split_file`` is either one file whose lines are ``relative/path split`` or a
    folder holding ``train.txt`` and ``test.txt``; without it ``root/train.txt`` and
    ``root/test.txt`` are used when present, else every clip gets split ``all``. The exact format
    of the official lists could not be confirmed here, so the documented format is one clip per
    line, ``relative/path [class]``, the class defaulting to the path's class folder.
    """
    root = _check_root(root)
    classes = list(EKMAN6_CLASSES)
    lists: dict[str, Path] = {}
    if split_file is not None and Path(split_file).is_file():
        split_file = Path(split_file)
        rows: dict[str, list[str]] = {}
        for lineno, raw in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise DatasetError(
                    f"{split_file} line {lineno}: expected 'relative/path split', got {line!r}"
                )
            rows.setdefault(parts[1], []).append(parts[0])
        records = []
        for split, paths in rows.items():
            tmp = _write_temp_list(paths)
            try:
                records.extend(_read_split_list(tmp, split, root, classes, strict))
            finally:
                tmp.unlink()
        return Manifest(records, classes)
    folder = Path(split_file) if split_file is not None else root
    if split_file is not None and not folder.is_dir():
        raise DatasetError(f"split file {split_file} does not exist")
    for split in ("train", "val", "test"):
        found = _find_list(folder, [split])
        if found:
            lists[split] = found
    if split_file is not None and not lists:
        raise DatasetError(f"no train.txt/test.txt split lists in {folder}")
    return _fixed_class_manifest(root, classes, lists, strict)


def _write_temp_list(lines: list[str]) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return Path(name)


def videoemotion8_manifest(
    root: str | Path,
    split_index: int = 1,
    split_dir: str | Path | None = None,
    strict: bool = True,
) -> Manifest:
    """VideoEmotion-8 (Jiang et al., AAAI 2014): videos in ``root/<Class>/`` for anger,
    anticipation, disgust, fear, joy, sadness, surprise, trust; 10 train/test splits.

    Split ``i`` (1..10) is read from ``split_dir`` (default ``root/splits``, else ``root``):
    ``train_{i}.txt`` / ``test_{i}.txt`` (also ``train{i}``, ``trainset_{i}``; any case). The
    official list format could not be confirmed here; the documented format is one clip per
    line, ``relative/path [class]``, the class defaulting to the path's class folder; a bare
    file name is looked up under ``root``. Without split lists every clip gets split ``all``.
    """
    if not 1 <= int(split_index) <= 10:
        raise ConfigError(f"VideoEmotion-8 has splits 1..10, got split_index={split_index}")
    root = _check_root(root)
    classes = list(VIDEOEMOTION8_CLASSES)
    folders = [Path(split_dir)] if split_dir is not None else [root / "splits", root]
    if split_dir is not None and not folders[0].is_dir():
        raise DatasetError(f"split folder {split_dir} does not exist")
    i = int(split_index)
    for folder in folders:
        lists = {}
        for split in ("train", "test"):
            found = _find_list(folder, [f"{split}_{i}", f"{split}{i}", f"{split}set_{i}"])
            if found:
                lists[split] = found
        if lists:
            if "train" not in lists or "test" not in lists:
                raise DatasetError(
                    f"{folder} has only {sorted(lists)} lists for split {i}; need train and test"
                )
            return _fixed_class_manifest(root, classes, lists, strict)
    if split_dir is not None:
        raise DatasetError(f"no train_{i}.txt/test_{i}.txt split lists in {split_dir}")
    return _fixed_class_manifest(root, classes, None, strict)


def _manifest_file(path: str | Path, class_names: Sequence[str] | None = None) -> Manifest:
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return Manifest.from_json(path, class_names)
    return Manifest.from_csv(path, class_names)


MANIFEST_KINDS: dict[str, Callable[..., Manifest]] = {
    "csv": Manifest.from_csv,
    "json": Manifest.from_json,
    "manifest": _manifest_file,
    "image_folder": image_folder_manifest,
    "video_folder": video_folder_manifest,
    "sequence_folder": sequence_folder_manifest,
    "ekman6": ekman6_manifest,
    "videoemotion8": videoemotion8_manifest,
}
_ROOT_ARG = {"csv": "path", "json": "path", "manifest": "path"}


def load_manifest(spec: str | Path | dict[str, Any]) -> Manifest:
    """Build a manifest from a spec.

    ``spec`` is a path to a ``.csv``/``.json`` manifest, ``"kind:root"`` (e.g.
    ``"image_folder:/data/fer2013"``), or a dict ``{"kind": ..., "root"|"path": ..., **options}``
    whose options go to the adapter (``split``, ``class_names``, ``split_file``,
    ``split_index``, ``split_dir``, ``strict``). Kinds: see ``MANIFEST_KINDS``.
    """
    if isinstance(spec, (str, Path)):
        text = str(spec)
        kind, sep, rest = text.partition(":")
        if sep and kind in MANIFEST_KINDS:
            spec = {"kind": kind, "root": rest}
        elif Path(text).suffix.lower() in (".csv", ".json"):
            spec = {"kind": "manifest", "path": text}
        else:
            raise ConfigError(
                f"cannot tell the kind of data set {text!r}: give a .csv/.json manifest or "
                f"'kind:root' with kind one of {', '.join(MANIFEST_KINDS)}"
            )
    if not isinstance(spec, dict):
        raise ConfigError(f"a data set spec must be a string or a mapping, got {type(spec)}")
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind not in MANIFEST_KINDS:
        raise ConfigError(
            f"unknown data set kind {kind!r}; valid kinds: {', '.join(MANIFEST_KINDS)}"
        )
    location = options.pop("root", None) or options.pop("path", None)
    if location is None:
        raise ConfigError(f"data set spec of kind {kind!r} needs a 'root' (or 'path')")
    try:
        return MANIFEST_KINDS[kind](location, **options)
    except TypeError as exc:
        raise ConfigError(
            f"bad options {sorted(options)} for data set kind {kind!r}: {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------
# Decoding helpers shared with the cache


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as ``(H, W, 3)`` uint8 RGB (grayscale is replicated to 3 channels).

    Raises:
        VideoNotFoundError, EmptyVideoError, CorruptVideoError naming the file.
    """
    path = str(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise VideoNotFoundError(path, "the image does not exist; check the path") from None
    if size == 0:
        raise EmptyVideoError(path, "the image file is empty (0 bytes)")
    data = np.fromfile(path, dtype=np.uint8)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more rows than OpenCV accepts
        raise CorruptVideoError(path, f"the image could not be decoded ({exc})") from exc
    if img is None:
        raise CorruptVideoError(path, "the image could not be decoded (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def segment_indices(n: int, k: int, rng: np.random.Generator | None) -> np.ndarray:
    """Pick ``min(n, k)`` of ``n`` stored frames, one per equal segment: a random one in each
    segment with ``rng``, the centre one without. Returns sorted int64 ``(min(n, k),)``."""
    k = min(n, k)
    if k <= 0:
        return np.zeros((0,), dtype=np.int64)
    edges = np.linspace(0, n, k + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(np.floor(edges[1:]).astype(np.int64), lo + 1)
    offsets = (hi - lo - 1) // 2 if rng is None else (rng.random(k) * (hi - lo)).astype(np.int64)
    idx = lo + offsets
    return np.clip(idx, 0, n - 1)


def _default_face_detector() -> Any:
    from rdam.data.faces import FaceDetector

    return FaceDetector()


# --------------------------------------------------------------------------------------------
# The data set


class ClipSample(TypedDict):
    """One clip as returned by :class:`ClipDataset`."""

    frames: torch.Tensor  # (K, 3, S, S) uint8
    mask: torch.Tensor  # (K,) bool, True = a real frame (or a frame with a face)
    label: torch.Tensor  # () int64, -1 when unlabelled
    index: int
    faces: NotRequired[torch.Tensor]  # (K, 3, S, S) uint8 face crops (stream "both")
    face_mask: NotRequired[torch.Tensor]  # (K,) bool, frames where a face was found


class ClipBatch(TypedDict):
    """A padded batch from :func:`collate_clips`."""

    frames: torch.Tensor  # (B, K, 3, S, S) uint8, zeros where mask is False
    mask: torch.Tensor  # (B, K) bool
    label: torch.Tensor  # (B,) int64
    index: torch.Tensor  # (B,) int64
    faces: NotRequired[torch.Tensor]  # (B, K, 3, S, S) uint8 (stream "both")
    face_mask: NotRequired[torch.Tensor]  # (B, K) bool


class ClipDataset(Dataset):
    """Clips of a manifest, decoded on the fly or read from the preprocessing cache.

    Each item is a :class:`ClipSample`: ``frames`` ``(K, 3, S, S)`` uint8 with
    ``K = min(num_frames, frames available)`` (a single image gives ``K = 1``), ``mask`` ``(K,)``
    (all True for ``stream="frames"``; for ``stream="faces"`` the frames are face crops and the
    mask marks frames where a face was found), ``label`` (-1 when unlabelled) and ``index``.
    ``stream="both"`` (the two-stream model, Table 5) gives whole ``frames`` with an all-True
    ``mask`` plus ``faces``/``face_mask``: the face crops of the same K sampled frames.

    Args:
        manifest: the clips.
        num_frames: ``K``, segments sampled per clip.
        frame_size: ``S``; frames are fitted to ``S x S`` (``fit``) before ``transform``.
        sampler_mode: ``random`` (training: random offset per segment) or ``center``.
        stream: ``frames`` (whole frames), ``faces`` (face crops of side ``S``) or ``both``.
        transform: called as ``transform(frames (K,3,S,S) uint8, generator)``; e.g.
            :class:`rdam.data.transforms.ClipTransform`.
        cache: preprocessing cache; clips found there are read from it (their stored frames
            are sub-sampled to ``num_frames`` by segment), the others are decoded.
        seed: base seed; the randomness of item ``i`` depends only on ``(seed, epoch, i)``
            (call :meth:`set_epoch` each epoch — training does it with ``SetDatasetEpoch``),
            so resumed runs and any number of workers reproduce the same draws.
        face_detector_factory: picklable zero-argument callable returning a face detector,
            called once per process (default: YuNet from :func:`rdam.data.faces.resolve_face_model`).
        fit: how frames are fitted to a square (see :func:`rdam.data.transforms.fit_frames`).
        max_side: decode videos at most this large (longer side) before fitting / face search.
        face_margin: box margin for face crops.
    """

    def __init__(
        self,
        manifest: Manifest,
        num_frames: int,
        frame_size: int,
        sampler_mode: str = "random",
        stream: str = "frames",
        transform: Callable[..., torch.Tensor] | None = None,
        cache: ClipCache | None = None,
        seed: int = 0,
        face_detector_factory: Callable[[], Any] | None = None,
        fit: str = "squash",
        max_side: int | None = 640,
        face_margin: float = 0.2,
    ) -> None:
        if num_frames < 1 or frame_size < 1:
            raise ConfigError(
                f"num_frames and frame_size must be >= 1, got {num_frames}, {frame_size}"
            )
        if sampler_mode not in SAMPLER_MODES:
            raise ConfigError(
                f"unknown sampler_mode {sampler_mode!r}; valid: {', '.join(SAMPLER_MODES)}"
            )
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
        self.manifest = manifest
        self.num_frames = int(num_frames)
        self.frame_size = int(frame_size)
        self.sampler_mode = sampler_mode
        self.stream = stream
        self.transform = transform
        self.cache = cache
        self.seed = int(seed)
        self.epoch = 0
        self.face_detector_factory = face_detector_factory or _default_face_detector
        self.fit = fit
        self.max_side = max_side
        self.face_margin = float(face_margin)
        self._detector: Any = None
        self._cache_keys: list[str | None] | None = None
        if cache is not None:
            if stream in ("faces", "both") and not cache.settings.faces:
                raise ConfigError(
                    f"the cache at {cache.directory} holds no face crops (faces=False); "
                    f"preprocess with faces=True or use stream='frames' (got stream={stream!r})"
                )
            self._cache_keys = cache.lookup_keys([r.path for r in manifest.records])
            misses = sum(k is None for k in self._cache_keys)
            if misses:
                log.warning(
                    "%d of %d clips are not in the cache %s and will be decoded on the fly",
                    misses,
                    len(manifest),
                    cache.directory,
                )

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    def __len__(self) -> int:
        return len(self.manifest.records)

    def set_epoch(self, epoch: int) -> None:
        """Make the random draws of the next pass depend on ``epoch``."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_detector"] = None  # detectors hold native handles; rebuilt in each worker
        return state

    def _rng(self, index: int) -> tuple[np.random.Generator, torch.Generator]:
        # Only (seed, epoch, index): a run resumed from a checkpoint, with any number of
        # workers, draws exactly the augmentations of an uninterrupted one.
        seq = np.random.SeedSequence([self.seed, self.epoch, index])
        rng = np.random.default_rng(seq)
        gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))
        return rng, gen

    def _detector_instance(self) -> Any:
        if self._detector is None:
            self._detector = self.face_detector_factory()
        return self._detector

    def load_frames(
        self, index: int, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``(K, S, S, 3)`` uint8 and mask ``(K,)`` of clip ``index`` before transforms
        (for ``stream="both"``, the whole frames; :meth:`load_streams` gives the faces too).

        Raises:
            VideoError (or subclass) naming the file when the clip cannot be read.
        """
        streams = self.load_streams(index, rng)
        return streams["frames"], streams["mask"]

    def load_streams(self, index: int, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        """``frames``/``mask`` and, for ``stream="both"``, ``faces``/``face_mask`` of clip
        ``index`` before transforms, all of the same K sampled frames.

        Raises:
            VideoError (or subclass) naming the file when the clip cannot be read.
        """
        if self._cache_keys is not None and self._cache_keys[index] is not None:
            entry = self.cache.get(self._cache_keys[index])
            return self._from_cache(entry, rng)
        return self._decode(self.manifest.records[index].path, rng)

    def _from_cache(
        self, entry: CacheEntry, rng: np.random.Generator | None
    ) -> dict[str, np.ndarray]:
        num_views = entry.frames.shape[0]
        view = int(rng.integers(num_views)) if rng is not None and num_views > 1 else 0
        idx = segment_indices(entry.frames.shape[1], self.num_frames, rng)

        def fit(stored: np.ndarray) -> np.ndarray:
            out = np.asarray(stored[idx])
            return out if out.shape[1] == self.frame_size else fit_frames(out, self.frame_size)

        if self.stream == "frames":
            return self._streams(fit(entry.frames[view]))
        faces, face_mask = fit(entry.faces[view]), np.asarray(entry.face_mask[view][idx], bool)
        frames = fit(entry.frames[view]) if self.stream == "both" else None
        return self._streams(frames, faces, face_mask)

    def _decode(self, path: str, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        if clip_kind(path) == "image":
            raw = read_image(path)[None]
        else:
            raw = decode_clip(path, self.num_frames, rng, self.max_side)
        frames = fit_frames(raw, self.frame_size, self.fit) if self.stream != "faces" else None
        if self.stream == "frames":
            return self._streams(frames)
        from rdam.data.faces import crop_faces

        crops = crop_faces(
            raw, self._detector_instance(), size=self.frame_size, margin=self.face_margin
        )
        return self._streams(frames, np.asarray(crops.crops), np.asarray(crops.mask, bool))

    def _streams(
        self,
        frames: np.ndarray | None,
        faces: np.ndarray | None = None,
        face_mask: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The model inputs of :attr:`stream` from whole frames and/or face crops of the same
        K frames: ``faces`` -> the crops as ``frames``/``mask``; ``frames`` -> the frames, all
        valid; ``both`` -> the frames plus ``faces``/``face_mask``."""
        if self.stream == "faces":
            return {"frames": faces, "mask": face_mask}
        out = {"frames": frames, "mask": np.ones(len(frames), dtype=bool)}
        if self.stream == "both":
            out.update(faces=faces, face_mask=face_mask)
        return out

    def __getitem__(self, index: int) -> ClipSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        train = self.sampler_mode == "random"
        rng, gen = self._rng(index)
        streams = self.load_streams(index, rng if train else None)

        def tensor(frames: np.ndarray) -> torch.Tensor:
            clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            # One draw per stream from the same generator: each stream is clip-consistent and
            # the draws still depend only on (seed, epoch, index).
            return (clip if self.transform is None else self.transform(clip, gen)).contiguous()

        label = self.manifest.records[index].label
        sample: ClipSample = {
            "frames": tensor(streams["frames"]),
            "mask": torch.from_numpy(streams["mask"]),
            "label": torch.tensor(-1 if label is None else label, dtype=torch.int64),
            "index": index,
        }
        if "faces" in streams:
            sample["faces"] = tensor(streams["faces"])
            sample["face_mask"] = torch.from_numpy(streams["face_mask"])
        return sample


def decode_clip(
    path: str | Path,
    num_frames: int,
    rng: np.random.Generator | None,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode ``min(num_frames, frames in clip)`` segment-sampled frames of a video or image
    sequence: ``(K, H, W, 3)`` uint8 RGB. Random offsets with ``rng``, segment centres without.

    Raises:
        VideoError (or subclass) naming the file.
    """
    from rdam.data.sampling import SegmentSampler
    from rdam.data.video import open_clip

    with open_clip(path) as reader:
        info = reader.info
        k = (
            num_frames
            if not info.num_frames or info.num_frames <= 0
            else min(num_frames, int(info.num_frames))
        )
        mode = "center" if rng is None else "random"
        timestamps = SegmentSampler(k, mode=mode).sample(
            info.duration, rng if rng is not None else np.random.default_rng(0)
        )
        decoded = reader.read(timestamps, max_side=max_side)
    return np.asarray(decoded.frames)


def _pad_stack(
    clips: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], what: str, indices: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    k_max = max(int(c.shape[0]) for c in clips)
    shape = clips[0].shape[1:]
    for c, i in zip(clips, indices, strict=True):
        if c.shape[1:] != shape:
            raise ValueError(
                f"{what} of one batch must share (3, S, S); got {tuple(shape)} and "
                f"{tuple(c.shape[1:])} (index {i})"
            )
    out = torch.zeros((len(clips), k_max, *shape), dtype=clips[0].dtype)
    mask = torch.zeros((len(clips), k_max), dtype=torch.bool)
    for i, (c, m) in enumerate(zip(clips, masks, strict=True)):
        out[i, : c.shape[0]] = c
        mask[i, : c.shape[0]] = m
    return out, mask


def collate_clips(batch: Sequence[ClipSample]) -> ClipBatch:
    """Pad clips to the longest ``K`` of the batch: zero frames with mask False.

    Returns:
        frames ``(B, K, 3, S, S)`` uint8, mask ``(B, K)`` bool, label ``(B,)``, index ``(B,)``;
        and ``faces``/``face_mask`` padded the same way when the samples carry them.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    indices = [int(s["index"]) for s in batch]
    frames, mask = _pad_stack(
        [s["frames"] for s in batch], [s["mask"] for s in batch], "clips", indices
    )
    out: ClipBatch = {
        "frames": frames,
        "mask": mask,
        "label": torch.stack([torch.as_tensor(s["label"], dtype=torch.int64) for s in batch]),
        "index": torch.tensor(indices, dtype=torch.int64),
    }
    if "faces" in batch[0]:
        out["faces"], out["face_mask"] = _pad_stack(
            [s["faces"] for s in batch], [s["face_mask"] for s in batch], "face clips", indices
        )
    return out


__all__ = [
    "EKMAN6_CLASSES",
    "IMAGE_EXTENSIONS",
    "MANIFEST_KINDS",
    "VIDEOEMOTION8_CLASSES",
    "VIDEO_EXTENSIONS",
    "ClipBatch",
    "ClipDataset",
    "ClipRecord",
    "ClipSample",
    "Manifest",
    "ckplus_group",
    "clip_kind",
    "collate_clips",
    "decode_clip",
    "ekman6_manifest",
    "image_folder_manifest",
    "load_manifest",
    "read_image",
    "segment_indices",
    "sequence_folder_manifest",
    "video_folder_manifest",
    "videoemotion8_manifest",
]
