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

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox, FaceDetectorLike

DEFAULT_CHUNK = 4


def read_and_detect(
    reader: Any,
    times: np.ndarray,
    max_side: int | None,
    detector: FaceDetectorLike,
    *,
    keyframes: bool = False,
    chunk: int | None = None,
) -> tuple[Any, list[list[FaceBox]]]:
    """``reader.read(times, max_side=max_side)`` (``read_keyframes`` with ``keyframes``) and
    ``detector.detect`` on every frame read, overlapped (see the module notes).

    Args:
        reader: an open clip reader (:func:`rdam.data.video.open_clip`).
        times: ``(K,)`` seconds, in any order.
        max_side: passed to the read.
        detector: the face detector; only the detector thread calls it.
        keyframes: approximate reads of the nearest keyframes, in one piece.
        chunk: frames per piece (default :data:`DEFAULT_CHUNK`; 0: one piece, no overlap).

    Returns:
        ``(DecodedFrames in the order of times, detections per frame)``.
    """
    from rdam.data.video.base import DecodedFrames

    read = reader.read_keyframes if keyframes else reader.read
    times = np.asarray(times, np.float64).reshape(-1)
    if not len(times):
        return read(times, max_side=max_side), []
    order = np.argsort(times, kind="stable")
    size = DEFAULT_CHUNK if chunk is None else chunk
    step = len(times) if keyframes or not size else max(1, int(size))
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
