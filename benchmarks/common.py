"""Helpers shared by the benchmark figures: where the data is, timing, machine facts, JSON.

Every figure returns a plain dict (JSON-able) with at least ``figure``, ``title``, ``goal``,
``value``, ``met`` and ``details``; :func:`figure_result` builds it. Timings compare variants
*inside one process, interleaved* (A, B, A, B, ...) and report medians, so that the load of this
shared machine hits every variant alike; absolute seconds stay noisy and are reported as such.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
WORK_DIR = Path(os.environ.get("RDAM_BENCH_WORK", "/tmp/rdam_bench"))
"""Scratch space for generated videos, caches and run folders (never inside the repo)."""

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def shared_data_path() -> Path:
    """``$RDAM_SHARED_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("RDAM_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def ekman6_videos() -> list[Path]:
    """The Ekman-6 sample videos, sorted by name.

    Raises:
        FileNotFoundError: the shared data is absent (set ``RDAM_SHARED_DATA``).
    """
    folder = shared_data_path() / "ekman6_samples"
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(
            f"no Ekman-6 sample videos in {folder}; set RDAM_SHARED_DATA to the shared data folder"
        )
    return videos


def fer2013_root() -> Path:
    """The FER2013 folder (``train/<class>/*.jpg``, ``val/<class>/*.jpg``)."""
    root = shared_data_path() / "fer2013"
    if not (root / "val").is_dir():
        raise FileNotFoundError(
            f"FER2013 not found at {root}; set RDAM_SHARED_DATA to the shared data folder"
        )
    return root


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the shared machine was)."""
    return [round(v, 2) for v in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """CPU, core count, library versions and the git commit: what a figure was measured on."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "git_commit": commit,
        "load_average": load_average(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def interleaved_times(
    variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of each variant, measured round-robin so load drifts hit all of them.

    Args:
        variants: name -> zero-argument callable (one measured unit of work).
        repeats: measured calls per variant.
        warmup: unmeasured calls per variant first (allocator, caches, lazy init).

    Returns:
        name -> ``repeats`` durations in seconds.
    """
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: Sequence[float]) -> dict[str, float]:
    """Median, min and spread (max/min) of repeated timings, seconds."""
    times = list(times)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
    }


def figure_result(
    figure: int,
    title: str,
    goal: str,
    value: float | None,
    met: bool | None,
    details: dict[str, Any],
    unit: str = "",
) -> dict[str, Any]:
    """The dict every figure returns (and run_all prints as JSON)."""
    return {
        "figure": figure,
        "title": title,
        "goal": goal,
        "value": None if value is None else round(float(value), 4),
        "unit": unit,
        "met": met,
        "details": details,
    }


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
