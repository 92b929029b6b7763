"""Typed exceptions raised by rdam.

Every error carries the offending path or value and says what to do next, so that a batch
job can record it against one input and carry on with the rest.
"""

from __future__ import annotations

from pathlib import Path


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
