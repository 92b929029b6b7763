"""Per-person analysis of a video: one answer per face track, a timeline, and an answer for the
whole video by a documented rule, never without evidence.

The tracks, each person's K face crops under the model's clip spec and the evidence rules are
:mod:`rdam.data.tracks` and :mod:`rdam.data.person_clips`; here each person's clip goes through the predictor's runner, and the
results are:

- per person: label and probabilities over that person's clip (``None`` with the reason when
  the evidence rules refuse it), per-frame probabilities (the classifier on each frame feature,
  ``softmax(W f_i + b)``), the normalised frame weights ``w_i = α_i / Σ α`` (they sum to 1 and
  decompose the person's logits exactly: ``logits = Σ_i w_i (W f_i + b)``), the raw α, the
  sampled times, boxes in source pixels and the face coverage (frames with a detected face,
  out of K). A two-stream model (whole frames + faces) has no per-frame logits, and its
  person weights are the face stream's, over that person's crops (0 where they have no
  face): its answer also draws on the whole frames, so they do not decompose it;
- for the whole video (:data:`VIDEO_RULE`): the answerable person on screen longest (the
  longest track; ties: more frames with a detected face, then the earlier track); no answer,
  with the reason, when no person has evidence enough.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from rdam.data.person_clips import EvidenceRules, PersonClip, read_person_clips
from rdam.data.tracks import TrackerConfig
from rdam.errors import ConfigError
from rdam.inference.formats import csv_flag
from rdam.inference.predictor import Predictor
from rdam.inference.results import Analysis
from rdam.runtime.outputs import normalize_weights

VIDEO_RULE = "the answerable person on screen longest"
# the rules when a predictor has them off (``evidence=None``): a face in one sampled frame
ANY_FACE = EvidenceRules(min_score=0.0, min_face_px=0.0, min_frames=1)


@dataclass
class PersonResult:
    """One person (face track) of a video. ``label`` and ``probabilities`` are empty with
    ``reason`` set when the evidence rules refuse an answer; the per-frame fields are there
    either way (what the model would have seen)."""

    person: int
    start: float
    end: float
    label: str | None
    probabilities: dict[str, float]
    reason: str | None
    timestamps: list[float]
    boxes: list[list[float] | None]
    frame_probabilities: list[dict[str, float] | None] | None
    frame_weights: list[float]
    alpha: list[float]
    coverage: dict[str, int]
    analysis: Analysis | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float | None:
        return self.probabilities.get(self.label) if self.label is not None else None

    def probability_matrix(self, class_names: list[str]) -> np.ndarray:
        """``(K, C)`` the per-frame probabilities in ``class_names`` order, NaN rows at frames
        without a face."""
        rows = self.frame_probabilities or [None] * len(self.timestamps)
        return np.array(
            [
                [np.nan] * len(class_names) if p is None else [p[c] for c in class_names]
                for p in rows
            ],
            np.float64,
        ).reshape(len(rows), len(class_names))

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "analysis"}
        return {**copy.deepcopy(data), "score": self.score}


@dataclass
class VideoPeople:
    """Every person of one video, and the video's answer by :data:`VIDEO_RULE`; ``overrides``,
    ``model_values`` and ``frame_weights_learned`` as :class:`~rdam.inference.Prediction`'s
    (the clip spec fields run otherwise than the model file's; whether the people's frame
    weights were learned)."""

    path: str
    label: str | None
    probabilities: dict[str, float]
    person: int | None
    reason: str | None
    people: list[PersonResult]
    rule: str = VIDEO_RULE
    evidence_rules: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    frames_searched: int = 0
    search: str = "adaptive"
    overrides: dict[str, Any] = field(default_factory=dict)
    model_values: dict[str, Any] = field(default_factory=dict)
    frame_weights_learned: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "people"}
        return {**copy.deepcopy(data), "people": [p.to_dict() for p in self.people]}


def _float_or_none(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def _person_analysis(
    predictor: Predictor, person: PersonClip, out: Any, row: int, model_time: float
) -> Analysis:
    """What an explanation draws for one person: the predictor's :class:`Analysis` of their
    clip, titled by the person; without evidence enough, no label but the reason."""
    analysis = predictor.to_analysis(person.clip, out, row, model_time, keep_arrays=True)
    if person.evidence is not None:
        pred = analysis.prediction
        pred.label, pred.probabilities = None, {}
        pred.error, pred.error_type = f"no answer: {person.evidence}", "NoFaceError"
    return analysis


def person_frame_weights(out: Any) -> np.ndarray:
    """``(B, K)`` α over each person's own frames: a two-stream model's face-stream weights
    (0 where the person has no face; its whole-frame stream weighs the scene's frames, which
    every person shares), else the model's frame weights."""
    return out.frame_weights if out.face_frame_weights is None else out.face_frame_weights


def answer_fields(
    class_names: list[str], out: Any, row: int, k: int, answered: bool
) -> dict[str, Any]:
    """The answer fields of one person's clip, row ``row`` of a batch's model outputs with
    ``k`` frames: ``label`` and ``probabilities`` (None and ``{}`` unless ``answered``), the
    per-frame ``frame_probabilities`` (None at frames without a face) and the normalised
    ``frame_weights``. Shared by videos and streams."""
    probs = out.probabilities[row]
    frame_probs = out.frame_probabilities
    per_frame = None
    if frame_probs is not None:
        per_frame = [
            None
            if not np.all(np.isfinite(frame_probs[row, i]))
            else {c: float(p) for c, p in zip(class_names, frame_probs[row, i], strict=True)}
            for i in range(k)
        ]
    return {
        "label": class_names[int(np.argmax(probs))] if answered else None,
        "probabilities": (
            {c: float(p) for c, p in zip(class_names, probs, strict=True)} if answered else {}
        ),
        "frame_probabilities": per_frame,
        "frame_weights": [float(w) for w in normalize_weights(person_frame_weights(out))[row, :k]],
    }


def _person_result(predictor: Predictor, person: PersonClip, out: Any, row: int) -> PersonResult:
    k = len(person.clip.timestamps)
    return PersonResult(
        person=person.track.id,
        start=float(person.track.start),
        end=float(person.track.end),
        reason=person.evidence,
        timestamps=[float(t) for t in person.clip.timestamps],
        boxes=[
            None if not np.isfinite(b[0]) else [*map(float, b[:4]), _float_or_none(b[4])]
            for b in person.boxes
        ],
        alpha=[float(a) for a in person_frame_weights(out)[row, :k]],
        coverage={"frames_with_face": person.coverage[0], "frames": person.coverage[1]},
        **answer_fields(predictor.class_names, out, row, k, person.evidence is None),
    )


def analyze_people(
    predictor: Predictor,
    path: str | os.PathLike[str],
    tracker: TrackerConfig | None = None,
    rules: EvidenceRules | None = None,
    *,
    keep_arrays: bool = False,
    relations: bool = False,
) -> VideoPeople:
    """Every person of a video through ``predictor``'s model (see the module notes).

    Args:
        predictor: a face-stream model's predictor.
        path: the video.
        tracker: how faces are searched and linked (default :class:`TrackerConfig`).
        rules: the evidence rules (default: the predictor's; when it has them off, a face in
            one sampled frame is enough).
        keep_arrays: give each person an :class:`~rdam.inference.results.Analysis` (their
            crops, frames, boxes and attention maps) for explanations.
        relations: ... with the relation maps (when the runner provides them).

    Raises:
        ConfigError: the model does not take face crops.
        VideoError (or a subclass) naming the file.
    """
    if not predictor.spec.uses_faces:
        raise ConfigError(
            "per-person analysis needs a face-stream model (clip spec stream 'faces' or "
            f"'both'); this model takes {predictor.spec.stream!r}"
        )
    tracker = tracker or TrackerConfig()
    if rules is None:
        rules = predictor.evidence if predictor.evidence is not None else ANY_FACE
    t0 = time.perf_counter()
    found = read_person_clips(
        path, predictor.spec, predictor.detector, tracker, rules, keep_raw=keep_arrays
    )
    t1 = time.perf_counter()
    people: list[PersonResult] = []
    if found.people:
        want_relations = relations and predictor.runner.provides_relations
        out = predictor.run([p.clip for p in found.people], relations=want_relations)
        model_time = (time.perf_counter() - t1) / len(found.people)
        people = [_person_result(predictor, p, out, i) for i, p in enumerate(found.people)]
        if keep_arrays:
            for i, (result, person) in enumerate(zip(people, found.people, strict=True)):
                result.analysis = _person_analysis(predictor, person, out, i, model_time)
    t2 = time.perf_counter()
    answerable = [r for r, p in zip(people, found.people, strict=True) if p.evidence is None]
    chosen = None
    if answerable:
        chosen = max(
            answerable,
            key=lambda r: (r.end - r.start, r.coverage["frames_with_face"], -r.person),
        )
    return VideoPeople(
        path=str(path),
        label=chosen.label if chosen else None,
        probabilities=dict(chosen.probabilities) if chosen else {},
        person=chosen.person if chosen else None,
        reason=None if chosen else found.reason(),
        people=people,
        evidence_rules=rules.to_dict(),
        timing={
            "tracks_and_crops": t1 - t0,
            "model": t2 - t1,
            "total": t2 - t0,
        },
        frames_searched=len(found.tracks.times),
        search=tracker.search,
        **predictor.answer_settings,
    )


def analyze_people_many(
    predictor: Predictor,
    paths: list[str],
    tracker: TrackerConfig | None = None,
    rules: EvidenceRules | None = None,
    *,
    keep_arrays: bool = False,
    relations: bool = False,
) -> list[VideoPeople | dict[str, Any]]:
    """:func:`analyze_people` for each path (the same options); a file that cannot be read gives
    ``{"path", "error", "error_type"}`` instead of stopping the others (a video without
    evidence enough is a result: no label, with the reason)."""
    from rdam.errors import RDAMError, VideoError

    out: list[VideoPeople | dict[str, Any]] = []
    for path in paths:
        try:
            out.append(
                analyze_people(
                    predictor, path, tracker, rules, keep_arrays=keep_arrays, relations=relations
                )
            )
        except (VideoError, ConfigError) as exc:
            message = exc.reason if isinstance(exc, VideoError) else str(exc)
            out.append({"path": str(path), "error": message, "error_type": type(exc).__name__})
        except RDAMError:
            raise
    return out


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over the first axis (``window`` frames, odd; ends use what is
    there); rows that are NaN (no face) are skipped, not averaged in, and stay NaN: a time
    without a face gets no probabilities from its neighbours."""
    if window < 1 or window % 2 == 0:
        raise ConfigError(
            f"the smoothing window must be an odd number of frames >= 1, got {window}"
        )
    if window == 1:
        return values
    out = np.full_like(values, np.nan, dtype=np.float64)
    half = window // 2
    for i in range(len(values)):
        if not np.all(np.isfinite(values[i])):
            continue
        part = values[max(0, i - half) : i + half + 1]
        part = part[np.all(np.isfinite(part), axis=1)]
        out[i] = part.mean(axis=0)
    return out


def timeline_csv(results: list[VideoPeople], class_names: list[str], window: int = 1) -> str:
    """The timeline in long form: one row per video, person and sampled time, with the box
    (source pixels), the frame weight, whether the model's frame weights were learned
    (``frame_weights_learned``: ``true``/``false``, empty when the model does not say) and
    the per-frame probability of each class (optionally smoothed over ``window`` sampled
    frames of that person; empty where no face was there)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["path", "person", "time", "x", "y", "w", "h", "face_score", "frame_weight"]
        + ["frame_weights_learned"]
        + [f"p_{c}" for c in class_names]
    )
    for video in results:
        learned_text = csv_flag(video.frame_weights_learned)
        for person in video.people:
            probs = person.probability_matrix(class_names)
            probs = smooth(probs, window)
            for i, t in enumerate(person.timestamps):
                box = person.boxes[i]
                writer.writerow(
                    [video.path, person.person, f"{t:.3f}"]
                    + (
                        ["", "", "", "", ""]
                        if box is None
                        else [f"{v:.1f}" for v in box[:4]]
                        + ["" if box[4] is None else f"{box[4]:.3f}"]
                    )
                    + [f"{person.frame_weights[i]:.6f}", learned_text]
                    + ["" if not np.isfinite(p) else f"{p:.6f}" for p in probs[i]]
                )
    return buffer.getvalue()


__all__ = [
    "ANY_FACE",
    "VIDEO_RULE",
    "PersonResult",
    "VideoPeople",
    "analyze_people",
    "analyze_people_many",
    "answer_fields",
    "smooth",
    "timeline_csv",
]
