"""Figure 6: peak memory of ``rdam predict`` on a 1-minute and a 10-minute 1080p video.

The videos are generated once with PyAV (H.264, ``ultrafast`` preset, 1 Mbit/s, 25 fps, a
scrolling pattern with a moving block) and cached under the benchmark work folder, never in the
repository. The model file is an untrained ResNet-50 frame-stream RDAM (K=16, 224 px, written by
:func:`rdam.checkpoint.save_model` with its clip spec). ``rdam predict`` runs as a subprocess;
its memory is the peak, over samples every 20 ms, of the summed resident set size (``VmRSS``)
of the whole process tree, cross-checked with ``/usr/bin/time -v`` (largest single process)
when available. The forward-pass levers time :class:`rdam.runtime.TorchRunner` in a fresh
process each.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, WORK_DIR, figure_result, machine_info

GOAL_BYTES = 1.5e9


def generate_video(path: Path, seconds: float, width: int = 1920, height: int = 1080) -> Path:
    """Write a synthetic H.264 video (25 fps, ultrafast, 1 Mbit/s), atomically; reused if
    present."""
    import av

    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    fps = 25
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 1_000_000
        stream.options = {"preset": "ultrafast"}
        base = (np.add.outer(np.arange(height) // 4, np.arange(width) // 4) % 256).astype(np.uint8)
        chroma = np.full((height // 2, width), 128, np.uint8)
        for i in range(round(seconds * fps)):
            luma = np.roll(base, 8 * i, axis=1)
            x = (40 * i) % max(1, width - height // 4)
            luma[height // 3 : height // 3 + height // 4, x : x + height // 4] = 235
            frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def untrained_model_file(name: str, config: Any, class_names: list[str], spec: Any) -> Path:
    """Write an untrained model file (:func:`rdam.checkpoint.save_model`, clip spec ``spec``)
    once per model layout and spec: the file name carries a hash of the state dict's names and
    shapes and of the spec, so a change of the model code or of the spec gives a new file."""
    import hashlib
    import json

    import torch

    from rdam.checkpoint import save_model
    from rdam.models import build_model

    torch.manual_seed(0)
    model = build_model(config)
    layout = ",".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(model.state_dict().items()))
    layout += json.dumps(spec.to_dict(), sort_keys=True)
    digest = hashlib.sha256(layout.encode()).hexdigest()[:10]
    path = WORK_DIR / "models" / f"{name}_{digest}.safetensors"
    if not path.is_file():
        save_model(path, model, config, class_names, spec)
    return path


def resnet50_model_file(num_frames: int = 16) -> Path:
    """An untrained ResNet-50 frame-stream model file (K frames at 224 px)."""
    from rdam.data.layouts import EKMAN6_CLASSES
    from rdam.data.spec import ClipSpec
    from rdam.models import ModelConfig

    config = ModelConfig(backbone="resnet50", num_classes=len(EKMAN6_CLASSES))
    spec = ClipSpec(num_frames=num_frames, frame_size=224, stream="frames")
    return untrained_model_file(
        f"resnet50_frames_k{num_frames}_untrained", config, list(EKMAN6_CLASSES), spec
    )


def _tree_rss(root: int) -> int:
    """Summed VmRSS (bytes) of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def peak_rss(cmd: list[str], interval: float = 0.02) -> dict[str, Any]:
    """Run ``cmd``; peak summed RSS of its process tree and, with ``/usr/bin/time -v``, the
    largest single process's maximum RSS."""
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").is_file() else None)
    full = [timer, "-v", *cmd] if timer else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    done.set()
    thread.join()
    wall = time.perf_counter() - start
    max_single = None
    for line in stderr.splitlines():
        if "Maximum resident set size" in line:
            max_single = int(line.split(":")[1]) * 1024
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr[-3000:]}")
    return {
        "peak_tree_rss_bytes": peak[0],
        "max_single_process_rss_bytes": max_single,
        "wall_s": wall,
        "stdout": stdout,
    }


def predict_memory(
    durations: tuple[float, float] = (60.0, 600.0),
    work_dir: Path | None = None,
    lever_chunks: tuple[int, ...] = (16, 4),
) -> dict[str, Any]:
    """Peak RSS of ``rdam predict`` (ResNet-50, frames stream) on generated 1080p videos.

    ``value`` = peak(long) / peak(short); goal: within 10 % and both below 1.5 GB.
    """
    import json

    work_dir = work_dir or WORK_DIR / "memory"
    model = resnet50_model_file()
    rows = {}
    runs = [(s, ()) for s in durations] + [(durations[-1], ("--precision", "fp32"))]
    for seconds, extra in runs:
        video = generate_video(work_dir / f"synthetic_1080p_{int(seconds)}s.mp4", seconds)
        key = f"{int(seconds)}s" + ("_fp32" if extra else "")
        out = work_dir / f"predict_{key}.json"
        cmd = [
            sys.executable,
            "-m",
            "rdam.cli",
            "predict",
            str(video),
            "--checkpoint",
            str(model),
            "--output",
            str(out),
            *extra,
        ]
        result = peak_rss(cmd)
        prediction = json.loads(out.read_text())[0]
        rows[key] = {
            "video": str(video),
            "video_mb": video.stat().st_size / 1e6,
            "peak_tree_rss_mb": result["peak_tree_rss_bytes"] / 1e6,
            "max_single_process_rss_mb": None
            if result["max_single_process_rss_bytes"] is None
            else result["max_single_process_rss_bytes"] / 1e6,
            "wall_s": result["wall_s"],
            "label": prediction.get("label"),
            "error": prediction.get("error"),
            "timing": prediction.get("timing"),
        }
    short, long = (rows[f"{int(s)}s"] for s in durations)
    ratio = long["peak_tree_rss_mb"] / short["peak_tree_rss_mb"]
    below = all(r["peak_tree_rss_mb"] * 1e6 < GOAL_BYTES for r in (short, long))
    return figure_result(
        6,
        "Peak RSS of `rdam predict` (ResNet-50 frames stream, K=16): long vs short 1080p video",
        "within 10% (ratio <= 1.10) and below 1.5 GB",
        ratio,
        ratio <= 1.10 and below,
        {
            "setting": {
                "model": str(model),
                "command": "python -m rdam.cli predict VIDEO --checkpoint MODEL --output OUT "
                "(defaults: precision auto, backbone chunks of 4x224x224 pixels); the "
                "`_fp32` row adds --precision fp32",
                "videos": "1920x1080, 25 fps, H.264 ultrafast 1 Mbit/s, generated",
                "cwd": str(REPO_ROOT),
            },
            "runs": rows,
            "all_below_1_5_gb": below,
            "forward_pass_levers": memory_levers(lever_chunks),
            "machine": machine_info(),
        },
        unit="x (peak RSS long / short)",
    )


def _vm_kb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def forward_peak(chunk: int, bf16: bool, num_frames: int = 16) -> dict[str, float]:
    """In this process: peak RSS (MB) of one call of :class:`rdam.runtime.TorchRunner` (the
    runner ``rdam predict`` uses) on the ResNet-50 model over one clip of ``num_frames`` uint8
    frames at 224 px, with the backbone run ``chunk`` frames at a time
    (``max_backbone_pixels``), precision fp32 or bf16 (with the runner's default layout for
    it: channels_last under bf16)."""
    import numpy as np

    from rdam.checkpoint import load_model
    from rdam.runtime import TorchRunner

    model = load_model(resnet50_model_file(num_frames)).model
    runner = TorchRunner(
        model, precision="bf16" if bf16 else "fp32", max_backbone_pixels=chunk * 224 * 224
    )
    rng = np.random.default_rng(0)
    batch = {
        "frames": rng.integers(0, 256, (1, num_frames, 3, 224, 224), dtype=np.uint8),
        "mask": np.ones((1, num_frames), bool),
    }
    before = _vm_kb("VmRSS")
    runner(batch)
    return {
        "rss_before_forward_mb": before,
        "peak_mb": _vm_kb("VmHWM"),
        "precision": runner.precision,
        "channels_last": runner.channels_last,
    }


def memory_levers(chunks: tuple[int, ...] = (16, 4), repeats: int = 1) -> dict[str, Any]:
    """Peak RSS of the forward pass for each backbone chunk size, fp32 and bf16, each in a
    fresh process (``python -m benchmarks.memory --forward-peak CHUNK PRECISION``)."""
    import json

    out = {}
    for chunk in chunks:
        for precision in ("fp32", "bf16"):
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.memory",
                "--forward-peak",
                str(chunk),
                precision,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
            out[f"chunk{chunk}_{precision}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    import json

    if len(sys.argv) == 4 and sys.argv[1] == "--forward-peak":
        print(json.dumps(forward_peak(int(sys.argv[2]), sys.argv[3] == "bf16")))
    elif sys.argv[1:] == ["--quick"]:  # a smoke run: 2 s and 4 s videos, one chunk size
        print(json.dumps(predict_memory((2.0, 4.0), lever_chunks=(4,)), indent=2))
    else:
        print(json.dumps(predict_memory((10.0, 60.0)), indent=2))
