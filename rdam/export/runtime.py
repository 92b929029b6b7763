"""Running an exported model with onnxruntime, and checking it against PyTorch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdam.checkpoint import frame_weights_learned, header_spec
from rdam.data.spec import ClipSpec
from rdam.errors import CheckpointError
from rdam.export.onnx import METADATA_KEY
from rdam.models import ModelConfig
from rdam.runtime import ModelOutputs, TorchRunner


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """An ``.onnx`` file from :func:`rdam.export.export_onnx` under onnxruntime.

    Reads the class names and the clip spec from the file's ``rdam`` metadata, so the file is
    all a :class:`~rdam.inference.Predictor` needs. Takes the batches of
    :class:`rdam.runtime.TorchRunner` (frames uint8 ``0..255`` or float in ``[0, 1]``, read as
    TorchRunner reads them) and returns the same :class:`~rdam.runtime.ModelOutputs`, each
    output taken from the graph output of its name: ``frame_logits`` (frame-decomposable
    models) and ``face_frame_weights`` (two-stream models) included. Files exported by earlier
    versions have no such outputs; there they are None (as those versions returned them). It
    runs the exported float32 graph (``precision`` is ``fp32``).

    Args:
        path: the ONNX file.
        device: ``cpu`` or ``cuda[:i]`` (CUDA only when onnxruntime's CUDA provider is present).
        threads: intra-op threads (default: onnxruntime's choice).

    Raises:
        CheckpointError: missing file, not an ONNX model, or no rdam metadata.
    """

    def __init__(
        self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None
    ):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such ONNX file; write one with `rdam export`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=_providers(str(device))
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise CheckpointError(
                self.path, f"onnxruntime cannot load it ({type(exc).__name__}: {exc})"
            ) from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise CheckpointError(
                self.path, "not an rdam ONNX export (no 'rdam' metadata); export with `rdam export`"
            )
        self.header: dict[str, Any] = json.loads(raw)
        self.class_names: list[str] = list(self.header["class_names"])
        self.spec: ClipSpec = header_spec(self.path, self.header)
        #: :func:`rdam.checkpoint.frame_weights_learned` of the exported model
        # the fields this rdam knows (an export from a newer rdam may carry more; the graph
        # runs without them)
        known = {f.name for f in fields(ModelConfig)}
        config = {k: v for k, v in self.header["model_config"].items() if k in known}
        self.frame_weights_learned = frame_weights_learned(
            ModelConfig.from_dict({**config, "weights": "none"}), self.header.get("metadata") or {}
        )
        self.precision = "fp32"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.two_stream = "faces" in self.input_names
        self.provides_relations = "relation_maps" in self.output_names

    @staticmethod
    def _float(frames: Any) -> np.ndarray:
        """``(B, K, C, S, S)`` -> the graph's float32 in ``[0, 1]``: uint8 divided by 255, any
        other dtype taken as it is (``ClipModel.normalize``, which TorchRunner's model runs)."""
        array = np.asarray(frames)
        if array.dtype == np.uint8:
            return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)
        return np.ascontiguousarray(array, dtype=np.float32)

    @staticmethod
    def _bool(mask: Any) -> np.ndarray:
        return np.asarray(mask).astype(bool)

    def __call__(self, inputs: Mapping[str, Any], relations: bool = False) -> ModelOutputs:
        """Same contract as :class:`rdam.runtime.TorchRunner`."""
        feed = {"frames": self._float(inputs["frames"]), "mask": self._bool(inputs["mask"])}
        if self.two_stream:
            feed["faces"] = self._float(inputs["faces"])
            feed["face_mask"] = self._bool(inputs["face_mask"])
        values = dict(zip(self.output_names, self.session.run(None, feed), strict=True))
        return ModelOutputs(
            logits=values["logits"],
            frame_weights=values["frame_weights"],
            location_maps=values.get("location_maps"),
            relation_maps=values.get("relation_maps") if relations else None,
            face_frame_weights=values.get("face_frame_weights"),
            frame_logits=values.get("frame_logits"),
        )


def _max_abs_diff(expected: np.ndarray | None, got: np.ndarray | None) -> float:
    """``max |expected - got|``, NaN where both are NaN counting as equal; ``inf`` where one
    side lacks the output, the shapes differ or only one side is NaN."""
    if expected is None or got is None or np.shape(expected) != np.shape(got):
        return float("inf")
    e, g = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    e_nan, g_nan = np.isnan(e), np.isnan(g)
    if np.any(e_nan != g_nan):
        return float("inf")
    diff = np.abs(np.where(e_nan, 0.0, e) - np.where(g_nan, 0.0, g))
    return float(diff.max()) if diff.size else 0.0


def compare_with_torch(
    model: torch.nn.Module,
    onnx_path: str | os.PathLike[str],
    shapes: list[tuple[int, int]],
    frame_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """Largest absolute difference per output between the two runners the product uses,
    :class:`~rdam.runtime.TorchRunner` (fp32) and :class:`OnnxRunner`, on random uint8 clips
    of each ``(B, K)`` in ``shapes`` (the last frame of the first clip padded; two-stream
    models: the last face of the last clip missing too).

    Every output of the ONNX file is compared with the :class:`~rdam.runtime.ModelOutputs`
    field of its name (``frame_logits`` are NaN at padded frames in both: NaN against NaN
    counts as equal, NaN against a number as ``inf``).

    Returns:
        ``{output name: max |torch - onnx|}`` over all shapes.
    """
    onnx_runner = OnnxRunner(onnx_path)
    torch_runner = TorchRunner(model, precision="fp32", max_backbone_pixels=None)
    relations = onnx_runner.provides_relations
    channels = int(onnx_runner.header.get("model_config", {}).get("in_chans", 3))
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}
    for b, k in shapes:
        shape = (b, k, channels, frame_size, frame_size)
        batch = {
            "frames": rng.integers(0, 256, shape, dtype=np.uint8),
            "mask": np.ones((b, k), bool),
        }
        if k > 1:
            batch["mask"][0, -1] = False
        if onnx_runner.two_stream:
            batch["faces"] = rng.integers(0, 256, shape, dtype=np.uint8)
            batch["face_mask"] = batch["mask"].copy()
            if k > 1:
                batch["face_mask"][-1, -1] = False
        expected, got = torch_runner(batch, relations), onnx_runner(batch, relations)
        for name in onnx_runner.output_names:
            e, g = getattr(expected, name, None), getattr(got, name, None)
            if e is not None and name in ("location_maps", "relation_maps"):
                e = e * batch["mask"][:, :, None, None]  # padded frames: zero in both
            worst[name] = max(worst.get(name, 0.0), _max_abs_diff(e, g))
    return worst
