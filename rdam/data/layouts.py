"""Data sets on disk: the adapters that read folder layouts and public data sets into a
:class:`~rdam.data.manifest.Manifest`, and :func:`load_manifest`, which picks the adapter.

Layouts: a folder of class folders holding images (FER2013), videos, or image-sequence
folders (CK+), with or without split folders; the public video sets Ekman-6 and
VideoEmotion-8 with their split lists; and ``.csv``/``.json`` manifest files. Nothing here
imports torch, so preprocessing workers and ``rdam validate`` start without it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.video.formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from rdam.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

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
_CKPLUS_NAME = re.compile(r"^(S\d+)_\d+$", re.IGNORECASE)


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


def folder_kind(root: str | Path) -> str:
    """The layout of a folder of class folders (optionally inside split folders):
    ``video_folder`` when its class folders hold videos, ``image_folder`` when they hold
    images, ``sequence_folder`` when they hold folders of images (CK+).

    Raises:
        DatasetError: none of these (the message says what a layout looks like).
    """
    root = _check_root(root)
    folders = [folder for _, folder in _split_folders(root, None)]
    for class_dir in (d for folder in folders for d in _list_dirs(folder)):
        if _list_files(class_dir, VIDEO_EXTENSIONS):
            return "video_folder"
        if _list_files(class_dir, IMAGE_EXTENSIONS):
            return "image_folder"
        if any(_list_files(d, IMAGE_EXTENSIONS) for d in _list_dirs(class_dir)):
            return "sequence_folder"
    raise DatasetError(
        f"{root} is not a folder of class folders: expected {root}/<class>/<video or image> "
        f"(or {root}/<split>/<class>/...), or {root}/<class>/<sequence folder>/<images>"
    )


def load_manifest(spec: str | Path | dict[str, Any]) -> Manifest:
    """Build a manifest from a spec.

    ``spec`` is a path to a ``.csv``/``.json`` manifest, ``"kind:root"`` (e.g.
    ``"image_folder:/data/fer2013"``), a folder of class folders (its kind found by
    :func:`folder_kind`), or a dict ``{"kind": ..., "root"|"path": ..., **options}``
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
        elif Path(text).is_dir():
            spec = {"kind": folder_kind(text), "root": text}
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


__all__ = [
    "EKMAN6_CLASSES",
    "MANIFEST_KINDS",
    "SPLIT_NAMES",
    "VIDEOEMOTION8_CLASSES",
    "ckplus_group",
    "ekman6_manifest",
    "folder_kind",
    "image_folder_manifest",
    "load_manifest",
    "sequence_folder_manifest",
    "video_folder_manifest",
    "videoemotion8_manifest",
]
