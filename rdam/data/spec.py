"""The clip specification: what a model takes as a clip, and how a clip is made from a file.

One frozen :class:`ClipSpec` is created when a model is trained (from the data config, or from
the preprocessing cache it reads) and stored whole in its model file and checkpoints. Every
other path reads it from there: the preprocessing cache (it is part of the cache key), the
training data set, ``rdam eval``, ``predict``, ``explain``, ``serve``, ``stream`` and export.
They all make a clip with :func:`rdam.data.clips.read_clip` under it, so the arrays that reach
the model are the same whichever path a file takes. ``docs/clip-spec.md`` describes each field.

Nothing here imports torch or a decoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rdam.errors import ConfigError

STREAMS = ("frames", "faces", "both")
"""What the model sees: whole ``frames``, ``faces`` (one face crop per frame), or ``both``
(whole frames as the main input and face crops as the second: the two-stream model)."""

FIT_MODES = ("squash", "crop", "pad")
"""How a whole frame becomes ``S x S``: resize ignoring the aspect ratio, centre-crop the
shorter side, or letterbox (see :func:`rdam.data.frames.fit_frames`)."""

COLORS = ("rgb", "gray", "gray_equalized")
"""``gray``: frames and crops are turned to luma (ITU-R BT.601) replicated to three channels,
for a model trained on grey images such as FER2013; faces are still detected in colour.
``gray_equalized``: that luma with its histogram equalized, image by image, as FER2013's faces
are (``rdam framing`` measures it): a global change of brightness leaves the model's input as
it was, and one of contrast or gamma nearly so."""

SAMPLERS = ("segment",)
"""Which times of a clip are read: ``segment`` = one frame per each of ``K`` equal segments (a
random offset inside each segment for training, the centre for evaluation and prediction, ``V``
evenly spread offsets for a multi-view test; :mod:`rdam.data.sampling`)."""

FACE_SELECT = ("largest", "score")
"""Which face of a frame a single face crop takes: the biggest box, or the most confident."""

FACE_INPUTS = ("auto", "detect", "given")
"""How face crops are made from an input (an option of each run, not of the model):
``detect`` runs the face detector on every frame; ``given`` takes each image or frame as an
already cropped face (fitted to ``S x S`` like a whole frame); ``auto`` is ``given`` for a
single image no larger than :data:`GIVEN_FACE_MAX_SIDE_FACTOR` x ``frame_size`` on its longer
side (such a small image holds at most one face at the model's resolution: FER2013's 48 px
faces for a 48 px model) and ``detect`` for everything else (videos, image sequences, photos)."""

GIVEN_FACE_MAX_SIDE_FACTOR = 2
"""``auto`` takes a single image as a face crop when its longer side is at most this many
times ``frame_size``."""

#: Keys of model files written before the clip spec (``"preprocessing"``) and what they became.
_LEGACY_KEYS = {
    "num_frames": "num_frames",
    "frame_size": "frame_size",
    "stream": "stream",
    "face_margin": "face_margin",
    "fit": "fit",
    "grayscale": "color",
    "sampler": "sampler",
}


@dataclass(frozen=True)
class ClipSpec:
    """How a clip is made for a model, from decoding to the ``(K, S, S, 3)`` uint8 arrays.

    Attributes:
        num_frames: ``K``, frames per clip (fewer when a clip has fewer frames).
        frame_size: ``S``, side of the square frames and face crops the model takes.
        stream: :data:`STREAMS`.
        fit: :data:`FIT_MODES`, for whole frames.
        face_margin: fraction of the face box added on every side before squaring it.
        max_side: frames are decoded at most this large (longer side) before fitting or the
            face search; ``None`` = native size.
        color: :data:`COLORS`.
        sampler: :data:`SAMPLERS`.
        keyframes: approximate sampling: each sampled time moves to the nearest keyframe (much
            faster decoding, other frames than exact times).
        face_score: minimum detector confidence of a face.
        face_select: :data:`FACE_SELECT`.
    """

    num_frames: int = 8
    frame_size: int = 224
    stream: str = "frames"
    fit: str = "squash"
    face_margin: float = 0.2
    max_side: int | None = 640
    color: str = "rgb"
    sampler: str = "segment"
    keyframes: bool = False
    face_score: float = 0.6
    face_select: str = "largest"

    def __post_init__(self) -> None:
        for name in ("num_frames", "frame_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"clip spec: {name} must be an integer >= 1, got {value!r}")
        if self.max_side is not None and (
            isinstance(self.max_side, bool)
            or not isinstance(self.max_side, int)
            or self.max_side < 1
        ):
            raise ConfigError(
                f"clip spec: max_side must be an integer >= 1 or null, got {self.max_side!r}"
            )
        for name, valid in (
            ("stream", STREAMS),
            ("fit", FIT_MODES),
            ("color", COLORS),
            ("sampler", SAMPLERS),
            ("face_select", FACE_SELECT),
        ):
            if getattr(self, name) not in valid:
                raise ConfigError(
                    f"clip spec: {name}={getattr(self, name)!r} is not one of {', '.join(valid)}"
                )
        if not isinstance(self.keyframes, bool):
            raise ConfigError(f"clip spec: keyframes must be true or false, got {self.keyframes!r}")
        for name in ("face_margin", "face_score"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ConfigError(f"clip spec: {name} must be a number, got {value!r}")
        if self.face_margin < 0:
            raise ConfigError(f"clip spec: face_margin must be >= 0, got {self.face_margin}")
        if not 0.0 <= self.face_score <= 1.0:
            raise ConfigError(f"clip spec: face_score must be in [0, 1], got {self.face_score}")

    # ---- what the spec implies

    @property
    def uses_faces(self) -> bool:
        """The model takes face crops (as its main or its second input)."""
        return self.stream in ("faces", "both")

    @property
    def uses_frames(self) -> bool:
        """The model takes whole frames."""
        return self.stream in ("frames", "both")

    def replace(self, **changes: Any) -> ClipSpec:
        """A copy with ``changes`` (validated); unknown names are a :class:`ConfigError`."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown clip spec keys {unknown}; valid: {sorted(FIELD_NAMES)}")
        return replace(self, **changes)

    def differences(self, other: ClipSpec) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    # ---- serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipSpec:
        """The spec stored in a model file or cache; an unknown key is refused."""
        if not isinstance(data, dict):
            raise ConfigError(f"a clip spec must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - FIELD_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown clip spec keys {unknown}; valid: {sorted(FIELD_NAMES)} (a model file "
                "written by a newer rdam, or edited by hand)"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid clip spec {data!r}: {exc}") from exc

    @classmethod
    def from_legacy(cls, preprocessing: dict[str, Any]) -> ClipSpec:
        """The spec of a model file written before the clip spec existed (rdam <= 0.1: a
        ``preprocessing`` dict of 4 to 6 keys). Its keys map as in :data:`_LEGACY_KEYS`
        (``grayscale: true`` -> ``color: gray``; ``sampler: center`` -> ``segment``, the sampler
        those files were evaluated with); what it lacks takes the defaults of :class:`ClipSpec`,
        which are the values rdam 0.1 used for every model (``fit squash``, ``max_side 640``,
        exact times, YuNet score 0.6, the largest face). An unknown key is refused."""
        if not isinstance(preprocessing, dict):
            raise ConfigError(
                f"the 'preprocessing' settings must be a mapping, got {type(preprocessing).__name__}"
            )
        unknown = sorted(set(preprocessing) - set(_LEGACY_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown preprocessing keys {unknown}; valid: {sorted(_LEGACY_KEYS)}"
            )
        data = {_LEGACY_KEYS[k]: v for k, v in preprocessing.items()}
        if "color" in data:
            data["color"] = "gray" if data["color"] else "rgb"
        if data.get("sampler") == "center":
            data["sampler"] = "segment"
        return cls.from_dict(data)


FIELD_NAMES = frozenset(f.name for f in fields(ClipSpec))


def resolve_face_input(face_input: str, kind: str, width: int, height: int, spec: ClipSpec) -> str:
    """``detect`` or ``given`` for one input under the ``face_input`` option (see
    :data:`FACE_INPUTS`); ``kind`` is that of :func:`rdam.data.video.clip_kind`, ``width`` and
    ``height`` the input's size."""
    if face_input not in FACE_INPUTS:
        raise ConfigError(f"unknown face input {face_input!r}; valid: {', '.join(FACE_INPUTS)}")
    if face_input != "auto":
        return face_input
    small = max(width, height) <= GIVEN_FACE_MAX_SIDE_FACTOR * spec.frame_size
    return "given" if kind == "image" and small else "detect"


__all__ = [
    "COLORS",
    "FACE_INPUTS",
    "FACE_SELECT",
    "FIELD_NAMES",
    "FIT_MODES",
    "SAMPLERS",
    "STREAMS",
    "ClipSpec",
    "resolve_face_input",
]
