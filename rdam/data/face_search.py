"""Decoding and face detection side by side: :func:`read_and_detect`.

A clip's frames are decoded and then searched for faces. PyAV's decoder and OpenCV's YuNet
both release the GIL, so the search of the frames already decoded can run in a second thread
while the next ones decode. The frames are read in time order, ``chunk`` at a time, and each
chunk is handed to the detector thread as soon as it is decoded. The reader keeps its position
between chunks, so this costs no extra seeking. The result is the same frames and the same
detections as decoding everything first and then detecting, which ``tests/data/test_faces.py``
checks.

Approximate (keyframe) reads are made in one piece: they are one pass over the file's index,
and chunks would repeat it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox, FaceDetectorLike

DEFAULT_CHUNK = 4


def read_and_detect(
    read: Callable[..., Any],
    times: np.ndarray,
    max_side: int | None,
    detector: FaceDetectorLike,
    chunk: int | None = DEFAULT_CHUNK,
) -> tuple[Any, list[list[FaceBox]]]:
    """``read(times, max_side=max_side)`` and ``detector.detect`` on every frame read,
    overlapped (see the module notes).

    Args:
        read: a reader's ``read`` (or ``read_keyframes``, with ``chunk=None``).
        times: ``(K,)`` seconds, in any order.
        max_side: passed to ``read``.
        detector: the face detector; only the detector thread calls it.
        chunk: frames per piece (None: one piece, no overlap).

    Returns:
        ``(DecodedFrames in the order of times, detections per frame)``.
    """
    from rdam.data.video.base import DecodedFrames

    times = np.asarray(times, np.float64).reshape(-1)
    if not len(times):
        return read(times, max_side=max_side), []
    order = np.argsort(times, kind="stable")
    step = len(times) if not chunk else max(1, int(chunk))
    pieces: list[tuple[np.ndarray, Any, Future[list[list[FaceBox]]]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rdam-faces") as pool:
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            decoded = read(times[rows], max_side=max_side)
            found = pool.submit(lambda frames: [detector.detect(f) for f in frames], decoded.frames)
            pieces.append((rows, decoded, found))
        first = pieces[0][1].frames
        frames = np.empty((len(times), *first.shape[1:]), first.dtype)
        shown = np.empty(len(times), np.float64)
        faces: list[list[FaceBox]] = [[] for _ in times]
        for rows, decoded, found in pieces:
            frames[rows] = decoded.frames
            shown[rows] = decoded.timestamps
            for row, boxes in zip(rows, found.result()):
                faces[row] = boxes
    return DecodedFrames(frames=frames, timestamps=shown), faces


__all__ = ["DEFAULT_CHUNK", "read_and_detect"]
