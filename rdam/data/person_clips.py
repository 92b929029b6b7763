"""One clip per person: each face track's K face crops under the model's clip spec, and the
evidence rules that decide whether a person (or a single-face clip) gets an answer.

The tracks themselves are :mod:`rdam.data.tracks` (its notes give the measurements the
defaults of :class:`EvidenceRules` come from). Nothing here imports torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.clips import Clip
from rdam.data.face_search import detect_tracks, read_and_detect
from rdam.data.faces import FaceBox, FaceDetectorLike, crop_square, square_crop_window
from rdam.data.frames import fit_frames, to_color
from rdam.data.spec import ClipSpec
from rdam.data.tracks import (
    _FORBIDDEN,
    FaceTracks,
    SampledFrames,
    Track,
    TrackerConfig,
    box_iou,
    gated_assignment,
)
from rdam.errors import ConfigError

DEFAULT_TRACKER = TrackerConfig()


@dataclass(frozen=True)
class EvidenceRules:
    """When a person's clip is evidence enough for an answer (see the module notes).

    Attributes:
        min_score: a sampled frame counts as "a face" only if its detection scores this much.
        min_face_px: ... and the box's shorter side is at least this many source pixels.
        min_frames: at least this many of the K sampled frames must have such a face (all K
            when K is smaller).
    """

    min_score: float = 0.8
    min_face_px: float = 16.0
    min_frames: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"evidence: min_score must be in [0, 1], got {self.min_score!r}")
        if isinstance(self.min_face_px, bool) or not self.min_face_px >= 0:
            raise ConfigError(f"evidence: min_face_px must be >= 0, got {self.min_face_px!r}")
        if (
            isinstance(self.min_frames, bool)
            or not isinstance(self.min_frames, int)
            or self.min_frames < 1
        ):
            raise ConfigError(
                f"evidence: min_frames must be an integer >= 1, got {self.min_frames!r}"
            )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "min_score": self.min_score,
            "min_face_px": self.min_face_px,
            "min_frames": self.min_frames,
        }


# ----------------------------------------------------------------------------------------------
# Each person's clip
# ----------------------------------------------------------------------------------------------


@dataclass
class PersonClip:
    """One track and its clip as the model takes it.

    Attributes:
        track: the :class:`Track`.
        clip: the :class:`~rdam.data.clips.Clip` (face crops as the main input, or frames plus
            crops for a two-stream model); ``clip.boxes`` in decoded (``raw``) pixels as
            :func:`~rdam.data.clips.make_clip` gives them.
        boxes: ``(K, 5)`` float32 ``(x, y, w, h, score)`` in source pixels at the sampled
            frames: the matched detection, or the track's interpolated box with score NaN; all
            NaN where the track has no box.
        detected: ``(K,)`` bool, the crop comes from a detection on that very frame.
        evidence: None when :class:`EvidenceRules` allow an answer, else the reason why not.
    """

    track: Track
    clip: Clip
    boxes: np.ndarray
    detected: np.ndarray
    evidence: str | None = None

    @property
    def coverage(self) -> tuple[int, int]:
        """``(frames with a detected face, frames)``, each frame of the video counted once
        (K, unless several sampled times show one frame: :func:`distinct_frames`)."""
        first = distinct_frames(self.clip.timestamps, len(self.detected))
        return int((self.detected & first).sum()), int(first.sum())


@dataclass
class PeopleClips:
    """:func:`read_person_clips`'s result: the tracks of a video and one clip per track."""

    tracks: FaceTracks
    people: list[PersonClip]
    rules: EvidenceRules

    @property
    def answerable(self) -> list[PersonClip]:
        """The people with evidence enough for an answer."""
        return [p for p in self.people if p.evidence is None]

    def reason(self) -> str | None:
        """Why the video as a whole has no answer (None when a person has one)."""
        return video_evidence_reason(self)


def evidence_reason(person: PersonClip, rules: EvidenceRules = EvidenceRules()) -> str | None:
    """None when ``person``'s clip is evidence enough under ``rules``, else why not (one
    human-readable sentence with the numbers)."""
    return faces_evidence_reason(
        person.boxes,
        person.detected,
        rules,
        f"face {person.track.id}: a clear face",
        shown=person.clip.timestamps,
    )


def distinct_frames(shown: np.ndarray | None, k: int) -> np.ndarray:
    """``(K,)`` bool: which of K sampled frames show a frame of the video for the first time.
    Several sampled times can show one frame: the nearest keyframe of each (``keyframes``
    spec), or a video with fewer frames than K. ``shown`` are the ``(K,)`` times of the frames
    shown (:attr:`rdam.data.clips.Clip.timestamps`); None: all K are distinct."""
    if shown is None:
        return np.ones(k, bool)
    shown = np.asarray(shown, np.float64)
    if shown.shape != (k,):
        raise ValueError(f"{shown.shape} shown times for {k} sampled frames")
    first = np.zeros(k, bool)
    first[np.unique(shown, return_index=True)[1]] = True
    return first


def faces_evidence_reason(
    boxes: np.ndarray,
    detected: np.ndarray,
    rules: EvidenceRules,
    what: str = "a clear face",
    shown: np.ndarray | None = None,
) -> str | None:
    """The evidence rules on K sampled frames: ``boxes`` ``(K, 5)`` ``x, y, w, h, score`` in
    source pixels, ``detected`` ``(K,)`` (a detection on that very frame), ``shown`` the
    ``(K,)`` times of the frames shown: a frame that several sampled times show counts once
    (:func:`distinct_frames`), so one detection on a keyframe that stands for three sampled
    times is one frame of evidence, not three. None when enough frames have a clear face,
    else why not."""
    first = distinct_frames(shown, len(detected))
    k = int(first.sum())
    need = min(rules.min_frames, k)
    scores = boxes[:, 4]
    sizes = np.minimum(boxes[:, 2], boxes[:, 3])
    good = (
        detected
        & (np.nan_to_num(scores, nan=-1.0) >= rules.min_score)
        & (np.nan_to_num(sizes, nan=-1.0) >= rules.min_face_px)
    )
    count = int((good & first).sum())
    if count >= need:
        return None
    found = int((detected & first).sum())
    detail = ""
    if found:
        best = float(np.nanmax(np.where(detected, scores, np.nan)))
        big = float(np.nanmax(np.where(detected, sizes, np.nan)))
        detail = f"; detected in {found}, best score {best:.3f}, largest face {big:.0f} px"
    frames = f"{k} sampled frames"
    if k < len(detected):
        frames = f"{k} distinct frames ({len(detected)} sampled times)"
    return (
        f"{what} in {count} of {frames}, at least {need} needed "
        f"(score >= {rules.min_score:g}, face >= {rules.min_face_px:g} px){detail}"
    )


def video_evidence_reason(result: PeopleClips) -> str | None:
    """Why a video gives no answer at all: no face found, no track kept, or no person with
    evidence enough (the reasons of each); None when someone has an answer."""
    if result.answerable:
        return None
    tracks = result.tracks
    n = len(tracks.times)
    if not tracks.frames_with_face:
        return f"no face found in {n} frames searched ({tracks.config.rate:g} per second)"
    if not result.people:
        scores = [float(d[:, 4].max()) for d in tracks.detections if len(d)]
        return (
            f"faces in {tracks.frames_with_face} of {n} frames searched, never in "
            f"{tracks.config.min_detections} of them at one place (no face track; best score "
            f"{max(scores):.3f})"
        )
    return "no face with evidence enough: " + "; ".join(p.evidence or "" for p in result.people)


def clip_from_boxes(
    raw: np.ndarray,
    shown: np.ndarray,
    boxes: list[FaceBox | None],
    spec: ClipSpec,
    *,
    path: str = "",
    source_size: tuple[int, int] | None = None,
    keep_raw: bool = False,
) -> Clip:
    """The clip of one person from decoded frames ``(K, H, W, 3)`` and that person's box on
    each (decoded pixels; None: no face there, the frame is masked): each crop made as
    :func:`~rdam.data.clips.make_clip` makes it (:func:`square_crop_window` with
    ``spec.face_margin``, :func:`crop_square` to ``spec.frame_size``, ``spec.color``)."""
    k = len(raw)
    height, width = raw.shape[1:3]
    size = spec.frame_size
    crops = np.zeros((k, size, size, 3), np.uint8)
    mask = np.zeros(k, bool)
    raw_boxes = np.full((k, 5), np.nan, np.float32)
    t0 = time.perf_counter()
    for i, box in enumerate(boxes):
        if box is None:
            continue
        x0, y0, side = square_crop_window(box, spec.face_margin)
        crops[i] = crop_square(raw[i], x0, y0, side, size)
        mask[i] = True
        raw_boxes[i] = (box.x, box.y, box.w, box.h, box.score)
    fitted = (
        to_color(fit_frames(raw, spec.frame_size, spec.fit), spec.color)
        if spec.uses_frames
        else None
    )
    return Clip.from_streams(
        spec,
        np.asarray(shown, np.float64),
        fitted,
        to_color(crops, spec.color),
        mask,
        path=path,
        boxes=raw_boxes,
        face_input="detect",
        raw=raw if keep_raw else None,
        source_size=source_size or (int(width), int(height)),
        raw_size=(int(width), int(height)),
        timing={"faces": time.perf_counter() - t0},
    )


def match_faces(
    expected: Sequence[np.ndarray | None],
    faces: Sequence[FaceBox],
    config: TrackerConfig = DEFAULT_TRACKER,
    *,
    scale: float = 1.0,
    min_score: float = 0.0,
) -> list[int | None]:
    """One frame's detections given to the tracks on it, one to one.

    ``expected``: each track's box ``(x, y, w, h)`` at that frame (source pixels; None where
    the track has no box then); ``faces``: the frame's detections (``scale`` times their pixels
    are source pixels). The detections with an area and a score >= ``min_score`` are assigned to
    the tracks with a box by the Hungarian assignment
    (:func:`~rdam.data.tracks.gated_assignment`) on
    ``1 - IoU``, a pair allowed only at IoU >= ``config.match_iou``: a detection goes to at most
    one track, and where two tracks overlap one detection it goes to the track it fits best
    (unless that leaves a face of the other track unmatched). Returns, per track, the index in
    ``faces`` of its detection, None where no detection passes the gate (no face there).
    """
    out: list[int | None] = [None] * len(expected)
    rows = [i for i, box in enumerate(expected) if box is not None]
    keep = [j for j, b in enumerate(faces) if b.w > 0 and b.h > 0 and b.score >= min_score]
    if not rows or not keep:
        return out
    found = np.asarray([(faces[j].x, faces[j].y, faces[j].w, faces[j].h) for j in keep])
    iou = box_iou(np.asarray([expected[i] for i in rows], np.float64), found * scale)
    cost = np.where(iou >= config.match_iou, 1.0 - iou, _FORBIDDEN)
    for r, c in gated_assignment(cost):
        out[rows[r]] = keep[c]
    return out


def _match_people(
    tracks: Sequence[Track],
    at: Sequence[np.ndarray],
    shown: Sequence[np.ndarray],
    faces: Sequence[Sequence[list[FaceBox]]],
    config: TrackerConfig,
    *,
    scale: float,
    min_score: float,
) -> list[list[FaceBox | None]]:
    """Per track and sampled frame (``at``: the times its box is taken at, ``shown``: the
    times of the frames shown then, ``faces``: their detections), the detection that is that
    track's face (None: none). The frames several tracks take that show one frame (one shown
    time) are one frame: its detections are assigned once (:func:`match_faces`) to every track
    with a box then, whether that track samples it or not, so no two people share a face; each
    track's box is taken at the time it samples the frame (the first of them), or, for a track
    that does not sample it, at the time of the first track that does."""
    frames: dict[float, list[tuple[int, int]]] = {}
    for p, times in enumerate(shown):
        for k, s in enumerate(times):
            frames.setdefault(float(s), []).append((p, k))
    out: list[list[FaceBox | None]] = [[None] * len(times) for times in shown]
    for members in frames.values():
        p0, k0 = members[0]
        dets = faces[p0][k0]
        first: dict[int, int] = {}
        for p, k in members:
            first.setdefault(p, k)
        expected = [
            track.box_at(float(at[p][first[p]] if p in first else at[p0][k0]))
            for p, track in enumerate(tracks)
        ]
        owner = match_faces(expected, dets, config, scale=scale, min_score=min_score)
        for p, k in members:
            j = owner[p]
            out[p][k] = None if j is None else dets[j]
    return out


def _person_clip(
    track: Track,
    raw: np.ndarray,
    wanted: np.ndarray,
    shown: np.ndarray,
    spec: ClipSpec,
    matched: Sequence[FaceBox | None],
    config: TrackerConfig,
    source_size: tuple[int, int],
    path: str,
    keep_raw: bool,
) -> PersonClip:
    """``matched``: per sampled frame, the track's detection there (:func:`_match_people`)."""
    k = len(raw)
    scale = source_size[0] / raw.shape[2]  # raw -> source pixels
    detected = np.zeros(k, bool)
    src_boxes = np.full((k, 5), np.nan, np.float32)
    crop_boxes: list[FaceBox | None] = [None] * k
    t0 = time.perf_counter()
    for i in range(k):
        expected = track.box_at(float(wanted[i]))
        if expected is None:
            continue
        best = matched[i]
        if best is not None:
            detected[i] = True
            crop_boxes[i] = best
            src_boxes[i] = (
                best.x * scale,
                best.y * scale,
                best.w * scale,
                best.h * scale,
                best.score,
            )
        else:
            src_boxes[i, :4] = expected
            if config.fill_gaps:
                e = expected / scale
                crop_boxes[i] = FaceBox(
                    x=float(e[0]), y=float(e[1]), w=float(e[2]), h=float(e[3]), score=float("nan")
                )
    search_s = time.perf_counter() - t0
    clip = clip_from_boxes(
        raw, shown, crop_boxes, spec, path=path, source_size=source_size, keep_raw=keep_raw
    )
    clip.timing["faces"] += search_s
    return PersonClip(track=track, clip=clip, boxes=src_boxes, detected=detected)


def _pick_sampled(track: Track, k: int, sampled: SampledFrames | None) -> np.ndarray:
    """``(k,)`` for each of the ``k`` equal segments of ``track``'s span, the index of the
    frame of ``sampled`` inside it (half-open) nearest its centre, -1 where there is none."""
    pick = np.full(k, -1, np.int64)
    if sampled is None or not len(sampled.times):
        return pick
    length = track.duration / k
    for i, centre in enumerate(track.sample_times(k)):
        inside = (sampled.times >= centre - length / 2 - 1e-9) & (
            sampled.times < centre + length / 2 - 1e-9
        )
        if inside.any():
            candidates = np.flatnonzero(inside)
            pick[i] = candidates[np.argmin(np.abs(sampled.times[candidates] - centre))]
    return pick


def _frame_shape(sampled: SampledFrames | None, decoded: Any) -> tuple[int, ...]:
    return (sampled.frames if decoded is None else decoded.frames).shape[1:]


def read_person_clips(
    path: str | Path,
    spec: ClipSpec,
    detector: FaceDetectorLike,
    config: TrackerConfig = DEFAULT_TRACKER,
    rules: EvidenceRules = EvidenceRules(),
    *,
    tracks: FaceTracks | None = None,
    keep_raw: bool = False,
) -> PeopleClips:
    """The face tracks of a video and, for each, its clip under ``spec`` (see the module
    notes), with the evidence rules applied (:attr:`PersonClip.evidence`).

    Args:
        path: the video (or image sequence, or image).
        spec: the model's clip spec; it must take face crops (``stream`` ``faces`` or ``both``).
        detector: the face detector.
        config: tracking settings.
        rules: evidence rules.
        tracks: tracks already found (:func:`detect_tracks`) for this path.
        keep_raw: keep the decoded frames in each clip (explanations, annotation).

    Raises:
        ConfigError: the spec takes whole frames only.
        VideoError (or a subclass) naming the file.
    """
    from rdam.data.video import open_clip

    if not spec.uses_faces:
        raise ConfigError(
            "per-person clips need a model that takes face crops (clip spec stream 'faces' or "
            f"'both'); this one takes {spec.stream!r}"
        )
    if tracks is None:
        tracks = detect_tracks(path, detector, config, spec=spec)
    people: list[PersonClip] = []
    if not tracks.tracks:
        return PeopleClips(tracks=tracks, people=people, rules=rules)
    info = tracks.info
    fps = info.fps if info.fps and info.fps > 0 else 0.0
    wanted = []
    for track in tracks.tracks:
        available = max(1, math.floor(track.duration * fps)) if fps else spec.num_frames
        wanted.append(track.sample_times(min(spec.num_frames, available)))
    # each segment of a person's span takes the frame the adaptive search has decoded and
    # searched already inside it, nearest its centre; the other segments decode their centre
    sampled = tracks.sampled
    picks = [
        _pick_sampled(track, len(times), sampled) for track, times in zip(tracks.tracks, wanted)
    ]
    t0 = time.perf_counter()
    rest = np.concatenate([times[pick < 0] for times, pick in zip(wanted, picks)] or [np.zeros(0)])
    decoded = None
    rest_faces: list[list[FaceBox]] = []
    if len(rest):
        with open_clip(path) as reader:
            decoded, rest_faces = read_and_detect(
                reader, rest, spec.max_side, detector, keyframes=spec.keyframes
            )
    decode_s = time.perf_counter() - t0
    offset = 0
    frames: list[tuple[np.ndarray, np.ndarray, list[list[FaceBox]], np.ndarray]] = []
    for times, pick in zip(wanted, picks):
        new = np.flatnonzero(pick < 0)
        rows = np.arange(offset, offset + len(new))
        offset += len(new)
        raw = np.empty((len(times), *_frame_shape(sampled, decoded)), np.uint8)
        shown = np.empty(len(times), np.float64)
        faces: list[list[FaceBox] | None] = [None] * len(times)
        at = np.asarray(times, np.float64).copy()
        for i, j in enumerate(pick):
            if j >= 0:
                raw[i], shown[i], faces[i] = sampled.frames[j], sampled.shown[j], sampled.faces[j]
                at[i] = sampled.times[j]
        if len(new):
            raw[new] = decoded.frames[rows]
            shown[new] = np.asarray(decoded.timestamps, np.float64)[rows]
            for i, row in zip(new, rows):
                faces[i] = rest_faces[row]
        searched = [f if f is not None else detector.detect(raw[i]) for i, f in enumerate(faces)]
        frames.append((raw, shown, searched, at))
    source_size = (int(info.width), int(info.height))
    # one frame's detections go to the people on it one to one (a face is one person's)
    matched = _match_people(
        tracks.tracks,
        [f[3] for f in frames],
        [f[1] for f in frames],
        [f[2] for f in frames],
        config,
        scale=source_size[0] / _frame_shape(sampled, decoded)[1],
        min_score=spec.face_score,
    )
    for track, (raw, shown, _, at), mine, pick in zip(tracks.tracks, frames, matched, picks):
        person = _person_clip(
            track, raw, at, shown, spec, mine, config, source_size, str(path), keep_raw
        )
        person.clip.timing["decode"] = decode_s * int((pick < 0).sum()) / max(len(rest), 1)
        person.clip.info = info
        person.evidence = evidence_reason(person, rules)
        people.append(person)
    return PeopleClips(tracks=tracks, people=people, rules=rules)


__all__ = [
    "EvidenceRules",
    "PeopleClips",
    "PersonClip",
    "clip_from_boxes",
    "distinct_frames",
    "evidence_reason",
    "faces_evidence_reason",
    "match_faces",
    "read_person_clips",
    "video_evidence_reason",
]
