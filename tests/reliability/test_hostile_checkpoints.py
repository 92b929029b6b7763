"""Hostile model files: pickles that would run code are refused by every entry point that
reads a checkpoint, and their payload demonstrably does not run; ``.safetensors`` files with
malicious or oversized headers are refused with :class:`~rdam.errors.CheckpointError`.

Each payload is first shown to be live: ``torch.load(weights_only=False)`` runs it and its
marker file appears. Then every entry point is tried and the marker must stay absent.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _inference_fixtures import save_tiny_model, write_video
from _tiny import tiny_config

import rdam
from rdam.checkpoint import load_model, read_checkpoint_file
from rdam.cli import main
from rdam.config import ExperimentConfig, save_config
from rdam.errors import CheckpointError, UnsafeCheckpointError, WeightsError
from rdam.evaluation.evaluate import evaluate
from rdam.models import ModelConfig, build_model
from rdam.training.train import export_model_file, train


class _System:
    """Unpickling calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (os.system, (self.command,))


class _Exec:
    """Unpickling calls ``exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (builtins.exec, (self.code,))


def _rdam_like(payload: object, where: str) -> dict[str, Any]:
    """A checkpoint shaped like one of `rdam train` (bundle header, state dict) with the
    payload hidden in one place."""
    bundle = {
        "model_config": ModelConfig(backbone="test_resnet", num_classes=2).to_dict(),
        "class_names": ["a", "b"],
        "preprocessing": {"num_frames": 2, "frame_size": 32},
    }
    ckpt: dict[str, Any] = {
        "epoch": 0,
        "global_step": 1,
        "state_dict": {"model.classifier.weight": torch.zeros(2, 16)},
        "hyper_parameters": {"bundle": bundle},
    }
    if where == "hyper_parameters":
        ckpt["hyper_parameters"]["evil"] = payload
    elif where == "state_dict":
        ckpt["state_dict"]["model.classifier.bias"] = payload
    else:
        ckpt["callbacks"] = {"evil": payload}
    return ckpt


def _write(path: Path, kind: str, marker: Path) -> Path:
    """One hostile file of ``kind`` that creates ``marker`` when unpickled unsafely."""
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').write('pwned')"
    if kind == "os.system in hyper_parameters":
        torch.save(_rdam_like(_System(touch), "hyper_parameters"), path)
    elif kind == "exec in the state dict":
        torch.save(_rdam_like(_Exec(write), "state_dict"), path)
    elif kind == "os.system in callback state":
        torch.save(_rdam_like(_System(touch), "callbacks"), path)
    elif kind == "legacy (non-zip) torch file":
        torch.save(
            _rdam_like(_System(touch), "hyper_parameters"),
            path,
            _use_new_zipfile_serialization=False,
        )
    elif kind == "plain pickle":
        path.write_bytes(pickle.dumps({"state_dict": _Exec(write)}))
    else:
        raise ValueError(kind)
    return path


PAYLOADS = [
    "os.system in hyper_parameters",
    "exec in the state dict",
    "os.system in callback state",
    "legacy (non-zip) torch file",
    "plain pickle",
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("hostile_video") / "clip.mp4", num_frames=6)


@pytest.fixture(scope="module")
def train_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile_config") / "tiny.yaml"
    save_config(
        tiny_config(
            data={"batch_size": 4, "synthetic": {"num_train": 8, "num_val": 4}},
            trainer={"loggers": []},
        ),
        path,
    )
    return path


def _entry_points(evil: Path, video: Path, config: Path, out: Path) -> dict[str, Callable[[], Any]]:
    """Every way a checkpoint gets read: library calls (must raise UnsafeCheckpointError /
    WeightsError) and command lines (must exit 2 with a message)."""
    run_dir = out / "run"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(evil.read_bytes())
    return {
        "rdam.checkpoint.load_model": lambda: load_model(evil),
        "rdam.checkpoint.read_checkpoint_file": lambda: read_checkpoint_file(evil),
        "rdam.load": lambda: rdam.load(evil),
        "rdam.load(runtime=onnx)": lambda: rdam.load(evil, runtime="onnx"),
        "training.evaluate": lambda: evaluate(evil),
        "training.export_model_file": lambda: export_model_file(evil, out / "m.safetensors"),
        "train() resuming": lambda: train(ExperimentConfig.from_dict(_yaml(config)), run_dir),
        "backbone weights file": lambda: build_model(
            ModelConfig(backbone="test_resnet", weights=str(evil))
        ),
        "rdam eval --checkpoint": lambda: main(["eval", "--checkpoint", str(evil)]),
        "rdam predict --checkpoint": lambda: main(
            ["predict", "--checkpoint", str(evil), str(video)]
        ),
        "rdam explain --checkpoint": lambda: main(
            ["explain", "--checkpoint", str(evil), str(video), "--out", str(out / "x")]
        ),
        "rdam export --checkpoint": lambda: main(
            ["export", "--checkpoint", str(evil), "--out", str(out / "m.onnx")]
        ),
        "rdam serve --checkpoint": lambda: main(["serve", "--checkpoint", str(evil)]),
        "rdam train (evil last.ckpt)": lambda: main(
            ["train", "-c", str(config), "--run-dir", str(run_dir)]
        ),
    }


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("kind", PAYLOADS)
def test_code_carrying_checkpoints_are_refused_everywhere(
    kind, video, train_config, tmp_path, capsys, monkeypatch, measured
):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    marker = tmp_path / "pwned"
    evil = _write(tmp_path / "evil.ckpt", kind, marker)
    # the payload is live: an unsafe loader runs it
    with contextlib.suppress(Exception):  # what it returns does not matter, only that it ran
        torch.load(evil, weights_only=False)
    assert marker.exists(), "the payload did not run under torch.load(weights_only=False)"
    marker.unlink()

    refused = []
    for name, call in _entry_points(evil, video, train_config, tmp_path).items():
        if name.startswith("rdam "):
            assert call() == 2, name
            err = capsys.readouterr().err
            shown = "last.ckpt" if "train" in name else evil.name
            assert "error:" in err and shown in err, (name, err[-500:])
            assert "refused" in err or "not a tensors-only" in err, (name, err[-500:])
        else:
            expected = WeightsError if name == "backbone weights file" else UnsafeCheckpointError
            with pytest.raises(expected) as info:
                call()
            assert "refused" in str(info.value) or "not a tensors-only" in str(info.value)
        assert not marker.exists(), f"{name}: the payload ran"
        refused.append(name)
    measured(f"hostile pickle: {kind}", entry_points=len(refused), payload_ran=False)


# ---- safetensors -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("hostile_st") / "good.safetensors")


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict[str, Any] | bytes, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _with_rdam(header: dict[str, Any], data: bytes, change: Callable[[dict], Any]) -> bytes:
    meta = json.loads(header["__metadata__"]["rdam"])
    value = change(meta)
    text = value if isinstance(value, str) else json.dumps(meta)
    return _join({**header, "__metadata__": {"rdam": text}}, data)


def _first_tensor(header: dict[str, Any]) -> str:
    return next(k for k in header if k != "__metadata__")


HOSTILE_SAFETENSORS: dict[str, Callable[[dict[str, Any], bytes], bytes]] = {
    "header length 2**63": lambda h, d: _join(h, d, length=2**63 - 1),
    "header length past the end": lambda h, d: _join(h, d, length=99_000_000),
    "header not JSON": lambda h, d: _join(b"{'not': json", d),
    "header JSON nested 100k deep": lambda h, d: _join(b"[" * 100_000 + b"]" * 100_000, d),
    "tensor past the data": lambda h, d: _join(
        {**h, _first_tensor(h): {**h[_first_tensor(h)], "data_offsets": [0, 10**12]}}, d
    ),
    "tensor shape 2**40": lambda h, d: _join(
        {**h, _first_tensor(h): {**h[_first_tensor(h)], "shape": [2**20, 2**20]}}, d
    ),
    "unknown dtype": lambda h, d: _join(
        {**h, _first_tensor(h): {**h[_first_tensor(h)], "dtype": "EVIL"}}, d
    ),
    "data cut short": lambda h, d: _join(h, d[: len(d) // 3]),
    "rdam header not JSON": lambda h, d: _with_rdam(h, d, lambda m: "{not json"),
    "rdam header nested 100k deep": lambda h, d: _with_rdam(
        h, d, lambda m: "[" * 100_000 + "]" * 100_000
    ),
    "rdam header a list": lambda h, d: _with_rdam(h, d, lambda m: "[1, 2]"),
    "num_classes 2**40": lambda h, d: _with_rdam(
        h, d, lambda m: m["model_config"].update(num_classes=2**40)
    ),
    "embed_dim 2**30": lambda h, d: _with_rdam(
        h, d, lambda m: m["model_config"].update(embed_dim=2**30)
    ),
    "unknown backbone": lambda h, d: _with_rdam(
        h, d, lambda m: m["model_config"].update(backbone="os.system")
    ),
    "class names do not match": lambda h, d: _with_rdam(
        h, d, lambda m: m.update(class_names=["only one"])
    ),
    "preprocessing a list": lambda h, d: _with_rdam(h, d, lambda m: m.update(preprocessing=[1])),
    "clip spec a list": lambda h, d: _with_rdam(h, d, lambda m: m.update(clip_spec=[1])),
    "clip spec key unknown": lambda h, d: _with_rdam(
        h, d, lambda m: m["clip_spec"].update(shear=0.5)
    ),
    "clip spec value tampered": lambda h, d: _with_rdam(
        h, d, lambda m: m["clip_spec"].update(num_frames=0)
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SAFETENSORS))
def test_hostile_safetensors_are_refused_cleanly(name, good_model, video, tmp_path, capsys):
    import resource

    header, data = _split(good_model)
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(HOSTILE_SAFETENSORS[name](header, data))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert info.value.path == str(path)
    with pytest.raises(CheckpointError):
        rdam.load(path)
    assert main(["predict", "--checkpoint", str(path), str(video)]) == 2
    assert f"rdam predict: error: {path}" in capsys.readouterr().err
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown_kb < 512 * 1024, f"peak memory grew by {grown_kb // 1024} MB"
