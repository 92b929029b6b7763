"""Running a clip model on batches of clips: the one path from uint8 arrays to model outputs.

:class:`TorchRunner` (PyTorch) and :class:`rdam.export.OnnxRunner` (onnxruntime) take the same
batch and return the same :class:`ModelOutputs`; ``eval``, ``predict``, ``stream``, ``explain``,
``serve``, the demo and export parity all call one of them. The numeric precision is decided
once, by :func:`resolve_precision`.
"""

from rdam.runtime.outputs import (
    ModelOutputs,
    average_mirrored,
    average_views,
    normalize_weights,
    softmax,
)
from rdam.runtime.precision import (
    PRECISIONS,
    cpu_supports_bf16,
    device_name,
    resolve_precision,
    training_precision,
)
from rdam.runtime.torch_runner import DEFAULT_BACKBONE_PIXELS, ModelRunner, TorchRunner

__all__ = [
    "DEFAULT_BACKBONE_PIXELS",
    "PRECISIONS",
    "ModelOutputs",
    "ModelRunner",
    "TorchRunner",
    "average_mirrored",
    "average_views",
    "cpu_supports_bf16",
    "device_name",
    "normalize_weights",
    "resolve_precision",
    "softmax",
    "training_precision",
]
