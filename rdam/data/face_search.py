"""Where a video's faces are searched (:func:`detect_tracks`), and decoding and face detection
side by side (:func:`read_and_detect`). The linking of what is found into tracks, and a
person's clip, are :mod:`rdam.data.tracks`.

**Where faces are searched** (:attr:`rdam.data.tracks.TrackerConfig.search`). ``dense`` searches every tracking
frame: ``rate`` per second (default 4) at the centres of ``round(duration * rate)`` equal
segments of the whole video. That costs a decoding of nearly every frame of the video, 2-5x a
single-face ``rdam predict``, which reads only K frames (``benchmarks/results/people_cost.json``).
``adaptive`` (the default) starts from those K frames, decoded and searched exactly as
:func:`~rdam.data.clips.read_clip` does (``spec.max_side``), and searches between two
consecutive ones only when they do not tell the same story (:func:`~rdam.data.tracks.frames_match`: a shot
cut between them, a different number of faces, or a face that cannot be paired within the
linking gates of :mod:`rdam.data.tracks`). It then searches the tracking time nearest the middle of that stretch, and again in
each half that still does not match, down to neighbouring tracking times. So where something
changes, the search reaches the tracking rate, and where nothing does, it costs nothing. A
stretch left unsearched is *bridged*: linking counts it as one tracking step, not its length, so
a person who stays put is one track over the whole video. They then have exactly the K frames
that the single-face answer reads, and their clip needs no second decoding. What ``adaptive``
can miss: someone who appears and is gone again entirely between two matching clip frames
(16 frames over a 40-s video are 2.5 s apart), and a cut away and back inside such a stretch.
On the Ekman-6 samples, both searches find the same people with answers, spans within a tracking
step (``people_cost.json`` lists both). ``adaptive`` missed one short, unanswerable track of
anger.mp4 (a face bent away for 1 s) and kept sample.mp4's one person as one track where
``dense`` broke it in two.

**Tracking frames** are decoded with the longer side at most
:attr:`~rdam.data.tracks.TrackerConfig.max_side` (default 480). Measured on the Ekman-6
samples against YuNet at 640 (the clip spec's default size, from which the model's
crops are made; ``benchmarks/results/face_tracking.json`` from ``benchmarks/face_tracking.py``):
at 480 the recall of the faces is 0.94-1.0 and the mean IoU of their boxes (source pixels)
0.85-1.0, for 0.56x the pixels YuNet runs on (time per frame, decoding included, on this shared
2-core machine: joy.mp4 40-58 -> 22-29 ms in two runs; where decoding dominates, as on
sadness.mp4, the runs disagree); at 320 the faces of 20-40 px are lost (recall
0.80 on sadness.mp4, 0.86 on surprise.mp4), at 240 more (0.63). Tracking only needs to know
*where* a person is; the crops the model sees come from frames decoded at the spec's own
``max_side`` (a person's clip, :mod:`rdam.data.tracks`), so the smaller tracking frames cost
nothing of the answer.

**Decoding and detection side by side.** A clip's frames are decoded and then searched for faces. PyAV's decoder and OpenCV's YuNet
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

import itertools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox, FaceDetectorLike
from rdam.data.spec import ClipSpec
from rdam.data.tracks import (
    FaceTracks,
    SampledFrames,
    TrackerConfig,
    frame_signature,
    frames_match,
    link_detections,
    signature_distance,
    tracking_times,
)

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


def _boxes_array(boxes: list[FaceBox], scale: float, min_score: float) -> np.ndarray:
    kept = [b for b in boxes if b.w > 0 and b.h > 0 and b.score >= min_score]
    return np.asarray(
        [(b.x * scale, b.y * scale, b.w * scale, b.h * scale, b.score) for b in kept], np.float32
    ).reshape(-1, 5)


def _signatures(frames: np.ndarray, config: TrackerConfig) -> list[np.ndarray] | None:
    if config.cut_distance is None:
        return None
    return [frame_signature(f) for f in frames]


def _dense_search(
    reader: Any,
    detector: FaceDetectorLike,
    config: TrackerConfig,
    min_score: float,
    keyframes: bool,
) -> dict[str, Any]:
    """Every tracking frame of the whole video, decoded at ``config.max_side``."""
    info = reader.info
    t0 = time.perf_counter()
    times = tracking_times(info.duration, info.num_frames, config.rate)
    decoded, faces = read_and_detect(reader, times, config.max_side, detector, keyframes=keyframes)
    frames = decoded.frames
    scale = info.width / frames.shape[2] if len(frames) else 1.0
    detections = [_boxes_array(f, scale, min_score) for f in faces]
    return {
        "times": times,
        "detections": detections,
        "signatures": _signatures(frames, config),
        "bridged": np.zeros(max(len(times) - 1, 0), bool),
        "sampled": None,
        "search": time.perf_counter() - t0,
    }


def _adaptive_search(
    reader: Any,
    detector: FaceDetectorLike,
    config: TrackerConfig,
    min_score: float,
    spec: ClipSpec,
) -> dict[str, Any]:
    """The K frames of the whole-video clip (at ``spec.max_side``, as
    :func:`~rdam.data.clips.read_clip` reads them), then, level by level, the tracking time
    nearest the middle of each stretch whose two ends do not :func:`frames_match` (at
    ``config.max_side``), until every stretch matches or has no tracking time inside."""
    from rdam.data.clips import sample_times

    info = reader.info
    t0 = time.perf_counter()
    wanted = np.asarray(sample_times(info.duration, spec.num_frames, info.num_frames)[0])
    decoded, faces = read_and_detect(
        reader, wanted, spec.max_side, detector, keyframes=spec.keyframes
    )
    frames = decoded.frames
    scale = info.width / frames.shape[2] if len(frames) else 1.0
    dets = {float(t): _boxes_array(f, scale, min_score) for t, f in zip(wanted, faces)}
    sigs = _signatures(frames, config)
    signature = {} if sigs is None else dict(zip(map(float, wanted), sigs))
    grid = tracking_times(info.duration, info.num_frames, config.rate)

    def matches(a: float, b: float) -> bool:
        distance = signature_distance(signature[a], signature[b]) if signature else None
        return frames_match(dets[a], dets[b], config, distance)

    bridged: set[tuple[float, float]] = set()
    pending = [(float(a), float(b)) for a, b in itertools.pairwise(wanted)]
    while pending:
        middles, split = [], []
        for a, b in pending:
            inside = grid[(grid > a + 1e-9) & (grid < b - 1e-9)]
            if not len(inside):
                continue  # neighbours at the tracking rate: searched, whatever they show
            if matches(a, b):
                bridged.add((a, b))
                continue
            m = float(inside[np.argmin(np.abs(inside - (a + b) / 2))])
            middles.append(m)
            split += [(a, m), (m, b)]
        if not middles:
            break
        found, more_faces = read_and_detect(
            reader, np.asarray(middles), config.max_side, detector, keyframes=spec.keyframes
        )
        more = found.frames
        more_scale = info.width / more.shape[2]
        for m, f in zip(middles, more_faces):
            dets[m] = _boxes_array(f, more_scale, min_score)
        if sigs is not None:
            signature.update(zip(middles, _signatures(more, config)))
        pending = split
    times = np.asarray(sorted(dets), np.float64)
    return {
        "times": times,
        "detections": [dets[float(t)] for t in times],
        "signatures": None if sigs is None else [signature[float(t)] for t in times],
        "bridged": np.asarray(
            [(float(a), float(b)) in bridged for a, b in itertools.pairwise(times)], bool
        ),
        "sampled": SampledFrames(
            times=wanted.astype(np.float64),
            shown=np.asarray(decoded.timestamps, np.float64),
            frames=frames,
            faces=faces,
        ),
        "search": time.perf_counter() - t0,
    }


def detect_tracks(
    path: str | Path,
    detector: FaceDetectorLike,
    config: TrackerConfig | None = None,
    *,
    spec: ClipSpec | None = None,
) -> FaceTracks:
    """Search faces over the whole video (``config.search``) and link them into tracks.

    Args:
        path: a video file, an image sequence folder or an image.
        detector: ``detect(frame_rgb) -> list[FaceBox]`` (e.g. :class:`~rdam.data.faces.FaceDetector`).
        config: tracking settings (default :class:`~rdam.data.tracks.TrackerConfig`).
        spec: the model's clip spec (default :class:`~rdam.data.spec.ClipSpec`): its
            ``face_score`` is the tracking score when ``config.min_score`` is None, its
            ``keyframes`` choose approximate decoding, and the adaptive search starts from
            its K frames.

    Raises:
        VideoError (or a subclass) naming the file.
    """
    from rdam.data.video import open_clip

    config = config if config is not None else TrackerConfig()
    spec = spec if spec is not None else ClipSpec()
    min_score = config.min_score if config.min_score is not None else spec.face_score
    with open_clip(path) as reader:
        info = reader.info
        if config.search == "dense":
            found = _dense_search(reader, detector, config, min_score, spec.keyframes)
        else:
            found = _adaptive_search(reader, detector, config, min_score, spec)
    t0 = time.perf_counter()
    times, sigs = found["times"], found["signatures"]
    # tracks keep the searched times, not those of the frames shown: they are increasing
    # even where a variable frame rate shows one frame for two times
    cuts: list[float] = []
    if sigs is not None:
        cuts = [
            float(times[j])
            for j in range(1, len(times))
            if signature_distance(sigs[j - 1], sigs[j]) > config.cut_distance
        ]
    tracks = link_detections(
        times,
        found["detections"],
        config,
        duration=info.duration,
        cuts=cuts,
        bridged=found["bridged"],
    )
    return FaceTracks(
        path=str(path),
        info=info,
        times=times,
        detections=found["detections"],
        cuts=cuts,
        tracks=tracks,
        config=config,
        timing={"search": found["search"], "link": time.perf_counter() - t0},
        bridged=found["bridged"],
        sampled=found["sampled"],
    )
