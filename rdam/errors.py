"""Typed exceptions raised by rdam.

Every error carries the offending path or value and says what to do next, so that a batch
job can record it against one input and carry on with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class RDAMError(Exception):
    """Base class of every error rdam raises on purpose."""


class ConfigError(RDAMError, ValueError):
    """A configuration value is invalid (unknown name, out-of-range number, wrong type)."""


class WeightsError(RDAMError):
    """Backbone or model weights could not be obtained or do not fit the model."""


class CheckpointError(RDAMError):
    """A checkpoint is missing, truncated, corrupt, from an incompatible version or unsafe."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds arbitrary pickled objects and was refused without running them."""


class VideoError(RDAMError):
    """A video (or image sequence) could not be read. ``path`` names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist."""


class EmptyVideoError(VideoError):
    """The file is empty, has no video stream or holds zero decodable frames."""


class CorruptVideoError(VideoError):
    """The container or stream is truncated, corrupt or not a video at all."""


class NoFaceError(VideoError):
    """The face stream found no face in any sampled frame of the clip (no label is given)."""


class FaceModelError(RDAMError):
    """The face detector model could not be found, downloaded or loaded."""


class NonFiniteOutputError(RDAMError):
    """The model gave NaN or infinite logits for some clips: no answer (nor score) is made of
    them. It concerns the model and its numeric precision, not the inputs (an fp16/bf16
    overflow, a corrupt or diverged weight file), so it stops the whole run. ``inputs`` names
    the inputs of those clips (each once), ``count`` is how many of the ``total`` clips of the
    model call they were."""

    def __init__(
        self, inputs: Sequence[str], count: int, total: int, precision: str | None = None
    ) -> None:
        self.inputs = list(dict.fromkeys(str(name) for name in inputs))
        self.count = int(count)
        self.total = int(total)
        self.precision = precision
        shown = ", ".join(self.inputs[:5])
        if len(self.inputs) > 5:
            shown += f" and {len(self.inputs) - 5} more"
        under = f" under precision {precision}" if precision else ""
        super().__init__(
            f"{shown}: the model's output (logits) is not finite (NaN or inf){under} for "
            f"{self.count} of the {self.total} clips of one model call; no answer is made of "
            "it. Run again with --precision fp32 (Python: precision='fp32'): fp16 and bf16 can "
            "overflow. If fp32 gives NaN as well, the model file is corrupt or its training "
            "diverged: check it against its .sha256, or export or download it again"
        )


def check_finite_logits(logits: Any, inputs: Sequence[str], precision: str | None = None) -> None:
    """Refuse model outputs that are not finite before any answer or score is made of them
    (argmax would take a NaN row as class 0).

    Args:
        logits: ``(B, C)`` class logits of one model call (a numpy array or anything
            :func:`numpy.asarray` takes).
        inputs: the ``B`` clips' names (paths), in row order.
        precision: the runner's numeric precision, for the message.

    Raises:
        NonFiniteOutputError: some row holds a NaN or an infinity; it names those rows' inputs.
        ValueError: ``inputs`` does not name every row.
    """
    import numpy as np

    array = np.asarray(logits)
    if len(inputs) != len(array):
        raise ValueError(f"{len(inputs)} input names for {len(array)} rows of logits")
    finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise NonFiniteOutputError([str(inputs[i]) for i in bad], len(bad), len(array), precision)


class DatasetError(RDAMError):
    """A data set or manifest is malformed (missing files, unknown labels, bad split lists)."""


class CacheError(RDAMError):
    """A preprocessing cache entry is missing, partial or does not match its settings."""


class ReportError(RDAMError):
    """A run directory cannot be read into the report (missing or malformed files)."""


class RunNotFinishedError(ReportError):
    """A run directory has no result of its end yet: no ``metrics.json`` and no evaluation, or
    only an evaluation of a checkpoint taken before its last epoch (``rdam report
    --skip-unfinished`` leaves such a run out by name)."""


class TrainingInterrupted(RDAMError):
    """A training run was stopped by a signal (SIGTERM, or Ctrl+C) before its end.

    Nothing was recorded as finished (no ``metrics.json``, no model file); the run resumes
    exactly from ``checkpoints/last.ckpt`` when trained again. ``exit_code`` is the shell's
    for the signal: 143 for SIGTERM, 130 for Ctrl+C.
    """

    def __init__(self, run_dir: str | Path, signal_name: str, step: int, resume_step: int | None):
        self.run_dir = str(run_dir)
        self.signal_name = signal_name
        self.exit_code = 130 if signal_name == "SIGINT" else 143
        checkpoint = Path(run_dir) / "checkpoints" / "last.ckpt"
        where = (
            f"its last checkpoint is {checkpoint} (step {resume_step})"
            if resume_step is not None
            else "it had written no checkpoint yet"
        )
        super().__init__(
            f"{run_dir}: training stopped by {signal_name} at global step {step}, before its "
            f"end; nothing is recorded as finished, {where}: run the same command again to "
            "resume exactly"
        )
