"""Prediction on videos: rdam.load, Predictor, the predict CLI and sliding-window streams."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _inference_fixtures import (
    CLASS_NAMES,
    SquareFaceDetector,
    save_tiny_model,
    serve_folder,
    video_frames,
    write_video,
)
from PIL import Image

import rdam
import rdam.inference as inference
from rdam import checkpoint
from rdam.checkpoint import load_model, sha256_file
from rdam.cli import main
from rdam.data.faces import FaceBox
from rdam.data.frames import fit_frames
from rdam.data.sampling import SegmentSampler
from rdam.data.video import open_clip
from rdam.errors import CheckpointError, ConfigError
from rdam.inference import NoFaceError, Prediction, expand_inputs, format_predictions
from rdam.runtime import softmax
from rdam.stream import predict_stream
from rdam.threads import set_cpu_threads


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inference")
    files = {
        "model": save_tiny_model(root / "tiny.safetensors"),
        "video": write_video(root / "clip.mp4", num_frames=20),
        "short": write_video(root / "short.mp4", num_frames=2),
        "faces": write_video(root / "faces.mp4", num_frames=20, face_frames={2, 3, 7, 12, 13}),
        "corrupt": root / "corrupt.mp4",
        "empty": root / "empty.mp4",
    }
    files["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    files["empty"].write_bytes(b"")
    return files


@pytest.fixture(scope="module")
def predictor(media: dict[str, Path]) -> inference.Predictor:
    # fp32: these tests check the pipeline against the model run by hand to 1e-6; the default
    # (bf16 on CPUs with AVX512-BF16) is checked against fp32 in test_precision_options_agree.
    return rdam.load(media["model"], precision="fp32")


def reference_logits(model_path: Path, video: Path, k: int = 4, size: int = 32) -> torch.Tensor:
    """The pipeline written out by hand: centre timestamps, decode, squash, model."""
    bundle = load_model(model_path)
    with open_clip(video) as reader:
        info = reader.info
        times = SegmentSampler(min(k, info.num_frames), "center").sample(info.duration)
        frames = reader.read(times).frames
    clip = torch.from_numpy(fit_frames(frames, size, "squash")).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        return bundle.model(clip).logits[0]


# -- the default model ----------------------------------------------------------------------------


def test_default_model_absent_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(checkpoint, "ASSETS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="default model is not part of this installation"):
        checkpoint.default_model_path()
    with pytest.raises(CheckpointError, match="--checkpoint"):
        rdam.load()


def test_default_model_is_loaded_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, media: dict[str, Path]
):
    monkeypatch.setattr(checkpoint, "ASSETS_DIR", tmp_path)
    asset = tmp_path / checkpoint.DEFAULT_MODEL_FILENAME
    asset.write_bytes(media["model"].read_bytes())
    sidecar = tmp_path / (asset.name + ".sha256")
    sidecar.write_text(f"{sha256_file(asset)}  {asset.name}\n")
    assert rdam.load().predict_video(media["video"]).label in CLASS_NAMES
    sidecar.write_text("0" * 64 + "\n")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        rdam.load()
    sidecar.unlink()
    with pytest.raises(CheckpointError, match="checksum file"):
        rdam.load()


def test_grayscale_colour_gives_grey_frames():
    from rdam.data.clips import make_clip
    from rdam.data.spec import ClipSpec

    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    rgb[1, ..., 2] = 100
    out = make_clip(rgb, np.zeros(2), ClipSpec(num_frames=2, frame_size=8, color="gray")).frames
    assert out.shape == (2, 8, 8, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[0, 0, 0, 0] == round(0.299 * 200)
    assert out[1, 0, 0, 0] == round(0.299 * 200 + 0.114 * 100)
    same = make_clip(rgb, np.zeros(2), ClipSpec(num_frames=2, frame_size=8)).frames
    assert (same == rgb).all()


# -- one clip ---------------------------------------------------------------------------------------


def test_predict_video_matches_the_pipeline_by_hand(predictor, media):
    pred = predictor.predict_video(media["video"])
    assert pred.ok and pred.error is None
    expected = softmax(reference_logits(media["model"], media["video"]).numpy()[None])[0]
    got = np.array([pred.probabilities[c] for c in CLASS_NAMES])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert list(pred.probabilities) == CLASS_NAMES
    assert pred.label == CLASS_NAMES[int(np.argmax(expected))]
    assert pred.score == pytest.approx(float(expected.max()))
    # 20 frames at 10 fps, K = 4: segment centres 0.25, 0.75, ... show frames 2, 7, 12, 17.
    np.testing.assert_allclose(pred.timestamps, [0.2, 0.7, 1.2, 1.7])
    assert len(pred.frame_weights) == 4 and all(0 < a < 1 for a in pred.frame_weights)
    assert pred.face_found is None and pred.face_boxes is None
    assert set(pred.timing) == {"decode", "faces", "model", "total"}
    assert pred.timing["total"] == pytest.approx(
        pred.timing["decode"] + pred.timing["faces"] + pred.timing["model"]
    )


def test_mirror_averages_the_clip_and_its_mirror_image(media):
    mirrored = rdam.load(media["model"], precision="fp32", mirror=True)
    assert mirrored.describe()["mirror"] is True
    pred = mirrored.predict_video(media["video"])
    bundle = load_model(media["model"])
    with open_clip(media["video"]) as reader:
        info = reader.info
        frames = reader.read(SegmentSampler(4, "center").sample(info.duration)).frames
    clip = torch.from_numpy(fit_frames(frames, 32, "squash")).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        a, b = bundle.model(clip), bundle.model(clip.flip(-1))
    expected = (a.logits.softmax(-1) + b.logits.softmax(-1))[0].numpy() / 2
    got = np.array([pred.probabilities[c] for c in CLASS_NAMES])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-6)
    weights = (a.frame_weights + b.frame_weights)[0].numpy() / 2
    np.testing.assert_allclose(pred.frame_weights, weights, atol=1e-6)
    # the mirrored pass's location maps are flipped back onto the frame before averaging
    maps = (a.location_maps + b.location_maps.flip(-1))[0].numpy() / 2
    analysis = mirrored.analyze(media["video"])
    np.testing.assert_allclose(analysis.location_maps, maps, atol=1e-6)
    # and it is not the unmirrored prediction
    plain = rdam.load(media["model"], precision="fp32").predict_video(media["video"])
    assert plain.probabilities != pred.probabilities


def test_keyframes_option_predicts_on_the_nearest_keyframes(media):
    fast = rdam.load(media["model"], precision="fp32", keyframes=True)
    pred = fast.predict_video(media["video"])
    # a keyframe every 5 frames at 10 fps; centre times 0.25, 0.75 ... tie to the earlier one
    np.testing.assert_allclose(pred.timestamps, [0.0, 0.5, 1.0, 1.5])
    with open_clip(media["video"]) as reader:
        frames = reader.read(pred.timestamps).frames
    clip = torch.from_numpy(fit_frames(frames, 32, "squash")).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        expected = softmax(load_model(media["model"]).model(clip).logits.numpy())[0]
    got = np.array([pred.probabilities[c] for c in CLASS_NAMES])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_one_keyframe_with_a_face_is_one_frame_of_evidence(tmp_path: Path):
    """``--keyframes``: three of four sampled times fall on the one keyframe that shows a face
    (frames 18-22 of 40; keyframes at 0 and 2 s): one frame of evidence, refused under the
    default rules (a clear face in 1 of 2 distinct frames, 2 needed), as the exact frames are
    (no face in any), instead of three frames that passed them."""
    video = write_video(tmp_path / "kf.mp4", num_frames=40, face_frames=set(range(18, 23)),
                        keyint=20)  # fmt: skip
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces", num_frames=4)
    for keyframes, reason in ((None, "no face found in any"), (True, "1 of 2 distinct frames")):
        predictor = rdam.load(model, face_detector=SquareFaceDetector(), precision="fp32",
                              keyframes=keyframes)  # fmt: skip
        (pred,) = predictor.predict_many([video])
        assert pred.label is None and reason in pred.error, (keyframes, pred.error)
    assert "(4 sampled times)" in pred.error


def test_num_frames_override_and_short_clips(media):
    pred = rdam.load(media["model"], num_frames=6).predict_video(media["video"])
    assert len(pred.timestamps) == len(pred.frame_weights) == 6
    short = rdam.load(media["model"]).predict_video(media["short"])
    assert len(short.timestamps) == 2  # K = min(4, frames in the clip)
    with pytest.raises(ConfigError, match="num_frames"):
        rdam.load(media["model"], num_frames=0)


def test_images_and_image_sequences(predictor, tmp_path: Path):
    from PIL import Image

    frames = video_frames(5)
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(seq / f"frame_{i + 1}.png")
    single = tmp_path / "one.png"
    Image.fromarray(frames[0]).save(single)
    preds = predictor.predict_many([seq, single], sequences=True)
    assert [p.ok for p in preds] == [True, True]
    assert len(preds[0].timestamps) == 4 and len(preds[1].timestamps) == 1
    # without sequences=True a folder of images is N independent images: N results
    each = predictor.predict_many([seq])
    assert [p.path for p in each] == [str(seq / f"frame_{i + 1}.png") for i in range(5)]
    assert all(len(p.timestamps) == 1 for p in each)
    # A one-frame clip has alpha on its single frame and the prediction of that frame.
    bundle = load_model(predictor.source)
    clip = torch.from_numpy(fit_frames(frames[:1], 32)).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        expected = softmax(bundle.model(clip).logits.numpy())[0]
    np.testing.assert_allclose(list(preds[1].probabilities.values()), expected, atol=1e-6)


def test_expand_inputs(tmp_path: Path, media):
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    (videos / "b.mp4").write_bytes(media["video"].read_bytes())
    (videos / "a.mkv").write_bytes(b"x")
    (videos / "notes.txt").write_text("ignored")
    (videos / "sub" / "c.mp4").write_bytes(b"x")
    images = tmp_path / "frames"
    images.mkdir()
    (images / "1.png").write_bytes(b"x")
    (images / "2.jpg").write_bytes(b"x")
    # every image of a folder is a clip of its own ...
    assert expand_inputs([videos, images, tmp_path / "missing.mp4"]) == [
        str(videos / "a.mkv"),
        str(videos / "b.mp4"),
        str(videos / "sub" / "c.mp4"),
        str(images / "1.png"),
        str(images / "2.jpg"),
        str(tmp_path / "missing.mp4"),
    ]
    # ... unless image folders are asked for as sequences
    assert expand_inputs([images], sequences=True) == [str(images)]
    assert expand_inputs([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else []) == [
        str(tmp_path / "empty")
    ]


# -- many clips -------------------------------------------------------------------------------------


def test_bad_files_are_reported_and_the_rest_processed(predictor, media, tmp_path):
    paths = [
        media["video"],
        media["corrupt"],
        tmp_path / "missing.mp4",
        media["empty"],
        media["short"],
    ]
    preds = predictor.predict_many(paths, batch_size=2)
    assert [p.path for p in preds] == [str(p) for p in paths]
    assert [p.error_type for p in preds] == [
        None,
        "CorruptVideoError",
        "VideoNotFoundError",
        "EmptyVideoError",
        None,
    ]
    for p in preds[1:4]:
        assert p.label is None and p.probabilities == {} and p.error
    assert "no such file" in preds[2].error
    # Batching (and padding the 2-frame clip to 4) changes nothing.
    for batched, path in ((preds[0], media["video"]), (preds[4], media["short"])):
        alone = predictor.predict_video(path)
        np.testing.assert_allclose(
            list(batched.probabilities.values()), list(alone.probabilities.values()), atol=1e-5
        )
        np.testing.assert_allclose(batched.frame_weights, alone.frame_weights, atol=1e-5)


def test_batch_size_validated(predictor, media):
    with pytest.raises(ConfigError, match="batch_size"):
        predictor.predict_many([media["video"]], batch_size=0)


def test_auto_precision_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    from rdam.runtime import TorchRunner, precision

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    runner = TorchRunner(torch.nn.Linear(2, 2), cpu)
    assert (runner.precision, runner.channels_last) == ("bf16", True)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "fp32"
    runner = TorchRunner(torch.nn.Linear(2, 2), cpu)
    assert (runner.precision, runner.channels_last) == ("fp32", False)
    assert precision.resolve_precision("fp32", cpu) == "fp32"


def test_precision_options_agree(media):
    fp32 = rdam.load(media["model"], precision="fp32").predict_video(media["video"])
    nhwc = rdam.load(media["model"], precision="fp32", channels_last=True).predict_video(
        media["video"]
    )
    bf16 = rdam.load(media["model"], precision="bf16").predict_video(media["video"])
    p32 = np.array(list(fp32.probabilities.values()))
    np.testing.assert_allclose(list(nhwc.probabilities.values()), p32, atol=1e-5)
    np.testing.assert_allclose(list(bf16.probabilities.values()), p32, atol=5e-2)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        rdam.load(media["model"], precision="fp16")
    with pytest.raises(ConfigError, match="unknown runtime"):
        rdam.load(media["model"], runtime="tensorrt")


# -- faces ------------------------------------------------------------------------------------------


def test_face_stream_masks_frames_without_a_face(tmp_path, media):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    detector = SquareFaceDetector()
    predictor = rdam.load(model, face_detector=detector)
    pred = predictor.predict_video(media["faces"])
    # Sampled frames 2, 7, 12, 17; the white square is in 2, 7 and 12.
    assert pred.face_found == [True, True, True, False]
    assert pred.frame_weights[3] == 0.0 and all(a > 0 for a in pred.frame_weights[:3])
    assert pred.face_boxes[3] is None
    x, y, w, h, score = pred.face_boxes[0]
    assert (x, y, w, h) == (4 + 2 * 4, 8, 24, 24) and score == pytest.approx(0.9)
    assert detector.calls == 4
    # The same result with the faceless frame dropped altogether: masking is exact.
    assert pred.label in CLASS_NAMES


def test_several_faces_in_a_frame_are_counted_and_said(tmp_path, media, caplog):
    """Plain predict takes each frame's largest face: with several people on screen those
    may be different people, so the answer says how many faces each frame had, and warns."""

    class TwoFaces(SquareFaceDetector):
        def detect(self, frame_rgb):
            found = super().detect(frame_rgb)
            return [*found, FaceBox(x=0.0, y=0.0, w=6.0, h=6.0, score=0.8)] if found else []

    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    one = rdam.load(model, face_detector=SquareFaceDetector()).predict_video(media["faces"])
    assert one.faces_per_frame == [1, 1, 1, 0]
    with caplog.at_level("WARNING", logger="rdam.inference.predictor"):
        two = rdam.load(model, face_detector=TwoFaces()).predict_video(media["faces"])
    assert two.faces_per_frame == [2, 2, 2, 0]
    assert two.face_boxes[0][:4] == one.face_boxes[0][:4]  # the largest face, as before
    assert "up to 2 faces in a sampled frame" in caplog.text and "--people" in caplog.text
    assert two.to_dict()["faces_per_frame"] == [2, 2, 2, 0]


def test_face_boxes_are_in_source_pixels(tmp_path):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    video = write_video(
        tmp_path / "big.mp4", num_frames=10, width=128, height=96, face_frames=set(range(10))
    )
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), max_side=64, num_frames=1)
    pred = predictor.predict_video(video)
    assert pred.ok, pred.error
    # Frame 5 has the 24 px square at (4, 8) of the 128x96 source; it is found on the 64x48
    # decode as a 12 px square at (2, 4) and reported back in source pixels.
    np.testing.assert_allclose(pred.face_boxes[0][:4], [4, 8, 24, 24], atol=2.0)


def test_stream_face_boxes_are_in_source_pixels_too(tmp_path):
    """--stream downscales frames to the spec's max_side as they arrive: its boxes are
    reported in the source's pixels, as a file's are (and face sizes measured there)."""
    from rdam.stream import predict_stream

    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    video = write_video(
        tmp_path / "big.mp4", num_frames=10, width=128, height=96, face_frames=set(range(10))
    )
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), max_side=64, num_frames=1)
    (window,) = list(predict_stream(predictor, str(video), window=1, sample_fps=None,
                                    max_windows=1))  # fmt: skip
    pred = window.prediction
    assert pred.ok, pred.error
    np.testing.assert_allclose(pred.face_boxes[0][:4], [4, 8, 24, 24], atol=2.0)


def test_no_face_anywhere_gives_no_label(tmp_path, media):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    predictor = rdam.load(model, face_detector=SquareFaceDetector())
    pred, ok = predictor.predict_many([media["video"], media["faces"]])
    assert pred.error_type == "NoFaceError" and pred.label is None
    assert "no face found in any of the" in pred.error and "more frames" in pred.error
    assert ok.ok
    with pytest.raises(NoFaceError):
        predictor.prepare(media["video"])
    # a photo without a face may be a face crop the detector missed: the way out is named
    photo = tmp_path / "crop.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(photo)  # > 2 x 32: detected
    with pytest.raises(NoFaceError, match="no face found in the image.*--faces given"):
        predictor.prepare(photo)


def test_two_stream_model(tmp_path, media):
    model = save_tiny_model(tmp_path / "two.safetensors", arch="two_stream")
    predictor = rdam.load(model, face_detector=SquareFaceDetector())
    assert predictor.two_stream and predictor.uses_faces
    pred = predictor.predict_video(media["faces"])
    assert pred.ok and len(pred.face_frame_weights) == 4
    assert pred.face_frame_weights[3] == 0.0 and pred.frame_weights[3] > 0


# -- output formats and the CLI ----------------------------------------------------------------------


def test_format_predictions():
    ok = Prediction("a.mp4", "joy", {"anger": 0.2, "joy": 0.8}, [0.5, 0.25], [0.1, 0.6])
    ok.timing = {"decode": 0.1, "faces": 0.0, "model": 0.2, "total": 0.3}
    ok.faces_per_frame = [2, 1]
    bad = Prediction("b.mp4", error="broken", error_type="CorruptVideoError")
    data = json.loads(format_predictions([ok, bad], "json"))
    assert data[0]["label"] == "joy" and data[0]["score"] == 0.8
    assert data[1]["error_type"] == "CorruptVideoError" and data[1]["label"] is None
    rows = list(csv.DictReader(io.StringIO(format_predictions([ok, bad], "csv"))))
    assert rows[0]["p_joy"] == "0.800000" and rows[0]["frame_weights"] == "0.500000;0.250000"
    assert rows[0]["total_s"] == "0.300000" and rows[0]["faces_per_frame"] == "2;1"
    assert rows[1]["error"] == "broken" and rows[1]["p_joy"] == ""
    with pytest.raises(ConfigError):
        format_predictions([ok], "xml")


def test_cli_predict_json_and_exit_codes(tmp_path, media, capsys):
    out = tmp_path / "out.json"
    args = ["predict", str(media["video"]), str(media["corrupt"]), "--checkpoint"]
    # one of two inputs failed -> 1, the results of both written, the last stderr line counts
    assert main([*args, str(media["model"]), "--output", str(out), "--batch-size", "2"]) == 1
    data = json.loads(out.read_text())
    assert [d["error_type"] for d in data] == [None, "CorruptVideoError"]
    assert set(data[0]["probabilities"]) == set(CLASS_NAMES)
    assert len(data[0]["frame_weights"]) == len(data[0]["timestamps"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert "corrupt.mp4" in err[-2]
    assert err[-1] == "rdam predict: 1 of 2 inputs failed: 1 CorruptVideoError"
    # every input failed -> 1; CSV on stdout
    code = main(["predict", str(media["corrupt"]), "--checkpoint", str(media["model"])])
    assert code == 1
    capsys.readouterr()
    assert main(["predict", str(media["video"]), "--checkpoint", str(media["model"]),
                 "--format", "csv", "--num-frames", "3"]) == 0  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and len(rows[0]["timestamps"].split(";")) == 3


def test_cli_threads_option_sets_torch_and_opencv_threads(media, capsys):
    import cv2

    before = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        args = ["predict", str(media["video"]), "--checkpoint", str(media["model"])]
        assert main([*args, "--threads", "1"]) == 0
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
        assert json.loads(capsys.readouterr().out)[0]["error"] is None
        with pytest.raises(ConfigError, match="threads must be >= 1"):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_cli_predict_without_a_default_model(monkeypatch, tmp_path, media, capsys):
    monkeypatch.setattr(checkpoint, "ASSETS_DIR", tmp_path)
    assert main(["predict", str(media["video"])]) == 2
    assert "default model is not part of this installation" in capsys.readouterr().err


# -- streams ----------------------------------------------------------------------------------------


def test_stream_windows_over_a_file(predictor, media):
    windows = list(predict_stream(predictor, str(media["video"]), window=3, stride=2,
                                  sample_fps=5.0))  # fmt: skip
    # 20 frames at 10 fps sampled at 5 fps keep frames 0, 2, ..., 18 (10 frames);
    # windows of 3 every 2 kept frames end at kept frames 2, 4, 6, 8 (indices 2..9), and the
    # end of the input flushes the last kept frame's window (ending at kept frame 9).
    assert [w.index for w in windows] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([w.start for w in windows], [0.0, 0.4, 0.8, 1.2, 1.4])
    np.testing.assert_allclose(windows[-1].prediction.timestamps, [1.4, 1.6, 1.8])
    np.testing.assert_allclose(windows[0].prediction.timestamps, [0.0, 0.2, 0.4])
    # A window's prediction is the model on exactly those frames.
    frames = fit_frames(video_frames(20)[[4, 6, 8]], 32)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        expected = softmax(load_model(predictor.source).model(clip).logits.numpy())[0]
    np.testing.assert_allclose(
        list(windows[1].prediction.probabilities.values()), expected, atol=1e-5
    )
    line = windows[0].to_dict()
    assert line["window"] == 0 and line["source"] == str(media["video"])
    assert line["label"] in CLASS_NAMES and line["latency_s"] >= 0


def test_stream_max_windows_and_errors(predictor, media, tmp_path):
    # Default 2 frames per second: a 2 s clip keeps frames at 0, 0.5, 1, 1.5 s, one window.
    assert [w.prediction.timestamps for w in predict_stream(predictor, str(media["video"]))] == [
        [0.0, 0.5, 1.0, 1.5]
    ]
    every = predict_stream(predictor, str(media["video"]), sample_fps=None, max_windows=2)
    assert len(list(every)) == 2
    # URLs go through PyAV like rtsp:// streams do; a file: URL needs no network.
    url = predict_stream(predictor, media["video"].resolve().as_uri(), max_windows=1)
    assert next(url).prediction.timestamps == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(rdam.errors.VideoNotFoundError):
        list(predict_stream(predictor, str(tmp_path / "none.mp4")))
    with pytest.raises(ConfigError):
        list(predict_stream(predictor, str(media["video"]), sample_fps=0))


@pytest.fixture
def http_server(media):
    """The media folder over HTTP on 127.0.0.1 (a real socket, PyAV's http protocol)."""
    with serve_folder(media["video"].parent) as url:
        yield url


def _remux_to_mpegts(src: Path, dst: Path) -> Path:
    """The same H.264 packets in MPEG-TS, a format made to be read front to back (a plain
    MP4 with its index at the end needs a server that answers byte-range requests)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def test_stream_over_http_gives_the_windows_of_the_file(predictor, media, http_server):
    ts = _remux_to_mpegts(media["video"], media["video"].parent / "clip.ts")
    from_file = list(predict_stream(predictor, str(ts), window=3, stride=2))
    url = f"{http_server}/{ts.name}"
    from_url = list(predict_stream(predictor, url, window=3, stride=2))
    assert len(from_url) == len(from_file) > 0
    for a, b in zip(from_url, from_file, strict=True):
        assert a.prediction.path == url
        assert a.prediction.timestamps == b.prediction.timestamps
        np.testing.assert_allclose(
            list(a.prediction.probabilities.values()),
            list(b.prediction.probabilities.values()),
            atol=1e-6,
        )
    with pytest.raises(rdam.errors.CorruptVideoError, match="cannot open the stream"):
        list(predict_stream(predictor, f"{http_server}/missing.mp4"))


class _FakeCapture:
    """cv2.VideoCapture stand-in: BGR frames of :func:`video_frames`, then every read fails
    (the webcam unplugged)."""

    released = False

    def __init__(self, index: int) -> None:
        self.index = index
        self.frames = [f[..., ::-1].copy() for f in video_frames(6)]  # OpenCV gives BGR

    def isOpened(self) -> bool:  # OpenCV's name
        return self.index == 0

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self) -> None:
        _FakeCapture.released = True


def test_webcam_frames_are_converted_to_rgb_and_released(predictor, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    windows = list(
        predict_stream(predictor, "0", window=3, stride=3, sample_fps=None, max_windows=2)
    )
    assert [w.index for w in windows] == [0, 1] and _FakeCapture.released
    frames = fit_frames(video_frames(6)[3:6], 32)  # the second window, as RGB
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        expected = softmax(load_model(predictor.source).model(clip).logits.numpy())[0]
    np.testing.assert_allclose(
        list(windows[1].prediction.probabilities.values()), expected, atol=1e-5
    )
    assert windows[1].prediction.path == "0"
    with pytest.raises(rdam.errors.VideoError, match="cannot open the webcam"):
        list(predict_stream(predictor, "1"))


def test_a_webcam_that_stops_giving_frames_is_a_broken_off_stream(
    predictor, media, monkeypatch, capsys
):
    """A webcam has no end: reads that fail after it opened (unplugged, busy) are a
    CorruptVideoError naming it, after the windows it gave; the CLI exits 1 with the summary."""
    import cv2

    import rdam.stream.sources as sources

    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    monkeypatch.setattr(sources, "WEBCAM_RETRY_S", 0.0, raising=False)
    _FakeCapture.released = False
    windows = []
    with pytest.raises(rdam.errors.CorruptVideoError) as info:
        for w in predict_stream(predictor, "0", window=3, stride=3, sample_fps=None):
            windows.append(w)
    assert [w.index for w in windows] == [0, 1] and _FakeCapture.released
    assert info.value.path == "webcam 0"
    assert info.value.reason.startswith("the webcam stopped giving frames after 6 frames")
    code = main(["predict", "--stream", "0", "--checkpoint", str(media["model"]),
                 "--num-frames", "3", "--stride", "3", "--sample-fps", "0"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1  # the windows it gave are written, then the failure
    assert [json.loads(line)["window"] for line in out.splitlines()] == [0, 1]
    assert "rdam predict: webcam 0: CorruptVideoError: the webcam stopped" in err
    assert err.strip().splitlines()[-1] == "rdam predict: 1 of 1 inputs failed: 1 CorruptVideoError"


def test_a_webcam_read_that_fails_now_and_then_is_not_an_end(predictor, monkeypatch):
    import cv2

    import rdam.stream.sources as sources

    class Flaky(_FakeCapture):
        def __init__(self, index: int) -> None:
            super().__init__(index)
            self.reads = 0

        def read(self):
            self.reads += 1
            if self.reads in (2, 4, 5):  # never WEBCAM_READ_ATTEMPTS in a row
                return False, None
            return super().read()

    monkeypatch.setattr(cv2, "VideoCapture", Flaky)
    monkeypatch.setattr(sources, "WEBCAM_RETRY_S", 0.0, raising=False)
    got = []
    with pytest.raises(rdam.errors.CorruptVideoError, match="after 6 frames"):
        for _, frame in sources.stream_frames("0"):
            got.append(frame)
    np.testing.assert_array_equal(np.stack(got), video_frames(6))


def test_stream_window_refused_by_the_evidence_rules_keeps_the_reason_and_faces(tmp_path, media):
    """A window whose faces are too little evidence (2 clear faces of 3 frames, 3 needed) is a
    NoFaceError with the rules' reason, and reports the faces that were found."""
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    predictor = rdam.load(model, face_detector=SquareFaceDetector())  # default evidence rules
    windows = list(predict_stream(predictor, str(media["faces"]), window=3, stride=1,
                                  sample_fps=None))  # fmt: skip
    by_end = {round(w.end * 10): w.prediction for w in windows}
    refused = by_end[3]  # frames 1, 2, 3: faces in 2 and 3
    assert refused.error_type == "NoFaceError" and refused.label is None
    assert refused.error.startswith("no face with evidence enough: a clear face in 2 of 3")
    assert "at least 3 needed" in refused.error
    assert refused.face_found == [False, True, True]
    assert refused.face_boxes[0] is None
    for i, box in zip((2, 3), refused.face_boxes[1:], strict=True):  # the squares, 0.9
        x0 = 4 + (i % 5) * 4
        assert box == pytest.approx([x0, 8, 24, 24, 0.9])
    nothing = by_end[6]  # frames 4, 5, 6: no face at all
    assert nothing.face_found == [False, False, False] and nothing.face_boxes == [None] * 3
    assert nothing.error.startswith("no face found in any of the 3 sampled frames")


def test_stream_face_window_without_face(tmp_path, media):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    # masking frames without a face, not the evidence rules, is what this test is about
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), evidence=None)
    windows = list(predict_stream(predictor, str(media["faces"]), window=2, stride=1,
                                  sample_fps=None))  # fmt: skip
    by_end = {round(w.end * 10): w.prediction for w in windows}
    assert by_end[3].face_found == [True, True] and by_end[3].ok  # frames 2, 3
    assert by_end[5].error_type == "NoFaceError" and by_end[5].label is None  # frames 4, 5
    assert by_end[8].face_found == [True, False] and by_end[8].frame_weights[1] == 0.0


def test_stream_window_grows_from_the_first_answer_then_slides(predictor, media):
    from rdam.stream import first_window_frames

    # the first answer after about 2 s of kept frames: 4 at 2 fps, never more than K
    assert first_window_frames(16, 2.0) == 4 and first_window_frames(16, 5.0) == 10
    assert first_window_frames(3, 5.0) == 3 and first_window_frames(16, None) == 16
    # 20 frames at 10 fps, every frame kept: windows of up to 5 frames every 2, the first at 2
    windows = list(predict_stream(predictor, str(media["video"]), window=5, stride=2,
                                  sample_fps=None, first_window=2))  # fmt: skip
    sizes = [len(w.prediction.timestamps) for w in windows]
    assert sizes == [2, 4, 5, 5, 5, 5, 5, 5, 5, 5]  # grows to K, then slides
    assert windows[0].end == pytest.approx(0.1)  # answered at the 2nd frame
    assert windows[-1].end == pytest.approx(1.9)  # and to the end: 2 + 2 * 9 = 20 frames
    # a last partial stride is flushed when the input ends (windows end at frames 2, 6, ...
    # 18, then 20)
    flushed = list(predict_stream(predictor, str(media["video"]), window=5, stride=4,
                                  sample_fps=None, first_window=2))  # fmt: skip
    assert [round(w.end, 1) for w in flushed][-2:] == [1.7, 1.9]
    with pytest.raises(ConfigError):
        list(predict_stream(predictor, str(media["video"]), window=3, first_window=4))


def test_cli_stream_prints_json_lines(media, capsys):
    code = main(["predict", "--stream", str(media["video"]), "--checkpoint", str(media["model"]),
                 "--num-frames", "2", "--stride", "3", "--sample-fps", "0"])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 7  # 20 frames, windows of 2 every 3 frames: ends 1, 4, ..., 19
    assert [line["window"] for line in lines] == list(range(7))


# -- real videos ------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_predict_real_ekman6_videos(ekman6_dir: Path, tmp_path: Path, media):
    videos = sorted(ekman6_dir.glob("*.mp4"))
    assert len(videos) >= 7
    out = tmp_path / "real.json"
    code = main(["predict", str(ekman6_dir), "--checkpoint", str(media["model"]),
                 "--output", str(out), "--batch-size", "4"])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert sorted(d["path"] for d in data) == sorted(str(v) for v in videos)
    for d in data:
        assert d["error"] is None, d
        assert abs(sum(d["probabilities"].values()) - 1.0) < 1e-6
        assert len(d["timestamps"]) == 4 and d["timestamps"] == sorted(d["timestamps"])
        assert d["timestamps"][-1] > 5.0  # the samples span the whole 7-40 s video


def _cut(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a video, its packets copied (PyAV remux, no re-encoding)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        source = inp.streams.video[0]
        stream = out.add_stream_from_template(source)
        for packet in inp.demux(source):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * source.time_base >= seconds:
                break
            packet.stream = stream
            out.mux(packet)
    return dst


@pytest.mark.shared_data
def test_stream_of_a_7_s_real_video_answers_within_2_s_and_to_the_end(ekman6_dir, tmp_path,
                                                                      capsys):  # fmt: skip
    from rdam.stream import first_window_frames

    clip = _cut(ekman6_dir / "joy.mp4", tmp_path / "joy_7s.mp4", 7.0)
    with open_clip(clip) as reader:
        assert 6.5 < reader.info.duration <= 7.1
    # the shipped face model (K = 16) at the default 2 kept frames per second
    assert main(["predict", "--stream", str(clip)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 1  # the old full-window-only stream gave none (7 s < 16 / 2 fps)
    first = lines[0]
    assert len(first["timestamps"]) == first_window_frames(16, 2.0) == 4  # bound in frames
    assert first["end"] <= 2.0  # within 2 s of video
    assert [len(line["timestamps"]) for line in lines] == [4, 12, 14]  # grows, then flushed
    assert lines[-1]["end"] >= 6.0  # the end of the input is answered
    for line in lines:  # a label, or no face: never a label without a face
        assert (line["label"] is not None) == (line["error_type"] is None)
        if line["label"] is None:
            assert line["error_type"] == "NoFaceError" and not any(line["face_found"])
        else:
            assert any(line["face_found"])


@pytest.mark.shared_data
def test_face_stream_with_yunet_on_a_real_video(ekman6_dir: Path, yunet_model: Path, tmp_path):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces", frame_size=48)
    video = sorted(ekman6_dir.glob("*.mp4"))[0]
    try:
        pred = rdam.load(model, face_model=yunet_model, num_frames=3).predict_video(video)
    except NoFaceError:  # a faceless clip is reported, not labelled
        return
    with open_clip(video) as reader:
        width, height = reader.info.width, reader.info.height
    assert len(pred.face_found) == 3 and any(pred.face_found)
    for found, box, alpha in zip(pred.face_found, pred.face_boxes, pred.frame_weights, strict=True):
        assert (box is not None) == found and (alpha > 0) == found
        if box is not None:  # inside the source frame, in source pixels
            x, y, w, h, score = box
            assert -w < x < width and -h < y < height and 0 < score <= 1


def test_the_cli_offers_exactly_the_runtime_precisions():
    """The CLI keeps its own copy of the precision names so `rdam --help` needs no torch."""
    from rdam.cli import PRECISION_CHOICES
    from rdam.runtime import PRECISIONS

    assert PRECISION_CHOICES == PRECISIONS


def test_the_cli_offers_exactly_the_test_crops_and_report_groupings():
    """The same for the test crops and the report's row groupings."""
    from rdam.cli.common import CROP_CHOICES, REPORT_GROUPINGS
    from rdam.data.transforms import TEST_CROPS
    from rdam.evaluation.report import GROUPINGS

    assert CROP_CHOICES == TEST_CROPS and REPORT_GROUPINGS == GROUPINGS
