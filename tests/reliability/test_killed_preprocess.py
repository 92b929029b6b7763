"""`rdam preprocess` killed with SIGKILL at random points: the rerun completes, no partial
entry is ever visible, and the cache equals the one of an uninterrupted run, array by array."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
from _fuzz import _write_clip
from _tiny import make_settings
from conftest import base_seed, rdam_command, sigkill_when, trials

from rdam.cli import main
from rdam.data.cache import ClipCache

NUM_VIDEOS = 24
NUM_IMAGES = 12
SETTINGS = make_settings(num_frames=4, frame_size=16, max_side=64)
ARGS = ["--num-frames", "4", "--frame-size", "16", "--max-side", "64", "--chunk-size", "3",
        "--workers", "0", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV manifest of tiny videos (10-20 frames, distinct content) and single images."""
    import cv2

    root = tmp_path_factory.mktemp("preprocess_data")
    lines = ["path,label,split"]
    for i in range(NUM_VIDEOS):
        path = _write_clip(
            root / f"v{i:02d}.mp4",
            "libx264",
            num_frames=10 + i % 11,
            size=(32 + 8 * (i % 3), 24),
            options={"preset": "ultrafast", "crf": str(20 + i)},
        )
        lines.append(f"{path.name},{'ab'[i % 2]},train")
    for i in range(NUM_IMAGES):
        image = np.full((20, 20), 10 * i, np.uint8)
        image[: 2 + i] = 255
        cv2.imwrite(str(root / f"img{i:02d}.png"), image)
        lines.append(f"img{i:02d}.png,{'ab'[i % 2]},val")
    csv = root / "manifest.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def _entries(cache_root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every stored clip of the cache: content key -> its arrays (read back through the
    public reader, which refuses damaged entries). A run killed before it published the
    settings file (an atomic rename) has no cache yet, and so no entry."""
    if not (cache_root / SETTINGS.key() / "settings.json").is_file():
        assert not _published_dirs(cache_root)
        return {}
    cache = ClipCache(cache_root, SETTINGS)
    out = {}
    for key in sorted(cache.keys()):
        entry = cache.get(key)
        out[key] = {n: np.array(a) for n, a in entry.arrays().items()}
    return out


def _published_dirs(cache_root: Path) -> list[Path]:
    folder = cache_root / SETTINGS.key()
    return [*folder.glob("entries/*/*"), *folder.glob("shards/*")]


def _assert_no_partial_entry(cache_root: Path) -> None:
    """Every published entry or shard is complete: its metadata and every array it needs are
    there and load (a partial one would only be in ``tmp/``)."""
    for folder in _published_dirs(cache_root):
        names = {p.name for p in folder.iterdir()}
        if folder.parent.name == "shards":
            assert {"keys.json", "frames.npy"} <= names, folder
        else:
            assert {"meta.json", "frames.npy", "timestamps.npy"} <= names, folder
        for array in folder.glob("*.npy"):
            np.load(array, allow_pickle=False)
    _entries(cache_root)  # and the reader accepts each of them


def _kill_at_random_point(manifest: Path, cache: Path, rng: random.Random) -> tuple[int, int]:
    """Start `rdam preprocess`, SIGKILL it at a random point of its work: once a random number
    of entries (0 .. all but one) is published, plus a random 0-30 ms. Returns (target,
    entries published when killed)."""
    total = NUM_VIDEOS + (NUM_IMAGES + 2) // 3  # video entries + image shards (3 per shard)
    target = rng.randrange(total)
    jitter = rng.uniform(0.0, 0.03)
    sigkill_when(
        rdam_command("preprocess", str(manifest), "--cache", str(cache), *ARGS),
        lambda: len(_published_dirs(cache)) >= target,
        jitter,
    )
    return target, len(_published_dirs(cache))


def test_sigkilled_preprocess_resumes_to_the_uninterrupted_cache(
    manifest: Path, tmp_path: Path, measured, capsys
) -> None:
    """The killed runs are `python -m rdam.cli preprocess` subprocesses; the reference run and
    the reruns call the same command line in this process (saves the torch import time)."""
    clean = tmp_path / "clean"
    start = time.monotonic()
    assert main(["preprocess", str(manifest), "--cache", str(clean), *ARGS]) == 0
    clean_seconds = time.monotonic() - start
    reference = _entries(clean)
    assert len(reference) == NUM_VIDEOS + NUM_IMAGES

    n = trials(3, 30)
    rng = random.Random(base_seed())
    kills = []
    for trial in range(n):
        cache = tmp_path / f"killed{trial}"
        target, published = _kill_at_random_point(manifest, cache, rng)
        _assert_no_partial_entry(cache)
        # every third trial kills the rerun too: resumption must survive that as well
        if trial % 3 == 1:
            _kill_at_random_point(manifest, cache, rng)
            _assert_no_partial_entry(cache)
        capsys.readouterr()
        assert main(["preprocess", str(manifest), "--cache", str(cache), *ARGS]) == 0
        summary = re.search(
            r"(\d+) written, (\d+) already cached, 0 failed", capsys.readouterr().out
        )
        assert summary is not None
        assert int(summary[1]) + int(summary[2]) == NUM_VIDEOS + NUM_IMAGES
        assert list((cache / SETTINGS.key() / "tmp").iterdir()) == []
        got = _entries(cache)
        assert got.keys() == reference.keys(), f"trial {trial}: other clips cached"
        for key, arrays in reference.items():
            assert got[key].keys() == arrays.keys(), (trial, key)
            for name, array in arrays.items():
                np.testing.assert_array_equal(got[key][name], array, err_msg=f"{trial} {key}")
        kills.append((target, published))
    measured(
        "killed preprocess",
        trials=n,
        kills_target_and_published=kills,
        clean_run_s=round(clean_seconds, 2),
        result="every rerun exit 0, no partial entry, arrays equal",
    )
