"""Split lists of the public video sets (Ekman-6, VideoEmotion-8): which clip of a folder of
class folders belongs to which split. One clip per line, ``relative/path [class]`` (``#``
comments), or one file of ``relative/path split`` lines. A listed path that does not exist is
found by its file name only where that cannot move a clip to another class or split (a bare
name, or a file of the listed class); a clip listed in two splits is refused (it would leak
evaluation clips into training). Used by :mod:`rdam.data.layouts`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rdam.data.manifest import ClipRecord
from rdam.data.video.formats import VIDEO_EXTENSIONS
from rdam.errors import DatasetError

log = logging.getLogger(__name__)


def split_file_rows(split_file: Path) -> dict[str, list[tuple[int, str]]]:
    """The one-file form: ``relative/path split`` lines as ``{split: [(line number, path)]}``.

    Raises:
        DatasetError: a line that is not ``path split``, naming the file and line.
    """
    rows: dict[str, list[tuple[int, str]]] = {}
    for lineno, raw in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(
                f"{split_file} line {lineno}: expected 'relative/path split', got {line!r}"
            )
        rows.setdefault(parts[1], []).append((lineno, parts[0]))
    return rows


def _class_of(parts: Sequence[str], index: dict[str, int]) -> str | None:
    """The first of ``parts`` (folder names) that is a class name, lower case, else None."""
    return next((q.lower() for q in parts if q.lower() in index), None)


def read_split_list(
    list_file: Path,
    split: str,
    root: Path,
    class_names: Sequence[str],
    strict: bool,
    lines: Sequence[tuple[int, str]] | None = None,
) -> list[tuple[ClipRecord, str]]:
    """Parse a split list: one clip per line, ``relative/path [label]``; ``#`` comments.

    The label is the optional second token (class name, any case) or else the first folder of
    the path that is a class name. A path that does not exist under ``root`` is looked up by
    file name among the videos under ``root`` only when it is a bare file name (then, without a
    label, the found file's class folder gives its class), or when the one file of that name found elsewhere is
    in the class the list names for it (its class folder or its label): a listed
    ``anger/0001.mp4`` is never taken from ``joy/0001.mp4``. Anything else is missing: an error
    when ``strict``, else skipped with a warning.

    Args:
        lines: ``(line number, text)`` to read instead of ``list_file`` (which then only names
            them in messages).

    Returns:
        ``(record, where)`` pairs, ``where`` naming the list, line and, for a clip found by
        file name, the path listed.
    """
    index = {name.lower(): i for i, name in enumerate(class_names)}
    by_name: dict[str, list[Path]] | None = None
    records: list[tuple[ClipRecord, str]] = []
    missing: list[str] = []
    by_file_name: list[str] = []  # bare file names found under root
    moved: list[str] = []  # listed paths taken from another folder of the same class
    if lines is None:
        lines = list(enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1))
    for lineno, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1) if " " in line or "\t" in line else [line]
        rel, label_tok = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)
        if label_tok is not None and label_tok.lower() not in index:
            rel, label_tok = line, None  # a path with spaces and no label
        where = f"{list_file} line {lineno}"
        p = root / rel
        if not p.exists():
            if by_name is None:
                by_name = {}
                for v in root.rglob("*"):
                    if v.suffix.lower() in VIDEO_EXTENSIONS:
                        by_name.setdefault(v.name, []).append(v)
            listed = Path(rel)
            hits = by_name.get(listed.name, [])
            if len(listed.parts) == 1:  # a bare file name: wherever it is, if only once
                if len(hits) != 1:
                    missing.append(
                        f"line {lineno}: {rel}"
                        + (
                            f" ({len(hits)} files of that name under {root}; give the path)"
                            if hits
                            else ""
                        )
                    )
                    continue
                p = hits[0]
                by_file_name.append(rel)
            else:  # a path: elsewhere only in the class the list names for it
                named = {
                    c
                    for c in (_class_of(listed.parts[:-1], index), label_tok and label_tok.lower())
                    if c
                }
                agree = [
                    h for h in hits if _class_of(h.relative_to(root).parts[:-1], index) in named
                ]
                if len(agree) != 1:
                    others = ", ".join(str(h.relative_to(root)) for h in hits[:3])
                    if agree:
                        why = f" ({len(agree)} files of that name in its class; give the path)"
                    elif hits and named:
                        classes = "/".join(sorted(named))
                        why = f" (not taken from {others}: not in its class {classes})"
                    elif hits:
                        why = f" (not taken from {others}: the list names no class to check it by)"
                    else:
                        why = ""
                    missing.append(f"line {lineno}: {rel}{why}")
                    continue
                p = agree[0]
                moved.append(f"{rel} -> {p.relative_to(root)}")
            where += f" (listed as {rel!r}, found at {p.relative_to(root)})"
        rel_parts = p.relative_to(root).parts
        lab = label_tok.lower() if label_tok else _class_of(rel_parts[:-1], index)
        if lab is None:
            raise DatasetError(
                f"{list_file} line {lineno}: cannot tell the class of {rel!r}; put the clip in "
                f"a class folder or add the class name after the path ({list(class_names)})"
            )
        records.append((ClipRecord(str(p.resolve()), index[lab], split), where))
    if by_file_name:
        log.info(
            "%s: %d bare file names were found by name under %s", list_file, len(by_file_name), root
        )
    if moved:
        shown = "; ".join(moved[:5]) + (f"; ... ({len(moved)} in all)" if len(moved) > 5 else "")
        log.warning(
            "%s: %d listed paths do not exist under %s and were taken from another folder of the "
            "same class with the same file name: %s",
            list_file,
            len(moved),
            root,
            shown,
        )
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


def one_split_each(records: Sequence[tuple[ClipRecord, str]]) -> list[ClipRecord]:
    """The records, after checking that no clip is in two splits (train/test leakage).

    Raises:
        DatasetError: naming each such clip with the two list lines that put it there.
    """
    first: dict[str, tuple[str, str]] = {}  # path -> (split, where)
    clashes: list[str] = []
    for record, where in records:
        split, seen_where = first.setdefault(record.path, (record.split, where))
        if split != record.split:
            clashes.append(
                f"{record.path} is in split {split!r} ({seen_where}) and in split "
                f"{record.split!r} ({where})"
            )
    if clashes:
        shown = "; ".join(clashes[:5]) + (
            f"; ... ({len(clashes)} in all)" if len(clashes) > 5 else ""
        )
        raise DatasetError(
            f"split lists put one clip in two splits, which leaks evaluation clips into "
            f"training: {shown}. Fix the split lists so that each clip is in one split"
        )
    return [record for record, _ in records]


def find_list(folder: Path, stems: Sequence[str]) -> Path | None:
    if not folder.is_dir():
        return None
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for stem in stems:
        for ext in (".txt", ".lst", ".csv"):
            if stem.lower() + ext in files:
                return files[stem.lower() + ext]
    return None
