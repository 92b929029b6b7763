"""Figure 4: preprocessing throughput (decode + sample + fit + YuNet faces + crops + cache write),
in video-seconds per wall-second, with 1 and 2 worker processes.

The work set is the Ekman-6 sample videos, each copied ``copies`` times with a different MP4
``free`` box appended (same frames, different bytes, so the content-keyed cache treats every copy
as a new clip). Every run writes into a fresh cache folder. The wall time is
:func:`rdam.data.preprocess.preprocess` end to end, worker start-up included.
"""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path
from typing import Any

from benchmarks.common import WORK_DIR, ekman6_videos, figure_result, machine_info, summary


def distinct_copies(videos: list[Path], copies: int, folder: Path) -> list[Path]:
    """``copies`` byte-distinct copies of each video: an MP4 ``free`` box (which demuxers
    skip) with the copy number is appended, so the frames are identical and the hashes differ."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for video in videos:
        data = video.read_bytes()
        for i in range(copies):
            target = folder / f"{video.stem}_copy{i}{video.suffix}"
            if not target.is_file():
                payload = f"rdam benchmark copy {i}".encode()
                box = struct.pack(">I", 8 + len(payload)) + b"free" + payload
                tmp = target.with_suffix(".partial")
                tmp.write_bytes(data + box)
                tmp.replace(target)
            out.append(target)
    return out


def _duration(path: Path) -> float:
    from rdam.data.video import probe_video

    return float(probe_video(path).duration)


def preprocess_scaling(
    copies: int = 4,
    repeats: int = 1,
    worker_counts: tuple[int, ...] = (1, 2),
    num_frames: int = 16,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Video-seconds per wall-second of ``preprocess`` for each worker count (interleaved
    repeats, fresh cache each time). ``value`` = throughput(2 workers) / throughput(1 worker),
    goal >= 1.7."""
    from rdam.data.cache import PreprocessSettings
    from rdam.data.manifest import ClipRecord, Manifest
    from rdam.data.preprocess import preprocess, yunet_factory
    from rdam.data.spec import ClipSpec

    work_dir = work_dir or WORK_DIR / "preprocess"
    videos = distinct_copies(ekman6_videos(), copies, work_dir / "videos")
    manifest = Manifest([ClipRecord(str(v), None, "all") for v in videos], [])
    video_seconds = sum(_duration(v) for v in videos)
    # whole frames and face crops (YuNet), both 112 px, frames decoded at <= 640 px
    settings = PreprocessSettings(
        spec=ClipSpec(num_frames=num_frames, frame_size=112, stream="both", max_side=640)
    )

    def timed(manifest: Manifest, workers: int, cache: Path) -> tuple[Any, float]:
        shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        report = preprocess(
            manifest,
            settings,
            cache,
            workers=workers,
            progress=False,
            face_detector_factory=yunet_factory(),
        )
        wall = time.perf_counter() - start
        shutil.rmtree(cache, ignore_errors=True)
        return report, wall

    # fixed cost: the shortest clip alone (pool start-up, imports, detector loading)
    shortest = min(videos, key=_duration)
    one = Manifest([ClipRecord(str(shortest), None, "all")], [])
    fixed = {str(w): timed(one, w, work_dir / f"cache_one_w{w}")[1] for w in worker_counts}
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in worker_counts}
    for r in range(repeats):
        for workers in worker_counts:
            report, wall = timed(manifest, workers, work_dir / f"cache_w{workers}_r{r}")
            if report.failed:
                raise RuntimeError(f"preprocess failed: {report.format()}")
            runs[workers].append(
                {
                    "wall_s": wall,
                    "clips": report.done,
                    "video_s_per_s": video_seconds / wall,
                    "faces_found": len(videos) - len(report.no_face),
                }
            )
    rows = {}
    for workers, items in runs.items():
        s = summary([i["wall_s"] for i in items])
        rows[str(workers)] = {
            **s,
            "video_s_per_s": video_seconds / s["median_s"],
            "clips_per_s": len(videos) / s["median_s"],
            "runs": items,
        }
    lo, hi = str(min(worker_counts)), str(max(worker_counts))
    value = rows[hi]["video_s_per_s"] / rows[lo]["video_s_per_s"]
    return figure_result(
        4,
        "Preprocessing throughput (video-s / wall-s), scaling from 1 to 2 workers",
        ">= 1.7x with 2 workers",
        value,
        value >= 1.7,
        {
            "setting": {
                "clips": len(videos),
                "copies_per_video": copies,
                "video_seconds": round(video_seconds, 1),
                "preprocess": settings.to_dict(),
                "repeats": repeats,
            },
            "by_workers": rows,
            "one_clip_wall_s": fixed,
            "one_clip_note": "wall time of the shortest clip alone: start-up cost included in "
            "every run (worker processes, imports, YuNet loading)",
            "machine": machine_info(),
        },
        unit="x (2 workers / 1 worker)",
    )


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] == ["--quick"]:  # a smoke run: K=4, one worker count
        print(json.dumps(preprocess_scaling(copies=1, worker_counts=(1,), num_frames=4), indent=2))
    else:
        print(json.dumps(preprocess_scaling(copies=1), indent=2))
