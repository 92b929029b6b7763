"""Per-frame answers: the video logits are exactly the weighted mean of the frames' logits.

The classifier is linear and Eq. 11 a normalised weighted mean, so
``logits = Σ_i (α_i / Σα) (W f_i + b)``; ``ModelOutputs.frame_logits`` and
``normalized_frame_weights`` expose the two factors. Checked to 1e-5 in fp32 on tiny models of
every fusion that has the property, on the shipped model and a real face video, and checked
absent where it does not hold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdam.models import ModelConfig, build_model
from rdam.runtime import ModelOutputs, TorchRunner, average_mirrored, normalize_weights

TINY = dict(backbone="resnet18", embed_dim=32, frame_hidden_dim=16, num_classes=3)


def _batch(b: int = 2, k: int = 4, size: int = 32, seed: int = 0, two_stream: bool = False):
    rng = np.random.default_rng(seed)
    batch = {
        "frames": rng.integers(0, 256, (b, k, 3, size, size), dtype=np.uint8),
        "mask": np.ones((b, k), bool),
    }
    batch["mask"][0, -1] = False  # a padded frame
    batch["mask"][1, 1] = False  # a faceless frame in the middle
    if two_stream:
        batch["faces"] = rng.integers(0, 256, (b, k, 3, size, size), dtype=np.uint8)
        batch["face_mask"] = batch["mask"].copy()
    return batch


def _check_decomposition(out: ModelOutputs, mask: np.ndarray) -> None:
    b, k = mask.shape
    assert out.frame_logits is not None
    assert out.frame_logits.shape == (b, k, out.logits.shape[1])
    assert np.isnan(out.frame_logits[~mask]).all()
    assert np.isfinite(out.frame_logits[mask]).all()
    w = out.normalized_frame_weights
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert (w[~mask] == 0).all()
    # the raw α are kept as they are (they do not sum to 1)
    np.testing.assert_allclose(w, out.frame_weights / out.frame_weights.sum(1, keepdims=True))
    np.testing.assert_allclose(out.recomposed_logits(), out.logits, atol=1e-5, rtol=0)
    probs = out.frame_probabilities
    np.testing.assert_allclose(probs[mask].sum(-1), 1.0, atol=1e-9)


@pytest.mark.parametrize(
    "extra",
    [
        {},  # RDAM: dual attention + frame attention (sigmoid α)
        {"frame_weight": "softmax"},
        {"region_head": "average", "temporal": "average"},
        {"arch": "qan"},
    ],
    ids=["rdam", "rdam-softmax", "average", "qan"],
)
def test_video_logits_are_the_weighted_mean_of_frame_logits(extra):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY, **extra}))
    # a classifier bias far from 0, so that a missing "+ b" or unnormalised weights show
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([3.0, -2.0, 0.5]))
    runner = TorchRunner(model, precision="fp32", max_backbone_pixels=None)
    batch = _batch()
    out = runner(batch)
    _check_decomposition(out, batch["mask"])


@pytest.mark.parametrize("arch", ["two_stream", "attention_clusters"])
def test_models_whose_logits_are_no_mean_of_frames_have_no_frame_logits(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, **TINY))
    runner = TorchRunner(model, precision="fp32", max_backbone_pixels=None)
    out = runner(_batch(two_stream=arch == "two_stream"))
    assert out.frame_logits is None
    assert out.frame_probabilities is None
    assert out.recomposed_logits() is None
    # the normalised weights are there all the same
    np.testing.assert_allclose(out.normalized_frame_weights.sum(1), 1.0, atol=1e-12)


def test_normalize_weights_of_an_empty_clip_is_zero():
    w = normalize_weights(np.array([[0.0, 0.0], [0.2, 0.6]], np.float32))
    np.testing.assert_allclose(w, [[0.0, 0.0], [0.25, 0.75]])


def test_mirrored_average_keeps_frame_logits_per_frame():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY))
    runner = TorchRunner(model, precision="fp32", max_backbone_pixels=None)
    batch = _batch()
    mirrored = dict(batch, frames=batch["frames"][..., ::-1])
    avg = average_mirrored(runner(batch), runner(mirrored))
    mask = batch["mask"]
    assert avg.frame_logits.shape == (2, 4, 3)
    assert np.isnan(avg.frame_logits[~mask]).all()
    np.testing.assert_allclose(avg.frame_probabilities[mask].sum(-1), 1.0, atol=1e-6)


def test_shipped_model_decomposes_on_a_real_video(ekman6_dir, yunet_model):
    """The shipped FER2013 model on the face crops of joy.mp4, read as predict reads it."""
    from rdam.checkpoint import default_model_path, load_model
    from rdam.data.clips import batch_clips, read_clip
    from rdam.data.faces import FaceDetector

    bundle = load_model(default_model_path())
    clip = read_clip(
        ekman6_dir / "joy.mp4",
        bundle.spec,
        detector=FaceDetector(yunet_model, score_threshold=bundle.spec.face_score),
    )
    batch = batch_clips([clip])
    out = TorchRunner(bundle.model, precision="fp32")(batch)
    _check_decomposition(out, batch["mask"])
    # the per-frame answers are the video's: joy is "happy" on most frames, as the video is
    happy = bundle.class_names.index("happy")
    assert int(out.logits[0].argmax()) == happy
    frame_labels = np.nanargmax(out.frame_logits[0][batch["mask"][0]], axis=-1)
    assert (frame_labels == happy).mean() >= 0.5
