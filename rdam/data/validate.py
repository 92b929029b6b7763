"""``rdam validate``: check a manifest before spending hours on it.

Lists clips whose file is missing, that cannot be read (a video's probe fails, or the decode of
an image or of any image of a sequence), that duplicate another clip (the same path twice, or
the same content under two paths, flagged when the copies sit in different splits: train/test
leakage), and that have no label; counts clips per split and class.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdam.data.content_hash import HashIndex, content_hash
from rdam.data.manifest import Manifest
from rdam.data.video import read_image
from rdam.data.video.formats import clip_kind
from rdam.errors import RDAMError


@dataclass
class DuplicateGroup:
    """Manifest records sharing one clip.

    Attributes:
        reason: ``same path`` or ``same content``.
        paths: the records' paths (a path listed twice appears twice).
        splits: the splits the copies are in.
    """

    reason: str
    paths: list[str]
    splits: list[str]

    @property
    def cross_split(self) -> bool:
        """True when copies are in different splits (evaluation leaks into training)."""
        return len(set(self.splits)) > 1


@dataclass
class ValidationReport:
    """What :func:`validate_manifest` found.

    Attributes:
        total: records checked.
        missing: paths that do not exist.
        unreadable: ``(path, error message)`` of clips that exist but cannot be read.
        duplicates: groups of records sharing a path or content.
        unlabelled: paths without a label.
        counts: ``{split: {class name: clips}}`` (``<unlabelled>`` for unlabelled clips).
        empty_classes: ``(split, class)`` pairs with no clip.
        require_labels: unlabelled clips count as problems.
    """

    total: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    empty_classes: list[tuple[str, str]] = field(default_factory=list)
    require_labels: bool = True

    @property
    def num_problems(self) -> int:
        """Missing + unreadable + duplicate groups (+ unlabelled when labels are required)."""
        n = len(self.missing) + len(self.unreadable) + len(self.duplicates)
        return n + (len(self.unlabelled) if self.require_labels else 0)

    @property
    def ok(self) -> bool:
        return self.num_problems == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "ok": self.ok,
            "missing": self.missing,
            "unreadable": [{"path": p, "error": m} for p, m in self.unreadable],
            "duplicates": [
                {
                    "reason": g.reason,
                    "paths": g.paths,
                    "splits": g.splits,
                    "cross_split": g.cross_split,
                }
                for g in self.duplicates
            ],
            "unlabelled": self.unlabelled,
            "counts": self.counts,
            "empty_classes": [list(p) for p in self.empty_classes],
        }

    def format(self, max_items: int = 20) -> str:
        """Human-readable report: counts table, then each kind of problem (first items)."""
        lines = [f"{self.total} clips: " + ("OK" if self.ok else f"{self.num_problems} problems")]
        classes = list(dict.fromkeys(c for per in self.counts.values() for c in per))
        if classes:
            width = max(12, *(len(c) for c in classes))
            splits = list(self.counts)
            lines.append(f"{'class':<{width}} " + " ".join(f"{s:>8}" for s in splits))
            for c in classes:
                row = " ".join(f"{self.counts[s].get(c, 0):>8}" for s in splits)
                lines.append(f"{c:<{width}} {row}")

        def section(title: str, items: list[str]) -> None:
            if not items:
                return
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {i}" for i in items[:max_items])
            if len(items) > max_items:
                lines.append(f"  ... and {len(items) - max_items} more")

        section("missing", self.missing)
        section("unreadable", [f"{p}: {m}" for p, m in self.unreadable])
        section(
            "duplicates",
            [
                f"{g.reason}{' ACROSS SPLITS ' + '/'.join(sorted(set(g.splits))) if g.cross_split else ''}: "
                + ", ".join(g.paths)
                for g in self.duplicates
            ],
        )
        section("unlabelled" + ("" if self.require_labels else " (allowed)"), self.unlabelled)
        section("classes without clips", [f"{s}: {c}" for s, c in self.empty_classes])
        return "\n".join(lines)


def _probe(path: str) -> None:
    """Raise the typed VideoError of a clip that cannot be read: an image, and every image of
    a sequence, is decoded (a damaged frame anywhere in a sequence is found, named); a video
    is probed (its metadata and first frame)."""
    kind = clip_kind(path)
    if kind == "image":
        read_image(path)
        return
    if kind == "sequence":
        from rdam.data.video import ImageSequenceReader

        with ImageSequenceReader(path) as reader:  # EmptyVideoError for a folder of no image
            files = list(reader.files)
        for frame in files:
            read_image(frame)
        return
    from rdam.data.video import probe_video

    probe_video(path)


def validate_manifest(
    manifest: Manifest,
    probe: bool = True,
    hash_content: bool = True,
    cache_root: str | Path | None = None,
    require_labels: bool = True,
    progress: bool = False,
) -> ValidationReport:
    """Check every record of ``manifest``.

    Args:
        manifest: the clips.
        probe: open each clip to find unreadable ones: a video's metadata and first frame are
            read, an image and every image of a sequence are decoded.
        hash_content: hash file contents to find the same clip under two paths.
        cache_root: a preprocessing cache root whose content-hash memo is used and extended
            (saves re-hashing large videos).
        require_labels: count unlabelled clips as problems.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`ValidationReport`; problems are listed, never raised.
    """
    from tqdm.auto import tqdm

    report = ValidationReport(total=len(manifest), require_labels=require_labels)
    hasher = HashIndex(cache_root).hash if cache_root is not None else content_hash

    for split in manifest.splits:
        counts = Counter(r.label for r in manifest.records if r.split == split)
        per = {name: counts.get(i, 0) for i, name in enumerate(manifest.class_names)}
        if counts.get(None):
            per["<unlabelled>"] = counts[None]
        report.counts[split] = per
        report.empty_classes.extend((split, c) for c, n in per.items() if n == 0)

    by_path: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(manifest.records):
        by_path[os.path.abspath(r.path)].append(i)
    for idx in by_path.values():
        if len(idx) > 1:
            report.duplicates.append(
                DuplicateGroup(
                    "same path",
                    [manifest.records[i].path for i in idx],
                    [manifest.records[i].split for i in idx],
                )
            )

    by_hash: dict[str, list[str]] = defaultdict(list)
    for path in tqdm(by_path, disable=not progress, desc="validate", unit="clip"):
        if not os.path.exists(path):
            report.missing.append(path)
            continue
        if probe:
            try:
                _probe(path)
            except RDAMError as exc:
                report.unreadable.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            except Exception as exc:  # unexpected, but one clip must not stop the check
                report.unreadable.append((path, f"{type(exc).__name__}: {exc}"))
                continue
        if hash_content:
            try:
                by_hash[hasher(path)].append(path)
            except (OSError, RDAMError) as exc:
                report.unreadable.append((path, f"cannot hash: {exc}"))

    for paths in by_hash.values():
        if len(paths) > 1:
            pairs = sorted((p, manifest.records[by_path[p][0]].split) for p in paths)
            report.duplicates.append(
                DuplicateGroup("same content", [p for p, _ in pairs], [s for _, s in pairs])
            )

    report.unlabelled = [r.path for r in manifest.records if r.label is None]
    report.missing.sort()
    report.unreadable.sort()
    return report


__all__ = ["DuplicateGroup", "ValidationReport", "validate_manifest"]
