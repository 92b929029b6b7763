"""Smoke test of the benchmark scripts: they import, and the cheapest figures run at minimal
size and return well-formed results whose numbers mean what they say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import run_all
from benchmarks.common import figure_result, interleaved_times
from benchmarks.decoding import gop_bound, sparse_vs_full
from benchmarks.model_speed import (
    _category,
    attention_overhead,
    build_bench_model,
    calibrate_batchnorm,
    clip_input,
    count_flops,
    runner_logits,
    torch_lever,
    torch_runner,
)


def test_every_figure_is_registered() -> None:
    assert sorted(run_all.FIGURES) == list(range(1, 10))


def test_attention_overhead_tiny() -> None:
    result = attention_overhead("resnet18", size=32, frames=2, repeats=1)
    json.dumps(result)  # JSON-able
    assert result["figure"] == 1
    details = result["details"]
    # the attention heads add a little work on top of the same backbone, never less
    assert details["flops"]["rdam"] > details["flops"]["average"]
    assert 1.0 < details["flop_ratio"] < 1.05
    headline = details["by_threads"][str(details["setting"]["headline_threads"])]
    assert result["value"] == pytest.approx(headline["ratio_of_min"], abs=1e-4)
    assert result["met"] == (result["value"] <= 1.05)
    # the heads timed alone: the attention head costs more than a mean, so the estimate > 1
    assert headline["head_estimate"] > 1.0


def test_calibrated_model_has_live_residual_branches_and_levers_agree() -> None:
    x = clip_input(1, 2, 32)
    model = calibrate_batchnorm(build_bench_model("resnet18"), x).eval()
    last_bns = [m.bn2.weight for m in model.modules() if hasattr(m, "bn2")]
    assert all(w.abs().min() >= 0.5 for w in last_bns)  # zero-init undone
    assert count_flops(model, x) > 0
    # the levers time the product's runner: fp32 NHWC and bf16 agree with plain fp32
    ref = runner_logits(torch_runner(model, "fp32"), x)
    fp32 = torch_lever("cl", model, threads=1, channels_last=True)
    assert fp32.dtype == "fp32" and np.abs(fp32.fn(x) - ref).max() < 1e-4
    bf16 = torch_lever("bf16", model, threads=1, precision="bf16")
    assert bf16.dtype == "bf16" and np.abs(bf16.fn(x) - ref).max() < 0.5


def test_op_categories() -> None:
    assert _category("aten::mkldnn_convolution") == "convolution"
    assert _category("aten::native_batch_norm") == "batch_norm"
    assert _category("aten::addmm") == "matmul"
    assert _category("Conv") == "convolution"


def test_interleaved_times_and_result_shape() -> None:
    calls = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # one warm-up each, then round-robin
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}
    r = figure_result(9, "t", "g", 1.23456, True, {})
    assert r["value"] == 1.2346 and r["met"] is True


def test_sparse_decoding_one_real_video(ekman6_dir) -> None:
    video = ekman6_dir / "fear.mp4"
    result = sparse_vs_full(num_frames=4, repeats=1, videos=[video])
    row = result["details"]["videos"]["fear.mp4"]
    assert row["identical_frames"] is True
    assert row["sampled_frames"] == 4
    # the index bound: 4 frames can never need more decoding than the whole video
    bound = gop_bound(video, np.array([1.0, 3.0, 5.0, 7.0]))
    assert 4 <= bound["min_decoded_frames"] <= bound["frames"]
    assert bound["bound_speedup"] >= 1.0


def test_run_all_runs_as_a_script_path() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout


@pytest.mark.shared_data
def test_model_candidates_start_from_the_shipped_layout(
    ekman6_dir: Path,
) -> None:  # skipped without the videos
    """Figure 14's first candidate is the shipped model's layout (the same tensors and spec),
    so its ratios are against what ships today."""
    from benchmarks.model_candidates import candidate_file, model_candidates
    from rdam.checkpoint import load_bundle
    from rdam.inference import default_model_path

    shipped = load_bundle(default_model_path())
    today = load_bundle(candidate_file("resnet10t", 48))
    assert {k: tuple(v.shape) for k, v in today.model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in shipped.model.state_dict().items()
    }
    assert today.spec == shipped.spec and list(today.class_names) == list(shipped.class_names)
    result = model_candidates(
        ["resnet10t_48", "resnet18_48"], repeats=1, train_steps=1, batch=4, max_videos=1
    )
    rows = result["details"]["candidates"]
    assert rows["resnet10t_48"]["predict_vs_today"] == 1.0
    assert rows["resnet18_48"]["parameters"] > rows["resnet10t_48"]["parameters"] > 5e6
    assert result["value"] == round(max(r["predict_vs_today"] for r in rows.values()), 4)
    assert result["met"] == (result["value"] <= 2.0)
    assert rows["resnet18_48"]["backbone"] == "resnet18"
    assert rows["resnet10t_48"]["frame_size"] == 48


@pytest.mark.shared_data
def test_model_candidates_time_given_model_files(
    ekman6_dir: Path,
) -> None:  # skipped without the videos
    """``files``: trained models (the shipped one against a new one) instead of candidates;
    the rows describe each file from the file itself."""
    from benchmarks.model_candidates import candidate_file, model_candidates
    from rdam.inference import default_model_path

    files = {"shipped": default_model_path(), "new": candidate_file("resnet10t", 96)}
    result = model_candidates(files=files, repeats=1, train_steps=1, batch=4, max_videos=1)
    rows = result["details"]["candidates"]
    assert list(rows) == ["shipped", "new"]
    assert rows["shipped"]["predict_vs_today"] == 1.0 and rows["shipped"]["frame_size"] == 48
    assert rows["new"]["frame_size"] == 96 and rows["new"]["backbone"] == "resnet10t"
    assert rows["new"]["file"] == str(files["new"])
