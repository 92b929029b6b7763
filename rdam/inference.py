"""Prediction on real videos: ``rdam.load(...)`` gives a :class:`Predictor`.

The pipeline for one clip (video file, image-sequence folder or single image):

1. open and probe (:func:`rdam.data.video.open_clip`);
2. ``K`` timestamps at the segment centres (:class:`rdam.data.sampling.SegmentSampler`);
3. sparse decode of those frames only, downscaled so no side exceeds ``max_side``;
4. ``stream="frames"``: fit to ``S x S`` (:func:`rdam.data.frames.fit_frames`);
   ``stream="faces"``: one YuNet face per frame, cropped square to ``S x S``
   (:func:`rdam.data.faces.crop_faces`); frames without a face are masked out of the model and a
   clip without any face is reported as :class:`NoFaceError`, never given a label;
5. the model (PyTorch, or onnxruntime for an exported model), softmax over the classes.

A batch of files never stops at a bad file: the file's :class:`Prediction` carries the error
(message and type) and the others are processed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rdam.checkpoint import ModelBundle, load_model, sha256_file
from rdam.data.manifest import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from rdam.errors import (
    CheckpointError,
    ConfigError,
    FaceModelError,
    NoFaceError,
    RDAMError,
    VideoError,
)
from rdam.models.rdam import ClipModel

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL_FILENAME = "default_model.safetensors"
"""The model shipped in :data:`ASSETS_DIR` (with ``<name>.sha256`` beside it)."""

DEFAULT_MAX_SIDE = 640
"""Frames are decoded at most this large (longer side): bounds memory on 4K input while
keeping faces large enough for the detector."""

RUNTIMES = ("torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STREAMS = ("frames", "faces")


# ----------------------------------------------------------------------------------------------
# The default model
# ----------------------------------------------------------------------------------------------


def default_model_path() -> Path:
    """The model shipped with rdam (``rdam/assets/default_model.safetensors``).

    Raises:
        CheckpointError: it is not part of this installation; pass a model file instead.
    """
    path = ASSETS_DIR / DEFAULT_MODEL_FILENAME
    if not path.is_file():
        raise CheckpointError(
            path,
            "the default model is not part of this installation; pass a model file with "
            "--checkpoint / rdam.load(PATH) (a .safetensors or .ckpt written by `rdam train`)",
        )
    return path


def _expected_sha256(model_path: Path) -> str | None:
    """The hex digest in ``<model>.sha256`` (first token), if that file exists."""
    sidecar = model_path.with_name(model_path.name + ".sha256")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text().split()
    return text[0].lower() if text else None


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


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
        face_boxes: per frame ``[x, y, w, h, score]`` in source pixels or ``None`` (no face).
        timing: seconds spent in ``decode``, ``faces`` (face search or frame fitting),
            ``model`` (the batch's model time shared equally by its clips) and ``total``.
        error: what went wrong, ``None`` on success.
        error_type: the exception class name (e.g. ``CorruptVideoError``, ``NoFaceError``).
    """

    path: str
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    frame_weights: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    face_found: list[bool] | None = None
    face_boxes: list[list[float] | None] | None = None
    face_frame_weights: list[float] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None

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
class ClipInput:
    """One clip made ready for the model (arrays are channels-last uint8).

    Attributes:
        path: the input as given.
        frames: ``(K, S, S, 3)`` the model's main input: fitted frames, or face crops for a
            face-stream model.
        mask: ``(K,)`` bool, frames the model may use (faces found, for the face stream).
        timestamps: ``(K,)`` seconds.
        faces, face_mask: ``(K, S, S, 3)`` and ``(K,)``, the second input of a two-stream model.
        boxes: ``(K, 5)`` face boxes ``(x, y, w, h, score)`` in ``raw`` pixels, NaN = no face.
        raw: ``(K, H, W, 3)`` the decoded frames (kept only for explanations).
        source_size: ``(width, height)`` of the source video.
        raw_size: ``(width, height)`` of the decoded frames (the source bounded by max_side).
        timing: seconds for ``decode`` and ``faces``.
    """

    path: str
    frames: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray
    faces: np.ndarray | None = None
    face_mask: np.ndarray | None = None
    boxes: np.ndarray | None = None
    raw: np.ndarray | None = None
    source_size: tuple[int, int] = (0, 0)
    raw_size: tuple[int, int] = (0, 0)
    timing: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelOutputs:
    """What a runner returns for a batch of ``B`` clips padded to ``K`` frames (numpy, float32).

    logits ``(B, C)``; frame_weights ``(B, K)``; location_maps ``(B, K, h, w)`` or None;
    relation_maps ``(B, K, L, L)`` or None; face_frame_weights ``(B, K)`` (two-stream) or None.
    """

    logits: np.ndarray
    frame_weights: np.ndarray
    location_maps: np.ndarray | None = None
    relation_maps: np.ndarray | None = None
    face_frame_weights: np.ndarray | None = None


@dataclass
class Analysis:
    """A prediction with the arrays an explanation needs (one clip, padding removed).

    inputs: ``(K, S, S, 3)`` what the model saw; mask ``(K,)``; raw ``(K, H, W, 3)`` decoded
    frames; boxes ``(K, 5)`` in raw pixels or None; location_maps ``(K, h, w)`` or None;
    relation_maps ``(K, L, L)`` or None. ``stream`` is ``frames`` or ``faces``; ``fit`` is the
    fit mode of whole frames (``squash`` maps the region grid onto the whole raw frame).
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


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def _sorted_entries(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name.lower()
    )


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Turn the command-line paths into clips, in order.

    - a file is one clip (a video, or a single image = a 1-frame clip);
    - a folder holding video files gives each video (and each sub-folder, recursively);
    - a folder holding images but no video is one image-sequence clip;
    - a path that does not exist is kept, so its prediction reports the error.
    """
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            out.append(str(raw))
            continue
        out.extend(_expand_folder(path))
    return out


def _expand_folder(folder: Path) -> list[str]:
    entries = _sorted_entries(folder)
    files = [p for p in entries if p.is_file()]
    videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    if images and not videos:
        return [str(folder)]
    if images:
        log.warning(
            "%s holds videos and %d images; the images are skipped (give them as a folder of "
            "their own to predict them as an image sequence)",
            folder,
            len(images),
        )
    out = [str(p) for p in videos]
    for sub in (p for p in entries if p.is_dir()):
        out.extend(_expand_folder(sub))
    if not out:
        out.append(str(folder))  # reported as an empty clip by the reader
    return out


class ClipPreprocessor:
    """Decoded frames -> model inputs, the same way the training data was made.

    Args:
        frame_size: ``S``.
        stream: ``frames`` or ``faces`` (the main input of a single-stream model).
        needs_faces: also make face crops (two-stream models).
        face_margin: margin of face crops (see :func:`rdam.data.faces.crop_faces`).
        fit: how whole frames are fitted to ``S x S``.
        detector: a face detector (``detect(frame) -> list[FaceBox]``), required for faces.
        grayscale: give the model grey frames/crops (luma replicated to 3 channels), as for a
            model trained on grey images such as FER2013 (faces are still detected in colour).
    """

    def __init__(
        self,
        frame_size: int,
        stream: str = "frames",
        needs_faces: bool = False,
        face_margin: float = 0.2,
        fit: str = "squash",
        detector: Any = None,
        grayscale: bool = False,
    ) -> None:
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
        self.frame_size = int(frame_size)
        self.stream = stream
        self.needs_faces = needs_faces or stream == "faces"
        self.face_margin = float(face_margin)
        self.fit = fit
        self.grayscale = grayscale
        if self.needs_faces and detector is None:
            raise ConfigError("a face detector is needed for the face stream")
        self.detector = detector

    def _colour(self, frames: np.ndarray) -> np.ndarray:
        """``(K, S, S, 3)`` RGB -> the same, grey (ITU-R BT.601 luma) when ``grayscale``."""
        if not self.grayscale:
            return frames
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    def __call__(self, raw: np.ndarray) -> dict[str, np.ndarray | None]:
        """``raw`` ``(K, H, W, 3)`` uint8 -> ``frames``, ``mask``, ``faces``, ``face_mask``,
        ``boxes`` (see :class:`ClipInput`)."""
        from rdam.data.frames import fit_frames

        faces = face_mask = boxes = None
        if self.needs_faces:
            from rdam.data.faces import crop_faces

            crops = crop_faces(raw, self.detector, size=self.frame_size, margin=self.face_margin)
            faces, face_mask, boxes = crops.crops, np.asarray(crops.mask, bool), crops.boxes
            faces = self._colour(faces)
        if self.stream == "faces":
            return {
                "frames": faces,
                "mask": face_mask,
                "faces": None,
                "face_mask": None,
                "boxes": boxes,
            }
        fitted = self._colour(fit_frames(raw, self.frame_size, self.fit))
        return {
            "frames": fitted,
            "mask": np.ones(len(fitted), bool),
            "faces": faces,
            "face_mask": face_mask,
            "boxes": boxes,
        }


# ----------------------------------------------------------------------------------------------
# Runners
# ----------------------------------------------------------------------------------------------


class ModelRunner(Protocol):
    """Runs a clip model on a padded batch; ``provides_relations`` tells whether
    ``relation_maps`` can be returned."""

    provides_relations: bool

    def __call__(self, inputs: dict[str, np.ndarray], relations: bool = False) -> ModelOutputs:
        """inputs: ``frames (B, K, S, S, 3)`` uint8, ``mask (B, K)`` bool and, for two-stream
        models, ``faces``/``face_mask`` likewise."""
        ...


# Four 224x224 frames per backbone call: the forward pass of a ResNet-50 RDAM (output stride
# 8, K=16, fp32) peaked at 1,142 MB RSS this way against 1,369 MB with the 16 frames in one
# call (docs/benchmarks.md, figure 6); the convolutions' GEMMs stay thousands of rows tall.
DEFAULT_BACKBONE_PIXELS = 4 * 224 * 224


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """Resolve ``auto``: ``bf16`` autocast on CUDA devices and on CPUs with native bfloat16
    matrix instructions (AVX512-BF16 or AMX), ``fp32`` elsewhere.

    On such CPUs bf16 with channels_last ran the shipped face model 1.8x faster than fp32
    and agreed with fp32 on the top class of 99.75 % of the 3,589 FER2013 validation faces
    (accuracy 65.20 % vs 65.14 %; docs/model-card.md, docs/benchmarks.md figure 2). Pass
    ``fp32`` for exact float32 logits.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
            log.warning("this CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 may be slow")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


class TorchRunner:
    """A PyTorch clip model under ``torch.inference_mode``.

    Args:
        model: any rdam clip model (``RDAM``, ``TwoStreamRDAM``, baselines).
        device: where to run.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast (``auto`` resolved by
            :func:`resolve_precision`).
        channels_last: use NHWC convolution kernels (default: on with bf16 on CPU, where they
            are fastest).
        max_backbone_pixels: input pixels (frames x H x W) per backbone call, so that the
            peak memory does not grow with clips per batch or frames per clip (see
            ``ClipModel.set_max_backbone_pixels``); None: every frame of a batch in one call.
    """

    provides_relations = True

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        channels_last: bool | None = None,
        max_backbone_pixels: int | None = DEFAULT_BACKBONE_PIXELS,
    ) -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        if channels_last is None:
            channels_last = self.precision == "bf16" and self.device.type == "cpu"
        self.channels_last = bool(channels_last)
        self.model = model.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        for module in self.model.modules():
            if isinstance(module, ClipModel):
                module.set_max_backbone_pixels(max_backbone_pixels)
        self.two_stream = tuple(getattr(model, "input_streams", ("frames",))) == (
            "frames",
            "faces",
        )

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        # (B, K, S, S, 3) -> (B, K, 3, S, S) as a view: per frame this is NHWC memory, which
        # channels-last convolutions read without a copy.
        t = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 1, 4, 2, 3)
        return t.to(self.device, non_blocking=True)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, inputs: dict[str, np.ndarray], relations: bool = False) -> ModelOutputs:
        frames = self._tensor(inputs["frames"])
        mask = torch.from_numpy(np.asarray(inputs["mask"], bool)).to(self.device)
        with torch.inference_mode(), self._autocast():
            if self.two_stream:
                out = self.model(
                    frames,
                    mask,
                    faces=self._tensor(inputs["faces"]),
                    face_mask=torch.from_numpy(np.asarray(inputs["face_mask"], bool)).to(
                        self.device
                    ),
                    return_relations=relations,
                )
            else:
                out = self.model(frames, mask, return_relations=relations)

        def np32(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().float().cpu().numpy()

        return ModelOutputs(
            logits=np32(out.logits),
            frame_weights=np32(out.frame_weights),
            location_maps=np32(out.location_maps),
            relation_maps=np32(out.relation_maps) if relations else None,
            face_frame_weights=np32(out.face_frame_weights),
        )


def average_mirrored(out: ModelOutputs, mirrored: ModelOutputs) -> ModelOutputs:
    """Average a pass over clips and a pass over the same clips mirrored (flip TTA).

    The class probabilities are averaged (returned as their logs, so ``softmax`` of the logits
    gives the averaged probabilities), and so are the frame weights; the mirrored pass's
    location maps are flipped back before averaging. Relation maps are those of the unmirrored
    pass (the region indices of a mirrored frame are another order).
    """

    def mean(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else (a + b) / 2

    probs = (softmax(out.logits) + softmax(mirrored.logits)) / 2
    maps = None
    if out.location_maps is not None and mirrored.location_maps is not None:
        maps = (out.location_maps + mirrored.location_maps[..., ::-1]) / 2
    return ModelOutputs(
        logits=np.log(np.maximum(probs, np.finfo(np.float32).tiny)).astype(np.float32),
        frame_weights=mean(out.frame_weights, mirrored.frame_weights),
        location_maps=maps,
        relation_maps=out.relation_maps,
        face_frame_weights=mean(out.face_frame_weights, mirrored.face_frame_weights),
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (``(B, C)`` -> ``(B, C)``)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _pad(arrays: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Stack ``(K_i, ...)`` arrays zero-padded to ``(B, k, ...)``."""
    out = np.zeros((len(arrays), k, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


# ----------------------------------------------------------------------------------------------
# The predictor
# ----------------------------------------------------------------------------------------------


def _error_prediction(path: str, exc: BaseException, timing: dict[str, float]) -> Prediction:
    message = exc.reason if isinstance(exc, VideoError) else str(exc)
    return Prediction(
        path=path, timing=timing, error=message or type(exc).__name__, error_type=type(exc).__name__
    )


# Errors that concern the whole run rather than one file: they propagate.
_GLOBAL_ERRORS = (FaceModelError, CheckpointError, MemoryError, KeyboardInterrupt)


class Predictor:
    """Predicts emotions of videos with a trained rdam model.

    Build it with :func:`rdam.load`. Not thread-safe (the face detector and the decoder are
    stateful): share one between threads only under a lock.

    Args:
        runner: runs the model (:class:`TorchRunner` or :class:`rdam.export.OnnxRunner`).
        class_names: label names in logit order.
        preprocessing: the checkpoint's clip settings (``num_frames``, ``frame_size``,
            ``stream``, ``face_margin``, optionally ``fit``).
        two_stream: the model takes frames and faces (Table 5).
        num_frames: ``K`` (default: the checkpoint's).
        max_side: decode frames at most this large.
        face_detector: overrides the YuNet detector (anything with ``detect(frame)``).
        face_model: path of the YuNet ONNX file (default: packaged / cached copy).
        source: where the model came from (for reports).
        mirror: test-time augmentation: also run every clip mirrored (horizontal flip) and
            average the two passes (:func:`average_mirrored`); twice the model time.
        keyframes: approximate sampling: each sampled time moves to the nearest keyframe
            (:meth:`rdam.data.video.ClipReader.read_keyframes`); decoding is several times
            faster, and the frames are those of the keyframes' times (reported).
    """

    def __init__(
        self,
        runner: ModelRunner,
        class_names: Sequence[str],
        preprocessing: dict[str, Any],
        *,
        two_stream: bool = False,
        num_frames: int | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        face_detector: Any = None,
        face_model: str | os.PathLike[str] | None = None,
        source: str = "",
        mirror: bool = False,
        keyframes: bool = False,
    ) -> None:
        self.runner = runner
        self.mirror = bool(mirror)
        self.keyframes = bool(keyframes)
        self.class_names = list(class_names)
        self.preprocessing = dict(preprocessing)
        self.two_stream = two_stream
        self.source = source
        k = num_frames if num_frames is not None else self.preprocessing.get("num_frames", 8)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"num_frames must be an integer >= 1, got {k!r}")
        self.num_frames = k
        self.frame_size = int(self.preprocessing.get("frame_size", 224))
        # A two-stream model (trained with data.stream=both) reads whole frames as its main
        # input and face crops as its second.
        stream = str(self.preprocessing.get("stream", "frames"))
        self.stream = "frames" if stream == "both" else stream
        self.fit = str(self.preprocessing.get("fit", "squash"))
        self.max_side = max_side
        needs_faces = self.stream == "faces" or two_stream
        if needs_faces and face_detector is None:
            from rdam.data.faces import FaceDetector

            face_detector = FaceDetector(face_model)
        self.preprocess = ClipPreprocessor(
            self.frame_size,
            self.stream,
            needs_faces=needs_faces,
            face_margin=float(self.preprocessing.get("face_margin", 0.2)),
            fit=self.fit,
            detector=face_detector,
            grayscale=bool(self.preprocessing.get("grayscale", False)),
        )

    @property
    def uses_faces(self) -> bool:
        return self.preprocess.needs_faces

    def describe(self) -> dict[str, Any]:
        """The model's settings, for logs and the web demo."""
        return {
            "source": self.source,
            "class_names": self.class_names,
            "num_frames": self.num_frames,
            "frame_size": self.frame_size,
            "stream": self.stream,
            "two_stream": self.two_stream,
            "mirror": self.mirror,
            "keyframes": self.keyframes,
            "runtime": type(self.runner).__name__,
        }

    # -- one clip -------------------------------------------------------------------------------

    def prepare(self, path: str | os.PathLike[str], keep_raw: bool = False) -> ClipInput:
        """Decode and preprocess one clip (steps 1-4 of the module docstring).

        Raises:
            VideoError (subclasses) naming the file; :class:`NoFaceError` when a face stream
            finds no face in any sampled frame.
        """
        from rdam.data.sampling import SegmentSampler
        from rdam.data.video import open_clip

        t0 = time.perf_counter()
        with open_clip(path) as reader:
            info = reader.info
            k = self.num_frames
            if info.num_frames and info.num_frames > 0:
                k = min(k, int(info.num_frames))
            times = SegmentSampler(k, mode="center").sample(info.duration)
            read = reader.read_keyframes if self.keyframes else reader.read
            decoded = read(times, max_side=self.max_side)
        t1 = time.perf_counter()
        prepared = self.preprocess(decoded.frames)
        t2 = time.perf_counter()
        raw = np.asarray(decoded.frames)
        boxes = prepared["boxes"]
        if self.stream == "faces" and not np.any(prepared["mask"]):
            raise NoFaceError(
                str(path),
                f"no face found in any of the {len(raw)} sampled frames; the face-stream model "
                "gives no label without a face (try a frame-stream model or more frames)",
            )
        if self.two_stream and not np.any(prepared["face_mask"]):
            raise NoFaceError(
                str(path),
                f"no face found in any of the {len(raw)} sampled frames; the two-stream model "
                "needs at least one face",
            )
        return ClipInput(
            path=str(path),
            frames=prepared["frames"],
            mask=prepared["mask"],
            timestamps=np.asarray(decoded.timestamps, np.float64),
            faces=prepared["faces"],
            face_mask=prepared["face_mask"],
            boxes=boxes,
            raw=raw if keep_raw else None,
            source_size=(int(info.width), int(info.height)),
            raw_size=(int(raw.shape[2]), int(raw.shape[1])),
            timing={"decode": t1 - t0, "faces": t2 - t1},
        )

    def run(self, clips: Sequence[ClipInput], relations: bool = False) -> ModelOutputs:
        """Run the model on prepared clips padded to the longest ``K``."""
        k = max(len(c.frames) for c in clips)
        inputs = {
            "frames": _pad([c.frames for c in clips], k),
            "mask": _pad([c.mask for c in clips], k),
        }
        if self.two_stream:
            inputs["faces"] = _pad([c.faces for c in clips], k)
            inputs["face_mask"] = _pad([c.face_mask for c in clips], k)
        out = self.runner(inputs, relations=relations)
        if not self.mirror:
            return out
        mirrored = {
            name: np.ascontiguousarray(array[..., ::-1, :])
            if name in ("frames", "faces")
            else array
            for name, array in inputs.items()
        }
        return average_mirrored(out, self.runner(mirrored))

    def to_prediction(
        self, clip: ClipInput, out: ModelOutputs, row: int, model_time: float
    ) -> Prediction:
        """The :class:`Prediction` of ``clip``, row ``row`` of a batch's model outputs."""
        k = len(clip.frames)
        probs = softmax(out.logits[row : row + 1])[0]
        boxes_out: list[list[float] | None] | None = None
        face_found: list[bool] | None = None
        if clip.boxes is not None:
            found = clip.mask if self.stream == "faces" else clip.face_mask
            face_found = [bool(m) for m in found]
            # Boxes are found on frames decoded at most max_side large; report source pixels.
            scale = clip.source_size[0] / clip.raw_size[0] if clip.raw_size[0] else 1.0
            boxes_out = [
                [*(float(v) * scale for v in b[:4]), float(b[4])] if np.isfinite(b[0]) else None
                for b in clip.boxes
            ]
        timing = dict(clip.timing)
        timing["model"] = model_time
        timing["total"] = sum(timing.values())
        face_weights = None
        if out.face_frame_weights is not None:
            face_weights = [float(a) for a in out.face_frame_weights[row, :k]]
        return Prediction(
            path=clip.path,
            label=self.class_names[int(np.argmax(probs))],
            probabilities={name: float(p) for name, p in zip(self.class_names, probs, strict=True)},
            frame_weights=[float(a) for a in out.frame_weights[row, :k]],
            timestamps=[float(t) for t in clip.timestamps],
            face_found=face_found,
            face_boxes=boxes_out,
            face_frame_weights=face_weights,
            timing=timing,
        )

    # -- many clips -----------------------------------------------------------------------------

    def analyze_many(
        self,
        paths: Iterable[str | os.PathLike[str]],
        batch_size: int = 8,
        keep_arrays: bool = False,
        relations: bool = False,
    ) -> Iterator[Analysis]:
        """Predict clip after clip, ``batch_size`` clips per model call, yielding in input
        order. With ``keep_arrays`` each :class:`Analysis` also carries the frames and attention
        maps (``relations`` adds the relation maps; needs a runner that provides them)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        chunk: list[str] = []
        for path in paths:
            chunk.append(str(path))
            if len(chunk) == batch_size:
                yield from self._analyze_chunk(chunk, keep_arrays, relations)
                chunk = []
        if chunk:
            yield from self._analyze_chunk(chunk, keep_arrays, relations)

    def _analyze_chunk(
        self, paths: list[str], keep_arrays: bool, relations: bool
    ) -> Iterator[Analysis]:
        prepared: list[ClipInput | Prediction] = []
        for path in paths:
            t0 = time.perf_counter()
            try:
                prepared.append(self.prepare(path, keep_raw=keep_arrays))
            except _GLOBAL_ERRORS:
                raise
            except RDAMError as exc:
                log.debug("%s", exc)
                prepared.append(_error_prediction(path, exc, {"total": time.perf_counter() - t0}))
            except Exception as exc:  # an unforeseen decoder failure must not stop the batch
                log.exception("unexpected error while reading %s", path)
                prepared.append(_error_prediction(path, exc, {"total": time.perf_counter() - t0}))
        clips = [c for c in prepared if isinstance(c, ClipInput)]
        out = None
        model_time = 0.0
        if clips:
            t0 = time.perf_counter()
            out = self.run(clips, relations=relations and self.runner.provides_relations)
            model_time = (time.perf_counter() - t0) / len(clips)
        row = 0
        for item in prepared:
            if isinstance(item, Prediction):
                yield Analysis(prediction=item, stream=self.stream, fit=self.fit)
                continue
            assert out is not None
            prediction = self.to_prediction(item, out, row, model_time)
            analysis = Analysis(prediction=prediction, stream=self.stream, fit=self.fit)
            if keep_arrays:
                k = len(item.frames)
                analysis.inputs = item.frames
                analysis.mask = item.mask
                analysis.raw = item.raw
                analysis.boxes = item.boxes
                if out.location_maps is not None:
                    analysis.location_maps = out.location_maps[row, :k]
                if out.relation_maps is not None:
                    analysis.relation_maps = out.relation_maps[row, :k]
            row += 1
            yield analysis

    def predict_many(
        self, paths: Iterable[str | os.PathLike[str]], batch_size: int = 8
    ) -> list[Prediction]:
        """Predictions for many clips (folders are expanded, see :func:`expand_inputs`), in
        order; a clip that fails carries its error instead of stopping the others."""
        clips = expand_inputs(paths)
        return [a.prediction for a in self.analyze_many(clips, batch_size)]

    def predict_video(self, path: str | os.PathLike[str]) -> Prediction:
        """The prediction for one clip (video file, image-sequence folder or image)."""
        return next(self.analyze_many([path], batch_size=1)).prediction

    def analyze(self, path: str | os.PathLike[str], relations: bool = True) -> Analysis:
        """One clip's prediction with frames and attention maps, for explanations."""
        return next(self.analyze_many([path], 1, keep_arrays=True, relations=relations))


# ----------------------------------------------------------------------------------------------
# Output formats
# ----------------------------------------------------------------------------------------------

OUTPUT_FORMATS = ("json", "csv")


def format_predictions(predictions: Sequence[Prediction], fmt: str = "json") -> str:
    """``json``: a list of :meth:`Prediction.to_dict`; ``csv``: one row per clip with
    ``path, label, score, error_type, error``, one ``p_<class>`` column per class (the union
    over the rows, in first-seen order), then ``frame_weights``, ``timestamps`` and
    ``face_found`` as ``;``-separated lists and the timings in seconds."""
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps([p.to_dict() for p in predictions], indent=2) + "\n"
    if fmt != "csv":
        raise ConfigError(f"unknown output format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    classes: list[str] = []
    for p in predictions:
        classes.extend(c for c in p.probabilities if c not in classes)
    timings = ["decode", "faces", "model", "total"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["path", "label", "score", "error_type", "error"]
        + [f"p_{c}" for c in classes]
        + ["frame_weights", "timestamps", "face_found"]
        + [f"{t}_s" for t in timings]
    )
    for p in predictions:
        writer.writerow(
            [p.path, p.label or "", "" if p.score is None else f"{p.score:.6f}"]
            + [p.error_type or "", p.error or ""]
            + [f"{p.probabilities[c]:.6f}" if c in p.probabilities else "" for c in classes]
            + [
                ";".join(f"{a:.6f}" for a in p.frame_weights),
                ";".join(f"{t:.6f}" for t in p.timestamps),
                "" if p.face_found is None else ";".join(str(int(f)) for f in p.face_found),
            ]
            + [f"{p.timing[t]:.6f}" if t in p.timing else "" for t in timings]
        )
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _onnx_cache_path(checkpoint: Path, relations: bool) -> Path:
    import rdam
    from rdam.data.faces import face_model_cache_dir

    digest = sha256_file(checkpoint)[:32]
    suffix = "-rel" if relations else ""
    return face_model_cache_dir() / "onnx" / f"{digest}-v{rdam.__version__}{suffix}.onnx"


def load(
    path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    runtime: str = "torch",
    precision: str = "auto",
    *,
    num_frames: int | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    face_model: str | os.PathLike[str] | None = None,
    face_detector: Any = None,
    channels_last: bool | None = None,
    onnx_relations: bool = False,
    mirror: bool = False,
    keyframes: bool = False,
) -> Predictor:
    """Load a model for prediction.

    Args:
        path: ``.safetensors`` model file, ``.ckpt`` from ``rdam train`` or (``runtime="onnx"``)
            an ``.onnx`` file from ``rdam export``; ``None`` = the model shipped with rdam
            (:func:`default_model_path`).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (onnxruntime: CPU unless its CUDA provider
            is installed).
        runtime: ``torch`` or ``onnx`` (a checkpoint is exported once into the cache
            ``$RDAM_CACHE_DIR/onnx``).
        precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (torch runtime; see
            :func:`resolve_precision`).
        num_frames: frames per clip (default: the checkpoint's).
        max_side: decode frames at most this large (longer side).
        face_model: YuNet ONNX file for face-stream models.
        face_detector: a ready detector object instead (tests, custom detectors).
        channels_last: NHWC convolutions (default: with bf16 on CPU).
        onnx_relations: with ``runtime="onnx"`` and a checkpoint, export the relation maps too
            (needed by explanations).
        mirror: also run each clip mirrored and average (flip test-time augmentation: +1.5
            points on FER2013 val for the shipped model, twice the model time).
        keyframes: sample the nearest keyframes instead of exact times (faster decoding).

    Raises:
        CheckpointError: the model file is missing, corrupt or not an rdam model.
        ConfigError: an unknown runtime or precision.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    expected = None
    if path is None:
        path = default_model_path()
        expected = _expected_sha256(Path(path))
        if expected is None:
            raise CheckpointError(
                path,
                f"the checksum file {path.name}.sha256 is missing, so the shipped model "
                "cannot be verified; reinstall rdam",
            )
    path = Path(path)
    common = dict(
        num_frames=num_frames,
        max_side=max_side,
        face_detector=face_detector,
        face_model=face_model,
        source=str(path),
        mirror=mirror,
        keyframes=keyframes,
    )
    if runtime == "onnx":
        from rdam.export.runtime import OnnxRunner

        if path.suffix.lower() == ".onnx":
            runner = OnnxRunner(path, device=device, threads=torch.get_num_threads())
        else:
            bundle = load_model(path, expected_sha256=expected)
            onnx_path = _onnx_cache_path(path, onnx_relations)
            if not onnx_path.is_file():
                from rdam.export.onnx import export_onnx

                log.info("exporting %s to ONNX at %s (once)", path, onnx_path)
                export_onnx(bundle, onnx_path, relations=onnx_relations)
            runner = OnnxRunner(onnx_path, device=device, threads=torch.get_num_threads())
        return Predictor(
            runner,
            runner.class_names,
            runner.preprocessing,
            two_stream=runner.two_stream,
            **common,
        )
    bundle = load_model(path, expected_sha256=expected)
    return predictor_from_bundle(
        bundle, device=device, precision=precision, channels_last=channels_last, **common
    )


def predictor_from_bundle(
    bundle: ModelBundle,
    device: str = "cpu",
    precision: str = "auto",
    channels_last: bool | None = None,
    **kwargs: Any,
) -> Predictor:
    """A torch-runtime :class:`Predictor` for an already loaded model bundle."""
    runner = TorchRunner(bundle.model, device, precision, channels_last)
    two_stream = tuple(getattr(bundle.model, "input_streams", ("frames",))) == ("frames", "faces")
    kwargs.setdefault("source", str(bundle.metadata.get("path", "")))
    return Predictor(
        runner, bundle.class_names, bundle.preprocessing, two_stream=two_stream, **kwargs
    )
