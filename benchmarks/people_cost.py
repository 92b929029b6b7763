"""Per-person analysis (``rdam predict --people``) against single-face ``rdam predict``, per
Ekman-6 sample video, with the shipped model.

    nice -n 10 .venv/bin/python -m benchmarks.people_cost [--repeats 3]

Goal (issue "Per-person analysis"): per-person analysis on a one-person video costs <= 1.3x
today's single-face predict. Also reports the cost per extra person (model time per track and
the tracking pass), for both face searches (``TrackerConfig.search``: ``adaptive``, the
default, and ``dense``), with the frames each searched and the people each found. Timings are
medians over ``repeats`` interleaved rounds. Single-face predict is timed twice: as it is
(decoding and face detection side by side, ``rdam.data.face_search``) and as it was before that
(everything decoded, then detected: ``single_face_sequential_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks.common import shared_data_path, write_json

SHARED = shared_data_path()


def _people(result) -> list[dict]:
    return [
        {"person": p.person, "start": round(p.start, 2), "end": round(p.end, 2), "label": p.label}
        for p in result.people
    ]


def run(repeats: int = 3) -> dict:
    import rdam
    from rdam.data import face_search
    from rdam.data.tracks import TrackerConfig
    from rdam.inference.people import analyze_people

    overlap_chunk = face_search.DEFAULT_CHUNK
    predictor = rdam.load(evidence=None)  # the same work either way; verdicts do not matter here
    searches = {mode: TrackerConfig(search=mode) for mode in ("adaptive", "dense")}
    videos = sorted((SHARED / "ekman6_samples").glob("*.mp4"))
    rows = {}
    for video in videos:
        single: list[float] = []
        sequential: list[float] = []
        times: dict[str, list[float]] = {mode: [] for mode in searches}
        results = {}
        for _ in range(repeats):
            t0 = time.perf_counter()
            predictor.predict_many([video])
            single.append(time.perf_counter() - t0)
            # the single-face predict of before the overlap: decode everything, then detect
            face_search.DEFAULT_CHUNK = 0
            try:
                t0 = time.perf_counter()
                predictor.predict_many([video])
                sequential.append(time.perf_counter() - t0)
            finally:
                face_search.DEFAULT_CHUNK = overlap_chunk
            for mode, tracker in searches.items():
                t0 = time.perf_counter()
                results[mode] = analyze_people(predictor, video, tracker)
                times[mode].append(time.perf_counter() - t0)
        s = statistics.median(single)
        seq = statistics.median(sequential)
        row: dict = {"single_face_s": s, "single_face_sequential_s": seq}
        for mode, result in results.items():
            p = statistics.median(times[mode])
            n = max(1, len(result.people))
            row[mode] = {
                "people_s": p,
                "ratio": p / s,
                "ratio_vs_sequential_single": p / seq,
                "people": len(result.people),
                "frames_searched": result.frames_searched,
                "tracks_and_crops_s": result.timing["tracks_and_crops"],
                "model_s": result.timing["model"],
                "model_per_person_s": result.timing["model"] / n,
                "found": _people(result),
            }
        rows[video.name] = row
    summary = {}
    for mode in searches:
        ratios = [r[mode]["ratio"] for r in rows.values()]
        one = [r[mode]["ratio"] for r in rows.values() if r[mode]["people"] <= 1]
        one_seq = [
            r[mode]["ratio_vs_sequential_single"] for r in rows.values() if r[mode]["people"] <= 1
        ]
        summary[mode] = {
            "median_ratio": statistics.median(ratios),
            "one_person_ratios": one,
            "one_person_ratios_vs_sequential_single": one_seq,
            "met": bool(one) and max(one) <= 1.3,
        }
    return {
        "figure": "people_cost",
        "goal": "per-person analysis <= 1.3x single-face predict on a one-person video",
        "summary": summary,
        "met": summary["adaptive"]["met"],
        "videos": rows,
        "load": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/people_cost.json"))
    args = parser.parse_args()
    result = run(args.repeats)
    write_json(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
