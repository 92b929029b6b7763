"""rdam: the Region Dual Attention Model for video emotion recognition.

Liu, Xu, Wang (2022), "Region Dual Attention-Based Video Emotion Recognition".
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from rdam.models import RDAM, ModelConfig, RDAMOutput, TwoStreamRDAM, build_model

__all__ = [
    "RDAM",
    "ModelConfig",
    "RDAMOutput",
    "TwoStreamRDAM",
    "__version__",
    "build_model",
    "load",
]


def __getattr__(name: str) -> Any:
    # ``rdam.load`` imports the prediction stack (decoders, face detector) only when used.
    if name == "load":
        from rdam.inference import load

        return load
    raise AttributeError(f"module 'rdam' has no attribute {name!r}")
