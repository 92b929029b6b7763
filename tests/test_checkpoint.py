"""Model files and checkpoints: round trip, sha256, truncation and hostile pickles."""

from __future__ import annotations

import pytest
import torch

from rdam.checkpoint import load_model, read_checkpoint_file, save_model, sha256_file
from rdam.data.spec import ClipSpec
from rdam.errors import CheckpointError, UnsafeCheckpointError
from rdam.models import ModelConfig, build_model

CFG = ModelConfig(backbone="resnet18", embed_dim=16, frame_hidden_dim=8, num_classes=2)


def _saved(tmp_path, dtype=None):
    model = build_model(CFG).eval()
    path = save_model(
        tmp_path / "m.safetensors",
        model,
        CFG,
        ["calm", "angry"],
        spec=ClipSpec(num_frames=4, frame_size=32),
        metadata={"seed": 3},
        dtype=dtype,
    )
    return model, path


def test_safetensors_round_trip_keeps_weights_classes_and_settings(tmp_path):
    model, path = _saved(tmp_path)
    bundle = load_model(path, expected_sha256=sha256_file(path))
    assert bundle.class_names == ["calm", "angry"]
    assert bundle.spec == ClipSpec(num_frames=4, frame_size=32)
    assert bundle.metadata["seed"] == 3 and bundle.metadata["rdam_version"]
    assert bundle.config == CFG
    x = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x).logits, model(x).logits)


def test_fp16_model_file_is_smaller_and_close(tmp_path):
    model, full = _saved(tmp_path)
    half = save_model(
        tmp_path / "h.safetensors", model, CFG, ["a", "b"], ClipSpec(), dtype=torch.float16
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            load_model(half).model(x).logits, model(x).logits, atol=2e-2, rtol=0
        )


def test_sha256_mismatch_and_truncation_are_detected(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_model(path, expected_sha256="0" * 64)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(cut)


def test_truncated_torch_checkpoint_is_reported_not_loaded(tmp_path):
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    cut = tmp_path / "b.ckpt"
    cut.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint_file(cut)
    empty = tmp_path / "c.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint_file(empty)


def test_hostile_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_model(path)
    assert not marker.exists()


def test_not_an_rdam_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an rdam model file"):
        load_model(path)
    with pytest.raises(CheckpointError, match="no such"):
        load_model(tmp_path / "missing.safetensors")


def _with_header(tmp_path, change) -> str:
    """A copy of a saved model file whose JSON header was edited by ``change(header)``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    _, path = _saved(tmp_path)
    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["rdam"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    change(header)
    out = tmp_path / "edited.safetensors"
    save_file(tensors, str(out), metadata={"rdam": json.dumps(header)})
    return out


def test_the_clip_spec_is_stored_whole_and_read_back_typed(tmp_path):
    import json

    from safetensors import safe_open

    _, path = _saved(tmp_path)
    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["rdam"])
    assert header["format_version"] == 2 and "preprocessing" not in header
    assert header["clip_spec"] == ClipSpec(num_frames=4, frame_size=32).to_dict()
    assert set(header["clip_spec"]) == {f for f in ClipSpec().to_dict()}


def test_a_format_1_file_loads_with_its_values_and_the_documented_defaults(tmp_path):
    def legacy(header):
        del header["clip_spec"]
        header["format_version"] = 1
        header["preprocessing"] = {
            "num_frames": 16,
            "frame_size": 48,
            "stream": "faces",
            "face_margin": 0.15,
            "sampler": "center",
            "grayscale": True,
        }

    spec = load_model(_with_header(tmp_path, legacy)).spec
    assert spec == ClipSpec(
        num_frames=16,
        frame_size=48,
        stream="faces",
        face_margin=0.15,
        color="gray",
        fit="squash",
        max_side=640,
        keyframes=False,
        face_score=0.6,
        face_select="largest",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h["clip_spec"].update(crop_mode="tight"), "unknown clip spec keys"),
        (lambda h: h["clip_spec"].update(frame_size=-3), "frame_size must be an integer"),
        (lambda h: h["clip_spec"].update(stream="audio"), "stream='audio'"),
        (lambda h: h["clip_spec"].update(color=True), "color=True"),
        (
            lambda h: (h.pop("clip_spec"), h.update(preprocessing={"frame_size": 48, "gamma": 2})),
            "unknown preprocessing keys",
        ),
    ],
)
def test_an_unknown_or_tampered_clip_spec_is_refused(tmp_path, change, message):
    with pytest.raises(CheckpointError, match=message):
        load_model(_with_header(tmp_path, change))
