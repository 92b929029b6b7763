"""The :class:`Predictor`: clips of files -> :class:`Prediction` s, under the model's clip spec.

The pipeline for one clip (video file, image-sequence folder or single image) is the one every
path of rdam takes (:func:`rdam.data.clips.read_clip` under the model's
:class:`~rdam.data.spec.ClipSpec`): open and probe; ``K`` timestamps at the segment centres;
sparse decode of those frames, at most ``max_side`` large; whole frames fitted to ``S x S`` and/or
one face crop per frame (YuNet; a small single image is taken as a face crop, see
:data:`rdam.data.spec.FACE_INPUTS`); the spec's colour. Frames without a face are masked out
of the model and a face-stream clip without any face is reported as :class:`NoFaceError`,
never given a label. Then the runner (:mod:`rdam.runtime`) and a softmax over the classes.

Errors: the single-input calls (:meth:`Predictor.predict_video`, :meth:`Predictor.analyze`,
:meth:`Predictor.prepare`) raise the typed errors of :mod:`rdam.errors` (a
:class:`~rdam.errors.VideoError` subclass naming the file, :class:`NoFaceError` included). The
batch calls (:meth:`Predictor.predict_many`, :meth:`Predictor.analyze_many`) never stop at a bad
file: that file's :class:`Prediction` carries the error (message and type, ``label`` ``None``)
and the others are processed. Errors that concern the whole run (a missing face model, a bad
checkpoint, a model output that is not finite: :class:`~rdam.errors.NonFiniteOutputError`, out
of memory) propagate from both.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.clips import Clip, batch_clips, make_clip, read_clip
from rdam.data.content_hash import sha256_file
from rdam.data.person_clips import EvidenceRules
from rdam.data.spec import FACE_INPUTS, ClipSpec
from rdam.data.video import clip_kind
from rdam.errors import (
    CheckpointError,
    ConfigError,
    FaceModelError,
    NoFaceError,
    NonFiniteOutputError,
    RDAMError,
    VideoError,
    check_finite_logits,
)
from rdam.inference.inputs import expand_inputs
from rdam.inference.results import Analysis, Prediction
from rdam.runtime import ModelOutputs, ModelRunner, average_mirrored, average_views, softmax

log = logging.getLogger(__name__)

DEFAULT_EVIDENCE = EvidenceRules()

# Errors that concern the whole run rather than one file: they propagate.
_GLOBAL_ERRORS = (
    FaceModelError,
    CheckpointError,
    NonFiniteOutputError,
    MemoryError,
    KeyboardInterrupt,
)


def _crop(inputs: dict[str, np.ndarray], which: int) -> dict[str, np.ndarray]:
    """A batch's frames (and faces) ``(B, K, 3, S, S)`` as test crop ``which``
    (:func:`rdam.data.transforms.test_crop`)."""
    import torch

    from rdam.data.transforms import test_crop

    out = dict(inputs)
    for name in ("frames", "faces"):
        if name in inputs:
            array = inputs[name]
            b, k = array.shape[:2]
            flat = torch.from_numpy(np.ascontiguousarray(array).reshape(b * k, *array.shape[2:]))
            out[name] = test_crop(flat, which).numpy().reshape(array.shape)
    return out


def _yunet_identity(
    model_path: str | os.PathLike[str],
    score_threshold: float,
    nms_threshold: float,
    top_k: int,
    spec_score: float,
) -> dict[str, Any] | None:
    """What makes a YuNet detector's boxes: its ONNX file's sha256 and its thresholds; None
    when they are those of the detector a :class:`Predictor` builds itself with the shipped
    YuNet (:data:`rdam.data.faces.FACE_MODEL_SHA256`, the spec's ``face_score``, the default
    NMS threshold and ``top_k``), so the default setup's fingerprint stays as it was before
    the face detector was part of it."""
    from rdam.data.faces import FACE_MODEL_SHA256, FaceDetector

    defaults = inspect.signature(FaceDetector).parameters
    identity = {
        "yunet_sha256": sha256_file(Path(model_path)),
        "score_threshold": float(score_threshold),
        "nms_threshold": float(nms_threshold),
        "top_k": int(top_k),
    }
    default = {
        "yunet_sha256": FACE_MODEL_SHA256,
        "score_threshold": float(spec_score),
        "nms_threshold": float(defaults["nms_threshold"].default),
        "top_k": int(defaults["top_k"].default),
    }
    return None if identity == default else identity


def _face_detector_identity(detector: Any, spec_score: float) -> dict[str, Any] | None:
    """The face detector's part of :attr:`Predictor.fingerprint` (None: the default YuNet).

    Known: rdam's YuNet :class:`~rdam.data.faces.FaceDetector`, also built lazily
    (:class:`~rdam.data.faces.LazyFaceDetector` of ``functools.partial(FaceDetector, ...)``,
    as the predictor builds its own): its model file's sha256 and thresholds. Any other
    detector names itself with a ``fingerprint`` string attribute (what makes its boxes: its
    model's hash, its settings); one without gets an identity of its own, unique to this
    predictor, so that no other run's answers are ever taken for its own (a batch output it
    wrote cannot be resumed by another predictor: it is refused as another model's).
    """
    from rdam.data.faces import FaceDetector, LazyFaceDetector, resolve_face_model

    if isinstance(detector, LazyFaceDetector):
        factory = detector.factory
        if isinstance(factory, functools.partial) and factory.func is FaceDetector:
            bound = inspect.signature(FaceDetector).bind(*factory.args, **factory.keywords)
            bound.apply_defaults()
            settings = bound.arguments
            return _yunet_identity(
                resolve_face_model(settings["model_path"]),
                settings["score_threshold"],
                settings["nms_threshold"],
                settings["top_k"],
                spec_score,
            )
    if isinstance(detector, FaceDetector):
        return _yunet_identity(
            detector.model_path,
            detector.score_threshold,
            detector.nms_threshold,
            detector.top_k,
            spec_score,
        )
    kind = f"{type(detector).__module__}.{type(detector).__qualname__}"
    name = getattr(detector, "fingerprint", None)
    if isinstance(name, str) and name:
        return {"custom": kind, "fingerprint": name}
    log.warning(
        "the face detector %s has no `fingerprint` (a string naming what makes its boxes): this "
        "predictor's fingerprint is its own, so a batch output it writes can be resumed only "
        "by this same predictor; give the detector a `fingerprint` attribute to resume in "
        "another run",
        kind,
    )
    return {"custom": kind, "unidentified": uuid.uuid4().hex}


class Predictor:
    """Predicts emotions of videos with a trained rdam model.

    Build it with :func:`rdam.load`. Not thread-safe (the face detector and the decoder are
    stateful): share one between threads only under a lock.

    Args:
        runner: runs the model (:class:`rdam.runtime.TorchRunner` or
            :class:`rdam.export.OnnxRunner`).
        class_names: label names in logit order.
        spec: the model's clip spec (from its model file).
        overrides: clip spec fields to change for this predictor (e.g. ``num_frames``,
            ``keyframes``, ``max_side``); they are validated, kept in :attr:`overrides` and
            reported by :meth:`describe`, so an answer made otherwise than the model was trained
            is never silent.
        face_input: how face crops are made (:data:`rdam.data.spec.FACE_INPUTS`).
        face_detector: overrides the YuNet detector (anything with ``detect(frame)``; give it
            a ``fingerprint`` string attribute naming what makes its boxes, or the batch
            outputs of this predictor cannot be resumed by another run, see
            :attr:`fingerprint`).
        face_model: path of the YuNet ONNX file (default: packaged / cached copy).
        source: where the model came from (for reports).
        mirror: test-time augmentation: also run every clip mirrored (horizontal flip) and
            average the two passes (:func:`rdam.runtime.average_mirrored`); twice the model
            time.
        crops: 5: the answer is the mean over every clip's five test crops
            (:func:`rdam.data.transforms.test_crop`; with ``mirror`` each crop and its mirror:
            the ten-crop test), the explanation maps those of the whole frames
            (:func:`rdam.runtime.average_views`); six (with ``mirror`` twelve) model passes.
        evidence: when a face-stream clip is evidence enough for an answer (default
            :class:`rdam.data.person_clips.EvidenceRules`; None: any face will do).
        model_sha256: the model file's sha256 where the caller has already checked it (the
            shipped model against its ``.sha256`` file), so :attr:`fingerprint` need not hash
            the file again.
    """

    def __init__(
        self,
        runner: ModelRunner,
        class_names: Sequence[str],
        spec: ClipSpec,
        *,
        overrides: dict[str, Any] | None = None,
        face_input: str = "auto",
        face_detector: Any = None,
        face_model: str | os.PathLike[str] | None = None,
        source: str = "",
        mirror: bool = False,
        evidence: EvidenceRules | None = DEFAULT_EVIDENCE,
        crops: int = 1,
        model_sha256: str | None = None,
        frame_weights_learned: bool | None = None,
    ) -> None:
        if face_input not in FACE_INPUTS:
            raise ConfigError(f"unknown face input {face_input!r}; valid: {', '.join(FACE_INPUTS)}")
        self.runner = runner
        #: whether the model file says its frame weights were learned
        #: (:func:`rdam.checkpoint.frame_weights_learned`); every answer carries it
        self.frame_weights_learned = frame_weights_learned
        self.class_names = list(class_names)
        self.model_spec = spec
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.spec = spec.replace(**self.overrides)
        if self.overrides:
            changed = ", ".join(
                f"{k}={v!r} (model: {getattr(spec, k)!r})" for k, v in self.overrides.items()
            )
            log.info("clip spec overridden for this run: %s", changed)
        self.face_input = face_input
        self.evidence = evidence
        self.mirror = bool(mirror)
        from rdam.data.transforms import TEST_CROPS

        if crops not in TEST_CROPS:
            raise ConfigError(f"crops must be one of {TEST_CROPS}, got {crops!r}")
        self.crops = int(crops)
        self.source = source
        self.model_sha256 = model_sha256
        self.two_stream = self.spec.stream == "both"
        if self.spec.uses_faces and face_detector is None:
            from rdam.data.faces import FaceDetector, LazyFaceDetector, resolve_face_model

            if face_input != "given":  # a missing face model is an error now, not per file
                face_model = resolve_face_model(face_model)
            face_detector = LazyFaceDetector(
                functools.partial(FaceDetector, face_model, self.spec.face_score)
            )
        self.detector = face_detector

    @property
    def num_frames(self) -> int:
        return self.spec.num_frames

    @property
    def stream(self) -> str:
        """What the model's main input is: ``frames`` or ``faces``."""
        return "faces" if self.spec.stream == "faces" else "frames"

    @property
    def uses_faces(self) -> bool:
        return self.spec.uses_faces

    @functools.cached_property
    def fingerprint(self) -> str:
        """What makes this predictor's answers what they are, as 16 hex digits: the model
        file's content (sha256; its ``source`` where it is not a file), classes, clip spec
        (overrides included), face input, mirror, crops, evidence rules and, where faces are
        searched (a face-stream or two-stream model whose face input is not ``given``), the
        face detector: another YuNet file (``--face-model``, ``$RDAM_FACE_MODEL``: its
        sha256) or other thresholds, or a custom ``face_detector`` (its ``fingerprint``
        attribute; without one an identity unique to this predictor, see
        :func:`_face_detector_identity`). The shipped YuNet with the default settings adds
        nothing, so the default setup's fingerprint is the one it was before. Batch outputs
        carry it on every line (``answered_by``) so that a rerun never mixes two models' or
        settings' answers in one file. The runtime and numeric precision are left out: they
        change no answer's top class on 99.75 % of FER2013 val (docs/benchmarks.md figure 2),
        and ``auto`` differs from machine to machine."""
        source = Path(self.source) if self.source else None
        model = self.model_sha256
        if model is None:
            model = sha256_file(source) if source is not None and source.is_file() else self.source
        payload = {
            "model": model,
            "class_names": self.class_names,
            "clip_spec": self.spec.to_dict(),
            "face_input": self.face_input,
            "mirror": self.mirror,
            "crops": self.crops,
            "evidence": None if self.evidence is None else dataclasses.asdict(self.evidence),
        }
        if self.spec.uses_faces and self.face_input != "given":  # the detector finds the faces
            face = _face_detector_identity(self.detector, self.spec.face_score)
            if face is not None:  # not the default YuNet (which adds nothing: see above)
                payload["face_detector"] = face
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def spec_overrides(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(overrides, model_values)``: each clip spec field this predictor runs with another
        value than its model file's, ``{field: value run}``, and the model file's value of
        each. An override equal to the model's value is none (``rdam eval``'s rule). Every
        answer carries them (:class:`Prediction`, ``VideoPeople``, the web demo's answers), so
        an answer made otherwise than the model was trained is never silent."""
        changed = self.spec.differences(self.model_spec)
        return (
            {k: run for k, (run, _) in changed.items()},
            {k: model for k, (_, model) in changed.items()},
        )

    @property
    def answer_settings(self) -> dict[str, Any]:
        """What every answer carries of how it was made: ``overrides`` and ``model_values``
        (:attr:`spec_overrides`) and ``frame_weights_learned``, as keyword arguments of
        :class:`Prediction` and the people and stream answers."""
        overrides, model_values = self.spec_overrides
        return {
            "overrides": overrides,
            "model_values": model_values,
            "frame_weights_learned": self.frame_weights_learned,
        }

    def describe(self) -> dict[str, Any]:
        """The model's settings, for logs, reports and the web demo (``overrides`` and
        ``model_values``: :attr:`spec_overrides`; :attr:`answer_settings`)."""
        return {
            "source": self.source,
            "class_names": self.class_names,
            "clip_spec": self.spec.to_dict(),
            **self.answer_settings,
            "face_input": self.face_input,
            "two_stream": self.two_stream,
            "mirror": self.mirror,
            "crops": self.crops,
            "precision": getattr(self.runner, "precision", None),
            "runtime": type(self.runner).__name__,
        }

    # -- one clip -------------------------------------------------------------------------------

    def check_faces(self, clip: Clip) -> None:
        """Raise :class:`NoFaceError` when the model needs faces and ``clip`` has none, or,
        for a face-stream model, when its detected faces are too little evidence for an answer
        (:attr:`evidence`, :class:`rdam.data.person_clips.EvidenceRules`: a clear face in too few of
        the sampled frames). Face crops given as images are not checked."""
        found = clip.face_found
        if found is not None and not np.any(found):
            what = "face-stream" if self.stream == "faces" else "two-stream"
            if clip_kind(clip.path) == "image":
                where = "the image"
                way_out = (
                    "if it is a face crop already, such as an aligned face, --faces given "
                    "takes it as it is"
                )
            else:
                where = f"any of the {len(clip.timestamps)} sampled frames"
                way_out = "try a frame-stream model or more frames"
            raise NoFaceError(
                clip.path,
                f"no face found in {where}; the {what} model gives no label without a face "
                f"({way_out})",
            )
        if self.evidence is not None and self.stream == "faces" and clip.boxes is not None:
            from rdam.data.person_clips import faces_evidence_reason

            scale = clip.source_size[0] / clip.raw_size[0] if clip.raw_size[0] else 1.0
            boxes = np.asarray(clip.boxes, np.float64).copy()
            boxes[:, :4] *= scale
            reason = faces_evidence_reason(
                boxes, np.asarray(found, bool), self.evidence, shown=clip.timestamps
            )
            if reason is not None:
                raise NoFaceError(clip.path, f"no face with evidence enough: {reason}")

    def prepare(self, path: str | os.PathLike[str], keep_raw: bool = False) -> Clip:
        """Read one clip under the spec (:func:`rdam.data.clips.read_clip`).

        Raises:
            VideoError (subclasses) naming the file; :class:`NoFaceError` when the model needs
            faces and none was found in any sampled frame.
        """
        clip = read_clip(
            path, self.spec, face_input=self.face_input, detector=self.detector, keep_raw=keep_raw
        )
        self.check_faces(clip)
        return clip

    def make_clip(
        self,
        raw: np.ndarray,
        timestamps: np.ndarray,
        path: str = "",
        source_size: tuple[int, int] | None = None,
    ) -> Clip:
        """Frames that arrive decoded (a live stream) -> the clip the model takes, made as
        :meth:`prepare` makes it (faces detected: a stream frame is never a face crop).
        ``source_size``: the ``(width, height)`` the frames were downscaled from, so boxes and
        face sizes are in the source's pixels, as for a file (default: the frames' own)."""
        from rdam.data.video import fit_size

        if self.spec.max_side is not None:
            height, width = raw.shape[1:3]
            if fit_size(width, height, self.spec.max_side) != (width, height):
                raise ConfigError(
                    f"frames of {width}x{height} are larger than the spec's max_side "
                    f"{self.spec.max_side}; decode them bounded first"
                )
        return make_clip(
            raw,
            timestamps,
            self.spec,
            face_input="detect",
            detector=self.detector,
            path=path,
            source_size=source_size,
        )

    def run(self, clips: Sequence[Clip], relations: bool = False) -> ModelOutputs:
        """Run the model on clips padded to the longest ``K`` (with the test views of
        :attr:`mirror` and :attr:`crops`).

        Raises:
            NonFiniteOutputError: a pass gave NaN or infinite logits for some clips (named);
                an average over views would hide an infinity, so every pass is checked.
        """
        inputs = batch_clips(clips)
        paths = [clip.path for clip in clips]
        whole = self._mirrored_pass(inputs, relations, paths)
        if self.crops == 1:
            return whole
        views = [self._mirrored_pass(_crop(inputs, c), False, paths) for c in range(self.crops)]
        return average_views(views, maps_from=whole)

    def _mirrored_pass(
        self, inputs: dict[str, np.ndarray], relations: bool, paths: Sequence[str]
    ) -> ModelOutputs:
        out = self._model_pass(inputs, relations, paths)
        if not self.mirror:
            return out
        mirrored = {
            name: array[..., ::-1] if name in ("frames", "faces") else array
            for name, array in inputs.items()
        }
        return average_mirrored(out, self._model_pass(mirrored, False, paths))

    def _model_pass(
        self, inputs: dict[str, np.ndarray], relations: bool, paths: Sequence[str]
    ) -> ModelOutputs:
        """One runner call, its logits refused unless finite (named by ``paths``)."""
        out = self.runner(inputs, relations=relations)
        check_finite_logits(out.logits, paths, getattr(self.runner, "precision", None))
        return out

    def error_prediction(self, path: str, exc: BaseException, seconds: float) -> Prediction:
        """The answer for a clip that failed after ``seconds``: its error, and the settings
        every answer carries (``overrides``, ``model_values``, ``frame_weights_learned``)."""
        message = exc.reason if isinstance(exc, VideoError) else str(exc)
        return Prediction(
            path=path,
            timing={"total": seconds},
            error=message or type(exc).__name__,
            error_type=type(exc).__name__,
            **self.answer_settings,
        )

    def to_prediction(
        self, clip: Clip, out: ModelOutputs, row: int, model_time: float
    ) -> Prediction:
        """The :class:`Prediction` of ``clip``, row ``row`` of a batch's model outputs.

        Raises:
            NonFiniteOutputError: that row's logits are not finite (no label is made of them).
        """
        k = len(clip.frames)
        logits = out.logits[row : row + 1]
        check_finite_logits(logits, [clip.path], getattr(self.runner, "precision", None))
        probs = softmax(logits)[0]
        boxes_out: list[list[float] | None] | None = None
        found = clip.face_found
        if clip.boxes is not None:
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
        counts = None if clip.face_counts is None else [int(n) for n in clip.face_counts]
        if counts and max(counts) > 1:
            log.warning(
                "%s: up to %d faces in a sampled frame; the answer is for the largest face of "
                "each frame, which may be different people (rdam predict --people answers "
                "each person)",
                clip.path,
                max(counts),
            )
        return Prediction(
            path=clip.path,
            label=self.class_names[int(np.argmax(probs))],
            probabilities={name: float(p) for name, p in zip(self.class_names, probs, strict=True)},
            frame_weights=[float(a) for a in out.frame_weights[row, :k]],
            timestamps=[float(t) for t in clip.timestamps],
            face_found=None if found is None else [bool(m) for m in found],
            face_boxes=boxes_out,
            face_input=clip.face_input,
            faces_per_frame=counts,
            face_frame_weights=face_weights,
            timing=timing,
            **self.answer_settings,
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
        prepared: list[Clip | Prediction] = []
        for path in paths:
            t0 = time.perf_counter()
            try:
                prepared.append(self.prepare(path, keep_raw=keep_arrays))
            except _GLOBAL_ERRORS:
                raise
            except RDAMError as exc:
                log.debug("%s", exc)
                prepared.append(self.error_prediction(path, exc, time.perf_counter() - t0))
            except Exception as exc:  # an unforeseen decoder failure must not stop the batch
                log.exception("unexpected error while reading %s", path)
                prepared.append(self.error_prediction(path, exc, time.perf_counter() - t0))
        analyses = iter(
            self._analyses([c for c in prepared if isinstance(c, Clip)], keep_arrays, relations)
        )
        fit = self.spec.fit
        for item in prepared:
            if isinstance(item, Prediction):
                yield Analysis(prediction=item, stream=self.stream, fit=fit)
            else:
                yield next(analyses)

    def _analyses(self, clips: list[Clip], keep_arrays: bool, relations: bool) -> list[Analysis]:
        """The model on ``clips`` (one call) -> one :class:`Analysis` each, in order."""
        if not clips:
            return []
        t0 = time.perf_counter()
        out = self.run(clips, relations=relations and self.runner.provides_relations)
        model_time = (time.perf_counter() - t0) / len(clips)
        return [
            self.to_analysis(clip, out, row, model_time, keep_arrays)
            for row, clip in enumerate(clips)
        ]

    def to_analysis(
        self, clip: Clip, out: ModelOutputs, row: int, model_time: float, keep_arrays: bool
    ) -> Analysis:
        """The :class:`Analysis` of ``clip``, row ``row`` of a batch's model outputs; with
        ``keep_arrays`` it carries the model's inputs, the decoded frames (if the clip kept
        them), the boxes and the attention maps."""
        prediction = self.to_prediction(clip, out, row, model_time)
        analysis = Analysis(prediction=prediction, stream=self.stream, fit=self.spec.fit)
        if keep_arrays:
            k = len(clip.frames)
            analysis.inputs = clip.frames
            analysis.mask = clip.mask
            analysis.raw = clip.raw
            analysis.boxes = clip.boxes
            if out.location_maps is not None:
                analysis.location_maps = out.location_maps[row, :k]
            if out.relation_maps is not None:
                analysis.relation_maps = out.relation_maps[row, :k]
        return analysis

    def predict_many(
        self, paths: Iterable[str | os.PathLike[str]], batch_size: int = 8, sequences: bool = False
    ) -> list[Prediction]:
        """Predictions for many clips (folders are expanded, see
        :func:`rdam.inference.expand_inputs`), in order; a clip that fails carries its error
        instead of stopping the others."""
        clips = expand_inputs(paths, sequences=sequences)
        return [a.prediction for a in self.analyze_many(clips, batch_size)]

    def predict_video(self, path: str | os.PathLike[str]) -> Prediction:
        """The prediction for one clip (video file, image-sequence folder or image).

        Raises:
            VideoError (subclasses, naming the file): :class:`~rdam.errors.VideoNotFoundError`,
            :class:`~rdam.errors.EmptyVideoError`, :class:`~rdam.errors.CorruptVideoError`;
            :class:`NoFaceError` when the model needs faces and none was found. Use
            :meth:`predict_many` for results that carry their error instead.
            :class:`~rdam.errors.NonFiniteOutputError` when the model's output is NaN or
            infinite (from every call: it concerns the model, not the file).
        """
        return self.analyze(path, relations=False, keep_arrays=False).prediction

    def analyze(
        self, path: str | os.PathLike[str], relations: bool = True, keep_arrays: bool = True
    ) -> Analysis:
        """One clip's prediction with frames and attention maps, for explanations.

        Raises:
            the errors of :meth:`predict_video`.
        """
        clip = self.prepare(os.fspath(path), keep_raw=keep_arrays)
        return self._analyses([clip], keep_arrays, relations)[0]
