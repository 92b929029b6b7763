"""Package a trained face-stream checkpoint as rdam's shipped default model.

    .venv/bin/python scripts/ship_default_model.py runs/fer2013_face_default/model.safetensors \
        --config configs/fer2013_face_default.yaml

(``model.safetensors`` of a run is the weight average at the end of training when the config
has ``optim.swa_epochs``, else its best checkpoint; a ``.ckpt`` works too.)

Writes ``rdam/assets/default_model.safetensors`` (fp16 weights + config + class names + the
clip spec the model was trained under, which is also how ``rdam predict`` reads videos with it:
the training config's ``data`` section, e.g. K = 16 grey 48-px face crops; a FER2013 image is a
one-frame clip of a given face under it; ``--face-margin`` reframes detected faces of a model
trained on given crops, see ``rdam framing``), ``default_model.safetensors.sha256``
(checked at every load) and ``default_model.json`` (where it came from). Only a face-stream
model ships: the default model must answer on faces, videos and images alike.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rdam.checkpoint import (
    FRAME_WEIGHTS_KEY,
    frame_weights_learned,
    load_model,
    save_model,
    sha256_file,
)
from rdam.config import load_config
from rdam.data.framing import FRAMING_TOLERANCE
from rdam.errors import RDAMError

ASSETS = Path(__file__).resolve().parents[1] / "rdam" / "assets"


def _measure_training_crops(checkpoint: Path, experiment: dict) -> dict:
    """The framing of a run's training crops, measured now as ``rdam train`` measures it
    (:meth:`rdam.training.ClipDataModule.training_crop_framing`) for a run that did not record
    one; refused when the run did not train on face crops given as images (the detector then
    cropped its training faces at the run's own margin) or its data is not here."""
    from rdam.config import ExperimentConfig
    from rdam.training.datamodule import ClipDataModule

    data = ExperimentConfig.from_dict(experiment).data
    try:
        framing = ClipDataModule(data).training_crop_framing()
    except (OSError, RDAMError) as exc:
        raise SystemExit(
            f"--face-margin: {checkpoint} records no framing of its training crops, and they "
            f"cannot be measured here ({exc}); ship on a machine with its data at {data.root}"
        ) from exc
    if framing is None:
        raise SystemExit(
            f"--face-margin: {checkpoint} was not trained on face crops given as images (data "
            f"{data.kind} at {data.root}, faces {data.face_input}), so the detector cropped its "
            "training faces at the run's margin; it ships with that margin"
        )
    return framing.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=ASSETS / "default_model.safetensors")
    parser.add_argument(
        "--config",
        required=True,
        help="the config the run was trained with, as the model card's command names it",
    )
    parser.add_argument(
        "--frame-weights-learned",
        choices=["true", "false"],
        help="for a run made before rdam recorded it: whether its frame weights were learned "
        "(false for a model trained on single images, such as FER2013 faces)",
    )
    parser.add_argument(
        "--face-margin",
        type=float,
        help="frame faces detected on videos with this margin instead of the run's: only for a "
        "model trained on face crops given as images (FER2013's faces), whose training never "
        "ran the detector; `rdam framing` measures the margin that frames a detected face as "
        "those crops are framed (docs/benchmarks.md, figure 17). Recorded in the file.",
    )
    args = parser.parse_args()

    bundle = load_model(args.checkpoint)
    spec = bundle.spec
    experiment = bundle.metadata.get("experiment", {})
    spec_changes = {}
    measured = bundle.metadata.get("training_crop_framing")  # rdam train's measurement
    if args.face_margin is not None and args.face_margin != spec.face_margin:
        if measured is None:  # a run made before rdam train measured it: measure it now
            measured = _measure_training_crops(args.checkpoint, experiment)
        if abs(args.face_margin - measured["margin"]) > FRAMING_TOLERANCE:
            raise SystemExit(
                f"--face-margin {args.face_margin}: the run's training crops are framed at the "
                f"face detector's box + {measured['margin']:.3f} (training_crop_framing); ship "
                f"with --face-margin {measured['face_margin']}"
            )
        spec_changes["face_margin"] = [spec.face_margin, args.face_margin]
        spec = spec.replace(face_margin=args.face_margin)
    if spec.stream != "faces":
        raise SystemExit(
            f"{args.checkpoint} reads {spec.stream!r} frames; the shipped default model must be "
            "a face-stream model (data.stream: faces)"
        )
    # the card's command must make the run's clips (the run's: before --face-margin)
    stated = load_config(args.config)
    problems = [
        f"{k}: {a!r} in the config, {b!r} in the file"
        for k, (a, b) in stated.data.clip_spec().differences(bundle.spec).items()
    ]
    if stated.model.arch != bundle.config.arch:
        problems.append(
            f"arch: {stated.model.arch!r} in the config, {bundle.config.arch!r} in the file"
        )
    if problems:
        raise SystemExit(
            f"--config {args.config} does not describe {args.checkpoint}: " + "; ".join(problems)
        )
    metadata = {
        "experiment": experiment,
        "source_checkpoint": args.checkpoint.name,
        "config": args.config,
    }
    init_from = bundle.metadata.get("init_from")  # a fine-tune: the model it started from
    if init_from is not None:
        metadata["init_from"] = init_from
    recorded = bundle.metadata.get(FRAME_WEIGHTS_KEY)  # false: trained on single images
    given = None if args.frame_weights_learned is None else args.frame_weights_learned == "true"
    if recorded is not None and given is not None and recorded != given:
        raise SystemExit(
            f"{args.checkpoint} records frame_weights_learned: {str(recorded).lower()}; "
            f"--frame-weights-learned {args.frame_weights_learned} contradicts it"
        )
    learned = recorded if recorded is not None else given
    if learned is None and bundle.config.learns_frame_weights:
        raise SystemExit(
            f"{args.checkpoint} does not record whether its frame weights were learned (a run "
            "made before rdam recorded it); pass --frame-weights-learned false for a model "
            "trained on single images (such as FER2013 faces), true for one trained on videos"
        )
    if learned is not None:
        metadata[FRAME_WEIGHTS_KEY] = learned
    if spec_changes:  # {field: [the run's value, the shipped value]}
        metadata["spec_changes_at_shipping"] = spec_changes
    if measured is not None:
        metadata["training_crop_framing"] = measured
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
        "config": args.config,
        "run_name": experiment.get("trainer", {}).get("run_name"),
        "soft_labels": experiment.get("data", {}).get("soft_labels"),
        "fine_tuned_from": init_from,
        "spec_changes_at_shipping": spec_changes or None,
        "frame_weights_learned": frame_weights_learned(bundle.config, metadata),  # the file's
    }
    (path.parent / "default_model.json").write_text(json.dumps(info, indent=2) + "\n")
    (path.parent / f"{path.name}.sha256").write_text(f"{info['sha256']}  {path.name}\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
