"""``evaluate(model, data)``: a model file scored on a labelled data set, the way it predicts.

Clips are made under the model's own clip spec (its model file's), through the reader every
path uses (:func:`rdam.data.clips.read_clip`), and run by the runner ``predict`` uses
(:class:`rdam.runtime.TorchRunner`, precision resolved once). The data set's classes are
matched to the model's **by name** (case-insensitive), never by position: a data class the
model does not have is an error unless ``class_map`` maps it to one of the model's classes or
excludes it (``{"contempt": None}``); excluded classes are listed in the report with their
clip counts. Anything that differs from the model's own settings (a spec override, another
precision) is written into the report.

**Label sets** (``labels``): the clips are scored against their folder (manifest) labels,
``folder``, or against the majority of a FER+-style vote CSV, ``ferplus:PATH``
(:mod:`rdam.data.votes`: FER+ emotions mapped to the FER2013 class names, a majority rule,
clips without a majority left out and counted by reason in ``no_label``), or against both
(``labels=["folder", "ferplus:PATH"]``): the model runs once; the first set gives the report's
top-level metrics and every set has its own entry in ``label_sets``.

**Ensembles** (several checkpoints): each model reads the clips under its own clip spec and
the clips' probabilities are averaged over the models (after each model's own averaging over
test views), class by class; the models must have the same classes in the same order. The
report gives the ensemble's metrics and, in ``members``, each model's own.

**Per-clip probabilities**: with ``out_dir``, ``probabilities.csv`` holds each scored clip's
probabilities (the ensemble's, over the test views), one column per model class
(:func:`rdam.data.votes.write_vote_csv`); as ``data.soft_labels`` it is a teacher's targets
for distillation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdam.checkpoint import ModelBundle, load_bundle
from rdam.data.layouts import load_manifest
from rdam.data.manifest import ClipRecord, Manifest, default_data_name
from rdam.data.votes import write_vote_csv
from rdam.errors import CheckpointError, ConfigError, DatasetError, check_finite_logits
from rdam.evaluation.metrics import classification_report, predict_loader, write_report
from rdam.runtime import ModelOutputs, ModelRunner

log = logging.getLogger(__name__)


class _FiniteLogitsRunner:
    """A model runner whose logits are refused unless finite
    (:func:`rdam.errors.check_finite_logits`, the check ``rdam predict`` makes), so that a NaN
    or infinite output is never scored (argmax would count it as class 0); each batch's clips
    are named by ``name_of`` their data set ``index``.

    Raises (on a call):
        NonFiniteOutputError: naming the clips whose logits are not finite.
    """

    def __init__(self, runner: ModelRunner, name_of: Callable[[int], str]) -> None:
        self.runner = runner
        self.name_of = name_of
        self.provides_relations = runner.provides_relations
        self.precision = runner.precision
        self.two_stream = runner.two_stream

    def __call__(self, inputs: Mapping[str, Any], relations: bool = False) -> ModelOutputs:
        out = self.runner(inputs, relations=relations)
        index = np.asarray(inputs["index"]).reshape(-1)
        check_finite_logits(out.logits, [self.name_of(int(i)) for i in index], self.precision)
        return out


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


LABEL_SETS = ("folder", "ferplus")


def parse_labels(labels: str | Sequence[str] | None) -> list[tuple[str, str | None]]:
    """``"folder,ferplus:votes.csv"`` (or a list of such items) -> ``[("folder", None),
    ("ferplus", "votes.csv")]``; None: ``[("folder", None)]``.

    Raises:
        ConfigError: an unknown label set, ``ferplus`` without a path, or a set named twice.
    """
    items = [labels] if isinstance(labels, str) else list(labels or ["folder"])
    out: list[tuple[str, str | None]] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            kind, sep, path = part.partition(":")
            kind = kind.strip().lower()
            if kind == "folder" and not sep:
                out.append(("folder", None))
            elif kind == "ferplus" and path.strip():
                out.append(("ferplus", path.strip()))
            else:
                raise ConfigError(
                    f"--labels {part!r}: give 'folder' (the data set's own labels) or "
                    "'ferplus:PATH.csv' (the majority of a FER+ vote CSV), or both separated "
                    "by a comma"
                )
    kinds = [k for k, _ in out]
    if len(set(kinds)) < len(kinds) or not out:
        raise ConfigError(f"--labels: name each label set once, got {labels!r}")
    return out


def ferplus_labels(
    records: Sequence[ClipRecord],
    votes_path: str | Path,
    model_classes: Sequence[str],
    class_map: Mapping[str, str | None] | None = None,
    rule: str = "plurality",
) -> tuple[list[int | None], dict[str, Any]]:
    """The FER+ majority label of each record as a model class index (None: no label), and
    what to report about it: the vote file, the rule, how many records were scored and how
    many had no label, by reason (:data:`rdam.data.votes.NO_LABEL_REASONS`).

    Each FER+ emotion goes to the model's class of its own name (``happiness`` for a model
    trained on FER+-named folders), else to its FER2013 name (``happiness`` -> ``happy``
    ...), as the soft targets read the same file (:func:`rdam.data.votes.soft_target_columns`);
    then through ``class_map`` where it names the emotion or that class (``DATA=`` drops it).
    Emotions that end on one class pool their votes before the majority is taken. A majority
    emotion the model lacks (contempt, for the 7-class FER2013 model) gives no label, reason
    ``contempt``.
    """
    from rdam.data.votes import FERPLUS_TO_CLASS, VoteTable, reason_counts

    mapped = {k.lower(): v for k, v in (class_map or {}).items()}
    own = {name.lower() for name in model_classes}
    class_of = {}
    for column, fer2013_name in FERPLUS_TO_CLASS.items():
        name = column if column in own else fer2013_name
        target = mapped[column] if column in mapped else mapped.get(name.lower(), name)
        class_of[column] = target or ""  # "" matches no class: its majority gives no label
    table = VoteTable(votes_path, class_of)
    labels, reasons = table.majority(records, list(model_classes), rule=rule)
    info = {
        "votes": str(votes_path),
        "majority_rule": rule,
        "clips": len(records),
        "scored": sum(label is not None for label in labels),
        "no_label": reason_counts(reasons),
    }
    return labels, info


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
    checkpoint: str | Path | Sequence[str | Path] | None = None,
    data: str | Path | Mapping[str, Any] | None = None,
    *,
    split: str | None = None,
    class_map: Mapping[str, str | None] | None = None,
    precision: str = "auto",
    threads: int | None = None,
    views: int = 1,
    flip: bool = False,
    crops: int = 1,
    face_input: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    out_dir: str | Path | None = None,
    labels: str | Sequence[str] | None = None,
    majority_rule: str = "plurality",
) -> dict[str, Any]:
    """Score a model on a labelled data set: accuracy, per-class accuracy, macro-F1 and the
    confusion matrix (also written to ``out_dir`` as JSON/CSV/PNG).

    Args:
        checkpoint: model file (``.safetensors``/``.ckpt``); None: the shipped default model.
            Several files: their **ensemble** (see the module doc).
        data: a folder of class folders (videos, images or image sequences, with or without
            split folders), ``kind:root``, a ``.csv``/``.json`` manifest or a manifest spec
            dict; None: the data set the model was trained on.
        split: the split to score; ``all``: every clip. Default: the only split, else the
            model's test or validation split.
        class_map: data class -> model class (None leaves the data class out).
        precision: ``auto`` | ``fp32`` | ``bf16`` (see :func:`rdam.runtime.resolve_precision`).
        threads: CPU threads (default: all cores).
        views, flip, crops: multi-view test: ``V`` clips per video (and each mirrored; and
            each as its 5 test crops, :func:`rdam.data.transforms.test_crop`: with ``flip`` the
            ten-crop test), probabilities averaged per clip.
        face_input: how face crops are made (:data:`rdam.data.spec.FACE_INPUTS`).
        overrides: clip spec fields to change (reported); the model's spec otherwise.
        batch_size, num_workers: of the data loader.
        out_dir: where to write the report.
        labels: the label set(s) to score against (see :func:`parse_labels` and the module
            doc): ``folder`` (default), ``ferplus:PATH`` or both; the first one gives the
            top-level metrics.
        majority_rule: how a FER+ majority is found (:data:`rdam.data.votes.MAJORITY_RULES`):
            ``plurality`` (the most votes, ties none) or ``ferplus`` (the FERPlus reference
            code: single votes removed, more than half of the rest).

    Returns:
        The report dict: the metrics of :func:`classification_report` plus ``model``,
        ``data_set``, ``split``, ``clip_spec``, ``overrides``, ``precision``, ``class_map``,
        ``excluded`` (data classes left out, with clip counts), ``test_views``, ``test_flip``,
        ``face_input``, ``timing``, ``labels`` (the first label set's name), with an ensemble
        ``members`` (per model its path and its own ``accuracy``/``macro_f1`` on the first
        label set) and, with more than
        one label set, ``label_sets`` (per label set its metrics; a ``ferplus`` one also ``votes``, ``majority_rule``,
        ``clips``, ``scored`` and ``no_label``: clips without a majority, by reason); with a
        ``ferplus`` first set, its ``votes``/``majority_rule``/``no_label`` also at the top.

    Raises:
        NonFiniteOutputError: a model gave NaN or infinite logits for some clips (named; the
            check of ``rdam predict``, :func:`rdam.errors.check_finite_logits`): nothing is
            scored (argmax would count such a clip as the first class).
    """
    from torch.utils.data import DataLoader

    from rdam.data.datasets import ClipDataset, collate_clips
    from rdam.runtime import TorchRunner
    from rdam.threads import set_cpu_threads

    if threads is not None:
        set_cpu_threads(threads)
    bundles = _load_members(checkpoint)
    bundle = bundles[0]  # the data set, split and class names come from the first
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    specs = [b.spec.replace(**overrides) for b in bundles]
    spec = specs[0]
    changed = {k: v for k, v in overrides.items() if any(getattr(b.spec, k) != v for b in bundles)}
    if changed:
        log.warning("evaluating with a clip spec other than the model's: %s", changed)
    label_sets = parse_labels(labels)
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
        if views > 1 or flip or crops > 1:
            raise ConfigError(
                "multi-view tests (views, flip, crops) read clips from files; the synthetic set "
                "is made in memory: score it without them"
            )

        def make_dataset(spec: Any) -> Any:
            return synthetic_split(options, split_name, spec.num_frames, spec.frame_size)

        data_classes = synthetic_class_names(int(synthetic_options(options)["num_classes"]))
        data_name = "synthetic"
        labels_of = None
        if label_sets != [("folder", None)]:
            raise ConfigError("the synthetic set has its own labels only (--labels folder)")
    else:
        manifest = load_manifest(source)
        split_name, records = _pick_split(manifest, split, bundle)
        data_classes = list(manifest.class_names)
        data_name = getattr(manifest, "name", None) or _name_of(source)
        labels_of = records
        make_dataset = None
    mapping = match_classes(data_classes, bundle.class_names, class_map or {})
    excluded: dict[str, int] = {}
    targets: dict[str, list[int | None]] = {}  # label set -> model class per scored clip
    set_info: dict[str, dict[str, Any]] = {}
    files: list[str] | None = None  # the scored clips' paths (None: the synthetic set)
    if make_dataset is None:
        folder: list[int | None] = []
        for r in labels_of:
            target = None if r.label is None else mapping[r.label]
            if r.label is not None and target is None:
                excluded[data_classes[r.label]] = excluded.get(data_classes[r.label], 0) + 1
            folder.append(target)
        for kind, path in label_sets:
            if kind == "folder":
                targets[kind] = folder
                set_info[kind] = {"excluded": excluded}
            else:
                targets[kind], set_info[kind] = ferplus_labels(
                    labels_of, path, bundle.class_names, class_map, majority_rule
                )
        # one model pass over every clip that some label set scores
        scored = [
            i for i in range(len(labels_of)) if any(t[i] is not None for t in targets.values())
        ]
        if not scored:
            raise DatasetError(f"no labelled clips to score in split {split_name!r} of {data_name}")
        kept = [
            ClipRecord(labels_of[i].path, folder[i], labels_of[i].split, labels_of[i].group)
            for i in scored
        ]
        targets = {k: [t[i] for i in scored] for k, t in targets.items()}
        files = [str(r.path) for r in kept]

        def make_dataset(spec: Any) -> Any:
            return ClipDataset(
                Manifest(kept, list(bundle.class_names)),
                spec,
                mode="center",
                face_input=face_input,
                test_views=views,
                test_flip=flip,
                test_crops=crops,
            )

    elif mapping != {i: i for i in range(len(data_classes))}:
        raise ConfigError("a class map cannot reorder the classes of the synthetic set")
    # one pass per model, each under its own clip spec; an ensemble averages the probabilities
    member_probs: list[np.ndarray] = []
    member_faceless: list[np.ndarray] = []

    def name_of(index: int) -> str:
        return files[index] if files is not None else f"synthetic {split_name} clip {index}"

    for member, member_spec in zip(bundles, specs, strict=True):
        runner = TorchRunner(member.model, precision=precision)
        loader = DataLoader(
            make_dataset(member_spec),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate_clips,
        )
        # NaN or inf logits are refused (NonFiniteOutputError), never scored
        labels, _, probs, empty = predict_loader(_FiniteLogitsRunner(runner, name_of), loader)
        member_probs.append(probs)
        member_faceless.append(empty)
    probabilities = np.mean(member_probs, axis=0)
    faceless = np.logical_and.reduce(member_faceless)  # no member saw a face in the clip
    if faceless.any():  # scored all the same: the figures stay those of the whole split
        from rdam.data.video import clip_kind

        images = files is not None and any(
            clip_kind(f) == "image" for f, empty in zip(files, faceless, strict=True) if empty
        )
        log.warning(
            "%d of %d clips had no face in any sampled frame: the model answered them from its "
            "classifier's bias alone (rdam predict refuses them); they are counted in the "
            "figures and listed as faceless in the report%s",
            int(faceless.sum()),
            len(faceless),
            "; if the images are face crops already (an aligned face data set), --faces given "
            "takes each image as the crop"
            if images and face_input != "given"
            else "",
        )
    predictions = probabilities.argmax(1)
    seconds = time.perf_counter() - start
    names = list(bundle.class_names)
    sets: dict[str, dict[str, Any]] = {}
    for kind, _ in label_sets:
        if kind not in targets:  # the synthetic set: its own labels
            sets[kind] = {"excluded": excluded, **classification_report(labels, predictions, names)}
            continue
        sets[kind] = {
            **set_info[kind],
            **classification_report(*_labelled(targets[kind], predictions), names),
        }
    first = sets[label_sets[0][0]]
    paths = [str(b.metadata.get("path", "")) for b in bundles]
    report = {
        "model": paths[0] if len(paths) == 1 else f"ensemble of {len(paths)}: {', '.join(paths)}",
        "data_set": data_name,
        "split": split_name,
        "clip_spec": spec.to_dict(),
        "overrides": changed,
        "precision": runner.precision,
        "class_map": {k: v for k, v in (class_map or {}).items()},
        "excluded": excluded,
        "test_views": views,
        "test_flip": flip,
        "test_crops": crops,
        "face_input": face_input,
        # clips no member saw a face in (answered from the classifier's bias alone)
        "faceless": int(faceless.sum()),
        "timing": {"seconds": seconds, "clips_per_s": len(labels) / seconds if seconds else None},
        "labels": label_sets[0][0],
        **{k: v for k, v in first.items() if k != "excluded"},
    }
    if len(bundles) == 1 and bundles[0].metadata.get("checkpoint"):
        report["checkpoint"] = bundles[0].metadata["checkpoint"]  # a training checkpoint's step
    if len(bundles) == 1:
        recipe = _recipe_of(bundles[0])
        if recipe is not None:  # rdam report checks it against the run directory's config
            report["recipe_sha256"] = recipe
    if faceless.any() and files is not None:
        report["faceless_files"] = [f for f, empty in zip(files, faceless, strict=True) if empty]
    if len(sets) > 1:
        report["label_sets"] = sets
    if len(bundles) > 1:
        report["members"] = [
            {"model": path, **_first_set_scores(probs, labels, targets, label_sets, names)}
            for path, probs in zip(paths, member_probs, strict=True)
        ]
        if any(s != spec for s in specs):
            report["member_clip_specs"] = [s.to_dict() for s in specs]
    if out_dir is not None:
        write_report(report, out_dir)
        if files is not None:
            write_vote_csv(Path(out_dir) / "probabilities.csv", files, probabilities, names)
    return report


def _recipe_of(bundle: ModelBundle) -> str | None:
    """:func:`rdam.config.recipe_sha256` of the experiment a model was trained with, if its
    file records one that today's rdam can read (None: no check of the run it is put in)."""
    from rdam.config import recipe_sha256

    experiment = bundle.metadata.get("experiment")
    if not isinstance(experiment, dict):
        return None
    try:
        return recipe_sha256(experiment)
    except ConfigError as exc:
        log.warning(
            "%s: its training config cannot be read by this rdam (%s); the evaluation records "
            "no recipe, so rdam report cannot check that it is the run's own model",
            bundle.metadata.get("path", "the model"),
            exc,
        )
        return None


def _labelled(
    target: Sequence[int | None], predictions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A label set's labels and the predictions of the clips it labels (None: left out)."""
    keep = np.asarray([t is not None for t in target], dtype=bool)
    truth = np.asarray([-1 if t is None else t for t in target], dtype=np.int64)
    return truth[keep], predictions[keep]


def _load_members(checkpoint: str | Path | Sequence[str | Path] | None) -> list[ModelBundle]:
    """The model(s) to score: one, or the members of an ensemble, which must have the same
    classes in the same order (their probabilities are averaged class by class)."""
    if checkpoint is None or isinstance(checkpoint, (str, Path)):
        return [load_bundle(checkpoint)]
    paths = list(checkpoint)
    if not paths:
        raise ConfigError("no model to evaluate: give one checkpoint, or several for an ensemble")
    bundles = [load_bundle(p) for p in paths]
    names = list(bundles[0].class_names)
    for path, b in zip(paths[1:], bundles[1:], strict=True):
        if list(b.class_names) != names:
            raise ConfigError(
                f"an ensemble averages probabilities class by class, but {path} has the classes "
                f"{list(b.class_names)} and {paths[0]} has {names}: use models with the same "
                "classes in the same order"
            )
    return bundles


def _first_set_scores(
    probs: np.ndarray,
    labels: np.ndarray,
    targets: Mapping[str, list[int | None]],
    label_sets: Sequence[tuple[str, str | None]],
    names: list[str],
) -> dict[str, float]:
    """One ensemble member's accuracy and macro-F1 on the first label set."""
    kind = label_sets[0][0]
    predictions = probs.argmax(1)
    if kind in targets:
        labels, predictions = _labelled(targets[kind], predictions)
    scores = classification_report(labels, predictions, names)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def _name_of(source: Any) -> str:
    if isinstance(source, dict):
        return default_data_name(
            source.get("kind", ""), str(source.get("root") or source.get("path") or "")
        )
    text = str(source)
    kind, sep, rest = text.partition(":")
    return default_data_name(kind if sep else "folder", rest if sep else text)
