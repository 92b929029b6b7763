"""YuNet at the tracking rate on the Ekman-6 samples: how small may tracking frames be decoded,
and what scores and sizes do real faces (and the lizard of ``disgust.mp4``) get?

    .venv/bin/python -m benchmarks.face_tracking [--rate 4] [--out benchmarks/results/face_tracking.json]

For every sample, the frames at the tracking times (``rate`` per second, segment centres) are
decoded at each candidate ``max_side`` and YuNet (score >= 0.6) runs on them. The boxes are put
in source pixels and compared with those found at ``max_side`` 640 (the clip spec's default, the
size the model's face crops come from): recall and precision of the faces at IoU >= 0.5, the
mean IoU of matched boxes, and the time per frame (decode + detect). The scores and sizes
(shorter side of the box, source pixels) of the faces at 640, and those of each track's 16
sampled frames under the shipped model's spec (``tracks``), are what the evidence rules of
:mod:`rdam.data.tracks` were chosen from; the shot cuts are the frame-histogram distances
between consecutive tracking frames (at 480) that :mod:`rdam.data.tracks` thresholds, within
each sample and from the last frame of one sample to the first of another.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

SIDES = (640, 480, 320, 240)
REFERENCE = 640


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values, float)
    return {
        "n": len(v),
        "min": round(float(v.min()), 3),
        "p10": round(float(np.percentile(v, 10)), 3),
        "median": round(float(np.median(v)), 3),
        "max": round(float(v.max()), 3),
    }


def _tracks(path: Path, detector) -> list[dict]:
    """The tracks of the default settings and, per track, its K = 16 sampled frames under the
    shipped model's spec: the scores and sizes the evidence rules see, and their verdict."""
    from rdam.checkpoint import load_bundle
    from rdam.data.person_clips import EvidenceRules, read_person_clips
    from rdam.inference import default_model_path

    spec = load_bundle(default_model_path()).spec
    result = read_person_clips(path, spec, detector, rules=EvidenceRules())
    rows = []
    for person in result.people:
        track, found = person.track, person.detected
        rows.append(
            {
                "id": track.id,
                "span_s": [round(track.start, 2), round(track.end, 2)],
                "detections": track.num_detections,
                "frames_detected_of_k": [int(found.sum()), len(found)],
                "scores": [round(float(v), 3) for v in person.boxes[found, 4]],
                "min_side_px": [round(float(min(b[2], b[3])), 1) for b in person.boxes[found]],
                "evidence": person.evidence or "ok",
            }
        )
    return rows


def run(rate: float = 4.0) -> dict:
    from benchmarks.common import ekman6_videos
    from rdam.data.faces import FaceDetector
    from rdam.data.sampling import segment_times
    from rdam.data.tracks import frame_signature, signature_distance
    from rdam.data.video import open_clip

    detector = FaceDetector(score_threshold=0.6)
    out: dict = {"rate": rate, "reference_max_side": REFERENCE, "videos": {}}
    ends: dict[str, tuple] = {}
    for path in ekman6_videos():
        with open_clip(path) as reader:
            info = reader.info
            n = max(1, round(info.duration * rate))
            times = segment_times(info.duration, n, np.full(n, 0.5))
            found: dict[int, list[np.ndarray]] = {}
            seconds: dict[int, float] = {}
            cut_distances: list[float] = []
            for side in SIDES:
                t0 = time.perf_counter()
                decoded = reader.read(times, max_side=side)
                per_frame = []
                scale = info.width / decoded.frames.shape[2]
                for frame in decoded.frames:
                    boxes = detector.detect(frame)
                    per_frame.append(
                        np.asarray(
                            [
                                (b.x * scale, b.y * scale, b.w * scale, b.h * scale, b.score)
                                for b in boxes
                            ],
                            np.float64,
                        ).reshape(-1, 5)
                    )
                seconds[side] = (time.perf_counter() - t0) / len(times)
                found[side] = per_frame
                if side == 480:  # the tracking size
                    sigs = [frame_signature(f) for f in decoded.frames]
                    ends[path.name] = (sigs[0], sigs[-1])
                    cut_distances = [signature_distance(a, b) for a, b in itertools.pairwise(sigs)]
        ref = found[REFERENCE]
        scores = [float(b[4]) for f in ref for b in f]
        sizes = [float(min(b[2], b[3])) for f in ref for b in f]
        entry: dict = {
            "duration_s": round(info.duration, 2),
            "size": [info.width, info.height],
            "tracking_frames": len(times),
            "frames_with_face_at_640": int(sum(len(f) > 0 for f in ref)),
            "faces_per_frame_at_640": _stats([len(f) for f in ref]),
            "scores_at_640": _stats(scores),
            "min_side_px_at_640": _stats(sizes),
            "histogram_distance_between_tracking_frames": _stats(cut_distances),
            "sides": {},
        }
        for side in SIDES:
            matched = ious = 0
            ious_l: list[float] = []
            n_ref = sum(len(f) for f in ref)
            n_got = sum(len(f) for f in found[side])
            for r, g in zip(ref, found[side]):
                used: set[int] = set()
                for rb in r:
                    best, best_j = 0.0, -1
                    for j, gb in enumerate(g):
                        if j in used:
                            continue
                        v = _iou(rb, gb)
                        if v > best:
                            best, best_j = v, j
                    if best >= 0.5:
                        matched += 1
                        used.add(best_j)
                        ious_l.append(best)
            ious = float(np.mean(ious_l)) if ious_l else None
            entry["sides"][str(side)] = {
                "decoded": list(
                    __import__("rdam.data.video", fromlist=["fit_size"]).fit_size(
                        info.width, info.height, side
                    )
                ),
                "faces": n_got,
                "recall_vs_640": round(matched / n_ref, 3) if n_ref else None,
                "precision_vs_640": round(matched / n_got, 3) if n_got else None,
                "mean_iou_vs_640": round(ious, 3) if ious is not None else None,
                "ms_per_frame": round(1000 * seconds[side], 2),
            }
        entry["tracks"] = _tracks(path, detector)
        out["videos"][path.name] = entry
        print(path.name, json.dumps(entry))
    # a cut from the end of one sample to the start of another
    out["histogram_distance_across_samples"] = _stats(
        [signature_distance(ends[a][1], ends[b][0]) for a in ends for b in ends if a != b]
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.rate)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
