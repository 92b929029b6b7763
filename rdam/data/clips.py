"""One clip from one file under a :class:`~rdam.data.spec.ClipSpec`: the only place where a file
becomes the arrays a model takes.

    file -> open_clip -> sample_times(spec, mode) -> read (exact or keyframes, max_side)
         -> make_clip(spec): fit / face crops / colour -> Clip (K, S, S, 3) uint8

The training data set (on the fly), the preprocessing cache, ``eval``, ``predict``, ``explain``
and ``serve`` call :func:`read_clip`; a live stream, whose frames arrive decoded, calls
:func:`make_clip` on them. So the same file gives the same arrays whichever path it takes.
Nothing here imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.frames import fit_frames, to_color
from rdam.data.sampling import SEGMENT_MODES
from rdam.data.spec import ClipSpec, resolve_face_input
from rdam.errors import ConfigError

MODES = SEGMENT_MODES
"""``center``: the centre of each segment (evaluation, prediction); ``random``: a random offset
inside each segment (training)."""


@dataclass
class Clip:
    """One clip as the model takes it (arrays channels-last, uint8 RGB).

    Attributes:
        path: the input as given.
        frames: ``(K, S, S, 3)`` the main input: fitted whole frames (``stream`` ``frames`` or
            ``both``) or face crops (``faces``).
        mask: ``(K,)`` bool, the frames the model may use (for face crops: a face was found).
        timestamps: ``(K,)`` seconds of the frames shown.
        faces, face_mask: ``(K, S, S, 3)`` and ``(K,)``: face crops, the second input of a
            two-stream model (``both``); None otherwise.
        boxes: ``(K, 5)`` float32 face boxes ``(x, y, w, h, score)`` in ``raw`` pixels, NaN where
            no face was found; None when no face was searched (frames, or given face crops).
        face_input: ``detect`` or ``given`` (how the face crops were made), None without faces.
        face_counts: ``(K,)`` int, the faces the detector found in each frame (``detect``
            only; None otherwise): above 1, the chosen faces may be different people.
        raw: ``(K, H, W, 3)`` the decoded frames (``keep_raw``, for explanations).
        source_size: ``(width, height)`` of the source.
        raw_size: ``(width, height)`` of the decoded frames (the source bounded by max_side).
        timing: seconds spent in ``decode`` (with the face search, which runs beside the
            decoding: :func:`rdam.data.face_search.read_and_detect`) and ``faces`` (cropping
            and fitting; the whole face search for frames given without it).
        stream: the spec's stream the clip was made for (``frames``, ``faces``, ``both``).
        info: the source's metadata (:class:`~rdam.data.video.VideoInfo`), when read from a
            file.
    """

    path: str
    frames: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray
    faces: np.ndarray | None = None
    face_mask: np.ndarray | None = None
    boxes: np.ndarray | None = None
    face_input: str | None = None
    face_counts: np.ndarray | None = None
    raw: np.ndarray | None = None
    source_size: tuple[int, int] = (0, 0)
    raw_size: tuple[int, int] = (0, 0)
    timing: dict[str, float] = field(default_factory=dict)
    info: Any = None
    stream: str = "frames"

    @classmethod
    def from_streams(
        cls,
        spec: ClipSpec,
        timestamps: np.ndarray,
        frames: np.ndarray | None,
        faces: np.ndarray | None,
        face_mask: np.ndarray | None,
        **fields: Any,
    ) -> Clip:
        """The clip of ``spec.stream`` from whole ``frames`` and/or face crops of the same K
        frames: ``faces`` -> the crops as the main input, masked where no face was found;
        ``frames`` -> the frames, all valid (crops given, e.g. by a two-stream cache, are left
        out); ``both`` -> the frames plus the crops."""
        if spec.stream == "faces":
            main, mask, second, second_mask = faces, face_mask, None, None
        elif spec.stream == "frames":  # crops a cache made for two streams holds are not used
            main, mask, second, second_mask = frames, np.ones(len(timestamps), bool), None, None
        else:
            main, mask, second, second_mask = (
                frames,
                np.ones(len(timestamps), bool),
                faces,
                face_mask,
            )
        return cls(
            frames=main,
            mask=mask,
            timestamps=timestamps,
            faces=second,
            face_mask=second_mask,
            stream=spec.stream,
            **fields,
        )

    @property
    def face_found(self) -> np.ndarray | None:
        """``(K,)`` bool: frames with a face (None for a frames-only model)."""
        return self.mask if self.stream == "faces" else self.face_mask

    @property
    def face_crops(self) -> np.ndarray | None:
        """``(K, S, S, 3)``: the face crops, whichever input they are (None without faces)."""
        return self.frames if self.stream == "faces" else self.faces


def sample_times(
    duration: float,
    num_frames: int,
    frames_available: int | None,
    mode: str = "center",
    rng: np.random.Generator | None = None,
    views: int = 1,
) -> np.ndarray:
    """``(V, K)`` seconds to read, ``K = min(num_frames, frames_available)``.

    ``views = 1``: one time per segment (:class:`~rdam.data.sampling.SegmentSampler`, ``mode``
    ``center`` or ``random`` with ``rng``); ``views > 1``: the ``V`` deterministic views of
    :class:`~rdam.data.sampling.MultiViewSampler` (multi-view testing; ``mode`` is ignored).
    """
    from rdam.data.sampling import MultiViewSampler, SegmentSampler

    if mode not in MODES:
        raise ConfigError(f"unknown sampling mode {mode!r}; valid: {', '.join(MODES)}")
    k = (
        num_frames
        if not frames_available or frames_available <= 0
        else min(num_frames, frames_available)
    )
    if views > 1:
        return MultiViewSampler(k, views).sample(duration)
    if mode == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
    return SegmentSampler(k, mode=mode).sample(duration, rng)[None]


def make_clip(
    raw: np.ndarray,
    timestamps: np.ndarray,
    spec: ClipSpec,
    *,
    face_input: str = "detect",
    detector: Any = None,
    path: str = "",
    source_size: tuple[int, int] | None = None,
    keep_raw: bool = False,
    detections: Sequence[Sequence[Any]] | None = None,
) -> Clip:
    """Decoded frames ``(K, H, W, 3)`` uint8 RGB -> the :class:`Clip` the model takes.

    Whole frames are fitted to ``S x S`` (``spec.fit``); face crops come from the detector
    (``face_input="detect"``: one face per frame, ``spec.face_select``, boxes below
    ``spec.face_score`` ignored, ``spec.face_margin``; ``detections``: the detector's boxes on
    each frame, found while decoding) or are the frames themselves (``"given"``: each frame is
    already a face, fitted like a whole frame); then ``spec.color``.

    Raises:
        ConfigError: face crops are needed but no detector was given.
    """
    raw = np.asarray(raw)
    height, width = raw.shape[1:3]
    t0 = time.perf_counter()
    fitted = (
        to_color(fit_frames(raw, spec.frame_size, spec.fit), spec.color)
        if spec.uses_frames
        else None
    )
    faces = face_mask = boxes = counts = None
    mode = None
    if spec.uses_faces:
        mode = face_input
        if mode == "given":
            faces = (
                fitted
                if fitted is not None
                else to_color(fit_frames(raw, spec.frame_size, spec.fit), spec.color)
            )
            face_mask = np.ones(len(raw), bool)
        elif mode == "detect":
            from rdam.data.faces import crop_faces

            if detector is None:
                raise ConfigError(
                    "a face detector is needed to make the face crops of this clip spec"
                )
            crops = crop_faces(
                raw,
                detector,
                size=spec.frame_size,
                margin=spec.face_margin,
                select=spec.face_select,
                min_score=spec.face_score,
                detections=detections,
            )
            faces, face_mask, boxes, counts = (
                to_color(crops.crops, spec.color),
                np.asarray(crops.mask, bool),
                crops.boxes,
                crops.counts,
            )
        else:
            raise ConfigError(f"face_input must be 'detect' or 'given' here, got {face_input!r}")
    elapsed = time.perf_counter() - t0
    return Clip.from_streams(
        spec,
        np.asarray(timestamps, np.float64).reshape(-1),
        fitted,
        faces,
        face_mask,
        path=str(path),
        boxes=boxes,
        face_input=mode,
        face_counts=counts,
        raw=raw if keep_raw else None,
        source_size=source_size or (int(width), int(height)),
        raw_size=(int(width), int(height)),
        timing={"faces": elapsed},
    )


def read_clip(
    path: str | Path,
    spec: ClipSpec,
    *,
    mode: str = "center",
    rng: np.random.Generator | None = None,
    view: tuple[int, int] = (0, 1),
    face_input: str = "auto",
    detector: Any = None,
    keep_raw: bool = False,
) -> Clip:
    """Read one clip of a video file, image-sequence folder or image under ``spec``.

    Args:
        path: the input.
        spec: the clip spec (the model's).
        mode: ``center`` or ``random`` (with ``rng``) segment offsets.
        view: ``(v, V)``: view ``v`` of a ``V``-view test (:class:`MultiViewSampler`).
        face_input: ``auto``, ``detect`` or ``given`` (see :data:`rdam.data.spec.FACE_INPUTS`).
        detector: face detector (``detect(frame) -> list[FaceBox]``) when faces are detected.
        keep_raw: keep the decoded frames in the clip.

    Raises:
        VideoError (or a subclass) naming the file.
    """
    return read_views(
        path,
        spec,
        mode=mode,
        rng=rng,
        view=view,
        face_input=face_input,
        detector=detector,
        keep_raw=keep_raw,
    )[0]


def read_views(
    path: str | Path,
    spec: ClipSpec,
    *,
    mode: str = "center",
    rng: np.random.Generator | None = None,
    views: int = 1,
    view: tuple[int, int] | None = None,
    face_input: str = "auto",
    detector: Any = None,
    keep_raw: bool = False,
) -> list[Clip]:
    """Like :func:`read_clip`, for all ``views`` of a multi-view test at once (one decoding
    pass; the preprocessing cache stores them together), or for the one ``view=(v, V)``."""
    from rdam.data.video import clip_kind, open_clip

    t0 = time.perf_counter()
    with open_clip(path) as reader:
        info = reader.info
        if view is not None and view[1] > 1:
            times = sample_times(
                info.duration, spec.num_frames, info.num_frames, mode, rng, view[1]
            )[view[0]][None]
        else:
            times = sample_times(info.duration, spec.num_frames, info.num_frames, mode, rng, views)
        how = resolve_face_input(face_input, clip_kind(path), info.width, info.height, spec)
        faces = None
        if spec.uses_faces and how == "detect" and detector is not None:
            # the face search of the frames decoded runs beside the decoding of the next ones
            from rdam.data.face_search import read_and_detect

            decoded, faces = read_and_detect(
                reader, times.reshape(-1), spec.max_side, detector, keyframes=spec.keyframes
            )
        else:
            read = reader.read_keyframes if spec.keyframes else reader.read
            decoded = read(times.reshape(-1), max_side=spec.max_side)
    decode_s = time.perf_counter() - t0
    shown = np.asarray(decoded.timestamps, np.float64).reshape(times.shape)
    raw = np.asarray(decoded.frames).reshape(*times.shape, *decoded.frames.shape[1:])
    out = []
    k = times.shape[1]
    for v in range(times.shape[0]):
        clip = make_clip(
            raw[v],
            shown[v],
            spec,
            face_input=how,
            detector=detector,
            path=str(path),
            source_size=(int(info.width), int(info.height)),
            keep_raw=keep_raw,
            detections=None if faces is None else faces[v * k : (v + 1) * k],
        )
        clip.timing["decode"] = decode_s / times.shape[0]
        clip.info = info
        out.append(clip)
    return out


def _pad(arrays: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Stack ``(K_i, ...)`` arrays zero-padded to ``(B, k, ...)``."""
    out = np.zeros((len(arrays), k, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


def batch_clips(clips: Sequence[Clip]) -> dict[str, np.ndarray]:
    """Clips padded to the longest ``K`` as a runner's batch: ``frames`` ``(B, K, 3, S, S)``
    uint8 (a channels-first view of channels-last memory, which channels-last convolutions
    read without a copy), ``mask`` ``(B, K)`` (False at padding) and, for two-stream clips,
    ``faces`` and ``face_mask``."""
    k = max(len(c.frames) for c in clips)
    out = {
        "frames": _pad([c.frames for c in clips], k).transpose(0, 1, 4, 2, 3),
        "mask": _pad([np.asarray(c.mask, bool) for c in clips], k),
    }
    if clips[0].faces is not None:
        out["faces"] = _pad([c.faces for c in clips], k).transpose(0, 1, 4, 2, 3)
        out["face_mask"] = _pad([np.asarray(c.face_mask, bool) for c in clips], k)
    return out


def faceless_clips(batch: Mapping[str, Any]) -> np.ndarray:
    """``(B,)`` bool: the clips of a collated batch (:func:`batch_clips`, or a data loader's
    batch) whose face input has no face in any frame: ``face_mask`` of two-stream clips, else
    ``mask`` (a face-stream clip's frames are its face crops, masked where none was found; a
    frame stream's mask is False only at padding, so its clips are never faceless). A model
    answers such a clip from its classifier's bias alone. A torch mask gives a torch result on
    its device."""
    mask = batch["face_mask"] if "face_mask" in batch else batch["mask"]
    if hasattr(mask, "dim"):  # a torch tensor (training batches, on any device)
        return ~mask.bool().any(dim=1)
    return ~np.asarray(mask, bool).any(axis=1)


def concat_clips(clips: Sequence[Clip], path: str = "") -> Clip:
    """The frames of several clips (e.g. one frame each, as a live stream makes them) as one."""

    def cat(name: str) -> np.ndarray | None:
        values = [getattr(c, name) for c in clips]
        return None if values[0] is None else np.concatenate(values)

    last = clips[-1]
    return Clip(
        path=path or last.path,
        frames=cat("frames"),
        mask=cat("mask"),
        timestamps=cat("timestamps"),
        faces=cat("faces"),
        face_mask=cat("face_mask"),
        boxes=cat("boxes"),
        face_input=last.face_input,
        face_counts=cat("face_counts"),
        raw=cat("raw"),
        source_size=last.source_size,
        raw_size=last.raw_size,
        stream=last.stream,
    )


__all__ = [
    "MODES",
    "Clip",
    "batch_clips",
    "concat_clips",
    "make_clip",
    "read_clip",
    "read_views",
    "sample_times",
]
