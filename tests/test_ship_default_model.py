"""scripts/ship_default_model.py: the shipped file carries the run's own clip spec, classes and
weights (fp16), its checksum and a description that names the config it came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from _inference_fixtures import save_tiny_model

from rdam.checkpoint import load_model, save_model, sha256_file

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "ship_default_model.py"


def _ship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO
    )


def _config(path: Path, **data: object) -> str:
    """A config file whose data section is ``data`` (the clip spec fields of a tiny model)."""
    import yaml

    path.write_text(yaml.safe_dump({"data": {"stream": "faces", **data}}))
    return str(path)


def test_shipping_keeps_the_runs_clip_spec_classes_and_weights(tmp_path: Path):
    run = save_tiny_model(
        tmp_path / "run.safetensors",
        stream="faces",
        num_frames=3,
        frame_size=40,
        class_names=["calm", "glad"],
        metadata={"frame_weights_learned": False},  # trained on single images
    )
    out = tmp_path / "assets" / "default_model.safetensors"
    # a config that would make other clips than the run's (the card's command would be wrong)
    wrong = _config(tmp_path / "wrong.yaml", num_frames=3, frame_size=96)
    done = _ship(str(run), "--out", str(out), "--config", wrong)
    assert done.returncode != 0 and "frame_size: 96 in the config, 40 in the file" in done.stderr
    assert not out.exists()
    config = _config(tmp_path / "some.yaml", num_frames=3, frame_size=40)
    done = _ship(str(run), "--out", str(out), "--config", config)
    assert done.returncode == 0, done.stderr
    source, shipped = load_model(run), load_model(out)
    # no second copy of the clip spec: the one the run trained under (40 px, K = 3) ships
    assert shipped.spec == source.spec
    assert shipped.spec.frame_size == 40 and shipped.spec.num_frames == 3
    assert shipped.class_names == ["calm", "glad"]
    for name, tensor in source.model.state_dict().items():
        if tensor.is_floating_point():  # stored in fp16, read back as fp32
            expected = tensor.to(torch.float16).to(torch.float32)
            assert torch.equal(shipped.model.state_dict()[name], expected), name
    info = json.loads((out.parent / "default_model.json").read_text())
    assert info["sha256"] == sha256_file(out)
    assert (out.parent / "default_model.safetensors.sha256").read_text().split()[0] == info[
        "sha256"
    ]
    assert info["config"] == config
    assert info["clip_spec"] == source.spec.to_dict()
    assert shipped.metadata["config"] == config
    assert info["fine_tuned_from"] is None and "init_from" not in shipped.metadata
    # the record that its frame weights were never learned ships with it
    assert shipped.frame_weights_learned is False and info["frame_weights_learned"] is False


def test_a_fine_tune_ships_with_the_model_it_started_from(tmp_path: Path):
    tiny = load_model(save_tiny_model(tmp_path / "tiny.safetensors", stream="faces"))
    start = {"source": "default", "sha256": "ab" * 32}
    run = save_model(
        tmp_path / "tuned.safetensors",
        tiny.model,
        tiny.config,
        tiny.class_names,
        tiny.spec,
        {"init_from": start},
    )
    out = tmp_path / "assets" / "default_model.safetensors"
    config = _config(tmp_path / "tuned.yaml", num_frames=4, frame_size=32)
    # a run made before rdam recorded whether its frame weights were learned: refused unless told
    done = _ship(str(run), "--out", str(out), "--config", config)
    assert done.returncode != 0 and "--frame-weights-learned false" in done.stderr
    done = _ship(str(run), "--out", str(out), "--config", config,
                 "--frame-weights-learned", "false")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((out.parent / "default_model.json").read_text())["fine_tuned_from"] == start
    assert load_model(out).metadata["init_from"] == start
    assert load_model(out).frame_weights_learned is False
    # the description says what the file records (it said None: the run's own record)
    assert (
        json.loads((out.parent / "default_model.json").read_text())["frame_weights_learned"]
        is False
    )
    # ... and a flag that contradicts the run's record is refused
    recorded = save_model(tmp_path / "rec.safetensors", tiny.model, tiny.config, tiny.class_names,
                          tiny.spec, {"frame_weights_learned": False})  # fmt: skip
    done = _ship(str(recorded), "--out", str(out), "--config", config,
                 "--frame-weights-learned", "true")  # fmt: skip
    assert done.returncode != 0 and "contradicts" in done.stderr


def test_a_frame_stream_model_is_refused(tmp_path: Path):
    run = save_tiny_model(tmp_path / "frames.safetensors", stream="frames")
    out = tmp_path / "assets" / "default_model.safetensors"
    done = _ship(str(run), "--out", str(out), "--config", "configs/x.yaml")
    assert done.returncode != 0
    assert "face-stream" in done.stderr and str(run) in done.stderr
    assert not out.exists()


def _run_with(tmp_path: Path, name: str, data: dict, framing: dict | None = None) -> Path:
    """A tiny face-stream run file trained (its metadata says) on ``data`` under a 0.15
    margin, with or without rdam train's measurement of its training crops."""
    tiny = load_model(save_tiny_model(tmp_path / f"{name}_tiny.safetensors", stream="faces"))
    experiment = {"data": {"num_frames": 4, "frame_size": 32, "face_margin": 0.15, **data}}
    metadata = {"frame_weights_learned": False, "experiment": experiment}
    if framing is not None:
        metadata["training_crop_framing"] = framing
    return save_model(tmp_path / f"{name}.safetensors", tiny.model, tiny.config,
                      tiny.class_names, tiny.spec.replace(face_margin=0.15), metadata)  # fmt: skip


def test_face_margin_changes_only_near_the_measured_framing_of_given_crops(tmp_path: Path):
    """--face-margin reframes detected faces of a model trained on face crops given as images
    (FER2013's: figure 17), near the framing rdam train measured; it records both."""
    out = tmp_path / "assets" / "default_model.safetensors"
    config = _config(tmp_path / "run.yaml", num_frames=4, frame_size=32, face_margin=0.15)
    images = {"kind": "image_folder", "root": str(tmp_path / "gone"), "stream": "faces"}
    framing = {"margin": 0.014, "face_margin": 0.01, "equalized": True}
    run = _run_with(tmp_path, "measured", images, framing)
    done = _ship(str(run), "--out", str(out), "--config", config, "--face-margin", "0.01")
    assert done.returncode == 0, done.stderr
    shipped = load_model(out)
    assert shipped.spec == load_model(run).spec.replace(face_margin=0.01)
    assert shipped.metadata["spec_changes_at_shipping"] == {"face_margin": [0.15, 0.01]}
    assert shipped.metadata["training_crop_framing"] == framing  # travels on
    info = json.loads((out.parent / "default_model.json").read_text())
    assert info["clip_spec"]["face_margin"] == 0.01
    assert info["spec_changes_at_shipping"] == {"face_margin": [0.15, 0.01]}
    out.unlink()
    # far from the measurement: refused, the measured margin named
    far = _run_with(tmp_path, "far", images, {"margin": 0.2, "face_margin": 0.2})
    done = _ship(str(far), "--out", str(out), "--config", config, "--face-margin", "0.01")
    assert done.returncode != 0 and "ship with --face-margin 0.2" in done.stderr
    # no measurement and no data to measure: refused, not guessed
    done = _ship(str(_run_with(tmp_path, "old", images)), "--out", str(out), "--config", config,
                 "--face-margin", "0.01")  # fmt: skip
    assert done.returncode != 0 and "cannot be measured here" in done.stderr
    assert not out.exists()


def test_face_margin_is_refused_for_faces_the_detector_cropped_in_training(tmp_path: Path):
    """Photos larger than twice the frame size: under faces auto the detector cropped them in
    training, at the run's margin, so the run ships with it."""
    import cv2
    import numpy as np

    for split in ("train", "val"):
        for name in ("calm", "glad"):
            (tmp_path / "photos" / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / "photos" / split / name / "a.png"), np.zeros((80, 80)))
    photos = {"kind": "image_folder", "root": str(tmp_path / "photos"), "face_input": "auto"}
    run = _run_with(tmp_path, "photos", {**photos, "stream": "faces"})
    out = tmp_path / "assets" / "default_model.safetensors"
    config = _config(tmp_path / "run.yaml", num_frames=4, frame_size=32, face_margin=0.15)
    done = _ship(str(run), "--out", str(out), "--config", config, "--face-margin", "0.01")
    assert done.returncode != 0 and "not trained on face crops given as images" in done.stderr
    assert not out.exists()


def test_face_margin_of_an_unrecorded_run_is_measured_on_its_fer2013_crops(
    tmp_path: Path, fer2013_dir: Path
):
    """A run made before rdam train measured its crops: the ship script measures them as
    rdam train would, on the run's own data, and records the measurement."""
    fer = {"kind": "image_folder", "root": str(fer2013_dir), "face_input": "auto"}
    run = _run_with(tmp_path, "fer", {**fer, "stream": "faces"})
    out = tmp_path / "assets" / "default_model.safetensors"
    config = _config(tmp_path / "run.yaml", num_frames=4, frame_size=32, face_margin=0.15)
    done = _ship(str(run), "--out", str(out), "--config", config, "--face-margin", "0.01")
    assert done.returncode == 0, done.stderr
    measured = load_model(out).metadata["training_crop_framing"]
    assert measured["images"] == 100 and -0.03 <= measured["margin"] <= 0.06
