"""Running an exported model with onnxruntime, and checking it against PyTorch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdam.checkpoint import header_spec
from rdam.data.spec import ClipSpec
from rdam.errors import CheckpointError
from rdam.export.onnx import METADATA_KEY
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
    :class:`rdam.runtime.TorchRunner` and returns the same :class:`~rdam.runtime.ModelOutputs`;
    it runs the exported float32 graph (``precision`` is ``fp32``).

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
        self.precision = "fp32"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.two_stream = "faces" in self.input_names
        self.provides_relations = "relation_maps" in self.output_names

    @staticmethod
    def _float(frames: Any) -> np.ndarray:
        # (B, K, 3, S, S) uint8 -> float32 in [0, 1], as the model normalises uint8 input
        return np.ascontiguousarray(np.asarray(frames), dtype=np.float32) / 255.0

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
        )


def compare_with_torch(
    model: torch.nn.Module,
    onnx_path: str | os.PathLike[str],
    shapes: list[tuple[int, int]],
    frame_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """Largest absolute difference per output between the two runners the product uses,
    :class:`~rdam.runtime.TorchRunner` (fp32) and :class:`OnnxRunner`, on random uint8 clips
    of each ``(B, K)`` in ``shapes`` (the last frame of the first clip padded).

    Returns:
        ``{output name: max |torch - onnx|}`` over all shapes.
    """
    onnx_runner = OnnxRunner(onnx_path)
    torch_runner = TorchRunner(model, precision="fp32", max_backbone_pixels=None)
    relations = onnx_runner.provides_relations
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}
    for b, k in shapes:
        batch = {
            "frames": rng.integers(0, 256, (b, k, 3, frame_size, frame_size), dtype=np.uint8),
            "mask": np.ones((b, k), bool),
        }
        if k > 1:
            batch["mask"][0, -1] = False
        if onnx_runner.two_stream:
            batch["faces"] = rng.integers(0, 256, batch["frames"].shape, dtype=np.uint8)
            batch["face_mask"] = batch["mask"].copy()
        expected, got = torch_runner(batch, relations), onnx_runner(batch, relations)
        for name in onnx_runner.output_names:
            e, g = getattr(expected, name), getattr(got, name)
            if name in ("location_maps", "relation_maps"):  # padded frames: zero in both
                e = e * batch["mask"][:, :, None, None]
            worst[name] = max(worst.get(name, 0.0), float(np.abs(e - g).max()))
    return worst
