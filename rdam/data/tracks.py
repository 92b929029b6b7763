"""Face tracks: who is on screen and when (each person's clip and the evidence rules are
:mod:`rdam.data.person_clips`).

    file -> the K frames of the whole-video clip (as read_clip reads them) -> YuNet
         -> between two of them that do not match: tracking frames, level by level
         -> link (Hungarian assignment, shot cuts) -> tracks
         -> per track: K segments of its own span -> the clip frame inside each segment, or
            the segment's centre decoded -> the detection on each frame that belongs to the
            track -> face crops exactly as make_clip makes them -> one Clip per person
         -> evidence rules: an answer, or the reason why not

**Where faces are searched** (:attr:`TrackerConfig.search`: ``adaptive`` or ``dense``) and at
what size the tracking frames are decoded: :mod:`rdam.data.face_search`, whose
:func:`~rdam.data.face_search.detect_tracks` searches a video and links what it finds here.

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

**A person's clip.** A track spans from half-way between its first detection and the frame
searched before it (the start of the video if none) to half-way between its last detection and
the frame searched after it (the end of the video if none): the part of the video its detections
stand for. Its K times are the segment centres of that span
(:class:`~rdam.data.sampling.SegmentSampler`), so a person seen for the whole video gets
exactly the times a single-face clip gets. A segment that holds one of the clip frames the
adaptive search has decoded takes that frame instead (the one nearest the segment's centre: one
frame per segment, as in training, where a segment's frame is drawn anywhere inside it); the
others are decoded as :func:`~rdam.data.clips.read_clip` decodes them (``spec.max_side``, exact times or
keyframes) and the detector runs on each; on each decoded frame the detections (score >=
``spec.face_score``) are assigned one to one to the tracks that have a box at that time (linear
interpolation between their detections) by overlap (IoU >= ``match_iou``,
:func:`~rdam.data.person_clips.match_faces`), so a face is one person's at most, the one whose
box it overlaps best; a track's detection gives the crop, made as :func:`~rdam.data.clips.make_clip` makes it
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
the shipped model's spec (K = 16; the ``tracks`` of
``benchmarks/results/face_tracking.json``). Real faces score 0.80-0.95
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox
from rdam.data.sampling import SegmentSampler, segment_times
from rdam.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------

SEARCH_MODES = ("adaptive", "dense")


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are searched and linked into tracks (see the module notes for the defaults).

    Attributes:
        search: ``adaptive`` (default): the K frames of the whole-video clip first, then the
            tracking frames only between two of them that do not match (see the module
            notes); ``dense``: every tracking frame of the whole video.
        rate: tracking frames per second (over the whole video with ``dense``; between two
            K frames that do not match with ``adaptive``).
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
        match_iou: at a sampled frame, a detection that overlaps the track's box at least
            this much may be the track's face (detections go to tracks one to one, by overlap).
        fill_gaps: crop the interpolated box where no detection matches (default: mask).
    """

    search: str = "adaptive"
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

        if self.search not in SEARCH_MODES:
            raise ConfigError(
                f"tracking: search must be one of {', '.join(SEARCH_MODES)}, got {self.search!r}"
            )
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
class SampledFrames:
    """The K frames of the whole-video clip, decoded and searched under the clip spec by the
    adaptive search and kept: a person on screen for the whole video has exactly these K
    times, so their clip needs no second decoding or detection.

    Attributes:
        times: ``(K,)`` the wanted times (:func:`~rdam.data.clips.sample_times`).
        shown: ``(K,)`` the times of the frames shown then.
        frames: ``(K, H, W, 3)`` uint8 RGB, decoded at ``spec.max_side``.
        faces: per frame, every detection on it (decoded pixels, before any score filter).
    """

    times: np.ndarray
    shown: np.ndarray
    frames: np.ndarray
    faces: list[list[FaceBox]]


@dataclass
class FaceTracks:
    """The faces of one video over time.

    Attributes:
        path: the video.
        info: its :class:`~rdam.data.video.VideoInfo`.
        times: ``(N,)`` the times searched, increasing (the tracking times, or with the
            adaptive search the K clip times and the tracking times between those that did
            not match); the frame searched at each is the one shown then.
        detections: per searched frame, ``(n_j, 5)`` float32 ``(x, y, w, h, score)`` in source
            pixels (the detections at or above the tracking score, before linking).
        cuts: seconds of the searched frames where a shot cut was detected.
        tracks: the tracks kept (at least ``min_detections`` detections).
        config: the :class:`TrackerConfig` used.
        timing: seconds spent in the ``search`` (decoding and detection, side by side:
            :func:`~rdam.data.face_search.read_and_detect`) and in ``link``.
        bridged: ``(N - 1,)`` bool, the stretch between searched frames ``j`` and ``j + 1``
            was left unsearched because both ends match (adaptive search).
        sampled: the K clip frames the adaptive search decoded (None with ``dense``).
    """

    path: str
    info: Any
    times: np.ndarray
    detections: list[np.ndarray]
    cuts: list[float]
    tracks: list[Track]
    config: TrackerConfig
    timing: dict[str, float] = field(default_factory=dict)
    bridged: np.ndarray | None = None
    sampled: SampledFrames | None = None

    @property
    def frames_with_face(self) -> int:
        return sum(len(d) > 0 for d in self.detections)


def tracking_times(duration: float, frames: int | None, rate: float) -> np.ndarray:
    n = max(1, round(duration * rate))
    if frames and frames > 0:
        n = min(n, frames)
    return segment_times(duration, n, np.full(n, 0.5))


_FORBIDDEN = 1e6


def gated_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """The one-to-one pairs ``(row, column)`` of a ``(n, m)`` cost matrix with the least total
    cost (SciPy's Hungarian assignment, ``linear_sum_assignment``), less the pairs a gate
    forbids (cost ``>= _FORBIDDEN``): each row and each column is in one pair at most. What the
    linking of a frame to the tracks (:class:`TrackLinker`), the adaptive search's
    :func:`frames_match` and the per-person crops (``person_clips.match_faces``) all do."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _FORBIDDEN]


def _link_cost(last: np.ndarray, dets: np.ndarray, config: TrackerConfig) -> np.ndarray:
    """``(n_tracks, n_dets)`` cost ``(1 - IoU) + shift`` of linking each track's last box to
    each detection, ``_FORBIDDEN`` where the gates (module notes) do not allow the pair."""
    iou = box_iou(last, dets)
    size_t = np.maximum(_face_size(last), 1.0)[:, None]
    size_d = np.maximum(_face_size(dets[:, :4]), 1.0)[None, :]
    shift = np.linalg.norm(_centre(last)[:, None] - _centre(dets[:, :4])[None], axis=-1) / size_t
    ratio = np.maximum(size_t / size_d, size_d / size_t)
    allowed = ((iou >= config.min_iou) | (shift <= config.max_shift)) & (
        ratio <= config.max_size_ratio
    )
    return np.where(allowed, (1.0 - iou) + shift, _FORBIDDEN)


def frames_match(
    a: np.ndarray, b: np.ndarray, config: TrackerConfig, distance: float | None = None
) -> bool:
    """Whether two searched frames tell the same story, so the stretch between them needs no
    search (the adaptive search): no shot cut between them (``distance``, the
    :func:`signature_distance` of the two frames, at most ``config.cut_distance``), as many
    faces on both (``(n, >=4)`` boxes), and every face of one paired with one of the other
    within the linking gates."""
    cut = config.cut_distance
    if cut is not None and distance is not None and distance > cut:
        return False
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    cost = _link_cost(np.asarray(a, np.float64)[:, :4], np.asarray(b, np.float64), config)
    return len(gated_assignment(cost)) == len(a)


@dataclass
class LinkedFace:
    """One face over the frames linked so far (:class:`TrackLinker`): frame numbers (in the
    order frames were given), boxes ``(x, y, w, h)`` and scores. ``id`` is given when it has
    ``min_detections`` detections (0, 1, ... in that order); None before."""

    key: int
    frames: list[int]
    boxes: list[np.ndarray]
    scores: list[float]
    clocks: list[float]
    id: int | None = None


class TrackLinker:
    """The linking of :func:`link_detections`, one frame at a time: what a live stream uses, and
    what :func:`link_detections` runs over a whole video (see the module notes).

    ``step(detections)`` assigns each detection of the next frame to a live face (one-to-one
    Hungarian assignment on :func:`_link_cost`, within the gates) or starts a new one; faces
    without a detection for more than ``max_gap`` of ``clock`` end, and a cut ends them all.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.live: list[LinkedFace] = []
        self.finished: list[LinkedFace] = []
        self.frame = -1
        self._keys = 0
        self._ids = 0

    def step(self, detections: np.ndarray, *, clock: float, cut: bool = False) -> list[LinkedFace]:
        """Link the next frame's ``(n, 5)`` detections ``(x, y, w, h, score)`` (boxes with no
        area are ignored); ``clock``: its time (s) on the clock ``max_gap`` is measured on.
        Returns, per detection kept, the face it now belongs to."""
        config = self.config
        self.frame += 1
        dets = np.asarray(detections, np.float64).reshape(-1, 5)
        dets = dets[(dets[:, 2] > 0) & (dets[:, 3] > 0)]
        if cut:
            self.finished.extend(self.live)
            self.live = []
        still = []
        for face in self.live:
            gone = clock - face.clocks[-1] > config.max_gap + 1e-9
            (self.finished if gone else still).append(face)
        self.live = still
        owners: list[LinkedFace | None] = [None] * len(dets)
        if self.live and len(dets):
            last = np.asarray([face.boxes[-1] for face in self.live], np.float64)
            cost = _link_cost(last, dets, config)
            for r, c in gated_assignment(cost):
                owners[c] = self.live[r]
        for c, face in enumerate(owners):
            if face is None:
                face = LinkedFace(self._keys, [], [], [], [])
                self._keys += 1
                self.live.append(face)
                owners[c] = face
            face.frames.append(self.frame)
            face.boxes.append(dets[c, :4])
            face.scores.append(float(dets[c, 4]))
            face.clocks.append(clock)
            if face.id is None and len(face.frames) >= config.min_detections:
                face.id = self._ids
                self._ids += 1
        return owners  # type: ignore[return-value]

    def records(self) -> list[LinkedFace]:
        """Every face so far, ended or live."""
        return self.finished + self.live


def link_detections(
    times: Sequence[float] | np.ndarray,
    detections: Sequence[np.ndarray],
    config: TrackerConfig = TrackerConfig(),
    *,
    duration: float | None = None,
    cuts: Sequence[float] = (),
    bridged: Sequence[bool] | np.ndarray | None = None,
) -> list[Track]:
    """Link per-frame detections into tracks (see the module notes).

    Args:
        times: ``(N,)`` increasing seconds of the searched frames.
        detections: per frame ``(n_j, >=4)`` boxes ``(x, y, w, h[, score])``.
        config: the linking settings (``min_score`` is not applied here: filter first).
        duration: the video's length (bounds the spans); default: half a step past the last
            time.
        cuts: times of frames that start a new shot (every track ends before them).
        bridged: ``(N - 1,)`` the stretch between frames ``j`` and ``j + 1`` was not searched
            because both ends match (:func:`frames_match`); it counts as one tracking step
            (``1 / rate``) towards ``max_gap``, not its length.

    Returns:
        the tracks with at least ``config.min_detections`` detections (all of them when there
        are fewer searched frames, e.g. 1 for an image), ids in order of first appearance,
        then of the left edge. A track spans from half-way between its first detection and the
        frame searched before it (the start of the video if none) to half-way between its last
        detection and the frame searched after it (the end of the video if none).
    """
    times = np.asarray(times, np.float64).reshape(-1)
    n = len(times)
    if n != len(detections):
        raise ConfigError(f"{n} tracking times but {len(detections)} detection lists")
    if bridged is None:
        bridged = np.zeros(max(n - 1, 0), bool)
    bridged = np.asarray(bridged, bool).reshape(-1)
    if len(bridged) != max(n - 1, 0):
        raise ConfigError(
            f"{n} tracking times need {max(n - 1, 0)} bridged flags, got {len(bridged)}"
        )
    if duration is None:
        step = float(np.median(np.diff(times))) if n > 1 else 1.0
        duration = float(times[-1] + step / 2) if n else 0.0
    # searched time: a bridged stretch counts as one tracking step towards max_gap
    steps = np.where(bridged, 1.0 / config.rate, np.diff(times))
    clock = np.concatenate([[0.0], np.cumsum(steps)]) if n else np.zeros(0)
    cut_set = {round(float(c), 9) for c in cuts}

    linker = TrackLinker(config)
    for j, (t, dets) in enumerate(zip(times, detections)):
        dets = np.asarray(dets, np.float64).reshape(-1, np.shape(dets)[-1] if np.size(dets) else 5)
        if dets.shape[1] < 5:
            dets = np.concatenate([dets, np.ones((len(dets), 1))], axis=1)
        linker.step(dets, clock=float(clock[j]), cut=round(float(t), 9) in cut_set)
    finished = [{"j": r.frames, "b": r.boxes, "s": r.scores} for r in linker.records()]

    need = min(config.min_detections, max(1, n))  # a single image: one detection
    kept = [tr for tr in finished if len(tr["j"]) >= need]
    kept.sort(key=lambda tr: (tr["j"][0], float(tr["b"][0][0])))
    out = []
    for i, tr in enumerate(kept):
        first, last = tr["j"][0], tr["j"][-1]
        tt = times[tr["j"]]
        start = 0.0 if first == 0 else float(times[first - 1] + times[first]) / 2
        end = float(duration) if last == n - 1 else float(times[last] + times[last + 1]) / 2
        # a link never spans more than max_gap of searched time; a bridged stretch is longer
        gap = float(np.diff(tt).max()) if len(tt) > 1 else 0.0
        out.append(
            Track(
                id=i,
                times=tt,
                boxes=np.asarray(tr["b"], np.float32),
                scores=np.asarray(tr["s"], np.float32),
                start=max(0.0, start),
                end=min(float(duration), end),
                max_gap=max(config.max_gap, gap),
            )
        )
    return out
