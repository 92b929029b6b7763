"""Face tracks: who is on screen and when (each person's clip and the evidence rules are
:mod:`rdam.data.person_clips`).

    file -> tracking times (rate per second, whole duration) -> frames decoded small
         -> YuNet -> link (Hungarian assignment, shot cuts) -> tracks
         -> per track: K segment-centre times inside its own span -> frames decoded under the
            clip spec -> the detection on each frame that belongs to the track
            -> face crops exactly as make_clip makes them -> one Clip per person
         -> evidence rules: an answer, or the reason why not

**Detection at a tracking rate.** Faces are searched ``rate`` times per second (default 4) at
the centres of ``round(duration * rate)`` equal segments of the whole video, on frames decoded
with the longer side at most :attr:`TrackerConfig.max_side` (default 480). Measured on the
Ekman-6 samples against YuNet at 640 (the clip spec's default size, from which the model's
crops are made; ``benchmarks/results/face_tracking.json`` from ``benchmarks/face_tracking.py``):
at 480 the recall of the faces is 0.94-1.0 and the mean IoU of their boxes (source pixels)
0.85-1.0, for 0.56x the pixels YuNet runs on (time per frame, decoding included, on this shared
2-core machine: joy.mp4 40-58 -> 22-29 ms in two runs; where decoding dominates, as on
sadness.mp4, the runs disagree); at 320 the faces of 20-40 px are lost (recall
0.80 on sadness.mp4, 0.86 on surprise.mp4), at 240 more (0.63). Tracking only needs to know
*where* a person is; the crops the model sees come from frames decoded at the spec's own
``max_side`` (below), so the smaller tracking frames cost nothing of the answer.

**Linking.** Detections of consecutive tracking frames are assigned to the live tracks by
SciPy's Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the cost
``(1 - IoU) + d``, ``d`` the distance of the box centres in units of the track's face size
(``sqrt(w h)``), against the track's last box. A pair is allowed only if the boxes overlap
(IoU >= ``min_iou``) or the centre moved at most ``max_shift`` face sizes (default 2), and the
face size changed by at most ``max_size_ratio``. The assignment is one-to-one over all live
tracks at once, so a track whose face was missed cannot take a neighbour's detection while the
neighbour's own track is closer: two people side by side are not swapped. ``max_shift`` 1 broke
sadness.mp4 (a hand-held camera following a child) into 12 tracks and surprise.mp4 into 8; at 2
the child is one track from 3.2 s to the end, and surprise.mp4 has 3 tracks, one for each
person (the woman who enters and the two behind her). This is the
association step of SORT (Bewley et al., 2016) without its Kalman filter: at a few detections
per second a constant-velocity prediction extrapolates a quarter-second of hand-held camera
motion and helps little, and the last box is the more robust guess. A track that finds no
detection waits ``max_gap`` seconds (default 1.0: a turned head, a hand in front of the face, a
missed detection), then ends; a face seen again later starts a new track. A track needs at least
``min_detections`` detections (default 2): a single spurious detection is not a person.

**Shot cuts.** At a cut, another person may stand where the last one stood; box overlap would
carry the track across the cut and mix two people in one clip. Each tracking frame gets a
colour signature (a hue-saturation histogram of the frame shrunk to 64 px,
:func:`frame_signature`); when the Bhattacharyya distance between consecutive tracking frames
exceeds ``cut_distance`` (default 0.5), every track ends there. Within a shot the samples stay
at or below 0.44 but for one 0.60 (surprise.mp4 at 1.1 s, a change of exposure before anyone is
on screen); the real cuts of anger.mp4 are 0.70-0.82, and the last frame of one sample against
the first of another 0.39-1.0 (median 0.84). A false cut only splits a track in two (one per
shot), a missed one may mix two people, so the threshold errs on the side of cutting. Cuts
between shots of similar colours are missed; the box gates above still keep apart people at
different places. The same person on both sides of a cut gets two tracks; linking them again by
appearance is left out on purpose (it is where trackers swap identities).

**A person's clip.** A track spans ``[first detection - step/2, last detection + step/2]`` (the
part of the video its detections stand for, ``step`` = the time between tracking frames); its K
times are the segment centres of that span (:class:`~rdam.data.sampling.SegmentSampler`), so a
person seen for the whole video gets exactly the times a single-face clip gets. Those frames are
decoded as :func:`~rdam.data.clips.read_clip` decodes them (``spec.max_side``, exact times or
keyframes) and the detector runs on each; the detection (score >= ``spec.face_score``) that
best overlaps the track's box at that time (linear interpolation between its detections, IoU >=
``match_iou``) gives the crop, made as :func:`~rdam.data.clips.make_clip` makes it
(:func:`~rdam.data.faces.square_crop_window` with ``spec.face_margin``,
:func:`~rdam.data.faces.crop_square` to ``spec.frame_size``, ``spec.color``). So for one
person alone the crops are those of ``make_clip``. A frame where the track has a box but no
detection matches it is masked, as a faceless frame of ``make_clip`` is (faces are never
invented from a neighbour; ``TrackerConfig(fill_gaps=True)`` crops the interpolated box
instead, still not counted as a face by the evidence rules); a frame outside every stretch of
the track (a gap longer than ``max_gap``) has no box and is masked.

**No answer without evidence.** :class:`rdam.data.person_clips.EvidenceRules` counts the K sampled frames whose face
was detected with a score >= ``min_score`` and a size (shorter side of the box, source pixels)
>= ``min_face_px``; fewer than ``min_frames`` of them and the person gets no answer but a
reason (:func:`rdam.data.person_clips.evidence_reason`). The defaults come from the tracks of the Ekman-6 samples under
the shipped model's spec (K = 16; the ``tracks`` of the JSON above). Real faces score 0.80-0.95
on most sampled frames (9-16 of 16 at 0.8 or more), and are down to 20-24 px (the man of
anger.mp4, a 320 x 240 video). The false detections score lower and rarely: the lizard of disgust.mp4
fires YuNet on 5 of 107 tracking frames at 0.61-0.83 (its one track gets no detection on its 16
frames); a computer monitor in anger.mp4 makes a track of 5 detections at 0.63-0.75 (7 of its
16 frames detected, none at 0.8). So ``min_score = 0.8`` and ``min_frames = 3`` keep every real
face track of these samples and refuse both, and ``min_face_px = 16`` keeps the smallest real
face here while refusing faces too small to read (the shipped model sees 48-px crops of a box
grown by 15 % on each side). A face turned away most of the time (anger.mp4 at 23.4 s, the man
bent over, 1 clear frame of 16) gets no answer either: that is the rule, not a miss.

Nothing here imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox, FaceDetectorLike
from rdam.data.sampling import SegmentSampler, segment_times
from rdam.data.spec import ClipSpec
from rdam.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are searched and linked into tracks (see the module notes for the defaults).

    Attributes:
        rate: tracking frames per second over the whole video.
        max_side: longer side the tracking frames are decoded at (None: native size).
        min_score: detections less confident than this are ignored; None: the clip spec's
            ``face_score`` (or 0.6 where no spec is given).
        min_iou: boxes of a track and a detection that overlap at least this much may link.
        max_shift: ... or whose centres are at most this many face sizes apart.
        max_size_ratio: largest change of face size (``sqrt(w h)``) between linked boxes.
        max_gap: seconds a track may go without a detection before it ends; also the longest
            gap its box is interpolated over.
        min_detections: tracks with fewer detections are dropped.
        cut_distance: Bhattacharyya distance of consecutive frame signatures above which a
            shot cut ends every track; None: no cut detection.
        match_iou: at a sampled frame, the detection that overlaps the track's box at least
            this much is the track's face.
        fill_gaps: crop the interpolated box where no detection matches (default: mask).
    """

    rate: float = 4.0
    max_side: int | None = 480
    min_score: float | None = None
    min_iou: float = 0.2
    max_shift: float = 2.0
    max_size_ratio: float = 2.0
    max_gap: float = 1.0
    min_detections: int = 2
    cut_distance: float | None = 0.5
    match_iou: float = 0.3
    fill_gaps: bool = False

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"tracking: {name} must be a number > 0, got {value!r}")

        for name in ("rate", "max_size_ratio", "max_gap"):
            positive(name)
        for name in ("min_iou", "max_shift", "match_iou"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"tracking: {name} must be a number >= 0, got {value!r}")
        if self.max_side is not None and (
            isinstance(self.max_side, bool)
            or not isinstance(self.max_side, int)
            or self.max_side < 16
        ):
            raise ConfigError(
                f"tracking: max_side must be an integer >= 16 or None, got {self.max_side!r}"
            )
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"tracking: min_score must be in [0, 1], got {self.min_score!r}")
        if (
            isinstance(self.min_detections, bool)
            or not isinstance(self.min_detections, int)
            or self.min_detections < 1
        ):
            raise ConfigError(
                f"tracking: min_detections must be an integer >= 1, got {self.min_detections!r}"
            )
        if self.cut_distance is not None and not 0.0 < self.cut_distance <= 1.0:
            raise ConfigError(
                f"tracking: cut_distance must be in (0, 1] or None, got {self.cut_distance!r}"
            )


# ----------------------------------------------------------------------------------------------
# Boxes
# ----------------------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, >=4)`` with every box of ``b`` ``(M, >=4)``, boxes as
    ``(x, y, w, h)``: ``(N, M)`` float64."""
    a = np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1])[:, :4]
    b = np.asarray(b, np.float64).reshape(-1, np.shape(b)[-1])[:, :4]
    ax1, ay1 = a[:, 0:1], a[:, 1:2]
    ax2, ay2 = ax1 + a[:, 2:3], ay1 + a[:, 3:4]
    bx1, by1 = b[None, :, 0], b[None, :, 1]
    bx2, by2 = bx1 + b[None, :, 2], by1 + b[None, :, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[None, :, 2] * b[None, :, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _centre(b: np.ndarray) -> np.ndarray:
    return b[..., :2] + b[..., 2:4] / 2.0


def _face_size(b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(b[..., 2], 0, None) * np.clip(b[..., 3], 0, None))


# ----------------------------------------------------------------------------------------------
# Shot cuts
# ----------------------------------------------------------------------------------------------


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """A frame's colour signature: a normalised 16 x 8 hue-saturation histogram of the frame
    shrunk to at most 64 px (``(H, W, 3)`` uint8 RGB -> ``(16, 8)`` float32)."""
    import cv2

    frame = np.asarray(frame)
    h, w = frame.shape[:2]
    scale = 64.0 / max(h, w)
    if scale < 1.0:
        frame = cv2.resize(
            frame,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
    hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    total = float(hist.sum())
    return (hist / total if total > 0 else hist).astype(np.float32)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two :func:`frame_signature` s: 0 = same colours, 1 = none in
    common."""
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


# ----------------------------------------------------------------------------------------------
# Tracks
# ----------------------------------------------------------------------------------------------


@dataclass
class Track:
    """One face over time: a person on screen in one shot.

    Attributes:
        id: 0, 1, ... in order of first appearance (then left to right).
        times: ``(N,)`` seconds of the tracking frames where it was detected, increasing.
        boxes: ``(N, 4)`` float32 ``(x, y, w, h)`` in source pixels.
        scores: ``(N,)`` float32 detector confidence.
        start, end: the span its detections stand for, ``[start, end)`` seconds (half a
            tracking step around the first and the last detection, inside the video).
        max_gap: seconds over which its box is interpolated between detections.
    """

    id: int
    times: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    start: float
    end: float
    max_gap: float = 1.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def num_detections(self) -> int:
        return len(self.times)

    def sample_times(self, num_frames: int) -> np.ndarray:
        """``(K,)`` seconds: the centres of ``K`` equal segments of ``[start, end)`` (the rule
        of :class:`~rdam.data.sampling.SegmentSampler` at evaluation, inside the track)."""
        times = SegmentSampler(num_frames, mode="center").sample(max(self.duration, 0.0))
        return self.start + times

    def box_at(self, t: float) -> np.ndarray | None:
        """``(4,)`` box at ``t`` seconds (source pixels): linear between the two detections
        around ``t`` when they are at most ``max_gap`` apart, the first (last) box before
        (after) the first (last) detection inside the span; None elsewhere."""
        if t < self.start or t > self.end:
            return None
        i = int(np.searchsorted(self.times, t, side="right"))
        if i == 0:
            return self.boxes[0].astype(np.float64)
        if i == len(self.times):
            return self.boxes[-1].astype(np.float64)
        t0, t1 = float(self.times[i - 1]), float(self.times[i])
        if t1 - t0 > self.max_gap + 1e-9:
            return None
        u = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return (1 - u) * self.boxes[i - 1].astype(np.float64) + u * self.boxes[i].astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: id, span, and the detections (times, boxes, scores)."""
        return {
            "id": self.id,
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "detections": [
                {
                    "time": round(float(t), 4),
                    "box": [round(float(v), 1) for v in b],
                    "score": round(float(s), 4),
                }
                for t, b, s in zip(self.times, self.boxes, self.scores)
            ],
        }


@dataclass
class FaceTracks:
    """The faces of one video over time.

    Attributes:
        path: the video.
        info: its :class:`~rdam.data.video.VideoInfo`.
        times: ``(N,)`` the tracking times (segment centres, seconds); the frame searched at each
            is the one shown then.
        detections: per tracking frame, ``(n_j, 5)`` float32 ``(x, y, w, h, score)`` in source
            pixels (the detections at or above the tracking score, before linking).
        cuts: seconds of the tracking frames where a shot cut was detected.
        tracks: the tracks kept (at least ``min_detections`` detections).
        config: the :class:`TrackerConfig` used.
        timing: seconds spent in ``decode``, ``detect`` and ``link``.
    """

    path: str
    info: Any
    times: np.ndarray
    detections: list[np.ndarray]
    cuts: list[float]
    tracks: list[Track]
    config: TrackerConfig
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def frames_with_face(self) -> int:
        return sum(len(d) > 0 for d in self.detections)


def _tracking_times(duration: float, frames: int | None, rate: float) -> np.ndarray:
    n = max(1, round(duration * rate))
    if frames and frames > 0:
        n = min(n, frames)
    return segment_times(duration, n, np.full(n, 0.5))


def link_detections(
    times: Sequence[float] | np.ndarray,
    detections: Sequence[np.ndarray],
    config: TrackerConfig = TrackerConfig(),
    *,
    duration: float | None = None,
    cuts: Sequence[float] = (),
) -> list[Track]:
    """Link per-frame detections into tracks (see the module notes).

    Args:
        times: ``(N,)`` increasing seconds of the tracking frames.
        detections: per frame ``(n_j, >=4)`` boxes ``(x, y, w, h[, score])``.
        config: the linking settings (``min_score`` is not applied here: filter first).
        duration: the video's length (bounds the spans); default: one step past the last time.
        cuts: times of frames that start a new shot (every track ends before them).

    Returns:
        the tracks with at least ``config.min_detections`` detections (all of them when there
        are fewer tracking frames, e.g. 1 for an image), ids in order of first appearance,
        then of the left edge.
    """
    from scipy.optimize import linear_sum_assignment

    times = np.asarray(times, np.float64).reshape(-1)
    if len(times) != len(detections):
        raise ConfigError(f"{len(times)} tracking times but {len(detections)} detection lists")
    step = float(np.median(np.diff(times))) if len(times) > 1 else (duration or 1.0)
    if duration is None:
        duration = float(times[-1] + step / 2) if len(times) else 0.0
    cut_set = {round(float(c), 9) for c in cuts}
    forbidden = 1e6

    finished: list[dict[str, list]] = []
    live: list[dict[str, list]] = []
    for t, dets in zip(times, detections):
        dets = np.asarray(dets, np.float64).reshape(-1, np.shape(dets)[-1] if np.size(dets) else 5)
        if dets.shape[1] < 5:
            dets = np.concatenate([dets, np.ones((len(dets), 1))], axis=1)
        dets = dets[(dets[:, 2] > 0) & (dets[:, 3] > 0)]
        if round(float(t), 9) in cut_set:
            finished.extend(live)
            live = []
        still = []
        for tr in live:
            (finished if t - tr["t"][-1] > config.max_gap + 1e-9 else still).append(tr)
        live = still
        matched_dets: set[int] = set()
        if live and len(dets):
            last = np.asarray([tr["b"][-1] for tr in live], np.float64)
            iou = box_iou(last, dets)
            size_t = np.maximum(_face_size(last), 1.0)[:, None]
            size_d = np.maximum(_face_size(dets), 1.0)[None, :]
            shift = np.linalg.norm(_centre(last)[:, None] - _centre(dets)[None], axis=-1) / size_t
            ratio = np.maximum(size_t / size_d, size_d / size_t)
            allowed = ((iou >= config.min_iou) | (shift <= config.max_shift)) & (
                ratio <= config.max_size_ratio
            )
            cost = np.where(allowed, (1.0 - iou) + shift, forbidden)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] >= forbidden:
                    continue
                live[r]["t"].append(float(t))
                live[r]["b"].append(dets[c, :4])
                live[r]["s"].append(float(dets[c, 4]))
                matched_dets.add(int(c))
        for j in range(len(dets)):
            if j not in matched_dets:
                live.append({"t": [float(t)], "b": [dets[j, :4]], "s": [float(dets[j, 4])]})
    finished.extend(live)

    need = min(config.min_detections, max(1, len(times)))  # a single image: one detection
    kept = [tr for tr in finished if len(tr["t"]) >= need]
    kept.sort(key=lambda tr: (tr["t"][0], float(tr["b"][0][0])))
    out = []
    for i, tr in enumerate(kept):
        tt = np.asarray(tr["t"], np.float64)
        out.append(
            Track(
                id=i,
                times=tt,
                boxes=np.asarray(tr["b"], np.float32),
                scores=np.asarray(tr["s"], np.float32),
                start=max(0.0, float(tt[0]) - step / 2),
                end=min(float(duration), float(tt[-1]) + step / 2),
                max_gap=config.max_gap,
            )
        )
    return out


def _boxes_array(boxes: list[FaceBox], scale: float, min_score: float) -> np.ndarray:
    kept = [b for b in boxes if b.w > 0 and b.h > 0 and b.score >= min_score]
    return np.asarray(
        [(b.x * scale, b.y * scale, b.w * scale, b.h * scale, b.score) for b in kept], np.float32
    ).reshape(-1, 5)


def detect_tracks(
    path: str | Path,
    detector: FaceDetectorLike,
    config: TrackerConfig = TrackerConfig(),
    *,
    spec: ClipSpec | None = None,
) -> FaceTracks:
    """Search faces at ``config.rate`` over the whole video and link them into tracks.

    Args:
        path: a video file, an image sequence folder or an image.
        detector: ``detect(frame_rgb) -> list[FaceBox]`` (e.g. :class:`~rdam.data.faces.FaceDetector`).
        config: tracking settings.
        spec: the model's clip spec: its ``face_score`` is the tracking score when
            ``config.min_score`` is None, its ``keyframes`` choose approximate decoding.

    Raises:
        VideoError (or a subclass) naming the file.
    """
    from rdam.data.video import open_clip

    min_score = (
        config.min_score
        if config.min_score is not None
        else (spec.face_score if spec is not None else 0.6)
    )
    t0 = time.perf_counter()
    with open_clip(path) as reader:
        info = reader.info
        times = _tracking_times(info.duration, info.num_frames, config.rate)
        read = reader.read_keyframes if spec is not None and spec.keyframes else reader.read
        decoded = read(times, max_side=config.max_side)
    t1 = time.perf_counter()
    frames = decoded.frames
    scale = info.width / frames.shape[2] if len(frames) else 1.0
    detections = [_boxes_array(detector.detect(f), scale, min_score) for f in frames]
    t2 = time.perf_counter()
    # tracks keep the tracking times, not those of the frames shown: they are increasing and
    # evenly spaced even where a variable frame rate shows one frame for two times
    cuts: list[float] = []
    if config.cut_distance is not None and len(frames) > 1:
        sigs = [frame_signature(f) for f in frames]
        cuts = [
            float(times[j])
            for j in range(1, len(frames))
            if signature_distance(sigs[j - 1], sigs[j]) > config.cut_distance
        ]
    tracks = link_detections(times, detections, config, duration=info.duration, cuts=cuts)
    t3 = time.perf_counter()
    return FaceTracks(
        path=str(path),
        info=info,
        times=times,
        detections=detections,
        cuts=cuts,
        tracks=tracks,
        config=config,
        timing={"decode": t1 - t0, "detect": t2 - t1, "link": t3 - t2},
    )
