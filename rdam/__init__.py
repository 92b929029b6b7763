"""rdam: the Region Dual Attention Model for video emotion recognition.

Liu, Xu, Wang (2022), "Region Dual Attention-Based Video Emotion Recognition".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rdam.inference import load
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

_MODEL_NAMES = {"RDAM", "ModelConfig", "RDAMOutput", "TwoStreamRDAM", "build_model"}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `rdam --help` and `import rdam` do not load torch and timm,
    # and ``rdam.load`` brings in the prediction stack (decoders, face detector) only when used.
    if name in _MODEL_NAMES:
        import rdam.models

        return getattr(rdam.models, name)
    if name == "load":
        from rdam.inference import load

        return load
    raise AttributeError(f"module 'rdam' has no attribute {name!r}")
