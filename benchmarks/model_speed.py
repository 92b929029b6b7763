"""Figures 1 and 2: what the attention heads cost, and how close inference gets to the machine.

Every model call here goes through the product's own runners, the path ``rdam predict`` and
``rdam eval`` take: :class:`rdam.runtime.TorchRunner` (``inference_mode``, the precision resolved
and autocast by :mod:`rdam.runtime.precision`, channels_last, chunked backbone calls) and, for
onnxruntime, :func:`rdam.export.export_onnx` + :class:`rdam.export.OnnxRunner`. The inputs are
what those runners take: ``frames (B, K, 3, S, S)`` uint8 and ``mask (B, K)``.

Figure 1 times RDAM (``dual`` region head + frame attention) against the same backbone with
average heads (``region_head=average``, ``temporal=average``) on the same clips.

Figure 2 counts the model's FLOPs (:class:`torch.utils.flop_counter.FlopCounterMode`: convolutions
and matrix products, 2 FLOPs per multiply-add), divides by the measured time of each inference
"lever" (threads, channels_last, bf16 autocast, torch.compile, onnxruntime, batching clips) and
compares the rate with the dense-matmul FLOP/s the same process reaches (large square matmuls,
fp32 and bf16). Every lever's logits are compared with the fp32 runner's (parity).

Untrained models would be a poor parity test: timm zero-initialises the last batch norm of every
residual block, so most of the network is an identity. :func:`calibrate_batchnorm` therefore
gives every batch norm random affine parameters and running statistics measured on the input, so
every layer contributes; pass ``model_file`` to use trained weights instead.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import figure_result, interleaved_times, machine_info, summary

CPU = torch.device("cpu")

# --------------------------------------------------------------------------------------------
# Models and inputs


def bench_bundle(
    backbone: str,
    region_head: str = "dual",
    temporal: str = "attention",
    num_classes: int = 7,
    embed_dim: int = 256,
    frame_hidden_dim: int = 64,
    output_stride: int = 8,
    frames: int = 16,
    size: int = 48,
) -> Any:
    """An untrained RDAM in eval mode as a :class:`~rdam.checkpoint.ModelBundle` (what the
    exporter takes), with a frames-stream clip spec of ``frames`` x ``size`` px (see
    :func:`calibrate_batchnorm` for parity tests)."""
    from rdam.checkpoint import ModelBundle
    from rdam.data.spec import ClipSpec
    from rdam.models import ModelConfig, build_model

    config = ModelConfig(
        backbone=backbone,
        region_head=region_head,
        temporal=temporal,
        num_classes=num_classes,
        embed_dim=embed_dim,
        frame_hidden_dim=frame_hidden_dim,
        output_stride=output_stride,
    )
    return ModelBundle(
        model=build_model(config).eval(),
        config=config,
        class_names=[f"class_{i}" for i in range(num_classes)],
        spec=ClipSpec(num_frames=frames, frame_size=size),
        metadata={"path": f"untrained {backbone}"},
    )


def build_bench_model(
    backbone: str, region_head: str = "dual", temporal: str = "attention"
) -> nn.Module:
    """An untrained RDAM in eval mode (see :func:`bench_bundle`)."""
    return bench_bundle(backbone, region_head, temporal).model


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, frames: torch.Tensor, seed: int = 0) -> nn.Module:
    """Random batch-norm scales/shifts and running statistics measured on ``frames``.

    Every ``BatchNorm2d`` gets ``weight ~ U(0.5, 1.5)`` and ``bias ~ N(0, 0.1)``; one forward
    pass in training mode with cumulative averaging (``momentum=None``) sets the running
    statistics, so activations stay normalised however deep the network is.

    Args:
        model: a clip model; returned in eval mode.
        frames: ``(B, K, 3, H, W)`` uint8 clips used for the statistics.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = []
    for bn in norms:
        bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.1)
        bn.reset_running_stats()
        saved.append(bn.momentum)
        bn.momentum = None
    model.train()
    model(frames)
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum
    return model.eval()


def load_model_file(path: str | os.PathLike[str]) -> Any:
    """A trained rdam model file (``.safetensors``/``.ckpt``) as a model bundle, in eval mode
    (``None``: the shipped default model, its sha256 checked)."""
    from rdam.checkpoint import load_bundle

    bundle = load_bundle(path)
    bundle.model.eval()
    return bundle


def clip_input(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(B, K, 3, S, S)`` uint8 frames (the runners' input): smooth random images (not white
    noise, whose statistics no network sees)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((batch * frames, 3, max(2, size // 8), max(2, size // 8)), generator=gen)
    full = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    full = full.reshape(batch, frames, 3, size, size)
    return full.mul(255).round().clamp(0, 255).to(torch.uint8).contiguous()


def runner_batch(frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch a runner takes: ``frames`` and an all-True ``mask``."""
    return {"frames": frames, "mask": torch.ones(frames.shape[:2], dtype=torch.bool)}


def count_flops(model: nn.Module, frames: torch.Tensor) -> int:
    """Nominal FLOPs of one forward pass (:class:`~torch.utils.flop_counter.FlopCounterMode`:
    convolutions and matrix products, 2 per multiply-add, padding taps included)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(frames)
    return int(counter.get_total_flops())


def _valid_taps(size_in: int, size_out: int, kernel: int, stride: int, pad: int, dil: int) -> int:
    """Kernel taps over all output positions of one axis that land inside the input."""
    return sum(
        1
        for o in range(size_out)
        for k in range(kernel)
        if 0 <= o * stride - pad + k * dil < size_in
    )


def effective_flops(model: nn.Module, frames: torch.Tensor) -> dict[str, int]:
    """FLOPs that multiply real input values: the nominal count with every convolution tap
    that falls on zero padding removed (oneDNN's direct convolutions skip those taps; on small
    dilated feature maps they are most of the nominal work).

    Returns ``nominal``, ``effective`` and the convolutions' ``conv_nominal``/``conv_effective``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    conv_effective = [0]

    def hook(conv: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        n, c_in, h_in, w_in = inputs[0].shape
        _, c_out, h_out, w_out = output.shape
        kh, kw = conv.kernel_size
        pad = conv.padding if isinstance(conv.padding, tuple) else (0, 0)
        taps = _valid_taps(h_in, h_out, kh, conv.stride[0], pad[0], conv.dilation[0])
        taps *= _valid_taps(w_in, w_out, kw, conv.stride[1], pad[1], conv.dilation[1])
        conv_effective[0] += 2 * n * c_out * (c_in // conv.groups) * taps

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(frames)
    finally:
        for h in handles:
            h.remove()
    nominal = int(counter.get_total_flops())
    conv_nominal = sum(
        int(v) for k, v in counter.get_flop_counts().get("Global", {}).items() if "conv" in str(k)
    )
    return {
        "nominal": nominal,
        "effective": nominal - conv_nominal + conv_effective[0],
        "conv_nominal": conv_nominal,
        "conv_effective": conv_effective[0],
    }


# --------------------------------------------------------------------------------------------
# Threads


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (``None``: unchanged)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def thread_choices() -> list[int]:
    """1 and the default thread count (distinct)."""
    return sorted({1, torch.get_num_threads()})


# --------------------------------------------------------------------------------------------
# Runners


def torch_runner(
    model: nn.Module, precision: str = "fp32", channels_last: bool | None = False
) -> Any:
    """:class:`rdam.runtime.TorchRunner` on a copy of ``model`` (a runner converts its model to
    channels_last in place, so runners never share one), default backbone chunking."""
    from rdam.runtime import TorchRunner

    return TorchRunner(copy.deepcopy(model), CPU, precision=precision, channels_last=channels_last)


def runner_logits(runner: Any, frames: torch.Tensor) -> np.ndarray:
    """Logits ``(B, C)`` float32 of a runner (torch or ONNX) on uint8 clips."""
    return np.asarray(runner(runner_batch(frames)).logits, np.float32)


# --------------------------------------------------------------------------------------------
# Figure 1


def attention_overhead(
    backbone: str = "resnet50",
    size: int = 224,
    frames: int = 8,
    clips: int = 1,
    repeats: int = 5,
) -> dict[str, Any]:
    """Inference time of RDAM (dual + frame attention) over average heads, same backbone/clips,
    each run by an fp32 :class:`~rdam.runtime.TorchRunner`, at 1 thread and at the default
    thread count.

    ``value`` = ratio of the best (minimum) times RDAM / average at the thread count where
    RDAM is fastest (goal <= 1.05): load from other processes only ever adds time, so the
    minimum is the least disturbed run (the ``timeit`` convention). Medians are in
    ``details`` for every thread count, and ``head_estimate`` = 1 + (RDAM head - average head)
    / average model, with the heads timed alone on the backbone's feature map: the attention's
    cost without the backbone's noise.
    """
    x = clip_input(clips, frames, size)
    rdam = calibrate_batchnorm(build_bench_model(backbone, "dual", "attention"), x)
    average = build_bench_model(backbone, "average", "average")
    average.backbone.load_state_dict(rdam.backbone.state_dict())
    flops = {"rdam": count_flops(rdam, x), "average": count_flops(average, x)}
    params = {
        "rdam": sum(p.numel() for p in rdam.parameters()),
        "average": sum(p.numel() for p in average.parameters()),
    }
    runners = {"rdam": torch_runner(rdam), "average": torch_runner(average)}
    batch = runner_batch(x)
    per_threads: dict[str, Any] = {}
    with torch.inference_mode():
        feature_map = rdam.backbone(rdam.normalize(x.flatten(0, 1)))

        def head(model: nn.Module) -> Callable[[], Any]:
            return lambda: model.temporal(
                model.head(feature_map).features.unflatten(0, (clips, frames))
            )

        for t in thread_choices():
            with torch_threads(t):
                times = interleaved_times(
                    {name: (lambda r=r: r(batch)) for name, r in runners.items()},
                    repeats=repeats,
                )
                # The heads alone on the backbone's feature map: the attention's own cost.
                head_times = interleaved_times(
                    {"rdam_head": head(rdam), "average_head": head(average)},
                    repeats=max(repeats, 10),
                )
            med = {k: summary(v)["median_s"] for k, v in times.items()}
            per_threads[str(t)] = {
                "ratio": med["rdam"] / med["average"],
                "ratio_of_min": min(times["rdam"]) / min(times["average"]),
                "time": {k: summary(v) for k, v in times.items()},
                "head_time": {k: summary(v) for k, v in head_times.items()},
            }
    best = min(per_threads, key=lambda t: per_threads[t]["time"]["rdam"]["min_s"])
    ratio = per_threads[best]["ratio_of_min"]
    for row in per_threads.values():
        average_s = row["time"]["average"]["median_s"]
        extra = (
            row["head_time"]["rdam_head"]["median_s"] - row["head_time"]["average_head"]["median_s"]
        )
        row["head_estimate"] = 1.0 + extra / average_s
    return figure_result(
        1,
        "Attention overhead: RDAM (dual + frame attention) / average heads, inference",
        "<= 1.05x",
        ratio,
        ratio <= 1.05,
        {
            "setting": {
                "backbone": backbone,
                "output_stride": 8,
                "frame_size": size,
                "frames_per_clip": frames,
                "clips_per_batch": clips,
                "feature_map": list(feature_map.shape[-2:]),
                "repeats": repeats,
                "headline_threads": int(best),
                "runner": "rdam.runtime.TorchRunner(precision='fp32'), uint8 clips",
            },
            "by_threads": per_threads,
            "flops": flops,
            "flop_ratio": flops["rdam"] / flops["average"],
            "params": params,
            "machine": machine_info(),
        },
        unit="x (time ratio)",
    )


# --------------------------------------------------------------------------------------------
# Figure 2: matmul peak


def matmul_fn(dtype: torch.dtype, threads: int, n: int = 2048) -> tuple[Callable[[], Any], float]:
    """A dense ``n x n @ n x n`` product at ``threads`` threads and its FLOPs (``2 n^3``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn((n, n), generator=gen).to(dtype)
    b = torch.randn((n, n), generator=gen).to(dtype)

    def run() -> torch.Tensor:
        with torch_threads(threads):
            return torch.mm(a, b)

    return run, 2.0 * n**3


def conv_gemm_fn(
    dtype: torch.dtype, threads: int, channels: int = 1024, pixels: int = 2048
) -> tuple[Callable[[], Any], float]:
    """The same dense GEMM through oneDNN: a 1x1 convolution ``channels -> channels`` over
    ``pixels`` positions (NHWC), i.e. ``(pixels x C) @ (C x C)``, under the product's autocast
    (:func:`rdam.runtime.precision.autocast`); MKL's ``torch.mm`` is slow on some AMD CPUs,
    oneDNN is not. Returns the callable and its FLOPs."""
    from rdam.runtime.precision import autocast

    conv = nn.Conv2d(channels, channels, 1, bias=False).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, channels, 32, pixels // 32).to(memory_format=torch.channels_last)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"

    def run() -> torch.Tensor:
        with torch_threads(threads), torch.inference_mode(), autocast(precision, CPU):
            return conv(x)

    return run, 2.0 * pixels * channels * channels


# --------------------------------------------------------------------------------------------
# Figure 2: inference levers


@dataclass
class Lever:
    """One way to run inference: ``fn(frames)`` returns logits as a float32 numpy array.

    ``dtype`` names the matmul peak it is compared with; ``clips`` is the batch it is timed on.
    """

    name: str
    fn: Callable[[torch.Tensor], np.ndarray]
    dtype: str
    threads: int
    clips: int
    note: str = ""
    setup_s: float = 0.0


def _threaded(runner: Any, threads: int) -> Callable[[torch.Tensor], np.ndarray]:
    def fn(frames: torch.Tensor) -> np.ndarray:
        with torch_threads(threads):
            return runner_logits(runner, frames)

    return fn


def torch_lever(
    name: str,
    model: nn.Module,
    threads: int,
    clips: int = 1,
    precision: str = "fp32",
    channels_last: bool | None = False,
    note: str = "",
) -> Lever:
    """:class:`rdam.runtime.TorchRunner` at ``precision`` (``auto``: the product's default,
    resolved by :func:`rdam.runtime.resolve_precision`) with or without NHWC weights
    (``None``: the runner's default, on with bf16 on CPU)."""
    start = time.perf_counter()
    runner = torch_runner(model, precision, channels_last)
    setup = time.perf_counter() - start
    notes = [
        n
        for n in (
            note,
            "TorchRunner",
            "precision auto" if precision == "auto" else "",
            "bf16 autocast" if runner.precision == "bf16" else "",
            "channels_last" if runner.channels_last else "",
        )
        if n
    ]
    return Lever(
        name, _threaded(runner, threads), runner.precision, threads, clips, ", ".join(notes), setup
    )


def compiled_lever(
    name: str, model: nn.Module, frames: torch.Tensor, threads: int, precision: str = "fp32"
) -> Lever:
    """A :class:`~rdam.runtime.TorchRunner` whose model is ``torch.compile`` d (inductor,
    ``freezing=True``: weights and batch norms folded, oneDNN weights prepacked): the runner's
    input handling and autocast, a compiled forward. Not a product path (``predict`` does not
    compile); compiled for ``threads`` threads on the first call, which is timed as setup."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    runner = torch_runner(model, precision, channels_last=False)
    with torch_threads(threads):
        runner.model = torch.compile(runner.model, dynamic=False)
    fn = _threaded(runner, threads)
    start = time.perf_counter()
    fn(frames)
    setup = time.perf_counter() - start
    note = "TorchRunner + torch.compile inductor freezing" + (
        ", bf16 autocast" if runner.precision == "bf16" else ""
    )
    return Lever(name, fn, runner.precision, threads, frames.shape[0], note, setup)


def export_model(bundle: Any, path: Path) -> float:
    """:func:`rdam.export.export_onnx` of ``bundle`` to ``path``; returns seconds taken."""
    from rdam.export import export_onnx

    start = time.perf_counter()
    export_onnx(bundle, path)
    return time.perf_counter() - start


def ort_lever(name: str, path: Path, threads: int, clips: int = 1) -> Lever:
    """:class:`rdam.export.OnnxRunner` (onnxruntime CPU, fp32) on the exported model."""
    from rdam.export import OnnxRunner

    start = time.perf_counter()
    runner = OnnxRunner(path, threads=threads)
    setup = time.perf_counter() - start
    fn = _threaded(runner, threads)
    return Lever(name, fn, "fp32", threads, clips, "OnnxRunner (onnxruntime CPU)", setup)


def fer_val_clips(spec: Any, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """FER2013 validation images as one-frame clips made the product's way
    (:func:`rdam.data.clips.read_clip` under ``spec``, one frame each: what ``rdam eval``
    feeds the model): ``(N, 3, S, S)`` uint8 frames and ``(N,)`` labels; ``limit`` images per
    class (evenly spread over the sorted files), all by default. ``None`` without the data."""
    from benchmarks.common import FER2013_CLASSES, shared_data_path
    from rdam.data.clips import read_clip

    root = shared_data_path() / "fer2013" / "val"
    if not root.is_dir():
        return None
    spec = spec.replace(num_frames=1)
    images, labels = [], []
    for label, name in enumerate(FER2013_CLASSES):
        files = sorted((root / name).glob("*.jpg"))
        if limit is not None and len(files) > limit:
            files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
        for f in files:
            images.append(read_clip(f, spec).frames[0])
            labels.append(label)
    if not images:
        return None
    return np.stack(images).transpose(0, 3, 1, 2), np.asarray(labels)


def face_spec(size: int) -> Any:
    """The clip spec of FER2013 faces at ``size`` px: grey, one frame, squashed to ``S x S``."""
    from rdam.data.spec import ClipSpec

    return ClipSpec(num_frames=1, frame_size=size, color="gray")


def parity_clips(n_clips: int, frames: int, size: int) -> tuple[torch.Tensor, str]:
    """``(n_clips, K, 3, S, S)`` uint8 real face images for parity checks: FER2013 validation
    images (read under a grey ``size``-px clip spec, :func:`fer_val_clips`) shuffled into clips
    when the shared data is present, else smooth random images. Returns the clips and where
    they came from."""
    from benchmarks.common import FER2013_CLASSES

    per_class = -(-n_clips * frames // len(FER2013_CLASSES))
    faces = fer_val_clips(face_spec(size), limit=per_class)
    if faces is None or len(faces[0]) < n_clips * frames:
        return clip_input(n_clips, frames, size, seed=2), "smooth random images"
    rng = np.random.default_rng(0)
    images = faces[0][rng.permutation(len(faces[0]))[: n_clips * frames]]
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x.reshape(n_clips, frames, 3, size, size), "FER2013 val faces"


# --------------------------------------------------------------------------------------------
# Figure 2: profile by op type


OP_CATEGORIES = (
    ("convolution", ("conv",)),
    ("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "einsum", "gemm")),
    ("batch_norm", ("batch_norm", "batchnormalization")),
    ("activation", ("relu", "clamp", "tanh", "sigmoid")),
    ("pooling", ("pool",)),
    ("softmax", ("softmax",)),
    ("elementwise", ("add", "mul", "div", "sub", "sum", "mean")),
    ("copy/layout", ("copy", "contiguous", "to_", "clone", "reorder", "transpose", "cat")),
)


def _category(op: str) -> str:
    name = op.lower()
    for category, keys in OP_CATEGORIES:
        if any(k in name for k in keys):
            return category
    return "other"


def profile_torch(
    model: nn.Module,
    x: torch.Tensor,
    threads: int,
    precision: str = "fp32",
    channels_last: bool | None = False,
) -> dict[str, Any]:
    """Self time of one :class:`~rdam.runtime.TorchRunner` call by op category
    (torch.profiler), plus the convolutions' own FLOP rate (effective conv FLOPs / conv time):
    how fast the kernels are when they run."""
    from torch.profiler import ProfilerActivity, profile

    runner = torch_runner(model, precision, channels_last)
    batch = runner_batch(x)
    with torch_threads(threads):
        runner(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            wall = time.perf_counter()
            runner(batch)
            wall = time.perf_counter() - wall
    by_cat: dict[str, float] = {}
    top = []
    for event in prof.key_averages():
        us = float(event.self_cpu_time_total)
        by_cat[_category(event.key)] = by_cat.get(_category(event.key), 0.0) + us
        top.append((us, event.key, event.count))
    total = sum(by_cat.values()) or 1.0
    conv_flops = effective_flops(model, x)["conv_effective"]
    conv_s = by_cat.get("convolution", 0.0) / 1e6
    top.sort(reverse=True)
    return {
        "threads": threads,
        "precision": runner.precision,
        "channels_last": runner.channels_last,
        "wall_s": wall,
        "share": {k: round(v / total, 4) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "conv_gflops_per_s": conv_flops / conv_s / 1e9 if conv_s > 0 else None,
        "top_ops": [{"op": k, "self_ms": round(us / 1e3, 3), "calls": n} for us, k, n in top[:8]],
    }


def profile_ort(path: Path, x: torch.Tensor, threads: int, runs: int = 3) -> dict[str, Any]:
    """Node time of the exported model by op type, from onnxruntime's own profiler.

    A diagnostic, not a timed lever: :class:`rdam.export.OnnxRunner` has no way to switch
    profiling on, so this one session is made with the runner's settings (``threads``
    intra-op threads, onnxruntime's default graph optimisations) plus ``enable_profiling``, and
    fed the runner's float input.
    """
    import onnxruntime as ort

    # the float frames OnnxRunner feeds the graph: uint8 / 255
    feed = {"frames": x.numpy().astype(np.float32) / 255.0, "mask": np.ones(x.shape[:2], bool)}
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_type: dict[str, float] = {}
    for event in events:
        args = event.get("args", {})
        if (
            event.get("cat") == "Node"
            and "op_name" in args
            and event["name"].endswith("_kernel_time")
        ):
            by_type[args["op_name"]] = by_type.get(args["op_name"], 0.0) + float(event["dur"])
    total = sum(by_type.values()) or 1.0
    return {
        "threads": threads,
        "share": {
            k: round(v / total, 4) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])
        },
        "node_ms_per_run": total / runs / 1e3,
    }


def fer_val_parity(
    bundle: Any, threads: int, batch: int = 256, limit: int | None = None
) -> dict[str, Any] | None:
    """The fp32 runner vs the bf16 one (channels_last, ``predict``'s default on CPUs with
    native bf16) on the FER2013 validation images as one-frame clips under the model's own
    spec (how the default model was trained and how ``rdam eval`` scores it): top-1 accuracy of
    each, how often their top classes agree, and the largest logit difference. ``limit``
    images per class (default: all). ``None`` without the data."""
    faces = fer_val_clips(bundle.spec, limit)
    if faces is None:
        return None
    images, y = faces
    x = torch.from_numpy(images[:, None])  # (N, 1, 3, S, S) uint8
    out = {}
    for name, precision in (("fp32", "fp32"), ("bf16", "bf16")):
        runner = torch_runner(bundle.model, precision, channels_last=None)
        with torch_threads(threads):
            out[name] = np.concatenate(
                [runner_logits(runner, x[i : i + batch]) for i in range(0, len(x), batch)]
            )
    diff = np.abs(out["bf16"] - out["fp32"])
    return {
        "images": len(y),
        "fp32_accuracy": float(np.mean(out["fp32"].argmax(1) == y)),
        "bf16_accuracy": float(np.mean(out["bf16"].argmax(1) == y)),
        "top1_agreement": float(np.mean(out["bf16"].argmax(1) == out["fp32"].argmax(1))),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
    }


# --------------------------------------------------------------------------------------------
# Figure 2


def _parity(lever: Lever, clips: torch.Tensor, ref: np.ndarray) -> dict[str, float]:
    """Run ``lever`` over ``clips`` (in batches of its size) and compare with ``ref`` logits."""
    outs = [lever.fn(clips[i : i + lever.clips]) for i in range(0, len(clips), lever.clips)]
    out = np.concatenate(outs)
    diff = np.abs(out - ref)
    return {
        "max_abs_logit_diff": float(diff.max()),
        "relative": float(diff.max() / max(1e-12, float(np.abs(ref).max()))),
        "argmax_agree": float(np.mean(out.argmax(-1) == ref.argmax(-1))),
    }


def inference_levers(
    bundle: Any,
    frames: int,
    size: int,
    batch_clips: int = 4,
    compile_model: bool = True,
    use_ort: bool = True,
) -> tuple[list[Lever], dict[str, Any]]:
    """Every lever at every thread count (1 and the default)."""
    model = bundle.model
    x = clip_input(1, frames, size)
    levers: list[Lever] = []
    info: dict[str, Any] = {}
    onnx_path: Path | None = None
    if use_ort:
        onnx_path = Path(tempfile.mkdtemp(prefix="rdam_onnx_")) / "model.onnx"
        info["onnx_export_s"] = export_model(bundle, onnx_path)
        info["onnx_path"] = str(onnx_path)
    b = batch_clips
    for t in thread_choices():
        levers += [
            torch_lever(f"eager_fp32_t{t}", model, t),
            torch_lever(f"eager_fp32_channels_last_t{t}", model, t, channels_last=True),
            torch_lever(f"eager_bf16_t{t}", model, t, precision="bf16"),
            torch_lever(
                f"eager_bf16_channels_last_t{t}", model, t, precision="bf16", channels_last=True
            ),
            torch_lever(
                f"eager_bf16_channels_last_batch{b}_t{t}",
                model,
                t,
                clips=b,
                precision="bf16",
                channels_last=True,
                note=f"{b} clips per call",
            ),
            torch_lever(f"eager_fp32_batch{b}_t{t}", model, t, clips=b, note=f"{b} clips per call"),
            torch_lever(
                f"predict_default_t{t}",
                model,
                t,
                precision="auto",
                channels_last=None,
                note="rdam predict's runner defaults",
            ),
        ]
        if onnx_path is not None:
            levers += [
                ort_lever(f"ort_fp32_t{t}", onnx_path, t),
                ort_lever(f"ort_fp32_batch{b}_t{t}", onnx_path, t, clips=b),
            ]
        if compile_model:
            levers += [
                compiled_lever(f"compile_fp32_t{t}", model, x, t),
                compiled_lever(f"compile_bf16_t{t}", model, x, t, precision="bf16"),
            ]
    return levers, info


def machine_limit(
    backbone: str = "resnet10t",
    size: int = 48,
    frames: int = 16,
    batch_clips: int = 4,
    repeats: int = 5,
    compile_model: bool = True,
    use_ort: bool = True,
    model_file: str | None = None,
    matmul_n: int = 2048,
    parity_n: int = 8,
    fer_parity_limit: int | None = None,
) -> dict[str, Any]:
    """Model FLOP/s of every inference lever over the same process's dense-matmul FLOP/s.

    Model FLOPs are *effective* FLOPs (:func:`effective_flops`: convolution taps on zero padding
    excluded). The dense GEMMs (``torch.mm`` and a 1x1 convolution, fp32 and bf16, at each
    thread count) are timed in the same interleaved rounds as the levers, so they see the same
    load; the peak of a dtype is the best of them. ``value`` = model FLOP/s of the fastest *correct*
    lever (fp32: max abs logit diff <= 1e-3 vs the fp32 runner; bf16: same top class on every
    parity clip) over the best matmul FLOP/s of its dtype. With a 48-px ``model_file``, the
    fp32 and bf16 runners are also compared on the FER2013 validation faces
    (``fer_parity_limit`` per class; default all).
    """
    x = clip_input(1, frames, size)
    clips, clips_source = parity_clips(parity_n, frames, size)
    if model_file:
        bundle = load_model_file(model_file)
        source = f"trained model file {model_file}"
    else:
        bundle = bench_bundle(backbone, frames=frames, size=size)
        calibrate_batchnorm(bundle.model, torch.cat([x, clips]))
        source = f"untrained {backbone}, batch norms calibrated (see module doc)"
    model = bundle.model
    flops = effective_flops(model, x)
    flops_clip = flops["effective"]
    ref = runner_logits(torch_runner(model, "fp32"), clips)

    levers, info = inference_levers(bundle, frames, size, batch_clips, compile_model, use_ort)
    xb = clip_input(batch_clips, frames, size, seed=1)
    variants: dict[str, Callable[[], Any]] = {}
    for lv in levers:
        inp = x if lv.clips == 1 else xb
        variants[lv.name] = lambda lv=lv, inp=inp: lv.fn(inp)
    mm_flops = {}
    for t in thread_choices():
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            fn, mm_flops[f"mm_{name}_t{t}"] = matmul_fn(dtype, t, matmul_n)
            variants[f"mm_{name}_t{t}"] = fn
            fn, mm_flops[f"conv1x1_{name}_t{t}"] = conv_gemm_fn(dtype, t)
            variants[f"conv1x1_{name}_t{t}"] = fn
    times = interleaved_times(variants, repeats=repeats)

    peaks = {name: mm_flops[name] / summary(times[name])["median_s"] / 1e9 for name in mm_flops}
    best_peak = {d: max(v for k, v in peaks.items() if f"_{d}_" in k) for d in ("fp32", "bf16")}
    rows = {}
    for lv in levers:
        s = summary(times[lv.name])
        gflops = flops_clip * lv.clips / s["median_s"] / 1e9  # effective FLOPs
        parity = _parity(lv, clips, ref)
        correct = (
            parity["max_abs_logit_diff"] <= 1e-3
            if lv.dtype == "fp32"
            else parity["argmax_agree"] == 1.0
        )
        rows[lv.name] = {
            "dtype": lv.dtype,
            "threads": lv.threads,
            "clips_per_call": lv.clips,
            "median_s_per_call": s["median_s"],
            "min_s_per_call": s["min_s"],
            "clips_per_s": lv.clips / s["median_s"],
            "gflops_per_s": gflops,
            "fraction_of_matmul_peak": gflops / best_peak[lv.dtype],
            "setup_s": round(lv.setup_s, 2),
            "note": lv.note,
            "correct": correct,
            **parity,
        }
    default_threads = torch.get_num_threads()
    baseline = rows[f"eager_fp32_t{default_threads}"]
    fastest_name, fastest = max(
        ((k, r) for k, r in rows.items() if r["correct"]), key=lambda kv: kv[1]["clips_per_s"]
    )
    single_clip = {k: r for k, r in rows.items() if r["correct"] and r["clips_per_call"] == 1}
    fastest_single = max(single_clip, key=lambda k: single_clip[k]["clips_per_s"])
    eager_t = max(thread_choices(), key=lambda t: rows[f"eager_fp32_t{t}"]["clips_per_s"])
    profiles = {
        "torch_eager_fp32": profile_torch(model, x, eager_t),
        "torch_eager_bf16_channels_last": profile_torch(
            model, x, eager_t, precision="bf16", channels_last=True
        ),
    }
    if use_ort:
        ort_t = max(thread_choices(), key=lambda t: rows[f"ort_fp32_t{t}"]["clips_per_s"])
        profiles["ort_fp32"] = profile_ort(Path(info["onnx_path"]), x, ort_t)
    value = fastest["fraction_of_matmul_peak"]
    val_parity = (
        fer_val_parity(bundle, eager_t, limit=fer_parity_limit)
        if model_file and size == 48
        else None
    )
    return figure_result(
        2,
        "Distance to the machine's limit: model FLOP/s / dense-matmul FLOP/s (inference)",
        ">= 0.7 of matmul peak",
        value,
        value >= 0.7,
        {
            "setting": {
                "model": source,
                "frame_size": size,
                "frames_per_clip": frames,
                "gflops_per_clip": flops_clip / 1e9,
                "gflops_per_clip_nominal": flops["nominal"] / 1e9,
                "conv_gflops_nominal_vs_effective": [
                    flops["conv_nominal"] / 1e9,
                    flops["conv_effective"] / 1e9,
                ],
                "default_threads": default_threads,
                "repeats": repeats,
                "matmul_n": matmul_n,
                "parity_clips": f"{parity_n} clips of {frames} {clips_source}",
                "runners": "rdam.runtime.TorchRunner (uint8 clips + mask), "
                "rdam.export.export_onnx + rdam.export.OnnxRunner",
            },
            "matmul_peak_gflops": {k: round(v, 2) for k, v in peaks.items()},
            "levers": rows,
            "fastest_correct": fastest_name,
            "fastest_correct_single_clip": fastest_single,
            "speedup_over_default_eager": fastest["clips_per_s"] / baseline["clips_per_s"],
            "export": {k: v for k, v in info.items() if k != "onnx_path"},
            "fer2013_val_parity_bf16_vs_fp32": val_parity,
            "profile": profiles,
            "machine": machine_info(),
        },
        unit="fraction of matmul peak (fastest correct lever)",
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Figures 1 and 2 (model speed).")
    parser.add_argument("figure", nargs="?", default="1", choices=("1", "2"))
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings (a smoke run, not a measurement)"
    )
    parser.add_argument("--model-file", help="figure 2: a trained model file")
    args = parser.parse_args(argv)
    if args.figure == "1":
        if args.quick:
            result = attention_overhead("resnet18", 64, 2, repeats=1)
        else:
            result = attention_overhead("resnet18", 112, 8, repeats=3)
    elif args.quick:
        result = machine_limit(
            "resnet10t",
            48,
            4,
            batch_clips=2,
            repeats=1,
            compile_model=False,
            model_file=args.model_file,
            matmul_n=512,
            parity_n=2,
            fer_parity_limit=5,
        )
    else:
        result = machine_limit(repeats=3, compile_model=False, model_file=args.model_file)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
