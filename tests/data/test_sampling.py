"""Segment sampling: exact values, random offsets inside their segments, seeds, multi-view."""

from __future__ import annotations

import numpy as np
import pytest

from rdam.data.sampling import MultiViewSampler, SegmentSampler, create_sampler, segment_times
from rdam.errors import ConfigError


def test_center_values_for_known_durations():
    np.testing.assert_allclose(SegmentSampler(4).sample(8.0), [1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(SegmentSampler(3, "center").sample(3.0), [0.5, 1.5, 2.5])
    np.testing.assert_allclose(SegmentSampler(1).sample(10.0), [5.0])


def test_random_offsets_stay_inside_their_segment():
    sampler = SegmentSampler(5, mode="random")
    rng = np.random.default_rng(123)
    for duration in (0.01, 1.0, 7.3, 100.0):
        for _ in range(50):
            ts = sampler.sample(duration, rng)
            assert ts.shape == (5,) and ts.dtype == np.float64
            segment = np.floor(ts / (duration / 5))
            np.testing.assert_array_equal(segment, np.arange(5))
            assert np.all(np.diff(ts) >= 0) and ts.min() >= 0 and ts.max() < duration


def test_random_offsets_cover_the_segment():
    ts = np.stack(
        [SegmentSampler(2, "random").sample(2.0, np.random.default_rng(s)) for s in range(400)]
    )
    # Each segment is [k, k + 1): the offsets are spread uniformly over it.
    offsets = ts - np.arange(2)
    assert offsets.min() < 0.05 and offsets.max() > 0.95
    assert abs(offsets.mean() - 0.5) < 0.05


def test_seed_determinism():
    sampler = SegmentSampler(8, "random")
    a = sampler.sample(12.0, np.random.default_rng(7))
    b = sampler.sample(12.0, np.random.default_rng(7))
    c = sampler.sample(12.0, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_multiview_offsets():
    views = MultiViewSampler(num_segments=3, num_views=2).sample(6.0)
    # Segments [0,2), [2,4), [4,6); view v at offset (v + 0.5) / 2 = 0.25, 0.75 of a segment.
    np.testing.assert_allclose(views, [[0.5, 2.5, 4.5], [1.5, 3.5, 5.5]])
    one = MultiViewSampler(4, 1).sample(8.0)
    np.testing.assert_allclose(one[0], SegmentSampler(4).sample(8.0))
    three = MultiViewSampler(2, 3).sample(3.0)
    np.testing.assert_allclose(three, [[0.25, 1.75], [0.75, 2.25], [1.25, 2.75]])


@pytest.mark.parametrize(
    "sampler", [SegmentSampler(4), SegmentSampler(4, "random"), MultiViewSampler(4, 3)]
)
def test_zero_duration_gives_zeros(sampler):
    ts = sampler.sample(0.0, np.random.default_rng(0))
    assert np.all(ts == 0.0)
    assert ts.shape[-1] == 4


def test_timestamps_stay_below_duration_despite_rounding():
    ts = segment_times(1e-300, 3, np.array([0.0, 0.5, 1.0 - 1e-17]))
    assert ts.max() < 1e-300


def test_create_sampler_and_errors():
    assert isinstance(create_sampler("segment", num_segments=3, mode="random"), SegmentSampler)
    views = create_sampler("multiview", num_segments=2, num_views=4)
    assert views.sample(1.0).shape == (4, 2)
    with pytest.raises(ConfigError, match="multiview, segment"):
        create_sampler("tsn", num_segments=3)
    with pytest.raises(ConfigError, match="bad arguments"):
        create_sampler("segment", frames=3)
    with pytest.raises(ConfigError, match="center, random"):
        SegmentSampler(3, mode="middle")
    with pytest.raises(ConfigError, match="num_segments"):
        SegmentSampler(0)
    with pytest.raises(ConfigError, match="duration"):
        SegmentSampler(2).sample(float("nan"))
    with pytest.raises(ConfigError, match="duration"):
        SegmentSampler(2).sample(-1.0)
