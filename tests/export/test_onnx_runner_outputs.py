"""OnnxRunner returns the same ModelOutputs as TorchRunner: per-frame logits (frame-decomposable
models), the face stream's frame weights (two-stream models), float frames in ``[0, 1]`` as
well as uint8, and files exported before those outputs existed (then None)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from _inference_fixtures import SquareFaceDetector, save_tiny_model, write_video

from rdam.checkpoint import load_model
from rdam.export import OnnxRunner, compare_with_torch, export_onnx
from rdam.runtime import TorchRunner

ATOL = 1e-5
LOGITS_ATOL = 1e-4
SIZE = 32


def _batch(seed: int, b: int = 2, k: int = 5, two_stream: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = {
        "frames": rng.integers(0, 256, (b, k, 3, SIZE, SIZE), dtype=np.uint8),
        "mask": np.ones((b, k), bool),
    }
    batch["mask"][0, -2:] = False  # a padded clip
    if two_stream:
        batch["faces"] = rng.integers(0, 256, (b, k, 3, SIZE, SIZE), dtype=np.uint8)
        batch["face_mask"] = np.ones((b, k), bool)
        batch["face_mask"][1, 1:] = False  # only one face in the second clip
    return batch


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dual")
    model = save_tiny_model(root / "dual.safetensors", region_head="dual")
    return model, export_onnx(load_model(model), root / "dual.onnx")


def _torch(model_path: Path) -> TorchRunner:
    return TorchRunner(load_model(model_path).model, precision="fp32", max_backbone_pixels=None)


def test_frame_logits_match_torch_for_a_padded_clip(dual):
    model, path = dual
    batch = _batch(1)
    expected, got = _torch(model)(batch), OnnxRunner(path)(batch)
    assert expected.frame_logits is not None
    assert got.frame_logits is not None and got.frame_logits.shape == (2, 5, 3)
    # NaN exactly at the padded frames, as TorchRunner gives them
    np.testing.assert_array_equal(np.isnan(got.frame_logits), np.isnan(expected.frame_logits))
    assert np.isnan(got.frame_logits[0, -2:]).all() and not np.isnan(got.frame_logits[1]).any()
    np.testing.assert_allclose(got.frame_logits, expected.frame_logits, atol=ATOL)
    # the per-frame answers rest on this decomposition: it holds for the ONNX outputs too
    np.testing.assert_allclose(got.recomposed_logits(), got.logits, atol=LOGITS_ATOL)
    np.testing.assert_allclose(got.frame_probabilities, expected.frame_probabilities, atol=ATOL)
    assert got.face_frame_weights is None


def test_face_frame_weights_match_torch_for_a_two_stream_model(tmp_path):
    model = save_tiny_model(tmp_path / "two.safetensors", arch="two_stream")
    path = export_onnx(load_model(model), tmp_path / "two.onnx")
    runner = OnnxRunner(path)
    batch = _batch(2, two_stream=True)
    expected, got = _torch(model)(batch), runner(batch)
    assert expected.face_frame_weights is not None
    assert got.face_frame_weights is not None and got.face_frame_weights.shape == (2, 5)
    np.testing.assert_allclose(got.face_frame_weights, expected.face_frame_weights, atol=ATOL)
    assert np.all(got.face_frame_weights[1, 1:] == 0)
    np.testing.assert_allclose(got.logits, expected.logits, atol=LOGITS_ATOL)
    assert got.frame_logits is None and expected.frame_logits is None  # no per-frame logits
    diffs = compare_with_torch(load_model(model).model, path, [(1, 2), (2, 3)], SIZE)
    assert diffs["face_frame_weights"] < ATOL, diffs


def test_float_frames_in_unit_range_give_the_uint8_results(dual):
    model, path = dual
    batch = _batch(3)
    as_float = dict(batch, frames=batch["frames"].astype(np.float32) / 255.0)
    runner = OnnxRunner(path)
    from_uint8, from_float = runner(batch), runner(as_float)
    np.testing.assert_allclose(from_float.logits, from_uint8.logits, atol=ATOL)
    np.testing.assert_allclose(from_float.frame_weights, from_uint8.frame_weights, atol=ATOL)
    # and as TorchRunner reads float frames
    np.testing.assert_allclose(from_float.logits, _torch(model)(as_float).logits, atol=LOGITS_ATOL)


def test_compare_with_torch_checks_the_new_outputs(dual):
    model, path = dual
    diffs = compare_with_torch(load_model(model).model, path, [(1, 2), (3, 4)], SIZE)
    assert "frame_logits" in diffs and diffs["frame_logits"] < ATOL, diffs


def test_files_exported_before_the_new_outputs_still_run(dual, tmp_path):
    """An export without ``frame_logits`` (as written before) gives None there, as before."""
    model, path = dual
    proto = onnx.load(str(path))
    kept = [o for o in proto.graph.output if o.name != "frame_logits"]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    runner = OnnxRunner(old)
    assert "frame_logits" not in runner.output_names
    batch = _batch(4)
    got, expected = runner(batch), _torch(model)(batch)
    assert got.frame_logits is None and got.face_frame_weights is None
    np.testing.assert_allclose(got.logits, expected.logits, atol=LOGITS_ATOL)


def test_people_answers_keep_their_frame_probabilities_under_onnx(tmp_path, monkeypatch):
    """``--people`` with ``runtime="onnx"``: per-frame probabilities as with torch (not null)."""
    import rdam
    from rdam.inference.people import analyze_people

    monkeypatch.setenv("RDAM_CACHE_DIR", str(tmp_path / "cache"))  # a fresh export
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    video = write_video(tmp_path / "faces.mp4", face_frames=set(range(20)))
    common = dict(face_detector=SquareFaceDetector(), evidence=None)
    got = analyze_people(rdam.load(model, runtime="onnx", **common), video).to_dict()
    expected = analyze_people(rdam.load(model, precision="fp32", **common), video).to_dict()
    assert got["people"] and len(got["people"]) == len(expected["people"])
    for g, e in zip(got["people"], expected["people"], strict=True):
        assert e["frame_probabilities"] is not None
        assert g["frame_probabilities"] is not None
        assert len(g["frame_probabilities"]) == len(e["frame_probabilities"])
        for pg, pe in zip(g["frame_probabilities"], e["frame_probabilities"], strict=True):
            assert (pg is None) == (pe is None)
            if pe is not None:
                assert pg == pytest.approx(pe, abs=ATOL)


def test_export_uses_the_models_input_channels(tmp_path):
    bundle = load_model(
        save_tiny_model(tmp_path / "gray.safetensors", in_chans=1, mean=(0.5,), std=(0.25,))
    )
    path = export_onnx(bundle, tmp_path / "gray.onnx")
    dims = [
        d.dim_param or d.dim_value
        for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims == ["batch", "frames", 1, SIZE, SIZE]
    diffs = compare_with_torch(bundle.model, path, [(1, 2), (2, 3)], SIZE)
    assert diffs["logits"] < LOGITS_ATOL and diffs["frame_logits"] < ATOL, diffs
