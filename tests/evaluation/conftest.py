"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """``trainer.threads`` sets torch's thread count; give it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
