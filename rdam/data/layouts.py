"""Data sets on disk: the adapters that read folder layouts and public data sets into a
:class:`~rdam.data.manifest.Manifest`, and :func:`load_manifest`, which picks the adapter.

Layouts: a folder of class folders holding images (FER2013), videos, or image-sequence
folders (CK+), with or without split folders; the public video sets Ekman-6 and
VideoEmotion-8 with their split lists (:mod:`rdam.data.split_lists`); and ``.csv``/``.json``
manifest files. Nothing here imports torch, so preprocessing workers and ``rdam validate``
start without it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.split_lists import find_list, one_split_each, read_split_list, split_file_rows
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


#: Split folder names taken as the training split when checking that every class has clips.
_TRAIN_SPLIT_NAMES = frozenset({"train", "training"})


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
    given = class_names is not None
    found: list[tuple[str, Path, Path]] = []  # (split, class folder, item)
    for split_name, folder in layout:
        for class_dir in _list_dirs(folder):
            found.extend((split_name, class_dir, p) for p in items(class_dir))
    if class_names is None:
        class_names = sorted({d.name for _, d, _ in found})
    index = {name.lower(): i for i, name in enumerate(class_names)}
    records = []
    ignored: dict[Path, int] = {}  # class folder outside class_names -> its clips
    for split_name, class_dir, p in found:
        if class_dir.name.lower() not in index:
            ignored[class_dir] = ignored.get(class_dir, 0) + 1
            continue
        records.append(ClipRecord(str(p), index[class_dir.name.lower()], split_name, group_of(p)))
    for class_dir, n in ignored.items():
        log.warning(
            "%s is not a folder of one of the classes %s: its %d %s are not used; rename it "
            "to its class (case-insensitive) if it is one",
            class_dir,
            list(class_names),
            n,
            what,
        )
    if not records:
        hint = (
            f"; folders outside the classes {list(class_names)} were ignored: "
            + ", ".join(f"{d} ({n})" for d, n in ignored.items())
            if ignored
            else ""
        )
        raise DatasetError(
            f"no {what} found under {root}; expected {root}/<class>/... or "
            f"{root}/<split>/<class>/... with split folders named one of {sorted(SPLIT_NAMES)}"
            + hint
        )
    _check_class_coverage(records, layout, list(class_names), given, ignored, what)
    return Manifest(records, list(class_names))


def _check_class_coverage(
    records: list[ClipRecord],
    layout: list[tuple[str, Path]],
    class_names: list[str],
    given: bool,
    ignored: dict[Path, int],
    what: str,
) -> None:
    """Every class needs training clips: a class of the given ``class_names`` without a clip
    in a training split (a split folder named train/training, or ``split="train"``) raises;
    when no split is the training one (or the classes were read from the folders), a class
    without clips is only logged."""
    per_split: dict[tuple[str, int | None], int] = {}
    for r in records:
        per_split[(r.split, r.label)] = per_split.get((r.split, r.label), 0) + 1
    train = [(s, folder) for s, folder in layout if s.lower() in _TRAIN_SPLIT_NAMES]
    for split_name, folder in train:
        empty = [c for i, c in enumerate(class_names) if not per_split.get((split_name, i))]
        if not empty:
            continue
        here = [f"{d.name} ({n} {what})" for d, n in ignored.items() if d.parent == folder]
        message = (
            f"{'class' if len(empty) == 1 else 'classes'} {', '.join(map(repr, empty))} of "
            f"{class_names} {'has' if len(empty) == 1 else 'have'} no {what} in the training "
            f"split {split_name!r}: expected {folder}/<class>/... (class folder names match "
            "case-insensitively)"
            + (f"; folders there outside the classes: {', '.join(here)}" if here else "")
        )
        if given:
            raise DatasetError(
                f"{message}. The model would have a class it never trains on: rename the "
                "class folder or fix class_names"
            )
        log.warning("%s", message)
    if not train:
        empty = [
            c
            for i, c in enumerate(class_names)
            if not any(per_split.get((s, i)) for s, _ in layout)
        ]
        if empty:
            log.warning(
                "no %s of %s %s under %s (class folder names match case-insensitively)",
                what,
                "class" if len(empty) == 1 else "classes",
                ", ".join(map(repr, empty)),
                ", ".join(str(folder) for _, folder in layout),
            )


def image_folder_manifest(
    root: str | Path, split: str | None = None, class_names: Sequence[str] | None = None
) -> Manifest:
    """Images in class folders, each image a one-frame clip (FER2013 layout).

    Layouts: ``root/<split>/<class>/*.jpg`` (split folders named train/val/test/...) or
    ``root/<class>/*.jpg``, whose split is ``split`` (default ``all``). Classes are the sorted
    class folder names unless ``class_names`` is given: folders outside it are ignored, each
    logged as a warning with its clip count, and a class of it without clips in the training
    split (``train``/``training``) is a :class:`~rdam.errors.DatasetError`.
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


def _fixed_class_manifest(
    root: Path, class_names: Sequence[str], lists: dict[str, Path] | None, strict: bool
) -> Manifest:
    if lists:
        found = []
        for split, list_file in lists.items():
            found.extend(read_split_list(list_file, split, root, class_names, strict))
        records = one_split_each(found)
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
        found = []
        for split, lines in split_file_rows(split_file).items():
            found.extend(read_split_list(split_file, split, root, classes, strict, lines=lines))
        return Manifest(one_split_each(found), classes)
    folder = Path(split_file) if split_file is not None else root
    if split_file is not None and not folder.is_dir():
        raise DatasetError(f"split file {split_file} does not exist")
    for split in ("train", "val", "test"):
        found = find_list(folder, [split])
        if found:
            lists[split] = found
    if split_file is not None and not lists:
        raise DatasetError(f"no train.txt/test.txt split lists in {folder}")
    return _fixed_class_manifest(root, classes, lists, strict)


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
            found = find_list(folder, [f"{split}_{i}", f"{split}{i}", f"{split}set_{i}"])
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
