"""``trainer.init_from``: start a run from the weights of a trained rdam model (fine-tuning).

The model file must be the same network as the run's (``model`` config, apart from the
backbone's ``weights`` source), predict the same classes in the same order, and have been
trained on clips made the same way (the same clip spec): weights trained on other input would
otherwise be fine-tuned without a word on inputs they never saw. Every mismatch is refused with
what differs. ``default`` names the model shipped with rdam (checked against its sha256).
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from rdam.checkpoint import ModelBundle, load_bundle
from rdam.data.spec import ClipSpec
from rdam.errors import ConfigError
from rdam.models import ModelConfig

log = logging.getLogger(__name__)

#: ``trainer.init_from`` value that names the shipped default model.
DEFAULT = "default"

#: Model config fields that may differ: where the backbone's first weights came from.
_FREE_FIELDS = frozenset({"weights"})


def _describe(diff: dict[str, tuple[object, object]]) -> str:
    return ", ".join(f"{k}: {a!r} in the file, {b!r} here" for k, (a, b) in diff.items())


def read_init_model(init_from: str) -> ModelBundle:
    """The bundle ``init_from`` names: ``default`` (the shipped model) or a model file path."""
    return load_bundle(None if init_from == DEFAULT else Path(init_from))


def check_compatible(
    bundle: ModelBundle,
    source: str,
    model_config: ModelConfig,
    class_names: list[str],
    spec: ClipSpec,
) -> None:
    """Raise :class:`ConfigError` naming each way ``bundle`` differs from the run."""
    problems = []
    mine, theirs = model_config.to_dict(), bundle.config.to_dict()
    fields = [k for k in sorted(set(mine) | set(theirs)) if k not in _FREE_FIELDS]
    arch = {k: (theirs.get(k), mine.get(k)) for k in fields if theirs.get(k) != mine.get(k)}
    if arch:
        problems.append("model config " + _describe(arch))
    if list(bundle.class_names) != list(class_names):
        problems.append(f"classes {list(bundle.class_names)} in the file, {list(class_names)} here")
    spec_diff = bundle.spec.differences(spec)
    if spec_diff:
        problems.append("clip spec " + _describe(spec_diff))
    if problems:
        raise ConfigError(
            f"trainer.init_from={source}: the model file does not fit this run ("
            + "; ".join(problems)
            + "). Fine-tune with the file's model config, classes and clip spec, or train "
            "from scratch without trainer.init_from"
        )


def initialise_from(
    model: nn.Module,
    init_from: str,
    model_config: ModelConfig,
    class_names: list[str],
    spec: ClipSpec,
) -> ModelBundle:
    """Copy the weights of the model ``init_from`` names into ``model`` (every tensor; strict)
    after :func:`check_compatible`; returns the bundle read."""
    bundle = read_init_model(init_from)
    check_compatible(bundle, init_from, model_config, class_names, spec)
    model.load_state_dict(bundle.model.state_dict(), strict=True)
    log.info("initialised from %s: every weight of the model file", init_from)
    return bundle
