"""One definition of a clip: the arrays that reach the model are the same through every path.

A real Ekman-6 video and a real FER2013 face go, under the shipped model's clip spec, through
the training data set (eval mode), the preprocessing cache, ``evaluate``, ``predict``,
``serve`` and (the video) ``stream``; a recording runner keeps what each path hands the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdam
from rdam.checkpoint import load_bundle
from rdam.data.cache import ClipCache, PreprocessSettings
from rdam.data.clips import make_clip
from rdam.data.datasets import ClipDataset
from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.preprocess import preprocess
from rdam.runtime import TorchRunner

pytestmark = pytest.mark.shared_data


class RecordingRunner(TorchRunner):
    """A :class:`TorchRunner` that keeps every batch it is given, as numpy ``(B, K, S, S, 3)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, np.ndarray]] = []

    def __call__(self, inputs, relations=False):
        self.seen.append(
            {
                "frames": np.asarray(inputs["frames"]).transpose(0, 1, 3, 4, 2).copy(),
                "mask": np.asarray(inputs["mask"]).astype(bool),
            }
        )
        return super().__call__(inputs, relations)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(None)


@pytest.fixture(scope="module", params=["video", "image"])
def clip_file(request, shared_data: Path) -> Path:
    if request.param == "video":
        return shared_data / "ekman6_samples" / "joy.mp4"
    return sorted((shared_data / "fer2013" / "val" / "happy").glob("*.jpg"))[0]


def _first(runner: RecordingRunner) -> tuple[np.ndarray, np.ndarray]:
    batch = runner.seen[0]
    k = int(batch["mask"][0].size)
    return batch["frames"][0, :k], batch["mask"][0, :k]


def test_every_path_gives_the_model_the_same_arrays(bundle, clip_file: Path, tmp_path: Path):
    spec = bundle.spec
    manifest = Manifest([ClipRecord(str(clip_file), 3, "val")], list(bundle.class_names))

    # the training data set in eval mode (on the fly)
    item = ClipDataset(manifest, spec, mode="center")[0]
    reference = item["frames"].permute(0, 2, 3, 1).numpy()
    mask = item["mask"].numpy()
    assert reference.shape[1:] == (spec.frame_size, spec.frame_size, 3)
    assert mask.any()
    if clip_file.suffix == ".mp4":
        assert reference.shape[0] == spec.num_frames  # 16 face crops of the video
    else:
        assert reference.shape[0] == 1 and mask.all()  # the FER face is taken as the crop

    # the preprocessing cache made under the model's spec, read by the data set
    settings = PreprocessSettings(spec=spec)
    report = preprocess(manifest, settings, tmp_path / "cache", progress=False)
    assert report.ok, report.failed
    cached = ClipDataset(
        manifest, spec, mode="center", cache=ClipCache(tmp_path / "cache", settings)
    )
    assert cached._cache_keys[0] is not None
    np.testing.assert_array_equal(cached[0]["frames"].permute(0, 2, 3, 1).numpy(), reference)
    np.testing.assert_array_equal(cached[0]["mask"].numpy(), mask)

    # predict (the Python API and so the CLI)
    predictor = rdam.load(precision="fp32")
    predictor.runner = RecordingRunner(bundle.model, precision="fp32")
    prediction = predictor.predict_video(clip_file)
    assert prediction.ok, prediction.error
    frames, seen_mask = _first(predictor.runner)
    np.testing.assert_array_equal(frames, reference)
    np.testing.assert_array_equal(seen_mask, mask)


def test_evaluate_gives_the_model_the_arrays_of_predict(bundle, clip_file, monkeypatch, tmp_path):
    import rdam.runtime

    runners: list[RecordingRunner] = []

    def recording(*args, **kwargs):
        runners.append(RecordingRunner(*args, **kwargs))
        return runners[-1]

    monkeypatch.setattr(rdam.runtime, "TorchRunner", recording)
    data = tmp_path / "data" / "happy"
    data.mkdir(parents=True)
    (data / clip_file.name).symlink_to(clip_file)
    from rdam.evaluation.evaluate import evaluate

    report = evaluate(None, tmp_path / "data", precision="fp32", class_map=None)
    assert report["num_samples"] == 1 and report["split"] == "all"
    predictor = rdam.load(precision="fp32")
    predictor.runner = RecordingRunner(bundle.model, precision="fp32")
    predictor.predict_video(clip_file)
    np.testing.assert_array_equal(_first(runners[0])[0], _first(predictor.runner)[0])
    np.testing.assert_array_equal(_first(runners[0])[1], _first(predictor.runner)[1])


def test_serve_gives_the_model_the_arrays_of_predict(bundle, clip_file: Path):
    from fastapi.testclient import TestClient

    from rdam.serve import create_app

    predictor = rdam.load(precision="fp32")
    predictor.runner = RecordingRunner(bundle.model, precision="fp32")
    direct = rdam.load(precision="fp32")
    direct.runner = RecordingRunner(bundle.model, precision="fp32")
    direct.predict_video(clip_file)
    with TestClient(create_app(predictor)) as client:
        r = client.post("/predict", files={"file": (clip_file.name, clip_file.read_bytes())})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(_first(predictor.runner)[0], _first(direct.runner)[0])


def test_a_stream_window_is_made_as_a_read_at_its_times(bundle, shared_data: Path):
    """A live stream's frames arrive decoded; each window is the clip ``read_clip`` would make
    of the file at the window's times (same decoder conversion, same fitting and crops)."""
    from rdam.data.video import VideoReader
    from rdam.stream import predict_stream

    video = shared_data / "ekman6_samples" / "joy.mp4"
    predictor = rdam.load(precision="fp32")
    predictor.runner = RecordingRunner(bundle.model, precision="fp32")
    window = next(predict_stream(predictor, str(video), window=4, stride=4, max_windows=1))
    frames, mask = _first(predictor.runner)
    times = np.asarray(window.prediction.timestamps)
    with VideoReader(video) as reader:
        decoded = reader.read(times, max_side=bundle.spec.max_side)
    np.testing.assert_allclose(decoded.timestamps, times)
    expected = make_clip(decoded.frames, times, bundle.spec, detector=predictor.detector)
    np.testing.assert_array_equal(frames, expected.frames)
    np.testing.assert_array_equal(mask, expected.mask)


def test_predict_ten_crop_equals_the_ten_crop_test_of_eval(fer2013_dir: Path):
    """``rdam predict --crops 5 --mirror`` on FER2013 faces gives the probabilities of
    ``rdam eval --crops 5 --flip`` (the data set's ten views) to float rounding; the
    explanation maps are those of the whole face."""
    from torch.utils.data import DataLoader

    from rdam.data.datasets import collate_clips
    from rdam.evaluation.metrics import predict_loader

    faces = [sorted((fer2013_dir / "val" / c).glob("*.jpg"))[0] for c in ("happy", "sad", "fear")]
    predictor = rdam.load(precision="fp32", crops=5, mirror=True)
    predicted = [predictor.analyze(f, relations=False) for f in faces]
    bundle = load_bundle(None)
    records = [ClipRecord(str(f), 0, "val") for f in faces]
    dataset = ClipDataset(
        Manifest(records, list(bundle.class_names)),
        bundle.spec,
        "center",
        test_crops=5,
        test_flip=True,
    )
    loader = DataLoader(dataset, batch_size=10, collate_fn=collate_clips)
    probs = predict_loader(TorchRunner(bundle.model, precision="fp32"), loader).probabilities
    for row, analysis in enumerate(predicted):
        got = [analysis.prediction.probabilities[c] for c in bundle.class_names]
        np.testing.assert_allclose(got, probs[row], atol=1e-5)
    whole = rdam.load(precision="fp32", mirror=True).analyze(faces[0], relations=False)
    np.testing.assert_allclose(predicted[0].location_maps, whole.location_maps, atol=1e-6)
    assert predictor.describe()["crops"] == 5
