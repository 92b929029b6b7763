"""Fitting decoded frames to a square, and picking stored frames of a clip."""

from __future__ import annotations

import numpy as np
import pytest

from rdam.data.frames import fit_frames, segment_indices
from rdam.errors import ConfigError


def test_fit_squash_keeps_uniform_colours_and_shape():
    frames = np.zeros((2, 30, 60, 3), np.uint8)
    frames[0] = (10, 20, 30)
    frames[1] = (200, 100, 0)
    out = fit_frames(frames, 16, "squash")
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    assert (out[0] == (10, 20, 30)).all() and (out[1] == (200, 100, 0)).all()


def test_fit_crop_takes_the_centre_and_pad_letterboxes():
    frame = np.zeros((1, 20, 60, 3), np.uint8)
    frame[0, :, 20:40] = 255  # white centre third
    crop = fit_frames(frame, 20, "crop")
    assert (crop == 255).all()  # centre 20x20 of the 20x60 frame is all white
    pad = fit_frames(frame, 30, "pad")
    # 60 wide -> 30 wide, 20 high -> 10 high, centred vertically: rows 10..19
    assert (pad[0, :10] == 0).all() and (pad[0, 20:] == 0).all()
    assert pad[0, 10:20, 12:18].min() > 200


def test_fit_grayscale_is_expanded_and_bad_mode_rejected():
    gray = np.full((1, 8, 8), 77, np.uint8)
    out = fit_frames(gray, 8)
    assert out.shape == (1, 8, 8, 3) and (out == 77).all()
    with pytest.raises(ConfigError, match="squash"):
        fit_frames(gray, 8, "stretch")


def test_segment_indices():
    assert segment_indices(8, 4, None).tolist() == [0, 2, 4, 6]
    assert segment_indices(3, 8, None).tolist() == [0, 1, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = segment_indices(10, 3, rng)
        assert len(set(idx.tolist())) == 3 and idx.tolist() == sorted(idx.tolist())
        assert idx[0] < 3 <= idx[1] < 6 <= idx[2] < 10


def test_segment_indices_views_tile_each_segment():
    # 8 frames in 4 segments of 2: view 0 of 2 takes the first frame of each, view 1 the second
    assert segment_indices(8, 4, None, (0, 2)).tolist() == [0, 2, 4, 6]
    assert segment_indices(8, 4, None, (1, 2)).tolist() == [1, 3, 5, 7]
    # segments of 3 and 3 views: offsets 0, 1, 2
    assert [segment_indices(6, 2, None, (v, 3)).tolist() for v in range(3)] == [
        [0, 3],
        [1, 4],
        [2, 5],
    ]
    # one view is the centre sampler
    assert segment_indices(9, 3, None, (0, 1)).tolist() == segment_indices(9, 3, None).tolist()


def test_gray_equalized_is_the_luma_with_each_frames_histogram_equalized():
    import cv2

    from rdam.data.frames import to_color

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 200, (3, 16, 16, 3)).astype(np.uint8)
    grey = to_color(frames, "gray")[..., 0]
    out = to_color(frames, "gray_equalized")
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert (out == out[..., :1]).all()  # replicated to three channels, as gray is
    for k in range(3):
        np.testing.assert_array_equal(out[k, ..., 0], cv2.equalizeHist(grey[k]))
    # a global brightness change (no clipping) leaves the model's input exactly as it was
    np.testing.assert_array_equal(to_color(frames + np.uint8(40), "gray_equalized"), out)
    # and the levels span the whole range, as FER2013's faces do
    assert out[..., 0].min() < 20 and out[..., 0].max() == 255


def test_gray_equalized_is_a_clip_spec_color():
    from rdam.data.spec import ClipSpec

    assert ClipSpec(color="gray_equalized").color == "gray_equalized"
