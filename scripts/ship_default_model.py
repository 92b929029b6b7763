"""Package a trained face-stream checkpoint as rdam's shipped default model.

    .venv/bin/python scripts/ship_default_model.py runs/fer2013_face_default/model.safetensors

(``model.safetensors`` of a run is the weight average at the end of training when the config
has ``optim.swa_epochs``, else its best checkpoint; a ``.ckpt`` works too.)

Writes ``rdam/assets/default_model.safetensors`` (fp16 weights + config + class names + the
clip spec it is used with on videos, :data:`SHIPPED_SPEC`), ``default_model.safetensors.sha256``
(checked at every load) and ``default_model.json`` (where it came from).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rdam.checkpoint import load_model, save_model, sha256_file
from rdam.data.spec import ClipSpec

ASSETS = Path(__file__).resolve().parents[1] / "rdam" / "assets"

SHIPPED_SPEC = ClipSpec(
    num_frames=16, frame_size=48, stream="faces", face_margin=0.15, color="gray"
)
"""How the shipped model sees a video: K=16 segment-centre face crops of 48 px (YuNet, 0.15
margin), grey like FER2013's images; the other fields keep the :class:`ClipSpec` defaults
(squash fit, frames decoded at <= 640 px, exact times, face score 0.6, the largest face). A
FER2013 image is a one-frame clip of a given face under it (``face_input`` ``auto``)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=ASSETS / "default_model.safetensors")
    args = parser.parse_args()

    bundle = load_model(args.checkpoint)
    if bundle.spec.frame_size != SHIPPED_SPEC.frame_size:
        raise SystemExit(
            f"{args.checkpoint} was trained on {bundle.spec.frame_size}-px frames; the shipped "
            f"model takes {SHIPPED_SPEC.frame_size}-px faces"
        )
    spec = SHIPPED_SPEC
    experiment = bundle.metadata.get("experiment", {})
    metadata = {
        "experiment": experiment,
        "source_checkpoint": args.checkpoint.name,
        "trained_on": "FER2013 train (28,709 48x48 grey faces), validated on FER2013 PublicTest",
    }
    path = save_model(
        args.out,
        bundle.model,
        bundle.config,
        bundle.class_names,
        spec,
        metadata,
        dtype=torch.float16,
    )
    info = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "class_names": bundle.class_names,
        "clip_spec": spec.to_dict(),
        "trained_with_clip_spec": bundle.spec.to_dict(),
        "config": "configs/fer2013_face_default.yaml",
    }
    (path.parent / "default_model.json").write_text(json.dumps(info, indent=2) + "\n")
    (path.parent / f"{path.name}.sha256").write_text(f"{info['sha256']}  {path.name}\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
