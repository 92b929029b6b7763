"""Fuzzed video input: damaged copies of real tiny clips either decode or raise rdam's typed
:class:`~rdam.errors.VideoError`, in bounded time and memory; no other exception, no crash,
no hang.

Three runs: seeded mutations in this process (each case timed; a watchdog ends the process
with a traceback if one case hangs), a subset in a separate worker process (a segfault or
abort in a decoder would kill only the worker; it is detected and reported), and
hypothesis-driven mutations (sequences of byte and box edits it chooses and shrinks).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import av
import pytest
from _fuzz import (
    BYTE_MUTATIONS,
    MUTATIONS,
    Outcome,
    mutate,
    parse_boxes,
    peak_rss_bytes,
    rss_bytes,
    run_case,
    run_image_case,
    write_image_sources,
    write_sources,
)
from conftest import base_seed, trials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdam.data.video import open_clip
from rdam.errors import CorruptVideoError
from rdam.stream import stream_frames

CASE_LIMIT_S = 20.0
"""Seconds one case (probe + open + read of 5 frames) may take on a loaded 2-core machine.
The slowest damaged files seen take ~5 s: an MP4 fragment header claiming 33 million samples
makes FFmpeg build its packet index (~2 GB, about 2 s per open) before rdam refuses it."""
HANG_S = 120.0
"""A case still running after this long is a hang: the process is ended with a traceback."""
LEAK_LIMIT_BYTES = 150 * 2**20
"""Resident memory may not grow by more than this over the whole in-process run."""
PEAK_LIMIT_BYTES = 4 * 2**30
"""Peak resident memory may not grow by more than this (FFmpeg's bounded index, above)."""
IMAGE_PEAK_LIMIT_BYTES = 6 * 2**30
"""The same for images: OpenCV allocates what a damaged PNG header claims, up to its limit of
2**30 pixels (about 4.3 GB, 5 s) before it fails; see docs/reliability.md."""


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("fuzz_sources"))


@pytest.fixture(autouse=True)
def _quiet_decoders():
    """FFmpeg and rdam log every damaged packet; thousands of lines would bury the report."""
    av.logging.set_level(None)
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _case(sources: dict[str, Path], datas: dict[str, bytes], seed: int, folder: Path):
    """The mutated file of ``seed``: written to ``folder``; returns (source name, ops, path)."""
    names = sorted(datas)
    name = names[seed % len(names)]
    other = datas[names[(seed // len(names) + 1) % len(names)]]
    data, ops = mutate(datas[name], other, seed)
    path = folder / f"case{sources[name].suffix}"
    path.write_bytes(data)
    return name, ops, path


def _summary(outcomes: list[tuple[int, str, list[str], Outcome]]) -> dict[str, object]:
    times = [o.seconds for *_, o in outcomes]
    worst = max(outcomes, key=lambda c: c[3].seconds)
    return {
        "cases": len(outcomes),
        "outcomes": dict(Counter(o.result for *_, o in outcomes).most_common()),
        "max_s": round(max(times), 3),
        "mean_ms": round(1000 * sum(times) / len(times), 2),
        "slowest": f"seed {worst[0]} {worst[1]} {worst[2]}",
    }


def test_mutated_videos_decode_or_raise_typed_errors(sources, tmp_path: Path, measured) -> None:
    datas = {name: path.read_bytes() for name, path in sources.items()}
    for name, path in sources.items():  # the undamaged sources decode
        assert run_case(path).result == "frames", name
    n = trials(1000, 20000)
    seed0 = base_seed() * 1_000_000
    warmup = 30
    outcomes = []
    rss_start = peak_start = 0
    try:
        for i in range(n):
            if i == warmup:
                rss_start, peak_start = rss_bytes(), peak_rss_bytes()
            seed = seed0 + i
            name, ops, path = _case(sources, datas, seed, tmp_path)
            faulthandler.dump_traceback_later(HANG_S, exit=True)
            outcome = run_case(path)
            faulthandler.cancel_dump_traceback_later()
            where = f"seed {seed} ({name}, {ops}; RDAM_RELIABILITY_SEED shifts seeds by 1e6)"
            assert outcome.typed, f"{where}: {outcome.result}\n{outcome.detail}"
            assert outcome.seconds < CASE_LIMIT_S, f"{where}: {outcome.seconds:.1f} s"
            outcomes.append((seed, name, ops, outcome))
    finally:
        faulthandler.cancel_dump_traceback_later()
    leak = rss_bytes() - rss_start
    peak = peak_rss_bytes() - peak_start
    summary = _summary(outcomes)
    measured(
        "fuzz in-process",
        **summary,
        rss_growth_mb=round(leak / 2**20, 1),
        peak_rss_growth_mb=round(peak / 2**20, 1),
    )
    assert leak < LEAK_LIMIT_BYTES, f"resident memory grew by {leak / 2**20:.0f} MB"
    assert peak < PEAK_LIMIT_BYTES, f"peak resident memory grew by {peak / 2**20:.0f} MB"
    # the mutations are not toothless: both outcomes occur, and every mutation was used
    kinds = summary["outcomes"]
    assert kinds.get("frames", 0) > n // 20 and kinds.get("CorruptVideoError", 0) > n // 20
    used = {op for *_, ops, _ in outcomes for op in ops}
    assert used == set(MUTATIONS) or n < 200


def test_fragment_header_claiming_millions_of_packets_is_refused_quickly(sources, tmp_path):
    """Regression (fuzz seed 135): the last ``trun`` box of a fragmented MP4 with its size set
    to 1 (a 64-bit size follows) makes FFmpeg list 33 million packets for a 2.6 KB file.
    rdam walked that index in Python for minutes; now the file is refused when opened."""
    data = bytearray(sources["fragmented"].read_bytes())
    trun = [b for b in parse_boxes(bytes(data)) if b.kind == b"trun"][-1]
    struct.pack_into(">I", data, trun.start, 1)
    path = tmp_path / "bomb.mp4"
    path.write_bytes(data)
    start = time.monotonic()
    with pytest.raises(CorruptVideoError, match=r"index lists \d+ packets in a \d+-byte file"):
        open_clip(path)
    assert time.monotonic() - start < CASE_LIMIT_S
    # `--stream` refuses it the same way, before any frame (it skipped an index of over 10
    # million entries and gave the frames of a file that `rdam predict FILE` refuses)
    start = time.monotonic()
    with pytest.raises(CorruptVideoError, match=r"index lists \d+ packets in a \d+-byte file"):
        next(iter(stream_frames(str(path))))
    assert time.monotonic() - start < CASE_LIMIT_S


@pytest.fixture(scope="module")
def image_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_image_sources(tmp_path_factory.mktemp("fuzz_images"))


def test_mutated_images_decode_or_raise_typed_errors(image_sources, tmp_path, measured) -> None:
    """Damaged image files (FER2013-style data sets, single-image clips) through both entry
    points of the one image decoder (Pillow): ``open_clip`` and ``read_image``."""
    datas = {name: path.read_bytes() for name, path in image_sources.items()}
    names = sorted(datas)
    for name, path in image_sources.items():
        assert run_image_case(path).result == "frames/frames", name
    n = trials(300, 5000)
    seed0 = base_seed() * 1_000_000 + 700_000
    outcomes = []
    rss_start, peak_start = rss_bytes(), peak_rss_bytes()
    try:
        for i in range(n):
            seed = seed0 + i
            name = names[seed % len(names)]
            data, ops = mutate(datas[name], datas["png"], seed, BYTE_MUTATIONS)
            path = tmp_path / f"case{image_sources[name].suffix}"
            path.write_bytes(data)
            faulthandler.dump_traceback_later(HANG_S, exit=True)
            outcome = run_image_case(path)
            faulthandler.cancel_dump_traceback_later()
            where = f"seed {seed} ({name}, {ops})"
            assert outcome.typed, f"{where}: {outcome.result}\n{outcome.detail}"
            assert outcome.seconds < CASE_LIMIT_S, f"{where}: {outcome.seconds:.1f} s"
            outcomes.append((seed, name, ops, outcome))
    finally:
        faulthandler.cancel_dump_traceback_later()
    leak, peak = rss_bytes() - rss_start, peak_rss_bytes() - peak_start
    measured(
        "fuzz images",
        **_summary(outcomes),
        rss_growth_mb=round(leak / 2**20, 1),
        peak_rss_growth_mb=round(peak / 2**20, 1),
    )
    assert leak < LEAK_LIMIT_BYTES and peak < IMAGE_PEAK_LIMIT_BYTES


def test_damaged_image_headers_are_typed_errors(image_sources, tmp_path) -> None:
    """Regressions (image fuzzing): Pillow reports a misaligned PNG chunk met while decoding
    as SyntaxError, and a BMP claiming 2**30 rows as DecompressionBombError; OpenCV raises
    cv2.error for that BMP. All three came out untyped."""
    png = bytearray(image_sources["png"].read_bytes())
    idat = png.index(b"IDAT") - 4  # its length: halve it, the next "chunk" is compressed data
    struct.pack_into(">I", png, idat, struct.unpack_from(">I", png, idat)[0] // 2)
    broken_png = tmp_path / "broken.png"
    broken_png.write_bytes(png)
    bmp = bytearray(image_sources["bmp"].read_bytes())
    struct.pack_into("<i", bmp, 22, 2**30)  # BITMAPINFOHEADER height
    tall_bmp = tmp_path / "tall.bmp"
    tall_bmp.write_bytes(bmp)
    for path in (broken_png, tall_bmp):
        outcome = run_image_case(path)
        assert outcome.result.split("/") == ["CorruptVideoError", "CorruptVideoError"], (
            path.name,
            outcome,
        )


WORKER = textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    import av
    av.logging.set_level(None)
    logging.disable(logging.WARNING)
    from _fuzz import mutate, peak_rss_bytes, run_case
    folder = Path(sys.argv[1])
    sources = {p.stem: p for p in sorted(folder.glob("src/*"))}
    datas = {k: p.read_bytes() for k, p in sources.items()}
    names = sorted(datas)
    for line in sys.stdin:
        seed = int(line)
        name = names[seed % len(names)]
        other = datas[names[(seed // len(names) + 1) % len(names)]]
        data, ops = mutate(datas[name], other, seed)
        path = folder / f"case-{seed}{sources[name].suffix}"
        path.write_bytes(data)
        print(json.dumps({"start": seed}), flush=True)
        o = run_case(path)
        path.unlink()
        print(json.dumps({"seed": seed, "result": o.result, "seconds": o.seconds,
                          "detail": o.detail[-1500:], "peak": peak_rss_bytes()}), flush=True)
    """
)


class _Worker:
    """A worker process that runs the cases it is sent, one JSON line per event (read by a
    thread into a queue, so a hung worker is noticed by a timeout)."""

    def __init__(self, folder: Path) -> None:
        here = str(Path(__file__).parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # end of output: the worker is gone

    def run(self, seed: int, timeout: float) -> dict[str, object] | None:
        """The result of ``seed``, or None when the worker died or hung (it is then killed).
        The start-up (imports) is not timed: the clock starts when the case starts."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{seed}\n")
        self.proc.stdin.flush()
        wait = 300.0  # start-up: imports on a loaded machine
        while True:
            try:
                line = self.lines.get(timeout=wait)
            except queue.Empty:
                self.close()
                return None
            if not line:
                self.proc.wait(timeout=30)
                return None
            event = json.loads(line)
            if "seed" in event:
                return event
            wait = timeout  # the case has started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def test_mutated_videos_in_an_isolated_process(sources, tmp_path: Path, measured) -> None:
    """Hard crashes (segfault, abort) would end only the worker: the exit signal is reported
    with the seed, and the worker restarted for the remaining cases."""
    (tmp_path / "src").mkdir()
    for name, path in sources.items():
        (tmp_path / "src" / f"{name}{path.suffix}").write_bytes(path.read_bytes())
    n = trials(100, 2000)
    seed0 = base_seed() * 1_000_000 + 500_000  # other cases than the in-process run
    worker = _Worker(tmp_path)
    problems, results, peak = [], Counter(), 0
    times = []
    try:
        for i in range(n):
            seed = seed0 + i
            event = worker.run(seed, HANG_S)
            if event is None:
                code = worker.proc.returncode
                problems.append(f"seed {seed}: worker {'hung' if code == -9 else f'died ({code})'}")
                worker = _Worker(tmp_path)
                continue
            results[str(event["result"])] += 1
            times.append(float(event["seconds"]))
            peak = max(peak, int(event["peak"]))
            if str(event["result"]).startswith("UNTYPED"):
                problems.append(f"seed {seed}: {event['result']}\n{event['detail']}")
    finally:
        worker.close()
    measured(
        "fuzz isolated worker",
        cases=n,
        outcomes=dict(results.most_common()),
        crashes_or_hangs=sum("worker" in p for p in problems),
        max_s=round(max(times), 3) if times else None,
        worker_peak_rss_mb=round(peak / 2**20),
    )
    assert not problems, "\n".join(problems[:10])
    assert max(times) < CASE_LIMIT_S


# ---- hypothesis: it picks the edits, and shrinks a failure to the smallest one ---------------

_EDIT = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True), st.integers(1, 4096)),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(
        st.just("insert"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=64)
    ),
    st.tuples(st.sampled_from(sorted(MUTATIONS)), st.just(0.0), st.integers(0, 2**32)),
)


def _apply(data: bytes, other: bytes, edits: list[tuple[str, float, object]]) -> bytes:
    import random

    for kind, where, arg in edits:
        pos = int(where * len(data))
        if kind == "flip":
            data = data[:pos] + bytes([data[pos] ^ (1 << int(arg))]) + data[pos + 1 :]  # type: ignore[call-overload]
        elif kind == "set":
            data = data[:pos] + bytes([int(arg)]) + data[pos + 1 :]  # type: ignore[call-overload]
        elif kind == "zero":
            n = min(int(arg), len(data) - pos)  # type: ignore[call-overload]
            data = data[:pos] + bytes(n) + data[pos + n :]
        elif kind == "cut":
            data = data[: max(pos, 1)]
        elif kind == "insert":
            data = data[:pos] + bytes(arg) + data[pos:]  # type: ignore[call-overload]
        else:
            data = MUTATIONS[kind](random.Random(int(arg)), data, other) or data[:1]  # type: ignore[call-overload]
        if not data:
            data = b"\0"
    return data


def test_hypothesis_edits_decode_or_raise_typed_errors(sources, tmp_path: Path, measured) -> None:
    datas = {name: path.read_bytes() for name, path in sources.items()}
    names = sorted(datas)
    seen: Counter[str] = Counter()
    slowest = [0.0]

    @settings(
        max_examples=trials(150, 3000),
        deadline=None,
        database=None,
        derandomize=base_seed() == 0,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        name=st.sampled_from(names),
        edits=st.lists(_EDIT, min_size=1, max_size=4),
    )
    def check(name: str, edits: list[tuple[str, float, object]]) -> None:
        data = _apply(datas[name], datas[names[(names.index(name) + 1) % len(names)]], edits)
        path = tmp_path / f"hyp{sources[name].suffix}"
        path.write_bytes(data)
        outcome = run_case(path)
        seen[outcome.result] += 1
        slowest[0] = max(slowest[0], outcome.seconds)
        assert outcome.typed, f"{outcome.result}\n{outcome.detail}"
        assert outcome.seconds < CASE_LIMIT_S

    check()
    measured(
        "fuzz hypothesis",
        cases=sum(seen.values()),
        outcomes=dict(seen.most_common()),
        max_s=round(slowest[0], 3),
    )
