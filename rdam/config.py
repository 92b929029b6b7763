"""Experiment configuration: typed dataclasses, read from YAML, overridden from the command line.

A config file has four sections, each optional (defaults below)::

    model:   {backbone: resnet50, region_head: dual, ...}      # rdam.models.ModelConfig
    data:    {kind: image_folder, root: ..., num_frames: 8, ...}
    optim:   {optimizer: adamw, lr: 1e-3, epochs: 30, ...}
    trainer: {precision: bf16-mixed, seed: 0, output_dir: runs, ...}

A file may start from other files with a top-level ``include:`` (one path or a list, relative
to the including file): the included files are merged in order, then the file's own sections
on top, key by key (mappings merge recursively; lists and scalars replace). Includes may nest;
a cycle is an error. ``configs/ablation/*.yaml`` are such small override files::

    include: ../mhed.yaml
    model: {region_head: location}

Overrides are ``section.key=value`` strings whose value is parsed as YAML
(``model.region_head=location optim.lr=3e-4 data.augment.hflip=0``); they apply last. Files
and overrides are read under the YAML 1.2 core schema, and each setting is converted to its
field's type or refused by name (:mod:`rdam.scalars`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rdam.data.manifest import default_data_name
from rdam.data.spec import FACE_INPUTS, FIELD_NAMES, ClipSpec
from rdam.errors import ConfigError
from rdam.models import ModelConfig
from rdam.scalars import coerce_scalars, load_yaml

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "step", "none")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed", "auto")
LOGGERS = ("csv", "tensorboard")


@dataclass
class AugmentConfig:
    """Clip-consistent training augmentation (see :class:`rdam.data.transforms.ClipTransform`)."""

    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.0)
    hflip: float = 0.5
    rotation_deg: float = 10.0
    color_jitter: float = 0.2
    # Training throughput (docs/benchmarks.md, figure 9). ``batched``: the same draws applied
    # to whole batches in the main process after the transfer to the device
    # (:class:`rdam.data.transforms.BatchClipTransform`; the per-item draw depends on
    # (seed, epoch, index) as before) instead of per item in the loader. ``in_memory``: with
    # batched augmentation, keep the decoded training clips of an image data set in memory as
    # one uint8 array (:class:`rdam.training.fast_input.PreloadedClips`) instead of decoding every
    # image every epoch.
    batched: bool = False
    in_memory: bool = False


@dataclass
class DataConfig:
    """Where the clips come from and how they are made.

    kind/root/options describe the manifest (see :func:`rdam.data.layouts.load_manifest`):
    ``image_folder`` (FER2013 layout), ``video_folder``, ``sequence_folder`` (CK+),
    ``ekman6``, ``videoemotion8``, ``csv``, ``json``; or ``synthetic`` (the embedded demo set,
    generated in memory from the ``synthetic`` options, see :mod:`rdam.data.synthetic`).
    ``name`` labels the data set in reports (``rdam report``); it defaults to the name of the
    root folder (``synthetic`` for the demo set).
    """

    kind: str = "image_folder"
    root: str = ""
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = None
    # The clip spec of the model (rdam.data.spec.ClipSpec), one key per field. Left unset, a
    # field takes the value the preprocessing cache was made with (data.cache_dir), else the
    # ClipSpec default; set, it must match the cache (stored frames are never re-fitted).
    num_frames: int | None = None
    frame_size: int | None = None
    stream: str | None = None
    fit: str | None = None
    face_margin: float | None = None
    max_side: int | None = None
    color: str | None = None
    keyframes: bool | None = None
    face_score: float | None = None
    face_select: str | None = None
    # How face crops are made from this data set's files (rdam.data.spec.FACE_INPUTS):
    # auto, detect, or given (the images are face crops already, as in FER2013).
    face_input: str = "auto"
    cache_dir: str | None = None
    batch_size: int = 8
    eval_batch_size: int | None = None
    num_workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)
    # Multi-view testing (the test stage and `rdam eval` only): V clips per video, each also
    # mirrored with test_flip; a clip's prediction averages its views' probabilities.
    test_views: int = 1
    test_flip: bool = False
    # Soft targets from crowd votes (rdam.data.votes): a FER+-style vote CSV (absolute, or
    # relative to the working directory as data.root is), or a teacher's probabilities.csv
    # from `rdam eval --out` (columns named as the classes: distillation). Each training image with a row is
    # trained towards soft_label_weight x its vote distribution + (1 - soft_label_weight) x
    # the one-hot folder label; an image without a row keeps the one-hot label
    # (optim.label_smoothing applies on top of either). FER+ contempt votes count only where
    # the classes include ``contempt``; unknown / NF votes never. Validation and test scores
    # (and val/loss) stay on the manifest's labels. None: the manifest's labels only.
    # Several sources (e.g. the FER+ votes and a teacher): a list of {path, weight} entries,
    # weights summing to at most 1; each image is trained towards the sum of weight x
    # distribution over the sources that have a row for it, the rest of the mass on its
    # one-hot label (soft_label_weight is then not used: leave it at 1).
    soft_labels: str | list[dict[str, Any]] | None = None
    soft_label_weight: float = 1.0

    def soft_label_sources(self) -> list[tuple[str, float]]:
        """``data.soft_labels`` as ``(path, weight)`` pairs (empty when unset)."""
        if self.soft_labels is None:
            return []
        if isinstance(self.soft_labels, str):
            return [(self.soft_labels, float(self.soft_label_weight))]
        return [(str(e["path"]), float(e["weight"])) for e in self.soft_labels]

    def _check_soft_labels(self) -> None:
        if not 0.0 <= float(self.soft_label_weight) <= 1.0:
            raise ConfigError(
                f"data.soft_label_weight must be in [0, 1], got {self.soft_label_weight!r}"
            )
        if self.soft_labels is None or isinstance(self.soft_labels, str):
            return
        entries = self.soft_labels
        if not isinstance(entries, list) or not entries:
            raise ConfigError(
                "data.soft_labels must be a path or a non-empty list of {path, weight} entries, "
                f"got {entries!r}"
            )
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) != {"path", "weight"}:
                raise ConfigError(
                    f"each entry of data.soft_labels needs exactly 'path' and 'weight', got {entry!r}"
                )
            if not 0.0 <= float(entry["weight"]) <= 1.0:
                raise ConfigError(f"data.soft_labels weight must be in [0, 1], got {entry!r}")
        total = sum(float(e["weight"]) for e in entries)
        if total > 1.0 + 1e-9:
            raise ConfigError(
                f"the weights of data.soft_labels sum to {total:g}; at most 1 is allowed"
            )
        if float(self.soft_label_weight) != 1.0:
            raise ConfigError(
                "data.soft_label_weight applies to a single data.soft_labels path; with a list, "
                "give each entry its weight and leave soft_label_weight at 1"
            )

    def __post_init__(self) -> None:
        self._check_soft_labels()
        if self.soft_labels is not None and self.kind == "synthetic":
            raise ConfigError("data.soft_labels needs a manifest; the synthetic set has none")
        if isinstance(self.augment, dict):
            self.augment = _build(AugmentConfig, self.augment, "data.augment")
        if not self.name:
            self.name = default_data_name(self.kind, self.root)
        if self.face_input not in FACE_INPUTS:
            raise ConfigError(
                f"data.face_input={self.face_input!r} is not one of {', '.join(FACE_INPUTS)}"
            )
        for name in ("batch_size", "test_views"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)!r}")
        self.clip_spec()  # a bad value is an error now, not at the first batch

    def spec_fields(self) -> dict[str, Any]:
        """The clip spec fields this config sets (the others are unset: ``None``);
        ``max_side: 0`` is the spec's ``None`` (decode at native size)."""
        out = {n: getattr(self, n) for n in SPEC_FIELDS if getattr(self, n) is not None}
        if out.get("max_side") == 0:
            out["max_side"] = None
        return out

    def with_spec(self, spec: ClipSpec) -> DataConfig:
        """This config with every clip spec field set to ``spec``'s (``max_side`` None as 0)."""
        values = {name: getattr(spec, name) for name in SPEC_FIELDS}
        if values["max_side"] is None:
            values["max_side"] = 0
        return dataclasses.replace(self, **values)

    def clip_spec(self, stored: ClipSpec | None = None) -> ClipSpec:
        """The model's clip spec: the fields set here over ``stored`` (a preprocessing cache's
        spec) or the :class:`ClipSpec` defaults; with ``stored``, a set field that differs
        from it is an error (``num_frames`` may be smaller: stored frames are sub-sampled)."""
        fields_set = self.spec_fields()
        try:
            if stored is None:
                return ClipSpec(**fields_set)
            spec = stored.replace(**fields_set)
        except ConfigError as exc:
            raise ConfigError(f"data: {exc}") from exc
        clash = {
            k: v
            for k, v in stored.differences(spec).items()
            if k != "stream" and not (k == "num_frames" and v[1] <= v[0])
        }
        if (spec.uses_faces and not stored.uses_faces) or (
            spec.uses_frames and not stored.uses_frames
        ):
            clash["stream"] = (stored.stream, spec.stream)
        if clash:
            listed = ", ".join(f"data.{k}={b!r} (cache: {a!r})" for k, (a, b) in clash.items())
            raise ConfigError(
                f"the cache at {self.cache_dir} was made under another clip spec: {listed}; "
                "leave these data settings unset to train with the cache's, or preprocess again"
            )
        return spec


SPEC_FIELDS = tuple(f.name for f in fields(ClipSpec) if f.name != "sampler")
"""The clip spec fields a data config sets (``sampler`` has one value today)."""


@dataclass
class OptimConfig:
    """Optimiser, schedule and loss."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.05
    momentum: float = 0.9
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    label_smoothing: float = 0.0
    # Regularisers of the training step (rdam.training.regularize): random erasing, the
    # probability per clip of one erased rectangle (0 = off; the anchors use 0.5), and mixup,
    # the alpha of Beta(alpha, alpha) (0 = off; the ResNet-18 anchor uses 1).
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    # Stochastic weight averaging (Izmailov et al., 2018): the last ``swa_epochs`` epochs run at
    # the constant rate ``swa_lr`` (default: lr / 10) after the schedule has ended, and the
    # weights (and BatchNorm statistics) after every step of them are averaged; validation,
    # checkpoints and the exported model use the average.
    swa_epochs: int = 0
    swa_lr: float | None = None
    # The optimiser's fused kernel (one pass over all parameters; CPU and CUDA): None = fused
    # where every parameter is on a CPU or CUDA device, else the per-tensor loop.
    fused: bool | None = None

    def __post_init__(self) -> None:
        if self.swa_epochs < 0:
            raise ConfigError(f"optim.swa_epochs must be >= 0, got {self.swa_epochs}")
        if self.swa_lr is not None and self.swa_lr <= 0:
            raise ConfigError(f"optim.swa_lr must be > 0, got {self.swa_lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optim.optimizer={self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"optim.scheduler={self.scheduler!r} is not one of {SCHEDULERS}")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ConfigError(
                f"optim.random_erasing must be a probability in [0, 1], got {self.random_erasing}"
            )
        if not self.mixup_alpha >= 0.0:
            raise ConfigError(f"optim.mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )


@dataclass
class TrainerConfig:
    """Devices, precision, length, logging and checkpointing (Lightning ``Trainer`` options)."""

    max_epochs: int = 30
    precision: str = "32"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    seed: int = 0
    deterministic: bool = False
    early_stopping_patience: int | None = None
    monitor: str = "val/acc"
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 20
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    val_check_interval: float | int | None = None
    checkpoint_every_n_steps: int | None = None
    output_dir: str = "runs"
    run_name: str = "rdam"
    loggers: tuple[str, ...] = ("csv", "tensorboard")
    progress_bar: bool = True
    threads: int | None = None
    # Start from the weights of a trained rdam model (fine-tuning): a model file path, or
    # ``default`` for the shipped model. Same model config, classes and clip spec as this run,
    # or refused (rdam/training/init_from.py). A resumed run takes its weights from last.ckpt.
    init_from: str | None = None
    # The sha256 (hex) the init_from file must have: ``default`` names another model once a new
    # one ships, and a config written for one start is refused on another (not run silently).
    init_sha256: str | None = None
    # Clip spec fields this fine-tune changes on purpose from the init_from file's (e.g.
    # ``[frame_size]``: the same weights fine-tuned on larger faces). Any other difference is
    # still refused; each change is logged and recorded with the start (``init_from``).
    init_spec_changes: tuple[str, ...] = ()
    # Train the network in channels_last memory format (same results to float rounding;
    # faster convolutions on CPU with oneDNN and on GPUs; docs/benchmarks.md, figure 9).
    channels_last: bool = True
    # Compute the dilated convolutions that read mostly zero padding (the 6x6 maps of a 48-px
    # face at output stride 8) one kernel tap at a time on CPU: the same function to float
    # rounding, 1.3x faster training steps of the default face model (rdam/models/tap_conv.py;
    # docs/benchmarks.md, figure 9).
    tap_convolutions: bool = True

    def __post_init__(self) -> None:
        self.precision = str(self.precision)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision={self.precision!r} is not one of {PRECISIONS}")
        self.loggers = _names(self.loggers)
        if set(self.loggers) - set(LOGGERS):
            raise ConfigError(
                f"trainer.loggers: {sorted(set(self.loggers) - set(LOGGERS))} are not loggers "
                f"rdam writes; valid: {', '.join(LOGGERS)} (or none: trainer.loggers=[])"
            )
        self.init_spec_changes = _names(self.init_spec_changes)
        unknown = sorted(set(self.init_spec_changes) - FIELD_NAMES)
        if unknown:
            raise ConfigError(
                f"trainer.init_spec_changes: {unknown} are not clip spec fields; valid: "
                f"{sorted(FIELD_NAMES)}"
            )


def _names(value: Any) -> tuple[str, ...]:
    """A setting that lists names, as YAML or a command-line override gives it: a list, or one
    string of comma-separated names (``trainer.loggers=csv``, not the letters c, s, v)."""
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    return tuple(value or ())


#: Settings that say where and how a run runs, not what it trains or how it is scored: a resume
#: may change them (:func:`rdam.training.resume.check_same_recipe`) and the runs of one table
#: cell may differ in them (:mod:`rdam.evaluation.mixing`). Each call's precision, device and
#: threads are recorded in the run's ``metrics.json`` (``compute``). ``data.face_input`` is not one:
#: for videos, ``detect`` and ``given`` are other training inputs.
RUN_SETTINGS = frozenset(
    {
        "data.root",
        "data.cache_dir",
        "data.num_workers",
        "data.eval_batch_size",
        "data.test_views",
        "data.test_flip",
        "trainer.threads",
        "trainer.progress_bar",
        "trainer.output_dir",
        "trainer.loggers",
        "trainer.log_every_n_steps",
        "trainer.checkpoint_every_n_steps",
        "trainer.accelerator",
        "trainer.precision",
        "trainer.tap_convolutions",
    }
)


#: What an override may set on a table row's config and the run still be that row's own recipe
#: (``rdam train --keep-recipe``, used by ``benchmarks/train_rows.sh`` for the records it
#: commits): :data:`RUN_SETTINGS`, the seed (a row is run at several), the devices, and the start
#: model's file when it goes by another name (its sha256 is checked against ``init_sha256`` and
#: recorded in ``metrics.json``). ``trainer.max_epochs=1`` and the like make another recipe.
ROW_OVERRIDES = RUN_SETTINGS | {
    "trainer.seed",
    "trainer.devices",
    "trainer.init_from",
    "trainer.init_sha256",
}


def check_row_overrides(overrides: list[str]) -> None:
    """Raise :class:`ConfigError` naming each override outside :data:`ROW_OVERRIDES`."""
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    changed = [key for key in keys if key not in ROW_OVERRIDES]
    if changed:
        raise ConfigError(
            f"--keep-recipe: override(s) {', '.join(changed)} change the config's recipe; only "
            f"where and how it runs may change ({', '.join(sorted(ROW_OVERRIDES))}). Drop "
            "--keep-recipe (and keep the run's records apart) for a trial"
        )


def flat_settings(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A config dict (``ExperimentConfig.to_dict()``) as ``{"optim.lr": 0.001, ...}``; lists
    and tuples are values (as lists)."""
    if not isinstance(tree, dict):
        return {prefix: list(tree) if isinstance(tree, tuple) else tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flat_settings(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


@dataclass
class ExperimentConfig:
    """One training run: model + data + optimisation + trainer."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if self.data.stream is not None:
            self.check_streams()
        if self.optim.swa_epochs and self.trainer.early_stopping_patience:
            raise ConfigError(
                "optim.swa_epochs with trainer.early_stopping_patience: a stop before the "
                "averaging phase would export last.ckpt, neither the best epoch nor an average; "
                "use one of them"
            )
        if self.optim.swa_epochs >= self.trainer.max_epochs:
            raise ConfigError(
                f"optim.swa_epochs={self.optim.swa_epochs} leaves no epoch of the main schedule "
                f"within trainer.max_epochs={self.trainer.max_epochs}; make it smaller"
            )

    def check_streams(self, origin: str = "") -> None:
        """Refuse a model that does not read ``data.stream`` (``origin``: where the stream
        came from, when not from the config itself)."""
        if (self.model.arch == "two_stream") != (self.data.stream == "both"):
            raise ConfigError(
                f"model.arch={self.model.arch!r} with data.stream={self.data.stream!r}{origin}: "
                "the two-stream model reads frames and faces (data.stream=both), every other "
                "model one stream (frames or faces)"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return _plain(out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        unknown = sorted(set(data) - {"model", "data", "optim", "trainer"})
        if unknown:
            raise ConfigError(
                f"unknown config sections {unknown}; valid: model, data, optim, trainer"
            )
        return cls(
            model=ModelConfig.from_dict(dict(data.get("model") or {})),
            data=_build(DataConfig, data.get("data") or {}, "data"),
            optim=_build(OptimConfig, data.get("optim") or {}, "optim"),
            trainer=_build(TrainerConfig, data.get("trainer") or {}, "trainer"),
        )


#: Settings added to rdam after runs began to record their recipe (:func:`recipe_sha256`), each
#: with its default: left out of the recipe while it has that default, so a record written before
#: it existed still names its run's recipe (a run that sets it trains another recipe). A new
#: setting that changes what a run trains goes here with its default; ``tests/test_config.py``
#: pins the recipe of a fixed config, so forgetting it fails there.
LATER_SETTINGS: dict[str, Any] = {"trainer.init_spec_changes": []}


def recipe_sha256(experiment: dict[str, Any]) -> str:
    """What a run trains, as 16 hex digits: the experiment config dict ``experiment`` (as in a
    run's ``config.yaml`` or a model file's metadata), read with today's defaults, without
    :data:`RUN_SETTINGS`. ``rdam eval`` records it for the model it scored and ``rdam report``
    checks it against the run directory's ``config.yaml``, so a directory never shows another
    run's score.

    Raises:
        ConfigError: ``experiment`` is not a valid experiment config.
    """
    flat = flat_settings(ExperimentConfig.from_dict(experiment).to_dict())
    recipe = {
        k: v
        for k, v in flat.items()
        if k not in RUN_SETTINGS and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])
    }
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so configs serialise to YAML/JSON and safe checkpoints."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in {section}; valid keys are {sorted(known)}")
    try:
        return cls(**coerce_scalars(cls, data, section))
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from exc


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML, :func:`rdam.scalars.load_yaml`)
    to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ConfigError(f"override {item!r} must name a section, e.g. optim.lr=1e-3")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        try:
            node[parts[-1]] = load_yaml(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    return data


def merge_config_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge recursively, anything else replaces. New dict."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config_dicts(out[key], value)
        else:
            out[key] = value
    return out


def read_config_dict(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config file as a dict with its ``include:`` files merged in (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError(f"config include cycle: {chain}")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: 'include' must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for include in includes:
        target = Path(include)
        if not target.is_absolute():
            target = path.parent / target
        if not target.is_file():
            raise ConfigError(f"{path}: included config {include!r} not found at {target}")
        merged = merge_config_dicts(merged, read_config_dict(target, (*_seen, resolved)))
    return merge_config_dicts(merged, data)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Read a YAML experiment config (or start from defaults), resolve its ``include:`` files
    and apply overrides."""
    data: dict[str, Any] = read_config_dict(path) if path is not None else {}
    return ExperimentConfig.from_dict(apply_overrides(data, list(overrides or [])))


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
