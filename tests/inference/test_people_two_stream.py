"""Per-person analysis with a two-stream model (whole frames + face crops): each person's
weights are their own face stream's, 0 where they have no face (tiny model, synthetic video)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from _inference_fixtures import SquareFaceDetector, mux_frames, save_tiny_model

import rdam
from rdam.inference.people import analyze_people


def _one_person(path: Path, without_face: range, num_frames: int = 40) -> Path:
    """A 96 x 64 lossless video at 10 fps with one still white 24-px square (the face the
    SquareFaceDetector finds), gone in the frames ``without_face``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "rgb24"
        stream.time_base = Fraction(1, 10)
        stream.options = {"crf": "0", "preset": "ultrafast", "x264-params": "keyint=5"}
        frames = np.zeros((num_frames, 64, 96, 3), np.uint8)
        frames[..., 0] = (60 + np.arange(96)) % 200
        frames[..., 1:] = (90, 120)
        for i in set(range(num_frames)) - set(without_face):
            frames[i, 10:34, 10 + i % 3 : 34 + i % 3] = 255
        mux_frames(out, stream, frames)
    return path


def test_a_two_stream_persons_weights_are_their_face_streams(tmp_path: Path) -> None:
    """The face is gone from frames 12-17 of 40, so the second of the four sampled frames
    (t = 1.5 s) has none. The person's alpha is the face stream's α (0 there, as the docs say
    and as plain predict's face_frame_weights), not the whole-frame stream's, which weighs the
    scene's frames (it gave the faceless frame the largest weight); no per-frame logits."""
    model = save_tiny_model(tmp_path / "two.safetensors", arch="two_stream", num_frames=4)
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), precision="fp32")
    video = _one_person(tmp_path / "v.mp4", without_face=range(12, 18))
    (person,) = analyze_people(predictor, video).people
    plain = predictor.predict_video(video)
    assert person.timestamps == pytest.approx(plain.timestamps)
    assert plain.face_found == [True, False, True, True]
    assert person.alpha == pytest.approx(plain.face_frame_weights, abs=1e-6)
    assert person.alpha[1] == 0.0 and min(person.alpha[i] for i in (0, 2, 3)) > 0
    assert plain.frame_weights[1] > 0  # the whole-frame stream weighs that frame all the same
    np.testing.assert_allclose(person.frame_weights, np.array(person.alpha) / sum(person.alpha))
    assert person.frame_probabilities is None
    assert person.coverage == {"frames_with_face": 3, "frames": 4}
