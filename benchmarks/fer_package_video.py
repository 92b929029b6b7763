"""Time the ``fer`` package's video analysis (``fer.classes.Video.analyze``) per video.

Runs in the ``fer`` virtualenv (``/work/fervenv/bin/python``); writes JSON for
:mod:`benchmarks.versus_fer`. The detector is ``FER(mtcnn=False)``: OpenCV's Haar cascade finds
faces, each face is cut square with a 10 px margin, resized to 64x64 grey and classified by the
quantised TFLite mini-Xception model (fer's defaults). Writing is switched off
(``save_frames``, ``save_video``, ``annotate_frames``, ``zip_images`` all False), which only
makes fer faster than its README default. Two ways of choosing frames:

- ``every_frame``: ``frequency=1``, every decoded frame is analysed (fer's default);
- ``k_frames``: ``frequency = frame_count // K`` and ``max_results = K``: fer seeks to every
  ``frequency``-th frame (``cv2.CAP_PROP_POS_FRAMES``) and analyses K frames, like rdam's K.

    /work/fervenv/bin/python benchmarks/fer_package_video.py --frames 16 --out /tmp/fer_video.json \
        VIDEO [VIDEO ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path


def analyze(detector: object, path: Path, variant: str, k: int, outdir: str) -> dict:
    """One timed ``Video.analyze`` run; returns seconds, frames analysed and the mean scores."""
    import cv2
    from fer.classes import Video

    cap = cv2.VideoCapture(str(path))
    frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    kwargs = {
        "display": False,
        "output": "pandas",
        "save_frames": False,
        "save_video": False,
        "annotate_frames": False,
        "zip_images": False,
    }
    if variant == "k_frames":
        kwargs.update(frequency=max(1, frame_count // k), max_results=k)
    start = time.perf_counter()
    video = Video(str(path), outdir=outdir)
    df = video.analyze(detector, **kwargs)
    seconds = time.perf_counter() - start
    frames = int(video.frameCount)
    # first face only; with 10+ faces fer's filter also keeps "angry10" (as "angry1")
    labels = set(detector._get_labels().values())
    emotions = [c for c in df.columns if c in labels] if len(df) else []
    mean = {c: float(df[c].mean()) for c in emotions}
    return {
        "seconds": seconds,
        "frames_in_video": frame_count,
        "frames_analysed": frames if variant == "every_frame" else min(k, frames),
        "frames_with_face": len(df),
        "top_emotion": max(mean, key=mean.get) if mean else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=16, help="K for the k_frames variant")
    parser.add_argument("--variants", nargs="+", default=["k_frames", "every_frame"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.getLogger("fer").setLevel(logging.WARNING)

    start = time.perf_counter()
    import fer
    from fer.fer import FER

    detector = FER(mtcnn=False)
    init_s = time.perf_counter() - start
    runs: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as outdir:
        for _ in range(args.repeats):
            for path in args.videos:
                for variant in args.variants:
                    row = analyze(detector, path, variant, args.frames, outdir)
                    runs.setdefault(path.name, {}).setdefault(variant, []).append(row)
    result = {"fer_version": fer.__version__, "init_s": init_s, "videos": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
