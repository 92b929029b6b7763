"""Which clips the paths given to ``rdam predict`` / ``explain`` stand for."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rdam.data.video.formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


def _sorted_entries(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name.lower()
    )


def expand_inputs(paths: Iterable[str | os.PathLike[str]], sequences: bool = False) -> list[str]:
    """Turn the command-line paths into clips, in order.

    - a file is one clip (a video, or a single image = a 1-frame clip);
    - a folder gives each video and each image in it as a clip of its own, then the clips of
      its sub-folders (recursively, by name);
    - with ``sequences``, a folder holding images is instead ONE image-sequence clip (its images
      are the frames, in natural name order; CK+-style), and its videos are each a clip;
    - a path that does not exist is kept, so its prediction reports the error.
    """
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            out.append(str(raw))
            continue
        found = _expand_folder(path, sequences)
        out.extend(found or [str(path)])  # an empty folder is reported by the reader
    return out


def _expand_folder(folder: Path, sequences: bool) -> list[str]:
    entries = _sorted_entries(folder)
    files = [p for p in entries if p.is_file()]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    out = [str(p) for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    if sequences and images:
        out.insert(0, str(folder))
    elif images:
        out = [str(p) for p in files if p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS]
    for sub in (p for p in entries if p.is_dir()):
        out.extend(_expand_folder(sub, sequences))
    return out
