"""CPU thread counts of the native libraries rdam drives (PyTorch, OpenCV)."""

from __future__ import annotations

import sys

from rdam.errors import ConfigError


def set_cpu_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in this process for OpenCV (face detection, resizing) and,
    once it is imported, PyTorch (intra-op); :func:`rdam.inference.load` also gives the
    onnxruntime sessions it creates afterwards PyTorch's count.

    Raises:
        ConfigError: ``threads < 1``.
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    import cv2

    cv2.setNumThreads(threads)
    # Not imported here: a process that never loads torch (a decoding worker) need not pay
    # for it.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
