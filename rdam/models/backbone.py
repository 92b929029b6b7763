"""The feature extractor: a timm backbone cut at its last stage, run at output stride 8.

Section 3.1: ResNet-50 conv1..res5c with the downsampling of the last two residual stages
removed, so the feature map is 1/8 of the frame. timm does exactly this with
``features_only=True, output_stride=8`` (dilated convolutions in stages 4 and 5), for any
architecture that supports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from rdam.errors import ConfigError, WeightsError

WEIGHTS_NONE = "none"
WEIGHTS_IMAGENET = "imagenet"
VALID_OUTPUT_STRIDES = (8, 16, 32)

# ImageNet statistics; every timm ResNet was trained with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A timm network that returns the feature map ``M`` of its last stage.

    Args:
        name: any timm architecture that supports ``features_only`` (default ``resnet50``).
        output_stride: 8 (the paper), 16 or 32.
        in_chans: input channels.

    Shapes:
        input ``(N, in_chans, H, W)`` -> ``M`` of shape ``(N, C, H/s, W/s)`` with ``s = output_stride``
        and ``C = self.num_features``.
    """

    def __init__(self, name: str = "resnet50", output_stride: int = 8, in_chans: int = 3) -> None:
        super().__init__()
        if output_stride not in VALID_OUTPUT_STRIDES:
            raise ConfigError(
                f"output_stride={output_stride!r} is not supported; use one of {VALID_OUTPUT_STRIDES}"
            )
        # a model's name, or with its weights' tag (resnet50.tv_in1k: torchvision's weights)
        if name not in timm.list_models() and name not in timm.list_models(pretrained=True):
            raise ConfigError(
                f"unknown timm backbone {name!r}; see timm.list_models() for valid names "
                "(e.g. 'resnet18', 'resnet50', 'resnet101', or with a weights tag such as "
                "'resnet50.tv_in1k')"
            )
        self.name = name
        self.output_stride = output_stride
        self.body = timm.create_model(
            name,
            pretrained=False,
            features_only=True,
            out_indices=(-1,),
            output_stride=output_stride,
            in_chans=in_chans,
        )
        self.num_features: int = self.body.feature_info.channels()[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]


def _timm_pretrained_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Download (or read from the hub cache) timm's ImageNet weights for ``name``."""
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as exc:  # network errors surface as many types (socket, HTTP, hub)
        raise WeightsError(
            f"could not obtain ImageNet weights for backbone {name!r} ({type(exc).__name__}: {exc}). "
            "Without network access, download the weights elsewhere and pass the file instead: "
            "--weights /path/to/model.safetensors (a timm/torchvision state dict, .safetensors, "
            ".pth or .bin)."
        ) from exc
    return model.state_dict()


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a tensors-only torch file (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path}: not a tensors-only state dict ({type(exc).__name__}: {exc}); "
            "save it with safetensors or torch.save(model.state_dict())"
        ) from exc
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


def load_backbone_weights(backbone: Backbone, weights: str) -> None:
    """Fill ``backbone`` from ``weights``: ``none``, ``imagenet`` or a local file.

    A classification state dict is accepted: the classifier's keys (``fc.*``, ``head.*``) are
    ignored. Every other key must match the extractor exactly, so a wrong file (another
    architecture, another depth) fails loudly instead of silently leaving random weights.
    """
    if weights == WEIGHTS_NONE:
        return
    if weights == WEIGHTS_IMAGENET:
        state = _timm_pretrained_state_dict(backbone.name)
        source = f"timm ImageNet weights for {backbone.name}"
    else:
        state = read_state_dict(weights)
        source = str(weights)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    target = backbone.body.state_dict()
    missing = [k for k in target if k not in state]
    if missing:
        raise WeightsError(
            f"{source}: {len(missing)} backbone tensors are missing (first: {missing[:3]}); "
            f"is it a {backbone.name} checkpoint?"
        )
    classifier_keys = set(timm.create_model(backbone.name, pretrained=False).state_dict()) - set(
        target
    )
    unexpected = [k for k in state if k not in target and k not in classifier_keys]
    if unexpected:
        raise WeightsError(
            f"{source}: {len(unexpected)} tensors do not belong to a {backbone.name} backbone "
            f"(first: {unexpected[:3]}); is it a checkpoint of another architecture?"
        )
    mismatched = [k for k in target if state[k].shape != target[k].shape]
    if mismatched:
        k = mismatched[0]
        raise WeightsError(
            f"{source}: tensor {k!r} has shape {tuple(state[k].shape)}, the backbone expects "
            f"{tuple(target[k].shape)}"
        )
    backbone.body.load_state_dict({k: state[k] for k in target})


def create_backbone(
    name: str = "resnet50", weights: str = WEIGHTS_NONE, output_stride: int = 8, in_chans: int = 3
) -> Backbone:
    """Build a :class:`Backbone` and load ``weights`` (``none | imagenet | <local file>``)."""
    backbone = Backbone(name, output_stride=output_stride, in_chans=in_chans)
    load_backbone_weights(backbone, weights)
    return backbone
