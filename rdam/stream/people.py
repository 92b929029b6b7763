"""Every person of a live stream, window after window (``rdam predict --stream SOURCE
--people``).

The windows are those of :mod:`rdam.stream.windows` (the same kept frames and schedule). Each
kept frame is searched for faces once, as it arrives (the predictor's detector, scores at or
above ``spec.face_score``). Its detections are then linked to the people seen so far by the
tracker's own linking (:class:`rdam.data.tracks.TrackLinker`: Hungarian assignment within the
gates, ``max_gap`` seconds of stream time, and shot cuts from the colour signatures of
consecutive kept frames). A person keeps their id for as long as their track lives, across
windows, and gets an id once they have ``min_detections`` detections.

At each window, every person with a face in one of its frames gets a clip: their crops on
the window's frames, made as :func:`~rdam.data.clips.make_clip` makes them
(:func:`~rdam.data.person_clips.clip_from_boxes`), masked where their face is not there. All
these clips go through the model in one batch. Each person then gets an answer, or none with
the reason, by the evidence rules (as ``rdam predict --people`` gives it). The window's answer
is that of the answerable person on screen longest: the track that has lived longest so far;
ties go to more frames with a face in the window, then the smaller id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rdam.data.faces import FaceBox
from rdam.data.person_clips import EvidenceRules, clip_from_boxes, faces_evidence_reason
from rdam.data.tracks import (
    LinkedFace,
    TrackerConfig,
    TrackLinker,
    frame_signature,
    signature_distance,
)
from rdam.errors import ConfigError
from rdam.inference import Predictor
from rdam.inference.people import ANY_FACE, VIDEO_RULE, answer_fields
from rdam.stream.sources import stream_frames
from rdam.stream.windows import DEFAULT_SAMPLE_FPS, kept_windows, window_settings


@dataclass
class _KeptFrame:
    time: float
    frame: np.ndarray
    faces: list[FaceBox]  # in the pixels of ``frame`` (downscaled to the spec's max_side)
    owners: list[LinkedFace]
    source_size: tuple[int, int]  # (width, height) of the source frame ``frame`` was made from


@dataclass
class StreamPerson:
    """One person in one window: their answer (or the reason for none), per-frame
    probabilities and normalised weights over the window's frames, and their boxes."""

    person: int
    first_seen: float
    label: str | None
    probabilities: dict[str, float]
    reason: str | None
    timestamps: list[float]
    boxes: list[list[float] | None]
    frame_probabilities: list[dict[str, float] | None] | None
    frame_weights: list[float]
    coverage: dict[str, int]

    @property
    def score(self) -> float | None:
        return self.probabilities.get(self.label) if self.label is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "score": self.score}


@dataclass
class StreamPeopleWindow:
    """Every person of one window, and the window's answer by :data:`VIDEO_RULE`;
    ``overrides`` and ``model_values``: the clip spec fields run otherwise than the model
    file's (:attr:`~rdam.inference.Predictor.spec_overrides`), as every answer carries them;
    ``frame_weights_learned``: :attr:`~rdam.inference.Predictor.frame_weights_learned`."""

    index: int
    source: str
    start: float
    end: float
    latency: float
    label: str | None
    probabilities: dict[str, float]
    person: int | None
    reason: str | None
    people: list[StreamPerson] = field(default_factory=list)
    rule: str = VIDEO_RULE
    overrides: dict[str, Any] = field(default_factory=dict)
    model_values: dict[str, Any] = field(default_factory=dict)
    frame_weights_learned: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("index", "latency", "people")}
        return {
            "window": self.index,
            "latency_s": self.latency,
            **data,
            "people": [p.to_dict() for p in self.people],
        }


def predict_stream_people(
    predictor: Predictor,
    source: str | int,
    window: int | None = None,
    stride: int | None = None,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    max_windows: int | None = None,
    first_window: int | None = None,
    tracker: TrackerConfig | None = None,
    rules: EvidenceRules | None = None,
) -> Iterator[StreamPeopleWindow]:
    """Every person of each window of a stream (see the module notes); the window arguments
    are those of :func:`~rdam.stream.windows.predict_stream`.

    Args:
        tracker: the linking settings (``max_gap``, the gates, ``cut_distance``,
            ``min_detections``; the search settings do not apply to a stream).
        rules: the evidence rules (default: the predictor's; when it has them off, a face in
            one frame of the window is enough).

    Raises:
        ConfigError: the model does not take face crops.
        VideoError (subclasses) naming the source (as :func:`~rdam.stream.predict_stream`:
            also a file or URL whose video holds no frame).
    """
    if predictor.spec.stream != "faces":
        raise ConfigError(
            "per-person streams need a face-stream model (clip spec stream 'faces'); this "
            f"model takes {predictor.spec.stream!r}"
        )
    k, stride, first = window_settings(
        predictor, window, stride, sample_fps, first_window, max_windows
    )
    tracker = tracker or TrackerConfig()
    if rules is None:
        rules = predictor.evidence if predictor.evidence is not None else ANY_FACE
    linker = TrackLinker(tracker)
    name = str(source)
    spec = predictor.spec
    previous: list[np.ndarray] = []

    def keep(t: float, frame: np.ndarray) -> _KeptFrame:
        faces = [
            b
            for b in predictor.detector.detect(frame)
            if b.w > 0 and b.h > 0 and b.score >= spec.face_score
        ]
        cut = False
        if tracker.cut_distance is not None:
            signature = frame_signature(frame)
            cut = bool(previous) and signature_distance(previous[0], signature) > (
                tracker.cut_distance
            )
            previous[:] = [signature]
        dets = np.asarray([(b.x, b.y, b.w, b.h, b.score) for b in faces], np.float64)
        owners = linker.step(dets.reshape(-1, 5), clock=t, cut=cut)
        return _KeptFrame(t, frame, faces, owners, frames.source_size)

    frames = stream_frames(source, spec.max_side)
    for index, kept, arrived in kept_windows(
        frames, keep, k, stride, sample_fps, first, max_windows
    ):
        yield _people_window(predictor, name, kept, index, arrived, rules)


def _people_window(
    predictor: Predictor,
    source: str,
    kept: list[_KeptFrame],
    index: int,
    arrived: float,
    rules: EvidenceRules,
) -> StreamPeopleWindow:
    times = np.asarray([f.time for f in kept], np.float64)
    raw = np.stack([f.frame for f in kept])
    # faces are found on frames downscaled to the spec's max_side; boxes are reported, and the
    # evidence rules (min_face_px) applied, in the source's pixels, as for a file
    scales = np.asarray(
        [f.source_size[0] / f.frame.shape[1] if f.source_size[0] else 1.0 for f in kept]
    )
    # each person with an id, and their box on each frame of the window
    boxes: dict[int, list[FaceBox | None]] = {}
    faces: dict[int, LinkedFace] = {}
    for i, frame in enumerate(kept):
        for box, owner in zip(frame.faces, frame.owners):
            if owner.id is None:
                continue
            boxes.setdefault(owner.id, [None] * len(kept))[i] = box
            faces[owner.id] = owner
    ids = sorted(boxes)
    source_size = kept[-1].source_size if kept[-1].source_size[0] else None
    clips = [
        clip_from_boxes(raw, times, boxes[i], predictor.spec, path=source, source_size=source_size)
        for i in ids
    ]
    people: list[StreamPerson] = []
    if clips:
        out = predictor.run(clips)
        for row, (person, clip) in enumerate(zip(ids, clips)):
            # the clip's boxes (NaN where the person has no face) and mask are the evidence
            source_boxes = np.asarray(clip.boxes, np.float64).copy()
            source_boxes[:, :4] *= scales[:, None]
            reason = faces_evidence_reason(
                source_boxes, clip.mask, rules, f"person {person}: a clear face", shown=times
            )
            people.append(
                StreamPerson(
                    person=person,
                    first_seen=float(faces[person].clocks[0]),
                    reason=reason,
                    timestamps=[float(t) for t in times],
                    boxes=[
                        None if b is None else [b.x * s, b.y * s, b.w * s, b.h * s, b.score]
                        for b, s in zip(boxes[person], scales.tolist())
                    ],
                    coverage={"frames_with_face": int(clip.mask.sum()), "frames": len(kept)},
                    **answer_fields(predictor.class_names, out, row, len(kept), reason is None),
                )
            )
    answerable = [p for p in people if p.reason is None]
    chosen = None
    if answerable:
        now = float(times[-1])
        chosen = max(
            answerable,
            key=lambda p: (now - p.first_seen, p.coverage["frames_with_face"], -p.person),
        )
    reason = None
    if chosen is None:
        reason = (
            "no face with evidence enough: " + "; ".join(p.reason or "" for p in people)
            if people
            else f"no person (face track) in the {len(kept)} frames of this window"
        )
    return StreamPeopleWindow(
        index=index,
        source=source,
        start=float(times[0]),
        end=float(times[-1]),
        latency=time.perf_counter() - arrived,
        label=chosen.label if chosen else None,
        probabilities=dict(chosen.probabilities) if chosen else {},
        person=chosen.person if chosen else None,
        reason=reason,
        people=people,
        **predictor.answer_settings,
    )


__all__ = ["StreamPeopleWindow", "StreamPerson", "predict_stream_people"]
