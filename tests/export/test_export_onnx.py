"""ONNX export: PyTorch vs onnxruntime parity for several B and K, metadata, the ONNX runtime
path of the predictor, the export cache and the CLI.

Tolerances (fp32, CPU): logits 1e-4, frame weights and attention maps 1e-5 (measured
differences are ~1e-7).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _inference_fixtures import CLASS_NAMES, SquareFaceDetector, save_tiny_model, write_video

import rdam
from rdam.checkpoint import load_model
from rdam.cli import main
from rdam.errors import CheckpointError
from rdam.export import OnnxRunner, compare_with_torch, export_onnx
from rdam.export.onnx import sample_inputs

LOGITS_ATOL = 1e-4
MAPS_ATOL = 1e-5
SHAPES = [(1, 2), (3, 4)]  # (B, K)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    model = save_tiny_model(root / "tiny.safetensors")
    onnx_path = export_onnx(load_model(model), root / "tiny.onnx", relations=True)
    return {"root": root, "model": model, "onnx": onnx_path}


def assert_parity(diffs: dict[str, float]) -> None:
    assert diffs["logits"] < LOGITS_ATOL, diffs
    for name in (
        "frame_weights",
        "location_maps",
        "relation_maps",
        "frame_logits",
        "face_frame_weights",
    ):
        if name in diffs:
            assert diffs[name] < MAPS_ATOL, diffs


def test_parity_for_several_batch_sizes_and_frame_counts(exported):
    bundle = load_model(exported["model"])
    diffs = compare_with_torch(bundle.model, exported["onnx"], SHAPES, frame_size=32)
    assert set(diffs) == {
        "logits",
        "frame_weights",
        "location_maps",
        "frame_logits",
        "relation_maps",
    }
    assert_parity(diffs)


def test_padded_frames_match_eager_pytorch(exported):
    bundle = load_model(exported["model"])
    runner = OnnxRunner(exported["onnx"])
    frames, mask = sample_inputs(32, False, batch=2, frames=5, seed=3)
    mask[1, 2:] = False
    with torch.no_grad():
        eager = bundle.model(frames, mask, return_relations=True)  # padded frames skipped
    got = dict(zip(runner.output_names, runner.session.run(
        None, {"frames": frames.numpy(), "mask": mask.numpy()}), strict=True))  # fmt: skip
    np.testing.assert_allclose(got["logits"], eager.logits.numpy(), atol=LOGITS_ATOL)
    np.testing.assert_allclose(got["frame_weights"], eager.frame_weights.numpy(), atol=MAPS_ATOL)
    np.testing.assert_allclose(got["location_maps"], eager.location_maps.numpy(), atol=MAPS_ATOL)
    assert np.all(got["frame_weights"][1, 2:] == 0) and np.all(got["location_maps"][1, 2:] == 0)


def test_metadata_and_dynamic_axes(exported):
    proto = onnx.load(str(exported["onnx"]))
    meta = {p.key: p.value for p in proto.metadata_props}
    header = json.loads(meta["rdam"])
    assert header["class_names"] == CLASS_NAMES
    assert header["clip_spec"]["frame_size"] == 32 and header["format_version"] == 2
    assert header["outputs"] == [
        "logits",
        "frame_weights",
        "location_maps",
        "frame_logits",
        "relation_maps",
    ]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "frames", 3, 32, 32]
    runner = OnnxRunner(exported["onnx"])
    assert runner.class_names == CLASS_NAMES and runner.provides_relations
    assert runner.spec == load_model(exported["model"]).spec  # the clip spec travels along
    batch = {"frames": np.zeros((2, 3, 3, 32, 32), np.uint8), "mask": np.ones((2, 3), bool)}
    out = runner(batch)  # the batch of TorchRunner: (B, K, 3, S, S) uint8 and a mask
    assert out.logits.shape == (2, 3) and out.frame_weights.shape == (2, 3)


def test_onnx_predictor_matches_torch(exported, tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    torch_pred = rdam.load(exported["model"], precision="fp32").predict_video(video)
    onnx_pred = rdam.load(exported["onnx"], runtime="onnx").predict_video(video)
    np.testing.assert_allclose(
        list(onnx_pred.probabilities.values()), list(torch_pred.probabilities.values()), atol=1e-5
    )
    np.testing.assert_allclose(onnx_pred.frame_weights, torch_pred.frame_weights, atol=MAPS_ATOL)
    assert onnx_pred.timestamps == torch_pred.timestamps
    analysis = rdam.load(exported["onnx"], runtime="onnx").analyze(video)
    assert analysis.relation_maps is not None and analysis.relation_maps.shape == (4, 16, 16)


def test_checkpoint_is_exported_once_into_the_cache(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("RDAM_CACHE_DIR", str(tmp_path / "cache"))
    predictor = rdam.load(exported["model"], runtime="onnx")
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and predictor.runner.path == cached[0]
    stamp = cached[0].stat().st_mtime_ns
    rdam.load(exported["model"], runtime="onnx")
    assert cached[0].stat().st_mtime_ns == stamp
    assert list((tmp_path / "cache" / "onnx").glob("*.partial")) == []
    # keyed on the graph's output format: a file cached before frame_logits is exported again
    from rdam.export.onnx import EXPORT_FORMAT

    assert f"-f{EXPORT_FORMAT}" in cached[0].name


def test_head_without_location_maps_and_two_stream(tmp_path):
    avg = load_model(save_tiny_model(tmp_path / "avg.safetensors", region_head="average"))
    path = export_onnx(avg, tmp_path / "avg.onnx")
    assert OnnxRunner(path).output_names == ["logits", "frame_weights", "frame_logits"]
    assert_parity(compare_with_torch(avg.model, path, SHAPES, frame_size=32))

    two = load_model(save_tiny_model(tmp_path / "two.safetensors", arch="two_stream"))
    path = export_onnx(two, tmp_path / "two.onnx")
    runner = OnnxRunner(path)
    assert runner.two_stream and runner.input_names == ["frames", "mask", "faces", "face_mask"]
    assert runner.output_names == ["logits", "frame_weights", "location_maps", "face_frame_weights"]
    assert_parity(compare_with_torch(two.model, path, SHAPES, frame_size=32))
    video = write_video(tmp_path / "faces.mp4", face_frames={2, 7})
    pred = rdam.load(path, runtime="onnx", face_detector=SquareFaceDetector()).predict_video(video)
    ref = rdam.load(
        tmp_path / "two.safetensors", face_detector=SquareFaceDetector(), precision="fp32"
    )
    np.testing.assert_allclose(
        list(pred.probabilities.values()),
        list(ref.predict_video(video).probabilities.values()),
        atol=1e-5,
    )


def test_softmax_frame_weights_and_attention_clusters_run_at_any_batch_size(tmp_path):
    """The exporter froze the all-zero guard of Eq. 11 (``ones_like`` of the weights' sum) at
    the tracing batch of 2: such graphs gave two rows for one clip and failed for three
    (``rdam predict DIR`` batches 8). The tracing batch is 2, so 1 and 3 are the checks."""
    for name, config in (
        ("softmax", {"frame_weight": "softmax"}),
        ("clusters", {"arch": "attention_clusters"}),
    ):
        bundle = load_model(save_tiny_model(tmp_path / f"{name}.safetensors", **config))
        path = export_onnx(bundle, tmp_path / f"{name}.onnx")
        assert_parity(compare_with_torch(bundle.model, path, [(1, 1), (3, 3), (4, 2)],
                                         frame_size=32))  # fmt: skip


@pytest.mark.slow
def test_dynamo_exporter(exported, tmp_path):
    bundle = load_model(exported["model"])
    path = export_onnx(bundle, tmp_path / "dynamo.onnx", exporter="dynamo")
    assert_parity(compare_with_torch(bundle.model, path, SHAPES, frame_size=32))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_onnx_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        OnnxRunner(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="onnxruntime cannot load"):
        OnnxRunner(tmp_path / "junk.onnx")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(plain), dynamo=False)
    with pytest.raises(CheckpointError, match="not an rdam ONNX export"):
        OnnxRunner(plain)


def test_export_leaves_the_model_in_eval_mode(exported, tmp_path):
    bundle = load_model(exported["model"])
    bundle.model.train()  # export must not trace (or leave) batch-norm in training mode
    export_onnx(bundle, tmp_path / "again.onnx")
    assert not bundle.model.training
    assert_parity(compare_with_torch(bundle.model, tmp_path / "again.onnx", SHAPES, 32))


def test_cli_export_with_verify(exported, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = main(["export", "--checkpoint", str(exported["model"]),
                 "--out", str(out), "--verify"])  # fmt: skip
    assert code == 0 and out.is_file()
    report = json.loads(capsys.readouterr().out)
    assert report["out"] == str(out)
    assert_parity(report["max_abs_diff"])
    video = write_video(tmp_path / "clip.mp4")
    code = main(["predict", str(video), "--checkpoint", str(out), "--runtime", "onnx"])
    assert code == 0 and json.loads(capsys.readouterr().out)[0]["label"] in CLASS_NAMES


def test_an_onnx_runtime_refuses_a_precision_it_would_not_run(exported):
    """An ONNX graph runs in fp32: precision bf16 with runtime onnx was accepted and ignored."""
    for precision in ("bf16", "fp16"):
        with pytest.raises(rdam.errors.ConfigError, match="an ONNX graph runs in fp32"):
            rdam.load(exported["onnx"], runtime="onnx", precision=precision)
    assert rdam.load(exported["onnx"], runtime="onnx", precision="fp32").runner.precision == "fp32"


def test_cli_export_verify_refuses_a_graph_that_answers_otherwise(exported, tmp_path, capsys,
                                                                  monkeypatch):  # fmt: skip
    """--verify used to print the differences and exit 0 whatever they were: a graph off by
    more than the tolerance is removed, with exit 2 and the differences."""
    import rdam.export

    monkeypatch.setattr(rdam.export, "compare_with_torch",
                        lambda *a, **k: {"logits": 0.5, "frame_weights": 1e-7})  # fmt: skip
    out = tmp_path / "bad.onnx"
    code = main(["export", "--checkpoint", str(exported["model"]), "--out", str(out),
                 "--verify"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "does not compute what the model computes" in err and "'logits': 0.5" in err


@pytest.mark.shared_data
def test_cli_export_defaults_to_the_shipped_model(ekman6_dir, tmp_path):
    """``rdam export --out model.onnx`` without ``--checkpoint`` exports the shipped model
    (through the CLI, in a subprocess); the ONNX file predicts like the torch model."""
    import subprocess
    import sys

    out = tmp_path / "model.onnx"
    run = subprocess.run(
        [sys.executable, "-m", "rdam.cli", "export", "--out", str(out), "--verify"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["out"] == str(out) and out.is_file()
    assert_parity(report["max_abs_diff"])
    runner = OnnxRunner(out)
    assert runner.class_names == rdam.load().class_names
    video = ekman6_dir / "joy.mp4"
    onnx_pred = rdam.load(out, runtime="onnx").predict_video(video)
    torch_pred = rdam.load(precision="fp32").predict_video(video)
    assert onnx_pred.label == torch_pred.label
    for name, p in torch_pred.probabilities.items():
        assert abs(onnx_pred.probabilities[name] - p) < 1e-3


def test_cli_export_checks_the_shipped_models_sha256(tmp_path, monkeypatch, capsys):
    """A shipped model that does not match its ``.sha256`` is refused, as ``rdam.load()``
    refuses it."""
    import rdam.checkpoint

    fake = tmp_path / "default_model.safetensors"
    fake.write_bytes(rdam.checkpoint.default_model_path().read_bytes())
    (tmp_path / "default_model.safetensors.sha256").write_text("0" * 64 + "\n")
    monkeypatch.setattr(rdam.checkpoint, "default_model_path", lambda: fake)
    code = main(["export", "--out", str(tmp_path / "x.onnx")])
    assert code == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
