"""Run the benchmark figures and print their results as JSON.

    .venv/bin/python -m benchmarks.run_all --quick                 # small settings, minutes
    .venv/bin/python -m benchmarks.run_all --only 1,3 --out r.json  # some figures, full settings

Full settings are the ones quoted in ``docs/benchmarks.md``. Figure 8 (accuracy) trains 12 runs
in full mode (hours on 2 CPU cores, resumable: finished runs are read from
``benchmarks/results/accuracy_runs.json``); in quick mode it only summarises the runs already in
that file (or says there are none). A figure that fails is reported with its error and the
others still run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/run_all.py`, not `-m benchmarks.run_all`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, machine_info, write_json


def figure_1(quick: bool) -> dict[str, Any]:
    from benchmarks.model_speed import attention_overhead

    if quick:
        return attention_overhead("resnet18", 112, 8, repeats=3)
    return attention_overhead("resnet50", 224, 8, repeats=5)


def _trained_face_model() -> str | None:
    """The shipped default model, else the default training run's model file, else None."""
    from benchmarks.common import REPO_ROOT

    for candidate in (
        REPO_ROOT / "rdam" / "assets" / "default_model.safetensors",
        REPO_ROOT / "runs" / "fer2013_face_default" / "model.safetensors",
    ):
        if candidate.is_file():
            return str(candidate)
    return None


def figure_2(quick: bool) -> dict[str, Any]:
    from benchmarks.model_speed import machine_limit

    if quick:
        return machine_limit("resnet10t", 48, 16, repeats=2, compile_model=False)
    result = machine_limit(
        "resnet10t", 48, 16, repeats=5, compile_model=True, model_file=_trained_face_model()
    )
    frame_model = machine_limit("resnet18", 112, 8, repeats=3, compile_model=False)
    result["details"]["frame_stream_resnet18_112"] = frame_model["details"]
    result["details"]["frame_stream_resnet18_112"]["value"] = frame_model["value"]
    return result


def figure_3(quick: bool) -> dict[str, Any]:
    from benchmarks.common import WORK_DIR
    from benchmarks.decoding import sparse_vs_full

    result = sparse_vs_full(repeats=1 if quick else 3)
    if not quick:
        from benchmarks.memory import generate_video

        video = generate_video(WORK_DIR / "memory" / "synthetic_1080p_60s.mp4", 60.0)
        extra = sparse_vs_full(repeats=1, videos=[video])
        # a long-GOP 1080p video, for contrast; only the Ekman-6 videos count for the goal
        result["details"]["synthetic_long_gop"] = extra["details"]["videos"]
    return result


def figure_4(quick: bool) -> dict[str, Any]:
    from benchmarks.preprocessing import preprocess_scaling

    return preprocess_scaling(copies=1 if quick else 10, repeats=1 if quick else 2)


def figure_5(quick: bool) -> dict[str, Any]:
    from benchmarks.training_input import data_wait_share

    if quick:
        return data_wait_share(train_images=512, batches=5)
    return data_wait_share(train_images=4096, batches=40)


def figure_6(quick: bool) -> dict[str, Any]:
    from benchmarks.memory import predict_memory

    return predict_memory((5.0, 30.0) if quick else (60.0, 600.0))


def figure_7(quick: bool) -> dict[str, Any]:
    from benchmarks.versus_fer import versus_fer

    return versus_fer(repeats=1 if quick else 2, fer_every_frame=not quick, accuracy=True)


def figure_8(quick: bool) -> dict[str, Any]:
    from benchmarks.accuracy import FIGURE_TITLE, HEADS, accuracy_figure, figure_from_runs

    runs_file = RESULTS_DIR / "accuracy_runs.json"
    if not quick:
        return accuracy_figure(5000, 3, (0, 1, 2), HEADS, runs_file, threads=1)
    state = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    runs = state.get("runs", [])
    return figure_from_runs(
        runs,
        {"recipe": state.get("recipe"), "runs_finished": len(runs)},
        title=f"{FIGURE_TITLE} (summary of finished runs)",
    )


def figure_9(quick: bool) -> dict[str, Any]:
    from benchmarks.training_throughput import training_throughput

    if quick:
        return training_throughput(steps=5, warmup=3, rounds=1, numerics_steps=0)
    return training_throughput(steps=40, warmup=10, rounds=4, numerics_steps=300)


FIGURES: dict[int, Callable[[bool], dict[str, Any]]] = {
    1: figure_1,
    2: figure_2,
    3: figure_3,
    4: figure_4,
    5: figure_5,
    6: figure_6,
    7: figure_7,
    8: figure_8,
    9: figure_9,
}


def run(figures: list[int], quick: bool) -> list[dict[str, Any]]:
    """Run the figures in order; a failing figure yields ``{"figure": n, "error": ...}``."""
    results = []
    for n in figures:
        start = time.perf_counter()
        try:
            result = FIGURES[n](quick)
        except Exception as exc:  # one broken figure must not hide the others
            result = {
                "figure": n,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5),
            }
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["quick"] = quick
        print(
            f"figure {n}: value={result.get('value')} met={result.get('met')} "
            f"({result['seconds']} s){' ERROR ' + result['error'] if 'error' in result else ''}",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run rdam's benchmark figures (JSON output).")
    parser.add_argument("--quick", action="store_true", help="small settings (a few minutes)")
    parser.add_argument("--only", help="comma-separated figure numbers, e.g. 1,3")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    figures = sorted(FIGURES) if not args.only else [int(n) for n in args.only.split(",")]
    unknown = [n for n in figures if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figures {unknown}; valid: {sorted(FIGURES)}")
    if not args.quick and 8 in figures and not args.only:
        print("note: full figure 8 trains 12 runs (hours); use --only to skip it", file=sys.stderr)
    output = {
        "command": " ".join(["python -m benchmarks.run_all", *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "results": run(figures, args.quick),
    }
    text = json.dumps(output, indent=2, default=str)
    print(text)
    if args.out:
        write_json(output, args.out)
    return 1 if any("error" in r for r in output["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
