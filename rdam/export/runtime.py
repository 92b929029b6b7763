"""Running an exported model with onnxruntime, and checking it against PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdam.errors import CheckpointError
from rdam.export.onnx import METADATA_KEY, ExportWrapper, sample_inputs
from rdam.inference import ModelOutputs


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """An ``.onnx`` file from :func:`rdam.export.export_onnx` under onnxruntime.

    Reads the class names and preprocessing from the file's ``rdam`` metadata, so the file is
    all a :class:`~rdam.inference.Predictor` needs.

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
        self.preprocessing: dict[str, Any] = dict(self.header.get("preprocessing") or {})
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.two_stream = "faces" in self.input_names
        self.provides_relations = "relation_maps" in self.output_names

    @staticmethod
    def _float(frames: np.ndarray) -> np.ndarray:
        # (B, K, S, S, 3) uint8 -> (B, K, 3, S, S) float32 in [0, 1]
        return np.ascontiguousarray(frames.transpose(0, 1, 4, 2, 3), dtype=np.float32) / 255.0

    def __call__(self, inputs: dict[str, np.ndarray], relations: bool = False) -> ModelOutputs:
        """Same contract as :class:`rdam.inference.TorchRunner`; ``mask`` may be omitted
        (every frame real)."""
        frames = inputs["frames"]
        mask = inputs.get("mask")
        if mask is None:
            mask = np.ones(frames.shape[:2], bool)
        feed = {"frames": self._float(frames), "mask": np.asarray(mask, bool)}
        if self.two_stream:
            feed["faces"] = self._float(inputs["faces"])
            feed["face_mask"] = np.asarray(inputs["face_mask"], bool)
        values = dict(zip(self.output_names, self.session.run(None, feed), strict=True))
        return ModelOutputs(
            logits=values["logits"],
            frame_weights=values["frame_weights"],
            location_maps=values.get("location_maps"),
            relation_maps=values.get("relation_maps") if relations else None,
        )


def compare_with_torch(
    model: torch.nn.Module,
    onnx_path: str | os.PathLike[str],
    shapes: list[tuple[int, int]],
    frame_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """Largest absolute difference per output between PyTorch (fp32, eager) and onnxruntime
    on random clips of each ``(B, K)`` in ``shapes`` (the first clip has a padded frame).

    Returns:
        ``{output name: max |torch - onnx|}`` over all shapes.
    """
    runner = OnnxRunner(onnx_path)
    wrapper = ExportWrapper(model.eval(), relations=runner.provides_relations).eval()
    worst: dict[str, float] = {}
    for i, (b, k) in enumerate(shapes):
        sample = sample_inputs(frame_size, runner.two_stream, batch=b, frames=k, seed=seed + i)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(*sample)]
        feed = {name: t.numpy() for name, t in zip(runner.input_names, sample, strict=True)}
        got = runner.session.run(None, feed)
        for name, e, g in zip(runner.output_names, expected, got, strict=True):
            worst[name] = max(worst.get(name, 0.0), float(np.abs(e - g).max()))
    return worst
