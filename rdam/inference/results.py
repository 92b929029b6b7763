"""What prediction returns: one :class:`Prediction` per clip, and the :class:`Analysis` that adds
the arrays an explanation draws."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """The prediction for one clip.

    Attributes:
        path: the input as given.
        label: top class, ``None`` when the clip failed.
        probabilities: class name -> softmax probability, in the model's class order.
        frame_weights: ``alpha`` per sampled frame (Eq. 10; 0 at frames without a face).
        timestamps: seconds of each sampled frame (the frame actually shown then).
        face_found: per frame, whether a face was found (face streams), else ``None``.
        face_boxes: per frame ``[x, y, w, h, score]`` in source pixels or ``None`` (no face,
            or the input was taken as a face crop).
        face_input: ``detect`` (faces found by the detector), ``given`` (the input was taken as
            a face crop) or ``None`` (a frames-only model).
        faces_per_frame: per frame, how many faces the detector found (``detect`` only, else
            ``None``); above 1, each frame's largest face was taken, and they may be different
            people (``--people`` answers each person).
        face_frame_weights: ``alpha`` of the face stream (two-stream models).
        timing: seconds spent in ``decode`` (reading the frames; where faces are detected,
            the face search runs beside it and is counted here), ``faces`` (cropping and
            fitting the faces, or fitting the frames), ``model`` (the batch's model time shared
            equally by its clips) and ``total``.
        error: what went wrong, ``None`` on success.
        error_type: the exception class name (e.g. ``CorruptVideoError``, ``NoFaceError``).
        overrides: the clip spec fields this answer was made with other than the model file's
            (``--num-frames``, ``--keyframes``, ``--max-side``), ``{field: value run}``; ``{}``
            when made with the model's own settings
            (:attr:`~rdam.inference.Predictor.spec_overrides`).
        model_values: the model file's value of each field in ``overrides``.
        frame_weights_learned: ``False`` when the model's frame weights were never trained (it
            was trained on one-frame clips, such as single images: ``frame_weights`` then say
            nothing about which frames mattered), ``True`` when they were, ``None`` when the
            model has none or its file does not say
            (:func:`rdam.checkpoint.frame_weights_learned`).
    """

    path: str
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    frame_weights: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    face_found: list[bool] | None = None
    face_boxes: list[list[float] | None] | None = None
    face_input: str | None = None
    faces_per_frame: list[int] | None = None
    face_frame_weights: list[float] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    model_values: dict[str, Any] = field(default_factory=dict)
    frame_weights_learned: bool | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def score(self) -> float | None:
        """Probability of the top class."""
        return self.probabilities.get(self.label) if self.label is not None else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score"] = self.score
        return data


@dataclass
class Analysis:
    """A prediction with the arrays an explanation needs (one clip, padding removed).

    inputs: ``(K, S, S, 3)`` what the model saw; mask ``(K,)``; raw ``(K, H, W, 3)`` decoded
    frames; boxes ``(K, 5)`` in raw pixels or None; location_maps ``(K, h, w)`` or None;
    relation_maps ``(K, L, L)`` or None. ``stream`` is ``frames`` or ``faces`` (what
    ``inputs`` are); ``fit`` is the fit mode of whole frames (``squash`` maps the region grid
    onto the whole raw frame).
    """

    prediction: Prediction
    stream: str
    fit: str = "squash"
    inputs: np.ndarray | None = None
    mask: np.ndarray | None = None
    raw: np.ndarray | None = None
    boxes: np.ndarray | None = None
    location_maps: np.ndarray | None = None
    relation_maps: np.ndarray | None = None
