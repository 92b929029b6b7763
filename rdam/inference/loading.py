"""``rdam.load(...)``: a model file (or the shipped default model) -> a :class:`Predictor`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rdam.checkpoint import ModelBundle, load_model, resolve_model, sha256_file
from rdam.data.person_clips import EvidenceRules
from rdam.errors import ConfigError
from rdam.inference.predictor import DEFAULT_EVIDENCE, Predictor
from rdam.runtime import TorchRunner

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx")


def _onnx_cache_path(checkpoint: Path, relations: bool) -> Path:
    import rdam
    from rdam.data.faces import face_model_cache_dir
    from rdam.export.onnx import EXPORT_FORMAT

    digest = sha256_file(checkpoint)[:32]
    suffix = "-rel" if relations else ""
    name = f"{digest}-v{rdam.__version__}-f{EXPORT_FORMAT}{suffix}.onnx"
    return face_model_cache_dir() / "onnx" / name


def load(
    path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    runtime: str = "torch",
    precision: str = "auto",
    *,
    num_frames: int | None = None,
    max_side: int | None = None,
    keyframes: bool | None = None,
    face_input: str = "auto",
    face_model: str | os.PathLike[str] | None = None,
    face_detector: Any = None,
    channels_last: bool | None = None,
    onnx_relations: bool = False,
    mirror: bool = False,
    evidence: EvidenceRules | None = DEFAULT_EVIDENCE,
    crops: int = 1,
) -> Predictor:
    """Load a model for prediction.

    Clips are made under the model's own clip spec (its model file's). ``num_frames``,
    ``max_side`` and ``keyframes`` override it for this predictor; an override is logged and
    reported in :meth:`Predictor.describe`.

    Args:
        path: ``.safetensors`` model file, ``.ckpt`` from ``rdam train`` or (``runtime="onnx"``)
            an ``.onnx`` file from ``rdam export``; ``None`` = the model shipped with rdam
            (:func:`default_model_path`).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (onnxruntime: CPU unless its CUDA provider
            is installed).
        runtime: ``torch`` or ``onnx`` (a checkpoint is exported once into the cache
            ``$RDAM_CACHE_DIR/onnx``).
        precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (torch runtime; see
            :func:`rdam.runtime.resolve_precision`).
        num_frames: frames per clip (default: the model's).
        max_side: decode frames at most this large (default: the model's).
        keyframes: sample the nearest keyframes instead of exact times (faster decoding;
            default: the model's).
        face_input: ``auto`` | ``detect`` | ``given`` (see :data:`rdam.data.spec.FACE_INPUTS`).
        face_model: YuNet ONNX file for face-stream models (another file than the shipped
            YuNet changes :attr:`Predictor.fingerprint`: its sha256 is part of it).
        face_detector: a ready detector object instead (tests, custom detectors); give it a
            ``fingerprint`` string attribute (what makes its boxes) so that a batch output can
            be resumed by another run (:attr:`Predictor.fingerprint`).
        channels_last: NHWC convolutions (default: with bf16 on CPU).
        onnx_relations: with ``runtime="onnx"`` and a checkpoint, export the relation maps too
            (needed by explanations).
        mirror: also run each clip mirrored and average (flip test-time augmentation: +1.4
            points on FER2013 val for the shipped model, twice the model time).
        crops: 5: average each clip's five test crops (with ``mirror``: the ten-crop test,
            +3.2 points on FER2013 val; docs/benchmarks.md figure 12).
        evidence: when a face-stream clip is evidence enough for an answer
            (:class:`rdam.data.person_clips.EvidenceRules`; None: any detected face will do).

    Raises:
        CheckpointError: the model file is missing, corrupt or not an rdam model.
        ConfigError: an unknown runtime, precision or override.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    model_path, digest = resolve_model(path)
    common: dict[str, Any] = dict(
        overrides={"num_frames": num_frames, "max_side": max_side, "keyframes": keyframes},
        face_input=face_input,
        face_detector=face_detector,
        face_model=face_model,
        source=str(model_path),
        mirror=mirror,
        evidence=evidence,
        crops=crops,
        model_sha256=digest,  # the shipped model's, checked by load_model below
    )
    if runtime == "onnx":
        import torch

        from rdam.export.runtime import OnnxRunner

        if precision not in ("auto", "fp32"):  # the graph runs as exported: float32
            raise ConfigError(
                f"precision={precision!r} with runtime='onnx': an ONNX graph runs in fp32 "
                "(leave precision out, or use runtime='torch' for bf16/fp16)"
            )

        if model_path.suffix.lower() != ".onnx":
            bundle = load_model(model_path, expected_sha256=digest)
            onnx_path = _onnx_cache_path(model_path, onnx_relations)
            if not onnx_path.is_file():
                from rdam.export.onnx import export_onnx

                log.info("exporting %s to ONNX at %s (once)", model_path, onnx_path)
                export_onnx(bundle, onnx_path, relations=onnx_relations)
            model_path = onnx_path
        runner = OnnxRunner(model_path, device=device, threads=torch.get_num_threads())
        learned = runner.frame_weights_learned
        return Predictor(
            runner, runner.class_names, runner.spec, frame_weights_learned=learned, **common
        )
    bundle = load_model(model_path, expected_sha256=digest)
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
    """A torch-runtime :class:`Predictor` for an already loaded model bundle (keyword
    arguments go to :class:`Predictor`)."""
    runner = TorchRunner(bundle.model, device, precision, channels_last)
    kwargs.setdefault("source", str(bundle.metadata.get("path", "")))
    kwargs.setdefault("frame_weights_learned", bundle.frame_weights_learned)
    return Predictor(runner, bundle.class_names, bundle.spec, **kwargs)
