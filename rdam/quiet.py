"""Quiet by default: third-party warnings, tips and log chatter stay off stderr.

``rdam`` commands call :func:`set_quiet` (through ``rdam.cli.configure_logging``): unless
``-v/--verbose`` is given,

- log records of other libraries' loggers (Lightning's "GPU available" and "💡 Tip" lines,
  timm, ...) below ERROR are dropped; rdam's own loggers (``rdam.*``) print as before;
- Python warnings are dropped unless rdam's own code issued them (the frame that called
  ``warnings.warn`` is in an ``rdam`` module and the category is a built-in or rdam one):
  Lightning's ``PossibleUserWarning``, torch's ``_pytree`` deprecation and ``TracerWarning``
  stay off stderr; ``-W`` / ``PYTHONWARNINGS`` given by the user win over this;
- OpenCV's own C++ log (the ``setPreferableTarget`` warning of ``cv2.FaceDetectorYN``) and
  torch's C++ log (c10) print errors only: ``OPENCV_LOG_LEVEL`` / ``TORCH_CPP_LOG_LEVEL`` are
  set to ``ERROR`` for this process and its workers unless the user set them, and an
  already-imported OpenCV gets ``cv2.utils.logging.setLogLevel``.

The library (``import rdam``) changes none of this; only the command line does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from types import FrameType
from typing import Any

# Loggers that carry their own handlers (Lightning adds a stderr handler to "lightning" at
# import, and to its sub-packages when the root logger has none).
_OWN_HANDLER_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "pytorch_lightning",
    "lightning_fabric",
)
_ENV_LEVELS = {"OPENCV_LOG_LEVEL": "ERROR", "TORCH_CPP_LOG_LEVEL": "ERROR"}

_quiet = False
_original_showwarning: Any = None


def is_rdam_name(name: str) -> bool:
    """``rdam`` or one of its sub-modules / child loggers."""
    return name == "rdam" or name.startswith("rdam.")


class ThirdPartyFilter(logging.Filter):
    """While quiet: pass rdam's records and every record of level ERROR or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _quiet or record.levelno >= logging.ERROR or is_rdam_name(record.name)


_FILTER = ThirdPartyFilter()


def _filter_handler(handler: logging.Handler) -> None:
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)


def _filter_handlers_of(logger: logging.Logger) -> None:
    """The filter on the logger's handlers, now and on any it is given later (Lightning adds
    its handler when it is imported, which the command line does lazily)."""
    for handler in logger.handlers:
        _filter_handler(handler)
    if getattr(logger, "_rdam_quiet_hooked", False):
        return
    add_handler = logger.addHandler

    def add_filtered_handler(handler: logging.Handler) -> None:
        add_handler(handler)
        _filter_handler(handler)

    logger.addHandler = add_filtered_handler  # type: ignore[method-assign]
    logger._rdam_quiet_hooked = True  # type: ignore[attr-defined]


def _caller_of_warn() -> FrameType | None:
    """The frame that issued the warning being shown: the first outside this module and the
    ``warnings`` module (``warnings.warn`` itself is C)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "warnings"):
        frame = frame.f_back
    return frame


def is_rdam_warning(category: type[Warning], caller: FrameType | None) -> bool:
    """rdam's own: issued by rdam code with a built-in or rdam warning category."""
    own_category = category.__module__ == "builtins" or is_rdam_name(category.__module__)
    module = "" if caller is None else str(caller.f_globals.get("__name__", ""))
    return own_category and is_rdam_name(module)


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    if _quiet and not is_rdam_warning(category, _caller_of_warn()):
        return
    _original_showwarning(message, category, filename, lineno, file, line)


def _quiet_native_logs() -> None:
    for name, level in _ENV_LEVELS.items():
        os.environ.setdefault(name, level)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "ERROR":
        with contextlib.suppress(AttributeError):  # a build without cv2.utils.logging
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def set_quiet(quiet: bool = True) -> None:
    """Drop third-party warnings and log records below ERROR from stderr (``quiet``), or
    let them through (``-v``). Call after the root handlers exist (``logging.basicConfig``)."""
    global _quiet, _original_showwarning
    _quiet = quiet
    for handler in logging.getLogger().handlers:
        _filter_handler(handler)
    for name in _OWN_HANDLER_LOGGERS:
        _filter_handlers_of(logging.getLogger(name))
    if quiet:
        _quiet_native_logs()
        if not sys.warnoptions and warnings.showwarning is not _showwarning:
            _original_showwarning = warnings.showwarning
            warnings.showwarning = _showwarning
