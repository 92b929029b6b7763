"""ONNX export of a full rdam clip model, with dynamic batch size ``B`` and clip length ``K``.

The graph's inputs are ``frames`` ``(B, K, C, S, S)`` float in ``[0, 1]`` (``C`` the model's
``in_chans``, 3 for RGB) and ``mask`` ``(B, K)`` bool (True = real frame); two-stream models
add ``faces`` and ``face_mask``. Its outputs are ``logits`` ``(B, num_classes)``,
``frame_weights`` ``(B, K)`` and, where the model has them (the same that
:class:`rdam.runtime.TorchRunner` returns):

- ``location_maps`` ``(B, K, h, w)`` (heads with location attention);
- ``frame_logits`` ``(B, K, num_classes)``, the classifier on each frame feature, NaN at padded
  frames (:attr:`~rdam.models.rdam.ClipModel.frame_decomposable` models with a linear
  classifier; see :attr:`rdam.runtime.ModelOutputs.frame_logits`);
- ``face_frame_weights`` ``(B, K)`` (two-stream models: the face stream's alpha);
- ``relation_maps`` ``(B, K, L, L)`` (on request).

The model normalises its input inside the graph. The frame side ``S`` is fixed at export time
(the clip spec's ``frame_size``). Files exported by earlier versions lack ``frame_logits`` and
``face_frame_weights``; :class:`rdam.export.OnnxRunner` returns None for them there.

The model file's header (model config, class names, clip spec) is stored in the ONNX file's
metadata under the key ``rdam``, so an exported file predicts on its own
(``rdam.load("model.onnx", runtime="onnx")``).

Two exporters are supported: ``torchscript`` (``torch.onnx.export(dynamo=False)``, tracing; the
default: fast and exact here) and ``dynamo`` (``torch.export`` based). The model avoids
data-dependent indexing while exporting (``rdam.models.rdam._is_tracing``): padded frames then
go through the backbone too, and their location maps are zeroed (their frame logits set to
NaN) by the wrapper below, so the exported graph gives the same outputs as eager PyTorch.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import rdam
from rdam.checkpoint import FORMAT_VERSION, ModelBundle
from rdam.errors import ConfigError, RDAMError
from rdam.runtime.torch_runner import frame_logits_of

log = logging.getLogger(__name__)

METADATA_KEY = "rdam"
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 18
#: What the exported graph outputs, numbered: 2 added ``frame_logits`` and
#: ``face_frame_weights`` (files of format 1 lack them). Exports cached by ``rdam.load(...,
#: runtime="onnx")`` are keyed on it, so a cached file of an older format is exported again.
EXPORT_FORMAT = 2


class ExportError(RDAMError):
    """The model could not be exported to ONNX (the message says which step failed)."""


class ExportWrapper(nn.Module):
    """Turns an rdam clip model's :class:`~rdam.models.RDAMOutput` into a tuple of tensors.

    ``forward(frames, mask, faces=None, face_mask=None)`` -> ``(logits, frame_weights[,
    location_maps][, frame_logits][, face_frame_weights][, relation_maps])``, each only where
    the model has it (:meth:`output_names`); maps of padded frames are zero and their frame
    logits NaN, as in eager mode (where padded frames never reach the backbone) and as
    :class:`rdam.runtime.TorchRunner` returns them.
    """

    def __init__(self, model: nn.Module, relations: bool = False) -> None:
        super().__init__()
        self.model = model
        self.relations = relations
        self.two_stream = tuple(getattr(model, "input_streams", ("frames",))) == (
            "frames",
            "faces",
        )

    def _run(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        faces: torch.Tensor | None,
        face_mask: torch.Tensor | None,
    ) -> Any:
        if self.two_stream:
            return self.model(
                frames, mask, faces=faces, face_mask=face_mask, return_relations=self.relations
            )
        return self.model(frames, mask, return_relations=self.relations)

    def _outputs(self, out: Any, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The graph's outputs by name, in order (see the module notes)."""
        valid = mask.to(out.frame_weights.dtype)[:, :, None, None]
        result = {"logits": out.logits, "frame_weights": out.frame_weights}
        if out.location_maps is not None:
            result["location_maps"] = out.location_maps * valid
        frame_logits = frame_logits_of(self.model, out, mask)
        if frame_logits is not None:
            result["frame_logits"] = frame_logits
        face_weights = getattr(out, "face_frame_weights", None)
        if face_weights is not None:
            result["face_frame_weights"] = face_weights
        if self.relations and out.relation_maps is not None:
            result["relation_maps"] = out.relation_maps * valid
        return result

    def forward(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        faces: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        out = self._run(frames, mask, faces, face_mask)
        return tuple(self._outputs(out, mask).values())

    def output_names(self, sample: tuple[torch.Tensor, ...]) -> list[str]:
        """Names of :meth:`forward`'s outputs for this model (found by running it once)."""
        with torch.no_grad():
            out = self._run(*sample, *([None] * (4 - len(sample))))
            return list(self._outputs(out, sample[1]))


def sample_inputs(
    frame_size: int,
    two_stream: bool,
    batch: int = 2,
    frames: int = 3,
    seed: int = 0,
    channels: int = 3,
) -> tuple[torch.Tensor, ...]:
    """Random inputs ``(frames, mask[, faces, face_mask])`` of ``(batch, frames, channels,
    frame_size, frame_size)`` with the last frame of the first clip padded, as used for tracing
    and parity checks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, channels, frame_size, frame_size, generator=g)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    if frames > 1:
        mask[0, -1] = False
    if not two_stream:
        return x, mask
    faces = torch.rand(batch, frames, channels, frame_size, frame_size, generator=g)
    return x, mask, faces, mask.clone()


def _header(bundle: ModelBundle, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "rdam_version": rdam.__version__,
        "model_config": bundle.config.to_dict(),
        "class_names": list(bundle.class_names),
        "clip_spec": bundle.spec.to_dict(),
        "metadata": {k: v for k, v in bundle.metadata.items() if k != "path"},
        "inputs": inputs,
        "outputs": outputs,
    }


def export_onnx(
    bundle: ModelBundle,
    out: str | os.PathLike[str],
    *,
    relations: bool = False,
    exporter: str = "torchscript",
    opset: int = DEFAULT_OPSET,
    frame_size: int | None = None,
) -> Path:
    """Export ``bundle.model`` (put in eval mode) to ``out`` (written atomically) and check
    the graph.

    Args:
        bundle: a loaded model (:func:`rdam.checkpoint.load_model`).
        out: the ``.onnx`` file to write.
        relations: also output the relation maps ``s`` (large: ``K L^2`` floats per clip).
        exporter: ``torchscript`` (tracing) or ``dynamo`` (``torch.export``).
        opset: ONNX opset version.
        frame_size: side ``S`` of the input frames (default: the clip spec's ``frame_size``).

    Raises:
        ExportError: the exporter or the ONNX checker failed.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")
    out = Path(out)
    size = int(frame_size or bundle.spec.frame_size)
    wrapper = ExportWrapper(bundle.model, relations).eval()
    channels = int(getattr(bundle.config, "in_chans", 3))
    sample = sample_inputs(size, wrapper.two_stream, channels=channels)
    inputs = ["frames", "mask"] + (["faces", "face_mask"] if wrapper.two_stream else [])
    outputs = wrapper.output_names(sample)
    per_frame = {0: "batch", 1: "frames"}
    dynamic_axes: dict[str, dict[int, str]] = {name: per_frame for name in inputs}
    dynamic_axes.update({name: per_frame for name in outputs})
    dynamic_axes["logits"] = {0: "batch"}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            if exporter == "torchscript":
                torch.onnx.export(
                    wrapper,
                    sample,
                    str(tmp),
                    dynamo=False,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                )
            else:
                batch = torch.export.Dim("batch", min=1, max=4096)
                frames = torch.export.Dim("frames", min=1, max=4096)
                program = torch.onnx.export(
                    wrapper,
                    sample,
                    dynamo=True,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_shapes={name: {0: batch, 1: frames} for name in inputs},
                    opset_version=opset,
                )
                program.save(str(tmp))
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(_header(bundle, inputs, outputs))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except RDAMError:
        raise
    except Exception as exc:
        raise ExportError(
            f"exporting {bundle.metadata.get('path', 'the model')} to {out} with the "
            f"{exporter} exporter failed ({type(exc).__name__}: {exc}); try the other exporter "
            f"(--exporter {'dynamo' if exporter == 'torchscript' else 'torchscript'})"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
        for extra in out.parent.glob(tmp.name + "*"):
            extra.unlink(missing_ok=True)
    log.info("exported %s (%s, opset %d, outputs %s)", out, exporter, opset, outputs)
    return out
