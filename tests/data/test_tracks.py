"""Face tracks on real footage: two real people side by side and one after the other, a video
with no person, one person alone (the crops ``make_clip`` makes), and the linking rules on
boxes made up for the purpose.

The composed videos are the ``two_people`` fixture of ``tests/conftest.py``: 3 s of two real
Ekman-6 samples (joy.mp4: one woman for its first 3.5 s; fear.mp4: one face throughout), each
resized to 320 x 240, at 10 fps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdam.data.clips import Clip, read_clip
from rdam.data.face_search import detect_tracks
from rdam.data.faces import FaceDetector
from rdam.data.person_clips import EvidenceRules, PersonClip, evidence_reason, read_person_clips
from rdam.data.sampling import SegmentSampler
from rdam.data.spec import ClipSpec
from rdam.data.tracks import (
    Track,
    TrackerConfig,
    box_iou,
    frames_match,
    gated_assignment,
    link_detections,
)
from rdam.errors import ConfigError

SECONDS = 3.0  # conftest.TWO_PEOPLE_SECONDS
# the shipped model's spec (K = 16 grey 48-px faces)
SPEC = ClipSpec(num_frames=16, frame_size=48, stream="faces", face_margin=0.01, color="gray")


@pytest.fixture(scope="module")
def detector(yunet_model: Path) -> FaceDetector:
    return FaceDetector(yunet_model, score_threshold=0.6)


@pytest.fixture(scope="module")
def composed(two_people: dict[str, Path]) -> dict[str, Path]:
    return two_people


# ---- real footage


def _half(track: Track) -> int:
    """0 when every box of the track lies in the left half of a side-by-side frame, 1 when in
    the right half, -1 when the track crosses the middle (an identity swap)."""
    left = track.boxes[:, 0]
    right = track.boxes[:, 0] + track.boxes[:, 2]
    if (right <= 320 + 5).all():
        return 0
    if (left >= 320 - 5).all():
        return 1
    return -1


def _main_tracks(tracks: list[Track], seconds: float) -> list[Track]:
    """The tracks on screen most of ``seconds`` (joy.mp4 also shows a man in the background,
    found now and then: a real, short, small track of his own)."""
    return [t for t in tracks if t.duration >= 0.8 * seconds]


def test_two_people_side_by_side_are_two_tracks_that_never_swap(composed, detector):
    result = read_person_clips(composed["side_by_side"], SPEC, detector)
    tracks = result.tracks.tracks
    described = [t.to_dict() for t in tracks]
    # no track ever crosses from one person's half to the other's
    assert all(_half(t) >= 0 for t in tracks), described
    main = _main_tracks(tracks, SECONDS)
    assert len(main) == 2, described
    assert sorted(_half(t) for t in main) == [0, 1], described
    for track in main:
        assert track.start == pytest.approx(0.0, abs=0.2)
        assert track.end == pytest.approx(SECONDS, abs=0.2)
        assert track.num_detections >= 0.9 * len(result.tracks.times)
    # each main person's crops come from their own half, and are evidence enough
    for person in result.people:
        if person.track in main:
            assert person.evidence is None
            assert person.coverage[0] >= 14
            found = person.boxes[person.detected]
            centres = found[:, 0] + found[:, 2] / 2
            half = _half(person.track)
            assert ((centres > 320 * half) & (centres < 320 * (half + 1))).all()
    assert result.reason() is None


def test_each_person_gets_the_crops_of_their_video_alone(composed, detector):
    """Side by side, each person's crops are those of their half played alone (the same
    sampling times, the same face), up to the detector's box on a wider frame."""
    result = read_person_clips(composed["side_by_side"], SPEC, detector)
    main = _main_tracks(result.tracks.tracks, SECONDS)
    people = sorted((p for p in result.people if p.track in main), key=lambda p: _half(p.track))
    for person, name, dx in zip(people, ("joy", "fear"), (0, 320)):
        alone = read_clip(composed[name], SPEC, detector=detector)
        np.testing.assert_allclose(person.clip.timestamps, alone.timestamps, atol=1e-6)
        both = person.clip.mask & alone.mask
        assert both.sum() >= 14
        shifted = person.clip.boxes[both, :4] - np.array([dx, 0, 0, 0])
        iou = np.diag(box_iou(shifted, alone.boxes[both, :4]))
        assert iou.min() > 0.8, iou
        diff = np.abs(
            person.clip.frames[both].astype(np.int16) - alone.frames[both].astype(np.int16)
        )
        assert diff.mean() < 12, diff.mean()


def test_two_people_one_after_the_other_are_two_tracks_split_at_the_cut(composed, detector):
    found = detect_tracks(composed["one_after_the_other"], detector, spec=SPEC)
    assert found.cuts and min(abs(c - SECONDS) for c in found.cuts) < 0.3, found.cuts
    described = [t.to_dict() for t in found.tracks]
    # no track runs across the cut
    for track in found.tracks:
        assert track.end <= SECONDS + 0.3 or track.start >= SECONDS - 0.3, described
    main = _main_tracks(found.tracks, SECONDS)
    assert len(main) == 2, described
    first, second = main
    assert first.start == pytest.approx(0.0, abs=0.2)
    assert first.end == pytest.approx(SECONDS, abs=0.3)
    assert second.start == pytest.approx(SECONDS, abs=0.3)
    assert second.end == pytest.approx(2 * SECONDS, abs=0.2)
    # each track's K times lie inside its own span
    for track in found.tracks:
        times = track.sample_times(SPEC.num_frames)
        assert (times >= track.start).all() and (times < track.end).all()


def test_a_video_without_a_person_gives_no_answer_with_a_reason(ekman6_dir, detector):
    """disgust.mp4 shows a lizard; YuNet fires on it now and then (0.61-0.83)."""
    result = read_person_clips(ekman6_dir / "disgust.mp4", SPEC, detector)
    assert result.answerable == []
    reason = result.reason()
    assert reason, reason
    assert any(word in reason for word in ("no face", "clear face", "no face track")), reason
    for person in result.people:
        assert person.evidence and "sampled frames" in person.evidence


def test_one_person_alone_gets_exactly_the_crops_of_make_clip(ekman6_dir, detector):
    """fear.mp4: one face for all 10 s; its track spans the video, so its K times and crops
    are those of read_clip (the single-face answer) to the pixel."""
    result = read_person_clips(ekman6_dir / "fear.mp4", SPEC, detector)
    assert len(result.people) == 1
    person = result.people[0]
    alone = read_clip(ekman6_dir / "fear.mp4", SPEC, detector=detector)
    np.testing.assert_array_equal(person.clip.timestamps, alone.timestamps)
    np.testing.assert_array_equal(person.clip.mask, alone.mask)
    np.testing.assert_array_equal(person.clip.frames, alone.frames)
    np.testing.assert_array_equal(person.clip.boxes, alone.boxes)
    assert person.evidence is None and person.coverage == (16, 16)


def test_a_frames_model_has_no_person_clips(ekman6_dir, detector):
    with pytest.raises(ConfigError, match="face crops"):
        read_person_clips(ekman6_dir / "fear.mp4", ClipSpec(), detector)


# ---- the rules, on boxes made up for the purpose


def _times(n: int, step: float = 0.25) -> np.ndarray:
    return (np.arange(n) + 0.5) * step


def test_crossing_faces_keep_their_ids_when_one_is_missed():
    """A moves right, B stands still a face and a half to the right; B is missed in frame 3:
    A's track must not take B's detection, nor B's A's."""
    n = 8
    dets = []
    for j in range(n):
        a = [10 + 8 * j, 50, 40, 40, 0.9]
        b = [170, 50, 40, 40, 0.9]
        dets.append(np.array([a] if j == 3 else [a, b], np.float32))
    tracks = link_detections(_times(n), dets, duration=2.0)
    assert len(tracks) == 2
    a, b = tracks
    assert np.all(np.diff(a.boxes[:, 0]) > 0)  # A only moves right
    assert np.all(b.boxes[:, 0] == 170)
    assert b.num_detections == n - 1
    assert b.box_at(0.875) is not None  # the missed frame is interpolated


def test_a_gap_longer_than_max_gap_ends_the_track_and_short_tracks_are_dropped():
    box = np.array([[100, 100, 50, 50, 0.9]], np.float32)
    none = np.zeros((0, 5), np.float32)
    dets = [box] * 3 + [none] * 5 + [box] * 2 + [none] * 5 + [box]
    cfg = TrackerConfig(max_gap=1.0, min_detections=2)
    tracks = link_detections(_times(len(dets)), dets, cfg, duration=4.0)
    assert [t.num_detections for t in tracks] == [3, 2]  # the last single detection is dropped
    assert tracks[0].end == pytest.approx(0.75)
    assert tracks[1].start == pytest.approx(2.0)
    # within the gap of 1.25 s (> max_gap) there is no box
    assert tracks[0].box_at(1.2) is None


def test_a_cut_ends_every_track():
    box = np.array([[100, 100, 50, 50, 0.9]], np.float32)
    tracks = link_detections(_times(6), [box] * 6, duration=1.5, cuts=[_times(6)[3]])
    assert len(tracks) == 2
    assert tracks[0].end == pytest.approx(tracks[1].start)


def test_sample_times_are_segment_centres_of_the_span():
    track = Track(
        id=0,
        times=np.array([2.125, 4.875]),
        boxes=np.zeros((2, 4), np.float32),
        scores=np.ones(2, np.float32),
        start=2.0,
        end=5.0,
    )
    np.testing.assert_allclose(track.sample_times(4), 2.0 + SegmentSampler(4).sample(3.0))
    np.testing.assert_allclose(track.sample_times(4), [2.375, 3.125, 3.875, 4.625])


def test_evidence_rules_count_clear_faces_only():
    k = 8
    boxes = np.full((k, 5), np.nan, np.float32)
    boxes[:3] = (0, 0, 40, 40, 0.9)
    boxes[3] = (0, 0, 40, 40, 0.65)  # a weak detection: not a clear face
    detected = np.zeros(k, bool)
    detected[:4] = True
    track = Track(0, np.zeros(1), np.zeros((1, 4), np.float32), np.ones(1, np.float32), 0, 1)
    clip = Clip("v.mp4", np.zeros((k, 4, 4, 3), np.uint8), detected, np.arange(k) / 2.0)
    person = PersonClip(track=track, clip=clip, boxes=boxes, detected=detected)
    assert person.coverage == (4, 8)
    assert evidence_reason(person, EvidenceRules(min_frames=3)) is None
    reason = evidence_reason(person, EvidenceRules(min_frames=4))
    assert "3 of 8" in reason and "at least 4" in reason
    assert "too small" not in reason
    assert evidence_reason(person, EvidenceRules(min_face_px=41)).startswith(
        "face 0: a clear face in 0"
    )
    with pytest.raises(ConfigError):
        EvidenceRules(min_frames=0)
    with pytest.raises(ConfigError):
        TrackerConfig(rate=0)


def test_a_frame_shown_for_several_sampled_times_is_one_frame_of_evidence():
    """``--keyframes`` (each time's nearest keyframe) or a video shorter than K frames shows one
    frame for several sampled times: one detection there is one frame of evidence, not one
    per copy, and the frames to find a face in are the distinct ones."""
    from rdam.data.person_clips import distinct_frames, faces_evidence_reason

    boxes = np.full((4, 5), np.nan)
    boxes[1:] = (0, 0, 40, 40, 0.9)  # the last three sampled times show the one keyframe at 2 s
    detected = np.array([False, True, True, True])
    shown = np.array([0.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(distinct_frames(shown, 4), [True, True, False, False])
    assert faces_evidence_reason(boxes, detected, EvidenceRules()) is None  # without the times
    reason = faces_evidence_reason(boxes, detected, EvidenceRules(), shown=shown)
    assert reason.startswith("a clear face in 1 of 2 distinct frames (4 sampled times)")
    assert "at least 2 needed" in reason and "detected in 1," in reason
    # two distinct frames, both with a face: all of them, min(3, 2), is enough
    both = faces_evidence_reason(np.full((4, 5), (0, 0, 40, 40, 0.9)), np.ones(4, bool),
                                 EvidenceRules(), shown=shown)  # fmt: skip
    assert both is None
    # a single frame shown K times (a one-frame video) with a face: answerable
    assert faces_evidence_reason(boxes[1:], detected[1:], EvidenceRules(), shown=shown[1:]) is None
    with pytest.raises(ValueError, match="shown times"):
        distinct_frames(shown[:3], 4)


def test_each_person_gets_the_label_of_their_video_alone(composed, detector):
    """The shipped model on each main person's clip of the side-by-side video answers what it
    answers on that person's half alone, and the per-frame answers recompose the video's."""
    from rdam.checkpoint import default_model_path, load_model
    from rdam.data.clips import batch_clips
    from rdam.runtime import TorchRunner

    bundle = load_model(default_model_path())
    assert bundle.spec == SPEC
    runner = TorchRunner(bundle.model, precision="fp32")
    result = read_person_clips(composed["side_by_side"], bundle.spec, detector)
    main = _main_tracks(result.tracks.tracks, SECONDS)
    people = sorted((p for p in result.people if p.track in main), key=lambda p: _half(p.track))
    out = runner(batch_clips([p.clip for p in people]))
    alone = runner(
        batch_clips(
            [read_clip(composed[n], bundle.spec, detector=detector) for n in ("joy", "fear")]
        )
    )
    assert out.logits.argmax(1).tolist() == alone.logits.argmax(1).tolist()
    np.testing.assert_allclose(out.recomposed_logits(), out.logits, atol=1e-5)


# ---- the adaptive search (TrackerConfig.search): the K clip frames first, more only where
# two of them do not match


def test_adaptive_search_on_one_person_searches_the_clip_frames_only(ekman6_dir, detector):
    """fear.mp4: one face that stays put for 10 s. Its 16 clip frames all match one another,
    so nothing between them is searched, and the person's clip is made from those very frames
    (no second decoding)."""
    found = detect_tracks(ekman6_dir / "fear.mp4", detector, spec=SPEC)
    assert found.config.search == "adaptive"
    np.testing.assert_array_equal(found.times, found.sampled.times)
    assert len(found.times) == 16 and found.bridged.all()
    assert [(t.start, t.end) for t in found.tracks] == [(0.0, pytest.approx(10.0, abs=0.05))]
    result = read_person_clips(ekman6_dir / "fear.mp4", SPEC, detector, tracks=found)
    assert result.people[0].clip.timing["decode"] == 0.0
    dense = detect_tracks(
        ekman6_dir / "fear.mp4", detector, TrackerConfig(search="dense"), spec=SPEC
    )
    assert len(dense.times) == 40 and dense.sampled is None and not dense.bridged.any()
    assert len(dense.tracks) == 1


@pytest.mark.parametrize("name", ["side_by_side", "one_after_the_other"])
def test_adaptive_and_dense_search_find_the_same_people(composed, detector, name):
    adaptive = detect_tracks(composed[name], detector, spec=SPEC)
    dense = detect_tracks(composed[name], detector, TrackerConfig(search="dense"), spec=SPEC)
    seconds = 2 * SECONDS if name == "one_after_the_other" else SECONDS
    main_a = _main_tracks(adaptive.tracks, SECONDS)
    main_d = _main_tracks(dense.tracks, SECONDS)
    assert len(main_a) == len(main_d) == 2, [t.to_dict() for t in adaptive.tracks]
    for a, d in zip(main_a, main_d):
        assert a.start == pytest.approx(d.start, abs=0.3)
        assert a.end == pytest.approx(d.end, abs=0.3)
        assert _half(a) == _half(d)
    assert adaptive.tracks[-1].end <= seconds + 1e-6


def test_frames_match_needs_no_cut_as_many_faces_and_every_face_paired():
    cfg = TrackerConfig()
    a = np.array([[10, 10, 40, 40, 0.9], [200, 10, 40, 40, 0.9]], np.float32)
    moved = a + np.array([20, 0, 0, 0, 0], np.float32)  # half a face: within the gates
    assert frames_match(a, moved, cfg, distance=0.1)
    assert not frames_match(a, moved, cfg, distance=0.9)  # a shot cut between them
    assert not frames_match(a, moved[:1], cfg)  # a face more or less
    far = a + np.array([150, 0, 0, 0, 0], np.float32)  # 3.75 faces: past max_shift
    assert not frames_match(a, far, cfg)
    empty = np.zeros((0, 5), np.float32)
    assert frames_match(empty, empty, cfg)


def test_gated_assignment_is_the_cheapest_one_to_one_pairing_less_forbidden_pairs():
    big = 1e6  # tracks._FORBIDDEN
    assert sorted(gated_assignment(np.array([[0.0, 1.0], [9.0, 1.0]]))) == [(0, 0), (1, 1)]
    # greedy would give row 0 its cheapest column (0) and leave row 1 with 9.0; the least total
    # pairs row 0 with column 1 (1 + 1 < 0 + 9)
    assert sorted(gated_assignment(np.array([[0.0, 1.0], [1.0, 9.0]]))) == [(0, 1), (1, 0)]
    # a forbidden pair is dropped, never traded for another row's match
    assert gated_assignment(np.array([[0.5, big], [big, big]])) == [(0, 0)]
    # more columns than rows: each row once, each column at most once
    pairs = gated_assignment(np.array([[3.0, 0.2, 5.0]]))
    assert pairs == [(0, 1)]
    assert gated_assignment(np.full((2, 2), big)) == []
    assert gated_assignment(np.zeros((0, 3))) == []


def test_a_bridged_stretch_counts_as_one_step_towards_max_gap():
    box = np.array([[100, 100, 50, 50, 0.9]], np.float32)
    times = np.array([0.5, 3.0, 5.5])
    cfg = TrackerConfig(max_gap=1.0, min_detections=2)
    # searched between and found nothing: each detection alone, too short to be a track
    assert link_detections(times, [box] * 3, cfg, duration=6.0) == []
    # left unsearched because both ends match: one track over the whole video
    (track,) = link_detections(times, [box] * 3, cfg, duration=6.0, bridged=[True, True])
    assert (track.start, track.end, track.num_detections) == (0.0, 6.0, 3)
    np.testing.assert_allclose(track.box_at(1.75), box[0, :4])  # interpolated across
    with pytest.raises(ConfigError, match="bridged"):
        link_detections(times, [box] * 3, cfg, bridged=[True])


def test_a_partial_track_takes_the_clip_frames_inside_its_segments(ekman6_dir, detector):
    """A person's segment with a clip frame of the whole video inside takes that frame (the
    one nearest the segment's centre); the others are decoded at their centres."""
    found = detect_tracks(ekman6_dir / "fear.mp4", detector, spec=SPEC)
    whole = found.tracks[0]
    part = Track(1, whole.times, whole.boxes, whole.scores, start=2.0, end=10.0, max_gap=10)
    found.tracks = [part]
    (person,) = read_person_clips(ekman6_dir / "fear.mp4", SPEC, detector, tracks=found).people
    length = part.duration / 16
    centres = part.sample_times(16)
    clip_times = found.sampled.times
    for centre, shown in zip(centres, person.clip.timestamps):
        inside = clip_times[np.abs(clip_times - centre) < length / 2]
        if len(inside):  # the frame shown at that clip time
            assert shown == pytest.approx(inside[np.argmin(np.abs(inside - centre))], abs=0.05)
        else:
            assert shown == pytest.approx(centre, abs=0.05)
    assert person.coverage == (16, 16)


# ---- real footage with several people and shot cuts (tests/media/README.md)

CROWD = Path(__file__).resolve().parents[1] / "media" / "crowd_with_cuts.mp4"
CROWD_CUTS = (0.74, 2.74, 6.96)
# 0.74 s cuts from a stage to a close-up of similar colours (signature distance 0.35 < 0.5):
# not seen as a cut, but the box gates still end the tracks there
COLOUR_CUTS = (2.74, 6.96)


def test_a_real_crowd_with_cuts_adaptive_finds_the_people_dense_finds(detector):
    """Four shots, up to seven faces: both searches see the two cuts between shots of other
    colours, no track crosses any of the three cuts, and every person the dense search tracks
    for 4 detections or more, the adaptive search finds too (same place, span within half a
    second), from fewer frames searched."""
    adaptive = detect_tracks(CROWD, detector, spec=SPEC)
    dense = detect_tracks(CROWD, detector, TrackerConfig(search="dense"), spec=SPEC)
    for found in (adaptive, dense):
        assert len(found.cuts) == len(COLOUR_CUTS), found.cuts
        for cut in COLOUR_CUTS:
            assert min(abs(c - cut) for c in found.cuts) < 0.3, found.cuts
        for track in found.tracks:  # no track runs across a cut
            assert not any(track.start < cut - 0.3 and track.end > cut + 0.3 for cut in CROWD_CUTS)
        crowd = [t for t in found.tracks if t.start >= CROWD_CUTS[2] - 0.3]
        assert len(crowd) >= 6, [t.to_dict() for t in crowd]
    assert len(adaptive.times) < len(dense.times)
    for d in dense.tracks:
        if d.num_detections < 4:
            continue
        assert any(
            abs(a.start - d.start) < 0.5
            and abs(a.end - d.end) < 0.5
            and box_iou(a.boxes[:1], d.box_at(a.times[0])[None])[0, 0] > 0.3
            for a in adaptive.tracks
            if d.box_at(a.times[0]) is not None
        ), d.to_dict()


# ---- one face is one person's: each sampled frame's detections go to the tracks one to one


class _NoDetector:
    """The synthetic clips below need no detection: every frame comes searched."""

    def detect(self, frame_rgb: np.ndarray) -> list:
        raise AssertionError("no frame should need a detection")


def _still(track_id: int, x: float, seconds: float) -> Track:
    """A face that stays at ``(x, 100)``, 50 px wide, for the whole video."""
    times = _times(int(seconds / 0.25))
    boxes = np.tile(np.array([x, 100, 50, 50], np.float32), (len(times), 1))
    return Track(track_id, times, boxes, np.full(len(times), 0.9, np.float32), 0.0, seconds)


def test_two_people_never_share_a_detection_and_each_gets_the_nearer_one():
    """A at x = 100 and B at x = 120 (boxes IoU 0.43). On frame 5 only B's face is detected
    (IoU 0.92 with B, 0.47 with A); on frame 9 B's face and one a little left of A's (IoU 0.43
    with A, 0.11 with B). Each person taking the detection that best overlaps their own box
    gave B's face to A on both frames; one to one, B's face is B's, A's frame 5 is masked and
    A's frame 9 is the detection left of A's box."""
    from rdam.data.faces import FaceBox
    from rdam.data.tracks import FaceTracks, SampledFrames
    from rdam.data.video import VideoInfo

    seconds, k = 4.0, SPEC.num_frames
    a, b = _still(0, 100, seconds), _still(1, 120, seconds)
    times = a.sample_times(k)

    def face(x: float) -> FaceBox:
        return FaceBox(x, 100, 50, 50, 0.9)

    faces = [[face(100), face(120)] for _ in range(k)]
    faces[5] = [face(118)]
    faces[9] = [face(118), face(80)]
    info = VideoInfo("synthetic", seconds, 25.0, 100, 320, 240, 0, "video")
    frames = np.random.default_rng(0).integers(0, 256, (k, 240, 320, 3), np.uint8)
    found = FaceTracks(
        path="synthetic",
        info=info,
        times=times,
        detections=[np.array([(f.x, f.y, f.w, f.h, f.score) for f in fs]) for fs in faces],
        cuts=[],
        tracks=[a, b],
        config=TrackerConfig(),
        sampled=SampledFrames(times=times, shown=times, frames=frames, faces=faces),
    )
    first, second = read_person_clips("synthetic", SPEC, _NoDetector(), tracks=found).people
    for person in (first, second):
        np.testing.assert_allclose(person.clip.timestamps, times)
        np.testing.assert_array_equal(person.clip.mask, person.detected)
    # no detection is used by both people
    both = first.detected & second.detected
    assert not (first.boxes[both] == second.boxes[both]).all(axis=1).any()
    # frame 5: B's face is B's; A has no face there (masked, not evidence), its box interpolated
    assert second.detected[5] and second.boxes[5, 0] == 118
    assert not first.detected[5] and np.isnan(first.boxes[5, 4]) and first.boxes[5, 0] == 100
    # frame 9: each gets the detection nearer its own box
    assert second.boxes[9, 0] == 118 and first.detected[9] and first.boxes[9, 0] == 80
    assert (first.coverage, second.coverage) == ((k - 1, k), (k, k))
    # elsewhere each has their own face
    others = np.delete(np.arange(k), [5, 9])
    assert (first.boxes[others, 0] == 100).all() and (second.boxes[others, 0] == 120).all()


def test_match_faces_is_one_to_one_within_the_gate():
    from rdam.data.faces import FaceBox
    from rdam.data.person_clips import match_faces

    a, b = np.array([100.0, 100, 50, 50]), np.array([120.0, 100, 50, 50])
    near_b = FaceBox(118, 100, 50, 50, 0.9)
    assert match_faces([a, b], [near_b]) == [None, 0]
    assert match_faces([a, None, b], [near_b]) == [None, None, 0]  # no box: no face
    # the detections are in half the source's pixels
    assert match_faces([a, b], [FaceBox(59, 50, 25, 25, 0.9)], scale=2.0) == [None, 0]
    assert match_faces([a], [near_b]) == [0]  # alone, A takes it (IoU 0.47 >= 0.3)
    assert match_faces([a], [near_b], TrackerConfig(match_iou=0.5)) == [None]
    weak, flat = FaceBox(100, 100, 50, 50, 0.5), FaceBox(100, 100, 50, 0, 0.9)
    assert match_faces([a, b], [weak, flat, near_b], min_score=0.6) == [None, 2]
    assert match_faces([a, b], []) == [None, None]


def test_no_two_people_of_surprise_share_a_face(ekman6_dir, detector):
    """surprise.mp4: three people from 9.2 s on, two of them close together; at 10.74 s the
    face of person 2 overlaps person 1's box too (IoU 0.96 with 2's box, 0.40 with 1's). At
    every frame two people take, each detection is one person's."""
    result = read_person_clips(ekman6_dir / "surprise.mp4", SPEC, detector)
    assert len(result.people) == 3
    used: dict[tuple, int] = {}
    for person in result.people:
        for shown, box, found in zip(person.clip.timestamps, person.boxes, person.detected):
            if found:
                key = (round(float(shown), 4), *np.round(box, 2).tolist())
                assert used.setdefault(key, person.track.id) == person.track.id, key
    assert result.reason() is None
