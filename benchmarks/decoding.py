"""Figure 3: sparse decoding (seek to the keyframe before each sampled time) vs decoding every
frame, for K segment-centre frames of each Ekman-6 sample video.

The times are those :func:`rdam.data.clips.read_clip` samples (``sample_times``, segment centres)
and the sparse path is the reader it opens (:func:`rdam.data.video.open_clip`). Both paths return
the same frames (asserted pixel for pixel, with the same timestamps); the figure is the ratio of
their wall times. Each timing includes opening and probing the file, as ``rdam predict`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    ekman6_videos,
    figure_result,
    interleaved_times,
    machine_info,
    summary,
)

LONG_VIDEO_S = 20.0
"""Videos at least this long count as "the longer videos" of the goal."""


def gop_bound(path: Path, timestamps: np.ndarray) -> dict[str, Any]:
    """How many frames a seeking reader must decode at least, from the packet index alone.

    Each wanted frame needs every frame from the keyframe before it up to itself (in
    presentation order; B-frames make the true count slightly larger). Frames shared by two
    wanted times count once. Returns that count, the video's frame count, the best possible
    speed-up of sparse over full decoding (decode work only) and the mean GOP length.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        start = stream.start_time or 0
        has_b = bool(stream.codec_context.has_b_frames)
        packets = sorted(
            ((p.pts - start) * tb, bool(p.is_keyframe))
            for p in container.demux(stream)
            if p.pts is not None and p.size > 0
        )
    times = np.array([t for t, _ in packets])
    keys = np.flatnonzero([k for _, k in packets])
    needed: set[int] = set()
    for t in timestamps:
        target = max(0, int(np.searchsorted(times, t, side="right")) - 1)
        key = keys[keys <= target]
        first = int(key[-1]) if len(key) else 0
        needed.update(range(first, target + 1))
    return {
        "frames": len(times),
        "min_decoded_frames": len(needed),
        "bound_speedup": len(times) / max(1, len(needed)),
        "mean_gop_frames": len(times) / max(1, len(keys)),
        "b_frames": has_b,
    }


def sparse_vs_full(
    num_frames: int = 16,
    repeats: int = 3,
    max_side: int | None = 640,
    videos: list[Path] | None = None,
) -> dict[str, Any]:
    """Time sparse vs full decoding of ``num_frames`` centre-sampled frames per video.

    ``value`` = the smallest speed-up among videos of at least :data:`LONG_VIDEO_S` seconds
    (goal >= 5).

    Raises:
        AssertionError: the two paths returned different frames or timestamps.
    """
    from rdam.data.clips import sample_times
    from rdam.data.video import open_clip, read_frames_full_decode

    rows = {}
    for path in videos or ekman6_videos():
        with open_clip(path) as reader:
            info = reader.info
            keyframes = len(reader._keytimes)
        ts = sample_times(info.duration, num_frames, info.num_frames, "center")[0]
        k = len(ts)

        def sparse(path: Path = path, ts: np.ndarray = ts) -> Any:
            with open_clip(path) as reader:
                return reader.read(ts, max_side=max_side)

        def full(path: Path = path, ts: np.ndarray = ts) -> Any:
            return read_frames_full_decode(path, ts, max_side=max_side)

        def keyframe_read(path: Path = path, ts: np.ndarray = ts) -> Any:
            with open_clip(path) as reader:
                return reader.read_keyframes(ts, max_side=max_side)

        a, b, c = sparse(), full(), keyframe_read()
        assert np.array_equal(a.frames, b.frames), f"{path}: sparse and full frames differ"
        assert np.array_equal(a.timestamps, b.timestamps), f"{path}: timestamps differ"
        exact_at_keys = read_frames_full_decode(path, c.timestamps, max_side=max_side)
        assert np.array_equal(c.frames, exact_at_keys.frames), f"{path}: keyframes differ"
        times = interleaved_times(
            {"sparse": sparse, "full": full, "keyframes": keyframe_read}, repeats=repeats, warmup=0
        )
        s, f = summary(times["sparse"]), summary(times["full"])
        kf = summary(times["keyframes"])
        rows[path.name] = {
            **gop_bound(path, ts),
            "duration_s": round(info.duration, 2),
            "frames_in_video": info.num_frames,
            "keyframes": keyframes,
            "size": f"{info.width}x{info.height}",
            "sampled_frames": k,
            "identical_frames": True,
            "sparse_s": s["median_s"],
            "full_s": f["median_s"],
            "speedup": f["median_s"] / s["median_s"],
            "keyframes_s": kf["median_s"],
            "keyframes_speedup": f["median_s"] / kf["median_s"],
            "keyframes_distinct": len(set(c.timestamps.tolist())),
            "keyframes_mean_shift_s": float(np.mean(np.abs(c.timestamps - ts))),
        }
    long_rows = {n: r for n, r in rows.items() if r["duration_s"] >= LONG_VIDEO_S}
    value = min(r["speedup"] for r in long_rows.values()) if long_rows else None
    return figure_result(
        3,
        f"Sparse vs full decoding, K={num_frames} centre frames, Ekman-6 samples",
        f">= 5x on the longer videos (>= {LONG_VIDEO_S:g} s)",
        value,
        None if value is None else value >= 5.0,
        {
            "setting": {"num_frames": num_frames, "max_side": max_side, "repeats": repeats},
            "videos": rows,
            "long_videos": sorted(long_rows),
            "bound_note": "bound_speedup = frames / min_decoded_frames: the most a seeking "
            "reader can gain when the wanted frames must be exact (decode work only)",
            "total_speedup": sum(r["full_s"] for r in rows.values())
            / sum(r["sparse_s"] for r in rows.values()),
            "keyframes_note": "approximate sampling (ClipReader.read_keyframes, `--keyframes`): "
            "each time moved to the nearest keyframe; its frames are asserted equal to exact "
            "reads at the keyframes' times",
            "keyframes_speedup_min_long": min(
                (r["keyframes_speedup"] for r in long_rows.values()), default=None
            ),
            "machine": machine_info(),
        },
        unit="x (min over videos >= 20 s)",
    )


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Sparse vs full decoding (figure 3).")
    parser.add_argument("videos", nargs="*", type=Path, help="default: the Ekman-6 samples")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = sparse_vs_full(args.frames, args.repeats, videos=args.videos or None)
    print(json.dumps(result, indent=2))
    if args.out:
        from benchmarks.common import write_json

        write_json(result, args.out)


if __name__ == "__main__":
    main()
