"""The preprocessing cache and `rdam preprocess`: keys, atomic entries, shards, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
import torch
from _media import write_gray_mp4
from _tiny import make_settings

from rdam.data import preprocess as pre
from rdam.data.cache import CacheEntry, ClipCache, PreprocessSettings
from rdam.data.datasets import ClipDataset
from rdam.data.faces import FaceCrops
from rdam.data.manifest import ClipRecord, Manifest
from rdam.errors import CacheError, ConfigError

SETTINGS = make_settings(num_frames=4, frame_size=16, max_side=64)


def write_video(path: Path, num_frames: int = 12, size: tuple[int, int] = (40, 32), seed: int = 0):
    """A tiny H.264 mp4 of blocky random frames (w, h = size) at 10 fps."""
    rng = np.random.default_rng(seed)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(num_frames):
            small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
            img = np.kron(small, np.ones((8, 8, 1), np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, value: int, size: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size), value, np.uint8)
    img[: size // 2] = 255 - value
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def media(tmp_path: Path) -> SimpleNamespace:
    videos = [write_video(tmp_path / "v" / f"{i}.mp4", 8 + 2 * i, seed=i) for i in range(3)]
    images = [write_image(tmp_path / "img" / f"{i}.png", 20 * i) for i in range(5)]
    seq = tmp_path / "seq" / "S005_001"
    for f in range(3):
        write_image(seq / f"{f:03d}.png", 60 * f)
    paths = [*map(str, videos), *map(str, images), str(seq)]
    manifest = Manifest([ClipRecord(p, i % 2, "train") for i, p in enumerate(paths)], ["a", "b"])
    return SimpleNamespace(videos=videos, images=images, seq=seq, manifest=manifest)


# ---- settings and keys


def test_settings_key_changes_with_every_field():
    base = make_settings()
    variants = [
        make_settings(num_frames=8),
        make_settings(frame_size=64),
        make_settings(faces=True),
        make_settings(color="gray"),
        make_settings(margin=0.3),
        make_settings(sampler="random"),
        make_settings(num_views=3),
        make_settings(max_side=None),
        make_settings(fit="crop"),
        make_settings(seed=1),
        make_settings(keyframes=True),
        make_settings(face_input="given"),
        PreprocessSettings(spec=base.spec.replace(face_score=0.7)),
    ]
    keys = {base.key(), *(v.key() for v in variants)}
    assert len(keys) == 14
    assert make_settings().key() == base.key()
    assert PreprocessSettings.from_dict(base.to_dict()) == base


def test_settings_validation():
    with pytest.raises(ConfigError, match="mode"):
        make_settings(sampler="uniform")
    with pytest.raises(ConfigError, match="num_views"):
        make_settings(num_views=0)
    with pytest.raises(ConfigError, match="unknown preprocessing settings"):
        PreprocessSettings.from_dict({"frames": 3})


# ---- entries


def _entry(v: int, k: int, s: int, value: int = 7) -> CacheEntry:
    frames = np.full((v, k, s, s, 3), value, np.uint8)
    frames[..., 0] = np.arange(k, dtype=np.uint8)[None, :, None, None]
    return CacheEntry(frames=frames, timestamps=np.arange(v * k, dtype=float).reshape(v, k))


def test_put_get_round_trip_and_atomic_layout(tmp_path: Path):
    cache = ClipCache(tmp_path, SETTINGS, create=True)
    e = _entry(1, 4, 16)
    assert cache.put("ab" * 32, e)
    assert not cache.put("ab" * 32, e)  # already there
    got = cache.get("ab" * 32)
    np.testing.assert_array_equal(got.frames, e.frames)
    np.testing.assert_array_equal(got.timestamps, e.timestamps)
    assert cache.has("ab" * 32) and cache.keys() == {"ab" * 32}
    assert list((cache.directory / "tmp").iterdir()) == []
    with pytest.raises(CacheError, match="no cache entry"):
        cache.get("cd" * 32)
    with pytest.raises(CacheError, match="do not fit"):
        cache.put("ef" * 32, _entry(1, 4, 8))


def test_shard_round_trip_is_memory_mapped(tmp_path: Path):
    cache = ClipCache(tmp_path, SETTINGS, create=True)
    keys = [f"{i:064x}" for i in range(5)]
    entries = [_entry(1, 1, 16, value=10 * i) for i in range(5)]
    name = cache.put_shard(keys, entries)
    reader = ClipCache(tmp_path, SETTINGS)
    for k, e in zip(keys, entries):
        got = reader.get(k)
        assert got.frames.shape == (1, 1, 16, 16, 3)
        np.testing.assert_array_equal(got.frames, e.frames)
    assert isinstance(reader._shard_arrays(name)["frames"], np.memmap)
    assert len(list((cache.directory / "shards").iterdir())) == 1


def test_reader_needs_matching_settings(tmp_path: Path):
    with pytest.raises(CacheError, match="rdam preprocess"):
        ClipCache(tmp_path, SETTINGS)
    ClipCache(tmp_path, SETTINGS, create=True)
    ClipCache(tmp_path, make_settings(num_frames=2), create=True)
    with pytest.raises(CacheError, match="holds 2"):
        ClipCache.open(tmp_path)
    # a tampered settings file is refused
    s = json.loads((tmp_path / SETTINGS.key() / "settings.json").read_text())
    s["frame_size"] = 99
    (tmp_path / SETTINGS.key() / "settings.json").write_text(json.dumps(s))
    with pytest.raises(CacheError, match="does not match"):
        ClipCache(tmp_path, SETTINGS)


# ---- preprocess


def _all_entries(root: Path, settings: PreprocessSettings) -> dict[str, CacheEntry]:
    cache = ClipCache(root, settings)
    return {k: cache.get(k) for k in sorted(cache.keys())}


def _assert_same_entries(a: dict[str, CacheEntry], b: dict[str, CacheEntry]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        for name, arr in a[k].arrays().items():
            np.testing.assert_array_equal(arr, b[k].arrays()[name], err_msg=f"{k} {name}")


def test_preprocess_round_trip_matches_direct_build(media, tmp_path: Path):
    report = pre.preprocess(media.manifest, SETTINGS, tmp_path / "c", progress=False)
    assert (report.total, report.done, report.skipped_cached, report.failed) == (9, 9, 0, [])
    cache = ClipCache(tmp_path / "c", SETTINGS)
    for rec in media.manifest:
        key = cache.content_key(rec.path)
        stored, direct = cache.get(key), pre.build_entry(rec.path, SETTINGS, key)
        np.testing.assert_array_equal(stored.frames, direct.frames)
        np.testing.assert_array_equal(stored.timestamps, direct.timestamps)
    # 5 images -> one shard; 3 videos + 1 sequence -> 4 entries
    assert len(list((cache.directory / "shards").iterdir())) == 1
    assert cache.get(cache.content_key(media.videos[2])).frames.shape == (1, 4, 16, 16, 3)
    assert cache.get(cache.content_key(media.seq)).frames.shape == (1, 3, 16, 16, 3)  # 3 images
    # rerun: everything is skipped
    again = pre.preprocess(media.manifest, SETTINGS, tmp_path / "c", progress=False)
    assert (again.done, again.skipped_cached) == (0, 9)


def test_dataset_reads_the_cache_like_it_decodes(media, tmp_path: Path):
    pre.preprocess(media.manifest, SETTINGS, tmp_path / "c", progress=False)
    cache = ClipCache(tmp_path / "c", SETTINGS)
    spec = SETTINGS.spec
    cached = ClipDataset(media.manifest, spec, "center", cache=cache)
    fresh = ClipDataset(media.manifest, spec, "center")
    assert all(k is not None for k in cached._cache_keys)
    for i in range(len(media.manifest)):
        a, b = cached[i], fresh[i]
        assert a["frames"].shape == b["frames"].shape
        assert (a["frames"].int() - b["frames"].int()).abs().max() == 0
        assert a["mask"].all()
    # fewer frames than stored: segment sub-sampling of the stored frames
    two = ClipDataset(media.manifest, spec.replace(num_frames=2), "random", cache=cache)
    assert two[0]["frames"].shape == (2, 3, 16, 16)


def test_multi_view_test_reads_the_stored_views_like_it_decodes_them(media, tmp_path: Path):
    settings = make_settings(num_frames=2, frame_size=16, max_side=64, num_views=2)
    pre.preprocess(media.manifest, settings, tmp_path / "c", progress=False)
    cache = ClipCache(tmp_path / "c", settings)
    cached = ClipDataset(media.manifest, settings.spec, "center", cache=cache, test_views=2)
    fresh = ClipDataset(media.manifest, settings.spec, "center", test_views=2)
    for i in range(len(media.videos)):  # the videos have frames to tell the views apart
        v0, v1 = cached[2 * i], cached[2 * i + 1]
        assert int(v0["index"]) == int(v1["index"]) == i
        assert not torch.equal(v0["frames"], v1["frames"])
        for a, b in ((v0, fresh[2 * i]), (v1, fresh[2 * i + 1])):
            assert torch.equal(a["frames"], b["frames"])


def test_validation_from_a_cache_reads_the_centres_eval_reads_or_the_files(
    media, tmp_path: Path, caplog
):
    """Validation (centre mode, one view) must see the frames rdam eval decodes: from a
    3-view cache its middle view; from a 2-view or a random-offset cache, or one whose stored
    frames hold no centres of the model's segments, the files themselves (said in a warning)."""
    fresh = ClipDataset(media.manifest, make_settings(num_frames=2, frame_size=16,
                        max_side=64).spec, "center")  # fmt: skip

    def same_as_fresh(dataset):
        return all(
            torch.equal(dataset[i]["frames"], fresh[i]["frames"]) for i in range(len(media.videos))
        )

    for name, options, from_cache in (
        ("three", {"num_views": 3}, True),
        ("two", {"num_views": 2}, False),
        ("random", {"sampler": "random"}, False),
        ("six", {"num_frames": 6}, True),  # 3 stored frames per segment: the middle one
        ("four", {"num_frames": 4}, False),  # 2 per segment: neither is the centre
        # 18 asked, but the videos have 8-12 frames: each is stored whole, and validation
        # takes the frames at its 2 segment centres (it took others before)
        ("eighteen", {"num_frames": 18}, True),
    ):
        settings = make_settings(**{"num_frames": 2, "frame_size": 16, "max_side": 64, **options})
        pre.preprocess(media.manifest, settings, tmp_path / name, progress=False)
        caplog.clear()
        with caplog.at_level("WARNING", logger="rdam.data.datasets"):
            val = ClipDataset(media.manifest, fresh.spec, "center",
                              cache=ClipCache(tmp_path / name, settings))  # fmt: skip
        assert (val.cache is not None) == from_cache, name
        assert ("holds other frames than the ones validation reads" in caplog.text) != from_cache
        assert same_as_fresh(val), name
    # training draws from any stored frames: the cache is kept
    train = ClipDataset(media.manifest, fresh.spec, "random",
                        cache=ClipCache(tmp_path / "random", make_settings(
                            num_frames=2, frame_size=16, max_side=64, sampler="random")))  # fmt: skip
    assert train.cache is not None


def test_keyframe_preprocessing_stores_the_nearest_keyframes(tmp_path: Path):
    from rdam.data.frames import fit_frames
    from rdam.data.sampling import SegmentSampler
    from rdam.data.video import VideoReader

    video = write_gray_mp4(  # 40 frames, a keyframe every 10
        tmp_path / "gop.mp4",
        [6 * i for i in range(40)],
        "keyint=10:min-keyint=10:scenecut=0:bframes=0",
    )
    manifest = Manifest([ClipRecord(str(video), 0, "train")], ["a"])
    settings = make_settings(num_frames=4, frame_size=16, keyframes=True)
    assert settings.key() != make_settings(num_frames=4, frame_size=16).key()
    report = pre.preprocess(manifest, settings, tmp_path / "c", progress=False)
    assert report.done == 1 and not report.failed
    entry = ClipCache(tmp_path / "c", settings).get(
        ClipCache(tmp_path / "c", settings).content_key(str(video))
    )
    # centre times 0.5, 1.5, 2.5, 3.5 s -> keyframes 0, 1, 2 (tie to the earlier), 3 s
    np.testing.assert_allclose(entry.timestamps[0], [0.0, 1.0, 2.0, 3.0])
    with VideoReader(video) as reader:
        times = SegmentSampler(4, "center").sample(reader.info.duration)
        expected = reader.read_keyframes(times, settings.spec.max_side)
    np.testing.assert_array_equal(entry.frames[0], fit_frames(expected.frames, 16))


def test_bad_inputs_are_recorded_and_the_rest_processed(media, tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n" * 20)
    (bad / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    good = media.videos[0].read_bytes()
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    names = ["missing.mp4", "empty.mp4", "text.mp4", "corrupt.mp4", "truncated.mp4", "broken.png"]
    records = [ClipRecord(str(bad / n), 0, "train") for n in names]
    manifest = Manifest(media.manifest.records + records, ["a", "b"])
    report = pre.preprocess(manifest, SETTINGS, tmp_path / "c", progress=False)
    failed = dict(report.failed)
    # every good clip is stored; every failure names its file and says what went wrong
    assert report.done + len(report.failed) == report.total
    assert report.done >= 9
    for n in ("missing.mp4", "empty.mp4", "text.mp4", "corrupt.mp4", "broken.png"):
        assert str(bad / n) in failed, n
    assert "VideoNotFoundError" in failed[str(bad / "missing.mp4")]
    assert "EmptyVideoError" in failed[str(bad / "empty.mp4")]
    assert "broken.png" in failed[str(bad / "broken.png")]
    assert "failures:" in report.format()
    cache = ClipCache(tmp_path / "c", SETTINGS)
    assert len(cache.keys()) == report.done
    assert list((cache.directory / "tmp").iterdir()) == []


def test_shards_split_the_work_and_union_to_the_whole(media, tmp_path: Path):
    parts = [
        pre.preprocess(media.manifest, SETTINGS, tmp_path / "split", shard=(i, 3), progress=False)
        for i in range(3)
    ]
    assert sum(p.total for p in parts) == 9 and all(p.total >= 3 for p in parts)
    whole = pre.preprocess(media.manifest, SETTINGS, tmp_path / "whole", progress=False)
    _assert_same_entries(
        _all_entries(tmp_path / "split", SETTINGS), _all_entries(tmp_path / "whole", SETTINGS)
    )
    assert whole.done == 9
    paths = [pre.shard_paths(media.manifest, (i, 3)) for i in range(3)]
    assert sorted(p for part in paths for p in part) == sorted(r.path for r in media.manifest)
    assert pre.parse_shard("1/3") == (1, 3)
    with pytest.raises(ConfigError):
        pre.parse_shard("3/3")


def test_key_changes_with_settings_and_content(media, tmp_path: Path):
    pre.preprocess(media.manifest, SETTINGS, tmp_path / "c", progress=False)
    other = make_settings(num_frames=2, frame_size=16, max_side=64)
    report = pre.preprocess(media.manifest, other, tmp_path / "c", progress=False)
    assert report.skipped_cached == 0 and report.done == 9
    time.sleep(0.01)
    write_video(media.videos[0], 8, seed=42)  # new content at the same path
    report = pre.preprocess(media.manifest, SETTINGS, tmp_path / "c", progress=False)
    assert (report.done, report.skipped_cached) == (1, 8)


def test_faces_are_stored_and_clips_without_faces_reported(media, tmp_path: Path, monkeypatch):

    class NoFaces:  # the real search runs beside the decoding; the fake cropper decides
        def detect(self, frame):
            return []

    def fake_crop_faces(
        frames, detector, size=112, margin=0.2, select="largest", min_score=0.0, detections=None
    ):
        k = frames.shape[0]
        # a "face" wherever the bottom-right pixel is not dark
        mask = frames[:, -1, -1].mean(axis=-1) > 10
        crops = np.zeros((k, size, size, 3), np.uint8)
        crops[mask] = 255
        return FaceCrops(crops, mask, np.zeros((k, 5), np.float32), mask.astype(np.int64))

    import rdam.data.faces as mod

    monkeypatch.setattr(mod, "crop_faces", fake_crop_faces)
    settings = make_settings(num_frames=3, frame_size=8, faces=True, face_input="detect")
    report = pre.preprocess(
        media.manifest, settings, tmp_path / "c", progress=False, face_detector_factory=NoFaces
    )
    assert report.failed == [] and report.done == 9
    cache = ClipCache(tmp_path / "c", settings)
    for rec in media.manifest:
        e = cache.get(cache.content_key(rec.path))
        assert e.faces.shape[-3:] == (8, 8, 3)
        np.testing.assert_array_equal(e.faces[..., 0, 0, 0] == 255, e.face_mask)
    # image 0 is dark at the bottom: stored, mask off, and reported
    assert str(media.images[0]) in report.no_face
    faces_spec = settings.spec.replace(stream="faces")
    dset = ClipDataset(media.manifest, faces_spec, "center", cache=cache, face_input="detect")
    item = dset[
        media.manifest.records.index(
            next(r for r in media.manifest if r.path == str(media.images[0]))
        )
    ]
    assert item["mask"].tolist() == [False]
    # both streams: whole frames (all valid) and the face crops of the same sampled frames
    both = ClipDataset(media.manifest, settings.spec, "center", cache=cache, face_input="detect")
    for i, rec in enumerate(media.manifest):
        e = cache.get(cache.content_key(rec.path))
        item = both[i]
        k = item["frames"].shape[0]
        assert item["faces"].shape == (k, 3, 8, 8) and item["mask"].all()
        np.testing.assert_array_equal(item["face_mask"].numpy(), e.face_mask[0][:k])
    with pytest.raises(ConfigError, match="no face crops"):
        ClipDataset(
            media.manifest,
            SETTINGS.spec.replace(stream="both"),
            "center",
            cache=ClipCache(tmp_path / "c2", SETTINGS, create=True),
        )
    # a cache made under another spec is refused, never re-fitted
    with pytest.raises(ConfigError, match="frame_size: cache 8, spec 16"):
        ClipDataset(media.manifest, settings.spec.replace(frame_size=16), "center", cache=cache)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from rdam.data import preprocess as pre
    from rdam.data.cache import PreprocessSettings
    from rdam.data.manifest import Manifest, ClipRecord
    from rdam.data.spec import ClipSpec
    slow = pre.build_entry
    def build(*a, **k):
        time.sleep(0.15)
        return slow(*a, **k)
    pre.build_entry = build
    paths = sys.argv[2:]
    m = Manifest([ClipRecord(p, 0, "train") for p in paths], ["a"])
    s = PreprocessSettings(spec=ClipSpec(num_frames=4, frame_size=16, max_side=64))
    pre.preprocess(m, s, sys.argv[1], progress=False, chunk_size=2)
    """
)


def test_kill_and_resume_gives_the_uninterrupted_result(media, tmp_path: Path):
    paths = [r.path for r in media.manifest]
    root = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(root), *paths],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    entries = root / SETTINGS.key() / "entries"
    deadline = time.time() + 60
    while time.time() < deadline and not (entries.is_dir() and any(entries.glob("*/*/meta.json"))):
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    partial = ClipCache(root, SETTINGS)
    n_before = len(partial.keys())
    assert 0 < n_before < 9  # killed mid-way
    report = pre.preprocess(media.manifest, SETTINGS, root, progress=False)
    assert report.skipped_cached == n_before and report.done == 9 - n_before
    assert list((root / SETTINGS.key() / "tmp").iterdir()) == []
    pre.preprocess(media.manifest, SETTINGS, tmp_path / "clean", progress=False)
    _assert_same_entries(_all_entries(root, SETTINGS), _all_entries(tmp_path / "clean", SETTINGS))


def test_stale_tmp_from_a_dead_process_is_removed(tmp_path: Path):
    cache = ClipCache(tmp_path, SETTINGS, create=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    stale = cache.directory / "tmp" / f"{socket.gethostname()}-{int(dead.stdout)}-deadbeef"
    stale.mkdir()
    (stale / "frames.npy").write_bytes(b"half")
    mine = cache.directory / "tmp" / f"{socket.gethostname()}-{os.getpid()}-cafecafe"
    mine.mkdir()
    assert cache.clean_tmp() == 1
    assert not stale.exists() and mine.exists()


@pytest.mark.slow
def test_worker_pool_gives_the_same_result(media, tmp_path: Path):
    report = pre.preprocess(media.manifest, SETTINGS, tmp_path / "pool", workers=2, progress=False)
    assert report.done == 9 and report.failed == []
    pre.preprocess(media.manifest, SETTINGS, tmp_path / "serial", progress=False)
    _assert_same_entries(
        _all_entries(tmp_path / "pool", SETTINGS), _all_entries(tmp_path / "serial", SETTINGS)
    )


SHARED = Path(
    os.environ.get(
        "RDAM_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    )
)


@pytest.mark.shared_data
def test_real_video_with_real_faces(tmp_path: Path):
    video = SHARED / "ekman6_samples" / "joy.mp4"
    model = SHARED / ".." / "models" / "face_detection_yunet.onnx"
    if not video.is_file() or not model.is_file():
        pytest.skip(f"needs {video} and {model} (set RDAM_SHARED_DATA)")
    manifest = Manifest([ClipRecord(str(video), 0, "test")], ["joy"])
    settings = make_settings(num_frames=3, frame_size=32, faces=True, max_side=320)
    report = pre.preprocess(
        manifest, settings, tmp_path, progress=False, face_detector_factory=pre.yunet_factory(model)
    )
    assert report.failed == [] and report.done == 1
    cache = ClipCache(tmp_path, settings)
    entry = cache.get(cache.content_key(video))
    assert entry.frames.shape == (1, 3, 32, 32, 3) and entry.faces.shape == (1, 3, 32, 32, 3)
    assert np.all(np.diff(entry.timestamps[0]) > 0)
    # where a face was found its crop is not blank; elsewhere it is zeros
    for k in range(3):
        assert (entry.faces[0, k].std() > 5) == bool(entry.face_mask[0, k])
    item = ClipDataset(manifest, settings.spec.replace(stream="faces"), "center", cache=cache)[0]
    assert item["frames"].shape == (3, 3, 32, 32)
    assert item["mask"].tolist() == entry.face_mask[0].tolist()


def test_worker_processes_use_their_share_of_the_cores(tmp_path: Path):
    import torch

    before = (cv2.getNumThreads(), torch.get_num_threads())
    try:
        pre._init_worker(str(tmp_path / "c"), SETTINGS, None, threads=1)
        assert (cv2.getNumThreads(), torch.get_num_threads()) == (1, 1)
        assert pre._WORKER["cache"].settings == SETTINGS
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])


def test_preprocessing_workers_start_without_torch() -> None:
    """A spawned preprocessing worker imports only what decoding, faces and the cache need:
    importing torch would add seconds to every worker's start-up (benchmark figure 4)."""
    code = (
        "import sys, rdam.data.preprocess, rdam.data.validate; "
        "print(sorted(m for m in ('torch', 'torchvision', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.shared_data
def test_preprocess_under_a_models_own_spec(tmp_path: Path):
    """`rdam preprocess --checkpoint MODEL` makes the cache the model's data set reads, pixel for
    pixel what `eval` and `predict` read (FER2013 faces under the shipped model's spec)."""
    from rdam.checkpoint import default_model_path, load_bundle
    from rdam.cli import main

    faces = sorted((SHARED / "fer2013" / "val" / "fear").glob("*.jpg"))[:3]
    if not faces:
        pytest.skip("FER2013 not found (set RDAM_SHARED_DATA)")
    folder = tmp_path / "data" / "fear"
    folder.mkdir(parents=True)
    for f in faces:
        (folder / f.name).symlink_to(f)
    spec = load_bundle(None).spec
    code = main(["preprocess", f"image_folder:{tmp_path / 'data'}", "--cache", str(tmp_path / "c"),
                 "--checkpoint", str(default_model_path()), "--workers", "0",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    cache = ClipCache.open(tmp_path / "c")
    assert cache.settings.spec == spec
    manifest = Manifest([ClipRecord(str(folder / f.name), 0, "val") for f in faces], ["fear"])
    cached = ClipDataset(manifest, spec, "center", cache=cache)
    fresh = ClipDataset(manifest, spec, "center")
    for i in range(len(faces)):
        assert torch.equal(cached[i]["frames"], fresh[i]["frames"])
        assert cached[i]["frames"].shape == (1, 3, spec.frame_size, spec.frame_size)
    # --color overrides the model's colour: equalized crops, as the file reads them equalized
    code = main(["preprocess", f"image_folder:{tmp_path / 'data'}", "--cache", str(tmp_path / "e"),
                 "--checkpoint", str(default_model_path()), "--color", "gray_equalized",
                 "--workers", "0", "--no-progress"])  # fmt: skip
    assert code == 0
    equalized = spec.replace(color="gray_equalized")
    assert ClipCache.open(tmp_path / "e").settings.spec == equalized
    cached = ClipDataset(manifest, equalized, "center", cache=ClipCache.open(tmp_path / "e"))
    fresh = ClipDataset(manifest, equalized, "center")
    assert torch.equal(cached[0]["frames"], fresh[0]["frames"])
    assert not torch.equal(fresh[0]["frames"], ClipDataset(manifest, spec, "center")[0]["frames"])


def test_a_frames_model_from_a_two_stream_cache_gets_no_face_crops(tmp_path: Path):
    """A cache made for two streams also holds face crops; a frames-only spec reading it gets
    the frames alone, as from the file, so its clips are not counted faceless (a false warning
    in training) and no augmentation runs on crops the model never sees."""
    from PIL import Image

    from rdam.data.clips import faceless_clips
    from rdam.data.datasets import collate_clips
    from rdam.data.spec import ClipSpec

    class NoFace:
        def detect(self, frame):
            return []

    image = tmp_path / "a.png"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(image)
    manifest = Manifest([ClipRecord(str(image), 0, "train")], ["happy"])
    both = PreprocessSettings(spec=ClipSpec(num_frames=1, frame_size=16, stream="both"),
                              face_input="detect")  # fmt: skip
    pre.preprocess(manifest, both, tmp_path / "cache", progress=False,
                   face_detector_factory=NoFace)  # fmt: skip
    frames = ClipSpec(num_frames=1, frame_size=16, stream="frames")
    cached = ClipDataset(manifest, frames, mode="center", face_input="detect",
                         cache=ClipCache(tmp_path / "cache", both))[0]  # fmt: skip
    read = ClipDataset(manifest, frames, mode="center", face_input="detect")[0]
    assert sorted(cached) == sorted(read) == ["frames", "index", "label", "mask"]
    assert torch.equal(cached["frames"], read["frames"])
    assert faceless_clips(collate_clips([cached])).tolist() == [False]
