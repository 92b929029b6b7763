"""The default model shipped in the package: integrity, provenance and behaviour on real faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import rdam
from rdam.checkpoint import ASSETS_DIR, default_model_path, load_model, sha256_file
from rdam.data.spec import ClipSpec

FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_shipped_files_are_small_checked_and_described():
    model = default_model_path()
    assert model.stat().st_size <= 25 * 2**20
    sidecar = (ASSETS_DIR / f"{model.name}.sha256").read_text().split()[0]
    assert sidecar == sha256_file(model)
    info = json.loads((ASSETS_DIR / "default_model.json").read_text())
    assert info["sha256"] == sidecar
    assert info["class_names"] == FER_CLASSES
    assert (ASSETS_DIR / "face_detection_yunet_2023mar.onnx").is_file()
    assert "MIT License" in (ASSETS_DIR / "LICENSE-yunet.txt").read_text()
    # the config it came from is in the repository
    assert (Path(__file__).resolve().parents[1] / info["config"]).is_file()


def test_default_model_loads_without_arguments_and_describes_its_input():
    predictor = rdam.load()
    assert predictor.class_names == FER_CLASSES
    # its whole clip spec, as the model file, its description and its training config say;
    # detected faces framed as FER2013 frames its faces (`rdam framing`: figure 17)
    assert predictor.spec == ClipSpec(
        num_frames=16, frame_size=48, stream="faces", face_margin=0.01, color="gray"
    )
    info = json.loads((ASSETS_DIR / "default_model.json").read_text())
    assert ClipSpec.from_dict(info["clip_spec"]) == predictor.spec
    from rdam.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / info["config"])
    # the config made the run's clips; a field changed at shipping is recorded with both values
    trained = config.data.clip_spec()
    changes = info["spec_changes_at_shipping"] or {}
    shipped = load_model(ASSETS_DIR / "default_model.safetensors").metadata
    assert changes == shipped.get("spec_changes_at_shipping", {})
    assert {k: getattr(trained, k) for k in changes} == {k: v[0] for k, v in changes.items()}
    assert trained.replace(**{k: v[1] for k, v in changes.items()}) == predictor.spec
    # trained on FER2013's single images: its frame attention never learned, and every answer
    # says so (the file, its description and the answers agree)
    assert predictor.frame_weights_learned is False and info["frame_weights_learned"] is False


def test_default_model_recognises_real_fer2013_val_faces(fer2013_dir: Path):
    predictor = rdam.load()
    paths, labels = [], []
    for label, name in enumerate(FER_CLASSES):
        for path in sorted((fer2013_dir / "val" / name).glob("*.jpg"))[:20]:
            paths.append(path)
            labels.append(label)
    # each face read as `rdam predict face.jpg` and `rdam eval` read it: under the model's clip
    # spec (a 48-px FER2013 face is the face crop, fitted to the model's frame size)
    predicted = predictor.run([predictor.prepare(path) for path in paths]).logits.argmax(1)
    labels = np.array(labels)
    per_class = {c: float((predicted[labels == i] == i).mean()) for i, c in enumerate(FER_CLASSES)}
    # loose floors for 140 faces; the full val split's figures are in docs/model-card.md
    assert per_class["happy"] >= 0.7, per_class
    assert per_class["surprise"] >= 0.6, per_class
    assert (predicted == labels).mean() >= 0.45, per_class


def test_predict_on_a_real_video_needs_no_argument_and_no_network(ekman6_dir: Path):
    out = subprocess.run(
        [sys.executable, "-m", "rdam.cli", "predict", str(ekman6_dir / "joy.mp4")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent",
            "no_proxy": "*",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        },
    )
    result = json.loads(out.stdout)[0]
    assert result["error"] is None
    assert result["label"] == "happy"
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
    assert sum(result["face_found"]) >= 12


def test_the_shipped_models_fingerprint_uses_the_digest_checked_at_load(monkeypatch):
    """``rdam.load()`` checks the shipped file against its ``.sha256``; the batch outputs'
    ``answered_by`` then takes that digest instead of hashing the file again, and is the same
    fingerprint as a predictor that hashes the file itself."""
    import rdam.inference.predictor as predictor_module

    sidecar = (ASSETS_DIR / f"{default_model_path().name}.sha256").read_text().split()[0]
    shipped = rdam.load()
    assert shipped.model_sha256 == sidecar

    def no_second_hash(path):
        if Path(path).resolve() == default_model_path().resolve():  # (the YuNet file is hashed)
            raise AssertionError(f"hashed {path} again")
        return sha256_file(path)

    monkeypatch.setattr(predictor_module, "sha256_file", no_second_hash)
    fingerprint = shipped.fingerprint
    monkeypatch.undo()
    by_path = rdam.load(default_model_path())  # a path given: no digest known, hashed here
    assert by_path.model_sha256 is None
    assert by_path.fingerprint == fingerprint
