"""The whole clip models: shapes, masks, gradients, every variant learns, state-dict round trip."""

from __future__ import annotations

import itertools

import pytest
import torch

from rdam.models import RDAM, ModelConfig, RDAMOutput, TwoStreamRDAM, build_model

TINY = dict(backbone="resnet18", embed_dim=32, frame_hidden_dim=16, num_classes=3)


def _inputs(model, b=2, k=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    kwargs = {"frames": torch.rand(b, k, 3, size, size, generator=g)}
    kwargs["mask"] = torch.ones(b, k, dtype=torch.bool)
    if "faces" in model.input_streams:
        kwargs["faces"] = torch.rand(b, k, 3, size, size, generator=g)
        kwargs["face_mask"] = torch.ones(b, k, dtype=torch.bool)
    return kwargs


def test_224_input_gives_28x28_location_maps():
    model = build_model(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 3, 224, 224))
    assert out.location_maps.shape == (1, 1, 28, 28)
    torch.testing.assert_close(out.location_maps.sum(dim=(2, 3)), torch.ones(1, 1))


def test_output_fields_and_relations_only_when_asked():
    model = build_model(ModelConfig(**TINY)).eval()
    x = torch.rand(2, 4, 3, 32, 32)
    out = model(x)
    assert isinstance(out, RDAMOutput)
    assert out.logits.shape == (2, 3)
    assert out.video_feature.shape == (2, 32)
    assert out.frame_features.shape == (2, 4, 32)
    assert out.frame_weights.shape == (2, 4)
    assert out.location_maps.shape == (2, 4, 4, 4)
    assert out.relation_maps is None
    rel = model(x, return_relations=True).relation_maps
    assert rel.shape == (2, 4, 16, 16)
    torch.testing.assert_close(rel.sum(-1), torch.ones(2, 4, 16))


def test_video_feature_is_eq11_over_frame_features():
    model = build_model(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, 32, 32))
    w = out.frame_weights.unsqueeze(-1)
    torch.testing.assert_close(out.video_feature, (w * out.frame_features).sum(1) / w.sum(1))
    torch.testing.assert_close(out.logits, model.classifier(out.video_feature))


def test_uint8_frames_equal_float_frames():
    model = build_model(ModelConfig(**TINY)).eval()
    x = torch.randint(0, 256, (1, 2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, model(x.float() / 255).logits)


@pytest.mark.parametrize("arch", ["rdam", "qan", "attention_clusters", "two_stream"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_padded_frames_change_nothing(arch, train_mode):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, **TINY))
    model.train(train_mode)
    kw = _inputs(model, b=2, k=4)
    kw["mask"][0, 2:] = False
    if "face_mask" in kw:
        kw["face_mask"][1, 3] = False
    torch.manual_seed(1)
    out1 = model(**kw)
    perturbed = dict(kw)
    perturbed["frames"] = kw["frames"].clone()
    perturbed["frames"][0, 2:] = torch.rand(2, 3, 32, 32) * 50
    if "faces" in kw:
        perturbed["faces"] = kw["faces"].clone()
        perturbed["faces"][1, 3] = -7.0
    torch.manual_seed(1)
    out2 = model(**perturbed)
    torch.testing.assert_close(out1.logits, out2.logits)
    torch.testing.assert_close(out1.frame_weights, out2.frame_weights)
    assert (out1.frame_weights[0, 2:] == 0).all()


def test_padded_clip_equals_unpadded_clip_in_eval():
    model = build_model(ModelConfig(**TINY)).eval()
    x = torch.rand(1, 2, 3, 32, 32)
    padded = torch.cat([x, torch.rand(1, 3, 3, 32, 32)], dim=1)
    mask = torch.tensor([[True, True, False, False, False]])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask).logits, model(x).logits)


@pytest.mark.parametrize("arch", ["rdam", "qan", "attention_clusters", "two_stream"])
def test_chunked_backbone_calls_give_the_same_outputs(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, **TINY)).eval()
    kw = _inputs(model, b=2, k=5)
    kw["mask"][1, 3:] = False
    clip_models = [m for m in model.modules() if hasattr(m, "set_max_backbone_pixels")]
    assert clip_models
    calls = []
    for m in clip_models:
        m.backbone.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        whole = model(**kw, return_relations=True)
        n_whole = len(calls)
        for m in clip_models:
            m.set_max_backbone_pixels(3 * 32 * 32 + 5)  # three 32x32 frames per call
        calls.clear()
        chunked = model(**kw, return_relations=True)
    # 8 valid frames -> 3 + 3 + 2 frames per call; the face stream's 10 -> 3 + 3 + 3 + 1
    assert calls == ([3, 3, 2, 3, 3, 3, 1] if arch == "two_stream" else [3, 3, 2])
    assert n_whole == (2 if arch == "two_stream" else 1)
    for name in ("logits", "frame_weights", "frame_features", "location_maps", "relation_maps"):
        a, b = getattr(whole, name), getattr(chunked, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_chunking_is_off_in_training_and_rejects_bad_budgets():
    model = build_model(ModelConfig(**TINY)).train()
    model.set_max_backbone_pixels(32 * 32)
    calls = []
    model.backbone.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    model(torch.rand(2, 3, 3, 32, 32))
    assert calls == [6]  # batch-norm statistics see the whole batch
    with pytest.raises(ValueError, match="max_backbone_pixels"):
        model.set_max_backbone_pixels(0)


@pytest.mark.parametrize("arch", ["rdam", "qan", "attention_clusters", "two_stream"])
def test_gradients_reach_every_parameter(arch):
    model = build_model(ModelConfig(arch=arch, **TINY)).train()
    out = model(**_inputs(model))
    out.logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    # timm zero-initialises the last BN of each residual block, which zeroes the gradient
    # of the convolutions inside that branch at step 0; everything else gets a real one.
    # The shifting operation normalises alpha * v + beta, so with beta = 0 (its initial value)
    # the loss does not depend on alpha yet.
    zero = [
        n
        for n, p in model.named_parameters()
        if not p.grad.abs().sum() > 0 and "layer" not in n and not n.endswith(".alpha")
    ]
    assert not zero, zero


def _train_steps(model, kw, labels, steps=8):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(**kw).logits, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    ("region_head", "temporal"),
    list(itertools.product(["average", "location", "relation", "dual"], ["attention", "average"])),
)
def test_every_variant_learns_a_tiny_problem(region_head, temporal):
    torch.manual_seed(0)
    model = build_model(ModelConfig(region_head=region_head, temporal=temporal, **TINY)).train()
    kw = _inputs(model, b=6, k=2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    losses = _train_steps(model, kw, labels)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("arch", ["qan", "attention_clusters", "two_stream"])
def test_baselines_and_two_stream_learn_a_tiny_problem(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, **TINY)).train()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    losses = _train_steps(model, _inputs(model, b=6, k=2), labels, steps=16)
    assert losses[-1] < 0.5 * losses[0], losses


def test_two_stream_fusions():
    cfg = ModelConfig(arch="two_stream", stream_fusion="sum", **TINY)
    model = build_model(cfg).eval()
    assert isinstance(model, TwoStreamRDAM) and model.fuse is None
    kw = _inputs(model)
    with torch.no_grad():
        out = model(**kw)
        f = model.frame_stream.forward_features(kw["frames"], kw["mask"]).video_feature
        g = model.face_stream.forward_features(kw["faces"], kw["face_mask"]).video_feature
    torch.testing.assert_close(out.video_feature, f + g)
    assert out.face_frame_weights.shape == (2, 3)
    with pytest.raises(ValueError, match="faces"):
        model(kw["frames"])


def test_streams_trained_alone_load_into_the_two_stream_model():
    frames_model = build_model(ModelConfig(**TINY))
    two = build_model(ModelConfig(arch="two_stream", **TINY))
    two.load_stream("frame", frames_model.state_dict())
    for k, v in two.frame_stream.state_dict().items():
        assert torch.equal(frames_model.state_dict()[k], v)


@pytest.mark.parametrize("arch", ["rdam", "qan", "attention_clusters", "two_stream"])
def test_state_dict_round_trip_with_config(arch):
    cfg = ModelConfig(arch=arch, region_head="relation", relation_dim=2, **TINY)
    model = build_model(cfg).eval()
    clone = build_model(ModelConfig.from_dict(cfg.to_dict())).eval()
    clone.load_state_dict(model.state_dict())
    kw = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(model(**kw).logits, clone(**kw).logits)


def test_reset_classifier_changes_the_head_width():
    model = build_model(ModelConfig(**TINY))
    model.reset_classifier(11)
    assert model(torch.rand(1, 1, 3, 32, 32)).logits.shape == (1, 11)
    assert isinstance(model, RDAM)
