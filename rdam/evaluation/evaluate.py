"""``evaluate(model, data)``: a model file scored on a labelled data set, the way it predicts.

Clips are made under the model's own clip spec (its model file's), through the reader every
path uses (:func:`rdam.data.clips.read_clip`), and run by the runner ``predict`` uses
(:class:`rdam.runtime.TorchRunner`, precision resolved once). The data set's classes are
matched to the model's **by name** (case-insensitive), never by position: a data class the
model does not have is an error unless ``class_map`` maps it to one of the model's classes or
excludes it (``{"contempt": None}``); excluded classes are listed in the report with their
clip counts. Anything that differs from the model's own settings (a spec override, another
precision) is written into the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdam.checkpoint import ModelBundle, load_bundle
from rdam.data.manifest import ClipRecord, Manifest, default_data_name, load_manifest
from rdam.errors import CheckpointError, ConfigError, DatasetError
from rdam.evaluation.metrics import classification_report, predict_loader, write_report

log = logging.getLogger(__name__)


def parse_class_map(text: str | None) -> dict[str, str | None]:
    """``"anger=angry,sadness=sad,contempt="`` -> ``{"anger": "angry", "sadness": "sad",
    "contempt": None}`` (an empty target excludes the class)."""
    out: dict[str, str | None] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip():
            raise ConfigError(
                f"--class-map entry {item!r} must look like DATA_CLASS=MODEL_CLASS (or "
                "DATA_CLASS= to leave that class out)"
            )
        out[source.strip()] = target.strip() or None
    return out


def match_classes(
    data_classes: list[str], model_classes: list[str], class_map: Mapping[str, str | None] = ()
) -> dict[int, int | None]:
    """Data class index -> model class index (None: excluded), by name.

    Raises:
        ConfigError: a data class that the model does not have and ``class_map`` does not map,
            or a ``class_map`` naming a class that neither side has; the message lists both
            class sets and the ``--class-map`` option.
    """
    class_map = dict(class_map or {})
    model_index = {name.lower(): i for i, name in enumerate(model_classes)}
    data_lower = {name.lower(): name for name in data_classes}
    unknown_sources = sorted(k for k in class_map if k.lower() not in data_lower)
    bad_targets = sorted(v for v in class_map.values() if v and v.lower() not in model_index)
    mapping: dict[int, int | None] = {}
    missing: list[str] = []
    mapped = {k.lower(): v for k, v in class_map.items()}
    for i, name in enumerate(data_classes):
        if name.lower() in mapped:
            target = mapped[name.lower()]
            mapping[i] = None if target is None else model_index.get(target.lower())
        elif name.lower() in model_index:
            mapping[i] = model_index[name.lower()]
        else:
            missing.append(name)
    if missing or unknown_sources or bad_targets:
        problems = []
        if missing:
            problems.append(f"the data set has classes the model does not: {missing}")
        if unknown_sources:
            problems.append(f"--class-map names data classes that do not exist: {unknown_sources}")
        if bad_targets:
            problems.append(f"--class-map maps to classes the model does not have: {bad_targets}")
        raise ConfigError(
            "; ".join(problems)
            + f". Model classes: {model_classes}; data classes: {data_classes}. Map them by "
            "name with --class-map DATA=MODEL,... (class_map=...), e.g. --class-map "
            "anger=angry,sadness=sad; DATA= leaves a class out of the scores"
        )
    return mapping


def _data_spec(bundle: ModelBundle, data: str | Path | Mapping[str, Any] | None) -> Any:
    """What to read: ``data`` as given, else the data set the model was trained on."""
    if data is not None:
        return dict(data) if isinstance(data, Mapping) else str(data)
    experiment = (bundle.metadata.get("experiment") or {}).get("data")
    if not experiment:
        raise CheckpointError(
            bundle.metadata.get("path", "model"),
            "carries no training data set to evaluate on; give a data set (a folder of class "
            "folders, kind:root or a .csv/.json manifest)",
        )
    if experiment.get("kind") == "synthetic":
        return {"kind": "synthetic", "options": dict(experiment.get("synthetic") or {})}
    return {
        "kind": experiment["kind"],
        "root": experiment["root"],
        **(experiment.get("options") or {}),
    }


def _pick_split(
    manifest: Manifest, split: str | None, bundle: ModelBundle
) -> tuple[str, list[ClipRecord]]:
    splits = manifest.splits
    if split == "all":
        return "all", list(manifest.records)
    if split is not None:
        return split, list(manifest.split(split).records)
    if len(splits) == 1:
        return splits[0], list(manifest.records)
    trained = (bundle.metadata.get("experiment") or {}).get("data") or {}
    for candidate in (trained.get("test_split"), trained.get("val_split")):
        if candidate and candidate in splits:
            return candidate, list(manifest.split(candidate).records)
    raise DatasetError(
        f"the data set has splits {splits}; say which one to score with --split (or 'all')"
    )


def evaluate(
    checkpoint: str | Path | None = None,
    data: str | Path | Mapping[str, Any] | None = None,
    *,
    split: str | None = None,
    class_map: Mapping[str, str | None] | None = None,
    precision: str = "auto",
    threads: int | None = None,
    views: int = 1,
    flip: bool = False,
    face_input: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score a model on a labelled data set: accuracy, per-class accuracy, macro-F1 and the
    confusion matrix (also written to ``out_dir`` as JSON/CSV/PNG).

    Args:
        checkpoint: model file (``.safetensors``/``.ckpt``); None: the shipped default model.
        data: a folder of class folders (videos, images or image sequences, with or without
            split folders), ``kind:root``, a ``.csv``/``.json`` manifest or a manifest spec
            dict; None: the data set the model was trained on.
        split: the split to score; ``all``: every clip. Default: the only split, else the
            model's test or validation split.
        class_map: data class -> model class (None leaves the data class out).
        precision: ``auto`` | ``fp32`` | ``bf16`` (see :func:`rdam.runtime.resolve_precision`).
        threads: CPU threads (default: all cores).
        views, flip: multi-view test: ``V`` clips per video (and each mirrored), probabilities
            averaged per clip.
        face_input: how face crops are made (:data:`rdam.data.spec.FACE_INPUTS`).
        overrides: clip spec fields to change (reported); the model's spec otherwise.
        batch_size, num_workers: of the data loader.
        out_dir: where to write the report.

    Returns:
        The report dict: the metrics of :func:`classification_report` plus ``model``,
        ``data_set``, ``split``, ``clip_spec``, ``overrides``, ``precision``, ``class_map``,
        ``excluded`` (data classes left out, with clip counts), ``test_views``, ``test_flip``,
        ``face_input`` and ``timing``.
    """
    from torch.utils.data import DataLoader

    from rdam.data.datasets import ClipDataset, collate_clips
    from rdam.runtime import TorchRunner
    from rdam.threads import set_cpu_threads

    if threads is not None:
        set_cpu_threads(threads)
    bundle = load_bundle(checkpoint)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    spec = bundle.spec.replace(**overrides)
    changed = {k: v for k, v in overrides.items() if getattr(bundle.spec, k) != v}
    if changed:
        log.warning("evaluating with a clip spec other than the model's: %s", changed)
    source = _data_spec(bundle, data)
    start = time.perf_counter()
    if isinstance(source, dict) and source.get("kind") == "synthetic":
        from rdam.data.synthetic import (
            synthetic_class_names,
            synthetic_options,
            synthetic_split,
            synthetic_test_split,
        )

        options = source["options"]
        split_name = split or synthetic_test_split(options)
        dataset = synthetic_split(options, split_name, spec.num_frames, spec.frame_size)
        data_classes = synthetic_class_names(int(synthetic_options(options)["num_classes"]))
        data_name = "synthetic"
        labels_of = None
    else:
        manifest = load_manifest(source)
        split_name, records = _pick_split(manifest, split, bundle)
        data_classes = list(manifest.class_names)
        data_name = getattr(manifest, "name", None) or _name_of(source)
        labels_of = records
        dataset = None
    mapping = match_classes(data_classes, bundle.class_names, class_map or {})
    excluded: dict[str, int] = {}
    if dataset is None:
        kept = []
        for r in labels_of:
            if r.label is None:
                continue
            target = mapping[r.label]
            if target is None:
                excluded[data_classes[r.label]] = excluded.get(data_classes[r.label], 0) + 1
                continue
            kept.append(ClipRecord(r.path, target, r.split, r.group))
        if not kept:
            raise DatasetError(f"no labelled clips to score in split {split_name!r} of {data_name}")
        dataset = ClipDataset(
            Manifest(kept, list(bundle.class_names)),
            spec,
            mode="center",
            face_input=face_input,
            test_views=views,
            test_flip=flip,
        )
    elif mapping != {i: i for i in range(len(data_classes))}:
        raise ConfigError("a class map cannot reorder the classes of the synthetic set")
    runner = TorchRunner(bundle.model, precision=precision)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_clips
    )
    labels, predictions, _ = predict_loader(runner, loader)
    seconds = time.perf_counter() - start
    report = {
        "model": str(bundle.metadata.get("path", "")),
        "data_set": data_name,
        "split": split_name,
        "clip_spec": spec.to_dict(),
        "overrides": changed,
        "precision": runner.precision,
        "class_map": {k: v for k, v in (class_map or {}).items()},
        "excluded": excluded,
        "test_views": views,
        "test_flip": flip,
        "face_input": face_input,
        "timing": {"seconds": seconds, "clips_per_s": len(labels) / seconds if seconds else None},
        **classification_report(labels, predictions, list(bundle.class_names)),
    }
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _name_of(source: Any) -> str:
    if isinstance(source, dict):
        return default_data_name(
            source.get("kind", ""), str(source.get("root") or source.get("path") or "")
        )
    text = str(source)
    kind, sep, rest = text.partition(":")
    return default_data_name(kind if sep else "folder", rest if sep else text)
