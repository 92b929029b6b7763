"""Face model resolution (precedence, download, checksum, offline), YuNet detection on real
faces, and crop geometry (margin, square, zero padding, selection, mask)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdam.data import faces
from rdam.data.faces import (
    FaceBox,
    FaceCrops,
    FaceDetector,
    crop_faces,
    download_face_model,
    resolve_face_model,
    square_crop_window,
)
from rdam.data.video import open_clip
from rdam.errors import ConfigError, FaceModelError

# -- resolve_face_model ---------------------------------------------------------------------


@pytest.fixture
def model_env(tmp_path, monkeypatch):
    """Isolated locations: no env var, an empty cache, no packaged copy, a fake 'remote' file
    served by file:// whose checksum is the pinned one."""
    monkeypatch.delenv(faces.FACE_MODEL_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(faces.CACHE_ENV, str(cache))
    package_root = tmp_path / "package"
    (package_root / "assets").mkdir(parents=True)
    monkeypatch.setattr(faces.resources, "files", lambda name: package_root)
    remote = tmp_path / "remote" / "model.onnx"
    remote.parent.mkdir()
    remote.write_bytes(b"pretend onnx bytes")
    monkeypatch.setattr(faces, "FACE_MODEL_URL", remote.as_uri())
    monkeypatch.setattr(faces, "FACE_MODEL_SHA256", hashlib.sha256(remote.read_bytes()).hexdigest())
    return {
        "tmp": tmp_path,
        "cache": cache / faces.FACE_MODEL_FILENAME,
        "packaged": package_root / "assets" / faces.FACE_MODEL_FILENAME,
        "remote": remote,
        "monkeypatch": monkeypatch,
    }


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_resolve_precedence(model_env):
    env = model_env
    mp = env["monkeypatch"]
    # Nothing anywhere: download into the cache.
    assert resolve_face_model() == env["cache"]
    assert env["cache"].read_bytes() == env["remote"].read_bytes()
    assert [p.name for p in env["cache"].parent.iterdir()] == [faces.FACE_MODEL_FILENAME]
    # Cache present (right checksum): used without downloading.
    env["remote"].unlink()
    assert resolve_face_model() == env["cache"]
    # Packaged copy beats the cache.
    _touch(env["packaged"])
    assert resolve_face_model() == env["packaged"]
    # The environment variable beats the packaged copy.
    from_env = _touch(env["tmp"] / "env.onnx")
    mp.setenv(faces.FACE_MODEL_ENV, str(from_env))
    assert resolve_face_model() == from_env
    # An explicit path beats everything.
    explicit = _touch(env["tmp"] / "explicit.onnx")
    assert resolve_face_model(explicit) == explicit
    assert resolve_face_model(str(explicit)) == explicit


def test_explicit_or_env_path_must_exist(model_env):
    with pytest.raises(FaceModelError, match="does not exist"):
        resolve_face_model(model_env["tmp"] / "nope.onnx")
    model_env["monkeypatch"].setenv(faces.FACE_MODEL_ENV, str(model_env["tmp"] / "gone.onnx"))
    with pytest.raises(FaceModelError, match="RDAM_FACE_MODEL"):
        resolve_face_model()


def test_offline_says_how_to_provide_the_file(model_env):
    model_env["remote"].unlink()  # the "network" is gone
    with pytest.raises(FaceModelError) as err:
        resolve_face_model()
    message = str(err.value)
    assert "--face-model PATH" in message and "RDAM_FACE_MODEL" in message
    assert "offline" in message
    assert not model_env["cache"].exists()
    assert list(model_env["cache"].parent.iterdir()) == []  # no partial file left behind
    with pytest.raises(FaceModelError, match="downloading is disabled.*--face-model"):
        resolve_face_model(download=False)


def test_checksum_mismatch_leaves_nothing_in_the_cache(model_env):
    model_env["remote"].write_bytes(b"tampered")
    with pytest.raises(FaceModelError, match="SHA-256"):
        resolve_face_model()
    assert list(model_env["cache"].parent.iterdir()) == []


def test_corrupt_cache_entry_is_fetched_again(model_env):
    _touch(model_env["cache"], b"half a file")
    assert resolve_face_model() == model_env["cache"]
    assert model_env["cache"].read_bytes() == model_env["remote"].read_bytes()


def test_download_through_a_patched_opener(tmp_path, monkeypatch):
    """The https path, with urlopen replaced: no network is touched."""
    payload = b"model from the opener"
    seen: list[str] = []

    class Response:
        def __init__(self) -> None:
            self.chunks = [payload[:5], payload[5:], b""]

        def read(self, n: int) -> bytes:
            return self.chunks.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout):
        seen.append(url)
        return Response()

    monkeypatch.setattr(faces.urllib.request, "urlopen", fake_urlopen)
    dest = download_face_model(
        tmp_path / "m.onnx", sha256=hashlib.sha256(payload).hexdigest(), timeout=1
    )
    assert dest.read_bytes() == payload
    assert seen == [faces.FACE_MODEL_URL]
    assert faces.FACE_MODEL_URL.startswith("https://github.com/opencv/opencv_zoo/raw/main/")


@pytest.mark.shared_data
def test_pinned_checksum_is_the_real_model(yunet_model):
    assert hashlib.sha256(yunet_model.read_bytes()).hexdigest() == faces.FACE_MODEL_SHA256


def test_unloadable_model_file(tmp_path):
    bad = _touch(tmp_path / "bad.onnx", b"not an onnx model")
    with pytest.raises(FaceModelError, match="cannot load"):
        FaceDetector(bad)


# -- crop geometry (a scripted detector) ----------------------------------------------------


class ScriptedDetector:
    """Returns preset boxes per call, in order."""

    def __init__(self, answers: list[list[FaceBox]]) -> None:
        self.answers = list(answers)

    def detect(self, frame_rgb: np.ndarray) -> list[FaceBox]:
        return self.answers.pop(0)


def _numbered_frame(height: int = 80, width: int = 100) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx, yy, (xx + yy) % 256], axis=-1).astype(np.uint8)


def test_crop_window_margin_and_square():
    box = FaceBox(40, 30, 20, 10, 0.9)
    assert square_crop_window(box, 0.5) == (30, 15, 40)  # 20 * (1 + 2 * 0.5), centred (50, 35)
    assert square_crop_window(box, 0.0) == (40, 25, 20)


def test_crop_faces_exact_pixels_padding_and_mask():
    frame = _numbered_frame()
    frames = np.stack([frame, frame, frame])
    detector = ScriptedDetector(
        [
            [FaceBox(40, 30, 20, 10, 0.9)],  # inside the frame
            [],  # no face
            [FaceBox(85, -5, 20, 20, 0.8)],  # sticks out right and top
        ]
    )
    out = crop_faces(frames, detector, size=40, margin=0.5)
    assert isinstance(out, FaceCrops)
    assert out.crops.shape == (3, 40, 40, 3) and out.crops.dtype == np.uint8
    assert out.mask.tolist() == [True, False, True]
    np.testing.assert_array_equal(out.crops[0], frame[15:55, 30:70])
    assert (out.crops[1] == 0).all()
    assert np.isnan(out.boxes[1]).all()
    np.testing.assert_allclose(out.boxes[0], [40, 30, 20, 10, 0.9], rtol=1e-6)
    # Third: window x0=75, y0=-15, side 40; frame columns 75..99 and rows 0..24 are inside.
    crop = out.crops[2]
    np.testing.assert_array_equal(crop[15:, :25], frame[0:25, 75:100])
    assert (crop[:15] == 0).all() and (crop[:, 25:] == 0).all()


def test_crop_faces_resizes_and_selects():
    frame = _numbered_frame()
    small_sure = FaceBox(10, 10, 10, 10, 0.99)
    big_unsure = FaceBox(50, 20, 30, 40, 0.7)
    largest = crop_faces(frame[None], ScriptedDetector([[small_sure, big_unsure]]), size=16)
    np.testing.assert_allclose(largest.boxes[0, :4], [50, 20, 30, 40])
    by_score = crop_faces(
        frame[None], ScriptedDetector([[small_sure, big_unsure]]), size=16, select="score"
    )
    np.testing.assert_allclose(by_score.boxes[0, :4], [10, 10, 10, 10])
    # 40 px side * 1.4 = 56 px window, area-resized to 16: the mean colour is kept.
    x0, y0, side = square_crop_window(big_unsure, 0.2)
    window = frame[max(y0, 0) : y0 + side, x0 : min(x0 + side, 100)]
    assert largest.crops.shape == (1, 16, 16, 3)
    assert abs(float(largest.crops[0, 4:12, 4:12, 0].mean()) - float(window[..., 0].mean())) < 8


def test_crop_faces_argument_errors():
    frame = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ConfigError, match="largest, score"):
        crop_faces(frame, ScriptedDetector([[]]), select="first")
    with pytest.raises(ConfigError, match="size"):
        crop_faces(frame, ScriptedDetector([[]]), size=0)
    with pytest.raises(ConfigError, match="uint8"):
        crop_faces(frame.astype(np.float32), ScriptedDetector([[]]))


# -- YuNet on real faces --------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(yunet_model) -> FaceDetector:
    return FaceDetector(yunet_model)


@pytest.mark.shared_data
def test_yunet_finds_faces_in_fer2013(detector, fer2013_dir):
    paths = sorted((fer2013_dir / "val" / "happy").glob("*.jpg"))[:10]
    found = 0
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        rgb = cv2.resize(np.repeat(gray[..., None], 3, axis=2), (200, 200), cv2.INTER_CUBIC)
        boxes = detector.detect(rgb)
        if boxes:
            found += 1
            best = boxes[0]
            assert best.score >= 0.6
            # A FER2013 image is a face filling the frame.
            assert 60 < best.w < 260 and 60 < best.h < 260
            cx, cy = best.x + best.w / 2, best.y + best.h / 2
            assert 50 < cx < 150 and 50 < cy < 150
            assert best.landmarks.shape == (5, 2)
            # Eyes above the mouth corners.
            assert best.landmarks[:2, 1].mean() < best.landmarks[3:, 1].mean()
    assert found >= 8


@pytest.mark.shared_data
def test_yunet_crops_faces_in_ekman6_joy(detector, ekman6_dir):
    with open_clip(ekman6_dir / "joy.mp4") as reader:
        frames = reader.read(np.linspace(0.5, 7.5, 4), max_side=320).frames
    blank = np.zeros((1, *frames.shape[1:]), np.uint8)
    out = crop_faces(np.concatenate([frames, blank]), detector, size=64)
    assert out.mask.tolist() == [True, True, True, True, False]
    assert (out.crops[4] == 0).all() and np.isnan(out.boxes[4]).all()
    assert np.all(out.boxes[:4, 4] >= 0.6)
    assert out.crops[:4].std() > 20  # image content, not padding
    # The largest face is chosen: at least as large as any other detection in the frame.
    for frame, box in zip(frames, out.boxes[:4], strict=True):
        assert box[2] * box[3] >= max(b.area for b in detector.detect(frame)) - 1e-3


@pytest.mark.shared_data
def test_detector_pickles_for_workers(detector, fer2013_dir):
    clone = pickle.loads(pickle.dumps(detector))
    assert clone.model_path == detector.model_path
    path = sorted((fer2013_dir / "val" / "happy").glob("*.jpg"))[0]
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (200, 200))
    a, b = detector.detect(rgb), clone.detect(rgb)
    assert len(a) == len(b) >= 1
    assert a[0].x == pytest.approx(b[0].x) and a[0].score == pytest.approx(b[0].score)


@pytest.mark.shared_data
def test_blank_frame_has_no_face(yunet_model):
    out = crop_faces(np.zeros((2, 120, 160, 3), np.uint8), FaceDetector(yunet_model))
    assert out.mask.tolist() == [False, False]
    assert (out.crops == 0).all() and out.crops.shape == (2, 112, 112, 3)


def test_read_and_detect_equals_reading_then_detecting(ekman6_dir: Path, yunet_model: Path):
    """The overlapped decoding and face search (rdam.data.face_search) gives the frames, the
    times and the detections of decoding everything first, in the caller's order."""
    from rdam.data.face_search import read_and_detect

    detector = FaceDetector(yunet_model, score_threshold=0.6)
    times = np.array([5.0, 0.2, 3.1, 7.7, 0.2, 1.4, 6.0])  # unsorted, with a duplicate
    with open_clip(ekman6_dir / "joy.mp4") as reader:
        plain = reader.read(times, max_side=320)

    def boxes(found):
        return [[(b.x, b.y, b.w, b.h, b.score) for b in frame] for frame in found]

    expected = boxes(detector.detect(f) for f in plain.frames)
    for chunk in (3, 0):  # pieces of 3 frames; one piece
        with open_clip(ekman6_dir / "joy.mp4") as reader:
            decoded, faces = read_and_detect(reader, times, 320, detector, chunk=chunk)
        np.testing.assert_array_equal(decoded.frames, plain.frames)
        np.testing.assert_array_equal(decoded.timestamps, plain.timestamps)
        assert boxes(faces) == expected and sum(map(len, expected)) >= len(times)
