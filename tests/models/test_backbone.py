"""The backbone: output stride 8, weights from none / a local file, clear errors."""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from rdam.errors import ConfigError, WeightsError
from rdam.models import backbone as backbone_module
from rdam.models.backbone import Backbone, create_backbone


def test_resnet50_at_224_gives_a_28x28_region_grid():
    bb = Backbone("resnet50", output_stride=8).eval()
    with torch.no_grad():
        m = bb(torch.zeros(1, 3, 224, 224))
    assert m.shape == (1, 2048, 28, 28)
    assert bb.num_features == 2048


@pytest.mark.parametrize(("stride", "side"), [(8, 8), (16, 4), (32, 2)])
def test_output_stride_sets_the_grid(stride, side):
    bb = Backbone("resnet18", output_stride=stride)
    assert bb(torch.zeros(1, 3, 64, 64)).shape == (1, 512, side, side)


def test_bad_names_and_strides_are_config_errors():
    with pytest.raises(ConfigError, match="output_stride"):
        Backbone("resnet18", output_stride=4)
    with pytest.raises(ConfigError, match="unknown timm backbone"):
        Backbone("resnet9000")
    with pytest.raises(ConfigError, match="unknown timm backbone"):
        Backbone("resnet18.no_such_tag")
    # a name with its weights' tag (torchvision's ResNet weights ...) is a timm model too
    tagged = Backbone("resnet18.tv_in1k", output_stride=8)
    assert tagged(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 8, 8)


def test_local_weights_file_round_trips_and_classifier_keys_are_ignored(tmp_path):
    src = Backbone("resnet18")
    state = dict(src.body.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)  # a classification checkpoint is fine
    for suffix in (".safetensors", ".pth"):
        path = tmp_path / f"w{suffix}"
        if suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, path)
        else:
            torch.save({"state_dict": state}, path)
        dst = create_backbone("resnet18", weights=str(path))
        for k, v in src.body.state_dict().items():
            assert torch.equal(dst.body.state_dict()[k], v), k


def test_wrong_weights_file_fails_loudly(tmp_path):
    path = tmp_path / "r34.safetensors"
    save_file({k: v.contiguous() for k, v in Backbone("resnet34").body.state_dict().items()}, path)
    with pytest.raises(WeightsError, match="missing|shape|do not belong"):
        create_backbone("resnet18", weights=str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        create_backbone("resnet18", weights=str(tmp_path / "nope.pth"))


def test_pickled_weights_file_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(WeightsError, match="tensors-only"):
        create_backbone("resnet18", weights=str(path))


def test_imagenet_download_failure_is_a_clear_error(monkeypatch):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(backbone_module.timm, "create_model", no_network)
    with pytest.raises(WeightsError, match="--weights /path/to/"):
        backbone_module._timm_pretrained_state_dict("resnet18")
