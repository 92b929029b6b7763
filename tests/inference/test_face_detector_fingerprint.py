"""The face detector is part of :attr:`Predictor.fingerprint` (the ``answered_by`` of batch
outputs): a resumed ``rdam predict --format jsonl`` run with another ``--face-model`` (or
another custom ``face_detector``) never takes the earlier run's answers for its own, while the
default setup (shipped YuNet) keeps the fingerprint it had before the detector was part of it,
so that existing outputs stay valid."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from _inference_fixtures import SquareFaceDetector, save_tiny_model, write_video

import rdam
from rdam.checkpoint import sha256_file
from rdam.cli import main
from rdam.data.faces import FACE_MODEL_ENV, FACE_MODEL_SHA256, FaceDetector, resolve_face_model
from rdam.errors import ConfigError
from rdam.inference.batch import predict_jsonl

# The shipped model of this sha256 answers as SHIPPED_FINGERPRINT, as it would have before the
# face detector joined the fingerprint: the outputs its users write must stay resumable. (The
# file of 857cdebf…, the same weights before its header recorded frame_weights_learned, answered
# as cd3d13d9816071ec; 8ef0c5b7…, before its faces were framed at 0.01 instead of 0.15, as
# 76b5de238298477d: its answers on videos differ, so they are not resumed by this one.)
SHIPPED_MODEL_SHA256 = "5cf41b8257c3cf33bb86014b0877959360c7d6153aee1a2663437868dca3247f"
SHIPPED_FINGERPRINT = "470865365f714cff"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fingerprint")
    yunet = resolve_face_model()
    other = root / "other_yunet.onnx"  # another face model file (never loaded: refused first)
    other.write_bytes(yunet.read_bytes() + b"\0")
    copy = root / "copy" / yunet.name  # the shipped YuNet, given by path from elsewhere
    copy.parent.mkdir()
    shutil.copy(yunet, copy)
    return {
        "faces": save_tiny_model(root / "faces.safetensors", stream="faces"),
        "frames": save_tiny_model(root / "frames.safetensors", stream="frames"),
        "video": write_video(root / "clip.mp4", num_frames=8, face_frames={1, 2, 5}),
        "other": other,
        "copy": copy,
    }


def _legacy_fingerprint(predictor: rdam.Predictor) -> str:
    """The fingerprint as it was computed before the face detector was part of it."""
    payload = {
        "model": predictor.model_sha256 or sha256_file(Path(predictor.source)),
        "class_names": predictor.class_names,
        "clip_spec": predictor.spec.to_dict(),
        "face_input": predictor.face_input,
        "mirror": predictor.mirror,
        "crops": predictor.crops,
        "evidence": None if predictor.evidence is None else dataclasses.asdict(predictor.evidence),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_default_face_detector_keeps_the_fingerprint_it_had(media, monkeypatch):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    assert resolve_face_model().is_file() and sha256_file(resolve_face_model()) == FACE_MODEL_SHA256
    for model in (media["faces"], media["frames"]):
        default = rdam.load(model)
        assert default.fingerprint == _legacy_fingerprint(default)
        # the shipped YuNet given by path, or built by hand with the default settings, is the
        # default detector
        assert rdam.load(model, face_model=media["copy"]).fingerprint == default.fingerprint
        yunet = FaceDetector(media["copy"], default.spec.face_score)
        assert rdam.load(model, face_detector=yunet).fingerprint == default.fingerprint
        given = rdam.load(model, face_input="given")
        assert given.fingerprint == _legacy_fingerprint(given)


def test_the_shipped_models_fingerprint_is_unchanged(monkeypatch):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    shipped = rdam.load()
    if shipped.model_sha256 != SHIPPED_MODEL_SHA256:
        pytest.skip(f"another shipped model ({shipped.model_sha256}): its fingerprint is its own")
    assert shipped.fingerprint == SHIPPED_FINGERPRINT == _legacy_fingerprint(shipped)


def test_another_face_model_file_changes_the_fingerprint(media, monkeypatch):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    default = rdam.load(media["faces"]).fingerprint
    other = rdam.load(media["faces"], face_model=media["other"]).fingerprint
    assert other != default
    monkeypatch.setenv(FACE_MODEL_ENV, str(media["other"]))  # $RDAM_FACE_MODEL is the same
    assert rdam.load(media["faces"]).fingerprint == other
    monkeypatch.delenv(FACE_MODEL_ENV)
    # other YuNet thresholds than the default detector's
    strict = FaceDetector(media["copy"], score_threshold=0.95)
    assert rdam.load(media["faces"], face_detector=strict).fingerprint not in (default, other)
    # no face is searched: the detector makes no answer and is left out
    for unused in (
        rdam.load(media["frames"], face_model=media["other"]),
        rdam.load(media["faces"], face_model=media["other"], face_input="given"),
    ):
        assert unused.fingerprint == _legacy_fingerprint(unused)


def test_a_resumed_batch_with_another_face_model_is_refused(media, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(media["video"]), "--checkpoint", str(media["faces"]), "--format",
            "jsonl", "-o", str(out), "--no-progress"]  # fmt: skip
    first_code = main(argv)  # the synthetic squares are no faces for YuNet: NoFaceError (1)
    first = out.read_bytes()
    assert len(first.splitlines()) == 1
    capsys.readouterr()
    # the same (shipped) YuNet given by path: the same answers, resumed
    assert main([*argv, "--face-model", str(media["copy"])]) == first_code
    assert "1 of 1 inputs already answered" in capsys.readouterr().err
    assert out.read_bytes() == first
    # another face model: the earlier answers are not this run's
    assert main([*argv, "--face-model", str(media["other"])]) == 2
    err = capsys.readouterr().err
    assert "answers of another model or other settings are in this file" in err
    assert out.read_bytes() == first


class NamedSquares(SquareFaceDetector):
    """A custom detector that names what makes its boxes."""

    def __init__(self, version: str) -> None:
        super().__init__()
        self.fingerprint = f"white squares {version}"


def test_custom_detectors_are_told_apart(media, tmp_path):
    default = rdam.load(media["faces"]).fingerprint
    v1 = rdam.load(media["faces"], face_detector=NamedSquares("v1")).fingerprint
    assert v1 == rdam.load(media["faces"], face_detector=NamedSquares("v1")).fingerprint
    v2 = rdam.load(media["faces"], face_detector=NamedSquares("v2")).fingerprint
    assert len({default, v1, v2}) == 3
    # without a name of its own, a detector's predictor has a fingerprint of its own: its
    # output is resumed by that predictor only, never taken for another predictor's answers
    unnamed = rdam.load(media["faces"], face_detector=SquareFaceDetector())
    again = rdam.load(media["faces"], face_detector=SquareFaceDetector())
    assert unnamed.fingerprint == unnamed.fingerprint
    assert len({default, v1, v2, unnamed.fingerprint, again.fingerprint}) == 5
    out = tmp_path / "out.jsonl"
    predict_jsonl(unnamed, [media["video"]], out, progress=False)
    assert predict_jsonl(unnamed, [media["video"]], out, progress=False).skipped == 1
    with pytest.raises(ConfigError, match="answers of another model or other settings"):
        predict_jsonl(again, [media["video"]], out, progress=False)
