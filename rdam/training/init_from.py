"""``trainer.init_from``: start a run from the weights of a trained rdam model (fine-tuning).

The model file must be the same network as the run's (``model`` config, apart from the
backbone's ``weights`` source), predict the same classes in the same order, and have been
trained on clips made the same way (the same clip spec): weights trained on other input would
otherwise be fine-tuned without a word on inputs they never saw. Every mismatch is refused with
what differs, except the clip spec fields a config names in ``trainer.init_spec_changes`` (a
fine-tune on larger faces: ``[frame_size]``), which are logged and recorded with the start as
``spec_changes: {field: [file's value, run's value]}``; the run's own model file carries the
run's clip spec, so what it predicts with is what it was fine-tuned on. ``default`` names the
model shipped with rdam (checked against its sha256).

``default`` means another model once a new one ships, so a config written to fine-tune one model
pins it with ``trainer.init_sha256``: the run is refused when the file it names has another
digest. Either way the run records where it started (``{"source", "sha256"}``) in its model
file's metadata (``init_from``) and in ``metrics.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from rdam.checkpoint import ModelBundle, load_model, resolve_model, sha256_file
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


def read_init_model(
    init_from: str, expected_sha256: str | None = None
) -> tuple[ModelBundle, dict[str, str]]:
    """The bundle ``init_from`` names (``default``: the shipped model, else a model file path)
    and the record of where the run starts, ``{"source": init_from, "sha256": <hex>}``.

    Raises:
        ConfigError: the file's sha256 is not ``expected_sha256`` (``trainer.init_sha256``).
    """
    path, shipped_digest = resolve_model(None if init_from == DEFAULT else Path(init_from))
    bundle = load_model(path, expected_sha256=shipped_digest)  # a missing/corrupt file: refused
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        what = "the shipped default model" if init_from == DEFAULT else "the file"
        raise ConfigError(
            f"trainer.init_from={init_from}: {what} ({path}) has sha256 {digest}, but "
            f"trainer.init_sha256 pins {expected_sha256}: the config was written to fine-tune "
            "another model. Pass that model's file as trainer.init_from (the model card says "
            "where to get it), or set trainer.init_sha256 to the digest above to start from "
            "this one"
        )
    return bundle, {"source": init_from, "sha256": digest}


def check_compatible(
    bundle: ModelBundle,
    source: str,
    model_config: ModelConfig,
    class_names: list[str],
    spec: ClipSpec,
    spec_changes: tuple[str, ...] = (),
) -> dict[str, list[object]]:
    """Raise :class:`ConfigError` naming each way ``bundle`` differs from the run, apart from
    the clip spec fields in ``spec_changes`` (``trainer.init_spec_changes``).

    Returns:
        ``{field: [file's value, run's value]}`` for each allowed clip spec change that is one.
    """
    problems = []
    mine, theirs = model_config.to_dict(), bundle.config.to_dict()
    fields = [k for k in sorted(set(mine) | set(theirs)) if k not in _FREE_FIELDS]
    arch = {k: (theirs.get(k), mine.get(k)) for k in fields if theirs.get(k) != mine.get(k)}
    if arch:
        problems.append("model config " + _describe(arch))
    if list(bundle.class_names) != list(class_names):
        problems.append(f"classes {list(bundle.class_names)} in the file, {list(class_names)} here")
    spec_diff = bundle.spec.differences(spec)
    changed = {k: [a, b] for k, (a, b) in spec_diff.items() if k in spec_changes}
    refused = {k: diff for k, diff in spec_diff.items() if k not in spec_changes}
    if refused:
        problems.append(
            "clip spec "
            + _describe(refused)
            + " (trainer.init_spec_changes lists the fields a fine-tune may change)"
        )
    if problems:
        raise ConfigError(
            f"trainer.init_from={source}: the model file does not fit this run ("
            + "; ".join(problems)
            + "). Fine-tune with the file's model config, classes and clip spec, or train "
            "from scratch without trainer.init_from"
        )
    for name, (theirs_value, mine_value) in changed.items():
        log.info(
            "trainer.init_from=%s: clip spec %s changes from %r (the file's) to %r "
            "(trainer.init_spec_changes)",
            source,
            name,
            theirs_value,
            mine_value,
        )
    return changed


def initialise_from(model: nn.Module, bundle: ModelBundle, source: str) -> None:
    """Copy every weight of ``bundle`` (read by :func:`read_init_model`, passed by
    :func:`check_compatible`) into ``model``; strict: every tensor, no extra ones."""
    model.load_state_dict(bundle.model.state_dict(), strict=True)
    log.info("initialised from %s: every weight of the model file", source)
