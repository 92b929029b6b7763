"""Switches and helpers of the reliability tests.

Trial counts: every scenario has a CI count (the default, sized for a loaded 2-core machine)
and a large count. ``RDAM_RELIABILITY_TRIALS`` chooses:

- unset or ``ci``: the CI counts;
- ``large``: the large counts (see docs/reliability.md for the numbers and the results);
- a number ``x``: every CI count times ``x`` (``0.1`` for a smoke run, ``5`` for more).

``RDAM_RELIABILITY_SEED`` (default 0) shifts every seed, to explore new fuzz cases; a failing
case prints the seed that reproduces it. Each test reports what it measured (cases, outcomes,
worst time, memory growth); the numbers are printed at the end of the pytest run and, when
``RDAM_RELIABILITY_REPORT`` names a file, appended to it as JSON lines.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

_MEASURED: list[dict[str, Any]] = []


def trials(ci: int, large: int) -> int:
    """The number of trials of a scenario under ``RDAM_RELIABILITY_TRIALS``."""
    value = os.environ.get("RDAM_RELIABILITY_TRIALS", "ci").strip().lower()
    if value in ("", "ci"):
        return ci
    if value == "large":
        return large
    try:
        return max(1, round(float(value) * ci))
    except ValueError:
        raise pytest.UsageError(
            f"RDAM_RELIABILITY_TRIALS={value!r}: use 'ci', 'large' or a number"
        ) from None


def base_seed() -> int:
    """``RDAM_RELIABILITY_SEED`` (default 0)."""
    return int(os.environ.get("RDAM_RELIABILITY_SEED", "0"))


@pytest.fixture
def measured() -> Callable[..., None]:
    """``measured(scenario, **numbers)`` records what a test measured for the summary."""

    def record(scenario: str, **numbers: Any) -> None:
        row = {"scenario": scenario, **numbers}
        _MEASURED.append(row)
        target = os.environ.get("RDAM_RELIABILITY_REPORT")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MEASURED:
        return
    terminalreporter.section("reliability measurements")
    for row in _MEASURED:
        numbers = ", ".join(f"{k}={v}" for k, v in row.items() if k != "scenario")
        terminalreporter.write_line(f"{row['scenario']}: {numbers}")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rdam_command(*args: str) -> list[str]:
    """The ``rdam`` command line run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "rdam.cli", *args]


def sigkill_when(
    command: list[str], ready: Callable[[], bool], delay_s: float, poll_s: float = 0.003
) -> None:
    """Run ``command``; once ``ready()`` holds (or the process ended, or after 300 s), wait
    ``delay_s`` and SIGKILL it. Fails the test when the process ended on its own first."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(poll_s)
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail(
            f"{' '.join(command[2:4])} ended (exit {proc.returncode}) before the kill:\n"
            f"{stderr[-3000:]}"
        )
