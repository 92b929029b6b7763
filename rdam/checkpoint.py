"""Saving and loading trained models, safely.

Two formats are read:

- ``.safetensors`` *model files* (what rdam ships and exports): the weights plus a JSON header
  with the model config, the class names in order, the preprocessing settings and the rdam
  version. No pickle is involved at all.
- Lightning ``.ckpt`` training checkpoints, read with ``torch.load(weights_only=True)``: a file
  that needs arbitrary pickled objects is refused (its payload never runs) with
  :class:`~rdam.errors.UnsafeCheckpointError`; a truncated or corrupt file raises
  :class:`~rdam.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import rdam
from rdam.errors import CheckpointError, UnsafeCheckpointError
from rdam.models import ModelConfig, build_model

METADATA_KEY = "rdam"
FORMAT_VERSION = 1


@dataclass
class ModelBundle:
    """A model with everything needed to use it on new videos.

    class_names: label ``i`` of the logits is ``class_names[i]``.
    preprocessing: how clips were made for training (``num_frames``, ``frame_size``,
        ``stream`` = ``frames | faces``, face ``margin`` ...), reused by ``predict``.
    metadata: free-form provenance (rdam version, training config, metrics, ...).
    """

    model: nn.Module
    config: ModelConfig
    class_names: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: ModelConfig,
    class_names: list[str],
    preprocessing: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` as a ``.safetensors`` model file (atomically). ``dtype=torch.float16``
    halves the size; floating tensors are cast back to float32 when loaded."""
    from safetensors.torch import save_file

    if len(class_names) != config.num_classes:
        raise ValueError(f"{len(class_names)} class names for {config.num_classes} classes")
    path = Path(path)
    header = {
        "format_version": FORMAT_VERSION,
        "rdam_version": rdam.__version__,
        "model_config": config.to_dict(),
        "class_names": list(class_names),
        "preprocessing": preprocessing or {},
        "metadata": metadata or {},
    }
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(header)})
    os.replace(tmp, path)
    return path


def _bundle(path: Path, state: dict[str, Any], header: Any) -> ModelBundle:
    try:
        config = ModelConfig.from_dict({**header["model_config"], "weights": "none"})
        class_names = list(header["class_names"])
        preprocessing = dict(header.get("preprocessing") or {})
        metadata = {**(header.get("metadata") or {})}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"header is incomplete or invalid ({exc})") from exc
    if len(class_names) != config.num_classes:
        raise CheckpointError(
            path, f"header lists {len(class_names)} class names for {config.num_classes} classes"
        )
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "the state dict holds values that are not tensors")
    # Check the weights against the model the header describes, built on the meta device
    # (no memory): a hostile header (num_classes=2**40) must not allocate what it claims.
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    except ValueError as exc:  # ConfigError: an unknown backbone ...
        raise CheckpointError(path, f"header describes a model rdam cannot build ({exc})") from exc
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        missing = sorted(expected.keys() - found.keys())[:3]
        unexpected = sorted(found.keys() - expected.keys())[:3]
        other = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])[:3]
        raise CheckpointError(
            path,
            f"weights do not fit the model config (missing {missing}, unexpected {unexpected}, "
            f"other shapes {other})",
        )
    model = build_model(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit the model config: {exc}") from exc
    model.eval()
    return ModelBundle(
        model=model,
        config=config,
        class_names=class_names,
        preprocessing=preprocessing,
        metadata={**metadata, "rdam_version": header.get("rdam_version"), "path": str(path)},
    )


def read_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a Lightning/torch checkpoint without running pickled code.

    Raises:
        CheckpointError: missing, truncated or corrupt file.
        UnsafeCheckpointError: the file needs arbitrary pickled objects (refused unrun).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            path,
            "refused: it holds arbitrary pickled objects that could run code when loaded "
            f"({str(exc).splitlines()[0][:200]}). Only load checkpoints from sources you trust; "
            "rdam reads tensors-only checkpoints and .safetensors model files.",
        ) from exc
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            path, f"truncated or corrupt checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"expected a dict, found {type(obj).__name__}")
    return obj


def load_model(path: str | os.PathLike[str], expected_sha256: str | None = None) -> ModelBundle:
    """Load a ``.safetensors`` model file or a Lightning ``.ckpt`` written by ``rdam train``.

    ``expected_sha256`` (hex) is checked before anything is parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such model file; pass a .safetensors or .ckpt from rdam")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(
                path,
                f"sha256 mismatch: expected {expected_sha256}, found {actual} "
                "(the file is corrupt or was replaced)",
            )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = (fh.metadata() or {}).get(METADATA_KEY)
                state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(path, f"truncated or corrupt model file ({exc})") from exc
        if raw is None:
            raise CheckpointError(path, "not an rdam model file (no 'rdam' metadata header)")
        try:
            header = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: [[[[...
            raise CheckpointError(path, f"the 'rdam' header is not valid JSON ({exc})") from exc
        return _bundle(path, state, header)
    ckpt = read_checkpoint_file(path)
    hyper = ckpt.get("hyper_parameters")
    header = hyper.get("bundle") if isinstance(hyper, dict) else None
    weights = ckpt.get("state_dict")
    if not isinstance(header, dict) or not isinstance(weights, dict):
        raise CheckpointError(
            path, "not an rdam training checkpoint (no 'bundle' hyper-parameters)"
        )
    state = {
        k.removeprefix("model."): v
        for k, v in weights.items()
        if isinstance(k, str) and k.startswith("model.")
    }
    return _bundle(path, state, header)
