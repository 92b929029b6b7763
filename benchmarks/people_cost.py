"""Per-person analysis (``rdam predict --people``) against single-face ``rdam predict``, per
Ekman-6 sample video, with the shipped model.

    nice -n 10 .venv/bin/python -m benchmarks.people_cost [--repeats 3]

Goal (issue "Per-person analysis"): per-person analysis on a one-person video costs <= 1.3x
today's single-face predict. Also reports the cost per extra person (model time per track and
the tracking pass). Timings are medians over ``repeats`` interleaved rounds.
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


def run(repeats: int = 3) -> dict:
    import rdam
    from rdam.inference.people import analyze_people

    predictor = rdam.load(evidence=None)  # the same work either way; verdicts do not matter here
    videos = sorted((SHARED / "ekman6_samples").glob("*.mp4"))
    rows = {}
    for video in videos:
        single, people = [], []
        result = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            predictor.predict_many([video])
            single.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = analyze_people(predictor, video)
            people.append(time.perf_counter() - t0)
        s, p = statistics.median(single), statistics.median(people)
        n = max(1, len(result.people))
        rows[video.name] = {
            "single_face_s": s,
            "people_s": p,
            "ratio": p / s,
            "people": len(result.people),
            "tracks_and_crops_s": result.timing["tracks_and_crops"],
            "model_s": result.timing["model"],
            "model_per_person_s": result.timing["model"] / n,
        }
    ratios = [r["ratio"] for r in rows.values()]
    one_person = [r["ratio"] for r in rows.values() if r["people"] <= 1]
    return {
        "figure": "people_cost",
        "goal": "per-person analysis <= 1.3x single-face predict on a one-person video",
        "median_ratio": statistics.median(ratios),
        "one_person_ratios": one_person,
        "met": bool(one_person) and max(one_person) <= 1.3,
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
