"""Saving and loading trained models, safely.

Two formats are read:

- ``.safetensors`` *model files* (what rdam ships and exports): the weights plus a JSON header
  with the model config, the class names in order, the clip spec
  (:class:`~rdam.data.spec.ClipSpec`, whole) and the rdam version. No pickle is involved.
- Lightning ``.ckpt`` training checkpoints, read with ``torch.load(weights_only=True)``: a file
  that needs arbitrary pickled objects is refused (its payload never runs) with
  :class:`~rdam.errors.UnsafeCheckpointError`; a truncated or corrupt file raises
  :class:`~rdam.errors.CheckpointError`.
"""

from __future__ import annotations

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
from rdam.data.content_hash import sha256_file
from rdam.data.spec import ClipSpec
from rdam.errors import CheckpointError, ConfigError, UnsafeCheckpointError
from rdam.models import ModelConfig, build_model

METADATA_KEY = "rdam"
FORMAT_VERSION = 2
"""2: the header holds ``clip_spec`` (every field of :class:`ClipSpec`); 1 (rdam 0.1) held a
``preprocessing`` dict of some of them, read by :meth:`ClipSpec.from_legacy`."""
FRAME_WEIGHTS_KEY = "frame_weights_learned"
"""Metadata key: whether the model's learned frame weights were trained (``rdam train`` sets it
for models with such weights: ``false`` when every training clip was a single image)."""


def frame_weights_learned(config: ModelConfig, metadata: dict[str, Any]) -> bool | None:
    """Whether a model's frame weights (Eq. 9-11 frame attention, or a baseline's frame scores)
    were learned: ``False`` for a model whose training clips all had one frame (images, or
    ``num_frames`` 1: a weighted mean of one feature is that feature, so the scores get no
    gradient), also when it started from a model that learned them (its features moved on),
    ``True`` for one trained on clips of several frames, ``None``
    when it has no learned frame weights or its file does not say (made before rdam recorded
    it)."""
    value = metadata.get(FRAME_WEIGHTS_KEY)
    if not config.learns_frame_weights or not isinstance(value, bool):
        return None
    return value


@dataclass
class ModelBundle:
    """A model with everything needed to use it on new videos.

    class_names: label ``i`` of the logits is ``class_names[i]``.
    spec: how the model's clips are made, from training on; every path reads it from here.
    metadata: free-form provenance (rdam version, training config, metrics, ...).
    """

    model: nn.Module
    config: ModelConfig
    class_names: list[str]
    spec: ClipSpec = field(default_factory=ClipSpec)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_weights_learned(self) -> bool | None:
        """:func:`frame_weights_learned` of this model."""
        return frame_weights_learned(self.config, self.metadata)


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: ModelConfig,
    class_names: list[str],
    spec: ClipSpec,
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
        "clip_spec": spec.to_dict(),
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
        metadata = {**(header.get("metadata") or {})}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"header is incomplete or invalid ({exc})") from exc
    spec = header_spec(path, header)
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
    two_stream = config.arch == "two_stream"
    if two_stream != (spec.stream == "both"):
        raise CheckpointError(
            path,
            f"its clip spec (stream {spec.stream!r}) does not fit its model ({config.arch}): a "
            "two-stream model takes stream 'both', every other model 'frames' or 'faces'",
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
        spec=spec,
        metadata={**metadata, "rdam_version": header.get("rdam_version"), "path": str(path)},
    )


def header_spec(path: str | os.PathLike[str], header: dict[str, Any]) -> ClipSpec:
    """The clip spec of a model header: ``clip_spec`` (format 2), or the ``preprocessing`` of a
    format-1 file with documented defaults for what it lacks (:meth:`ClipSpec.from_legacy`).

    Raises:
        CheckpointError: an unknown key or an invalid value (a tampered or newer file).
    """
    if "clip_spec" in header and "preprocessing" in header:
        raise CheckpointError(
            path, "its header holds both a clip spec and legacy preprocessing settings (edited?)"
        )
    try:
        if "clip_spec" in header:
            return ClipSpec.from_dict(header["clip_spec"])
        return ClipSpec.from_legacy(dict(header.get("preprocessing") or {}))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(path, f"its clip spec is not one rdam can use: {exc}") from exc


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


def _read_safetensors(path: Path, tensors: bool) -> tuple[Any, dict[str, torch.Tensor]]:
    """The 'rdam' header of a ``.safetensors`` model file, and its tensors when asked."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(METADATA_KEY)
            state = {k: fh.get_tensor(k) for k in fh.keys()} if tensors else {}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt model file ({exc})") from exc
    if raw is None:
        raise CheckpointError(path, "not an rdam model file (no 'rdam' metadata header)")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: [[[[...
        raise CheckpointError(path, f"the 'rdam' header is not valid JSON ({exc})") from exc
    return header, state


def read_model_header(path: str | os.PathLike[str]) -> Any:
    """The header of a ``.safetensors`` model file (``model_config``, ``class_names``,
    ``clip_spec``, ``metadata``...) without reading its weights.

    Raises:
        CheckpointError: missing, corrupt, or not an rdam model file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such model file")
    return _read_safetensors(path, tensors=False)[0]


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
        header, state = _read_safetensors(path, tensors=True)
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
    bundle = _bundle(path, state, header)
    # where in its run the checkpoint was taken: an evaluation of a run's checkpoint says
    # which step it scored (rdam report refuses a score of another step than the run's end)
    step, epoch = ckpt.get("global_step"), ckpt.get("epoch")
    if isinstance(step, int) and isinstance(epoch, int):  # Lightning's; absent elsewhere
        bundle.metadata["checkpoint"] = {"global_step": step, "epoch": epoch}
    return bundle


# ----------------------------------------------------------------------------------------------
# The shipped default model

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL_FILENAME = "default_model.safetensors"
"""The model shipped in :data:`ASSETS_DIR` (with ``<name>.sha256`` beside it)."""


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


def expected_sha256(model_path: Path) -> str | None:
    """The hex digest in ``<model>.sha256`` (first token), if that file exists."""
    sidecar = model_path.with_name(model_path.name + ".sha256")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text().split()
    return text[0].lower() if text else None


def resolve_model(path: str | os.PathLike[str] | None) -> tuple[Path, str | None]:
    """``(model file, sha256 it must have)``: ``path``, or the shipped default model with the
    digest of its ``.sha256`` file (refused without it)."""
    if path is not None:
        return Path(path), None
    path = default_model_path()
    digest = expected_sha256(path)
    if digest is None:
        raise CheckpointError(
            path,
            f"the checksum file {path.name}.sha256 is missing, so the shipped model cannot be "
            "verified; reinstall rdam",
        )
    return path, digest


def load_bundle(path: str | os.PathLike[str] | None = None) -> ModelBundle:
    """The model file ``path`` (None: the shipped default model, checked against its sha256)."""
    model_path, digest = resolve_model(path)
    return load_model(model_path, expected_sha256=digest)
