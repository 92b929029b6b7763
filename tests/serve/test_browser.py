"""The web demo in a real headless Chromium (Playwright): upload a video, see the prediction,
the α timeline and the heatmaps; upload a text file, see the 415 message; open the API docs
(Swagger UI, ReDoc) with every non-loopback request blocked and see the operations listed.

Needs Debian's ``chromium`` (or ``$RDAM_CHROMIUM``) and the ``playwright`` Python package;
skipped with the reason when either is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from _inference_fixtures import CLASS_NAMES, SquareFaceDetector, save_tiny_model, write_video
from PIL import Image

import rdam
from rdam.serve import create_app

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("RDAM_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium found (apt-get install chromium, or set RDAM_CHROMIUM)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving(app: object) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread; yields its URL."""
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    predictor = rdam.load(save_tiny_model(root / "tiny.safetensors"))
    with _serving(create_app(predictor)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser, server: str) -> Iterator[object]:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server + "/")
    yield page
    page.close()


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def offline_page(browser) -> Iterator[tuple[object, list[tuple[str, str]]]]:
    """A page whose every request to a host other than loopback is aborted (as with the
    network off); yields it and the (resource type, URL) of each request that was blocked."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    blocked: list[tuple[str, str]] = []

    def only_loopback(route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            blocked.append((route.request.resource_type, url))
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    try:
        yield context.new_page(), blocked
    finally:
        context.close()


def test_upload_a_video_and_see_the_prediction(page, tmp_path: Path):
    video = write_video(tmp_path / "smile.mp4", num_frames=20)
    page.set_input_files("#file", str(video))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.inner_text("#label") in CLASS_NAMES
    assert "Done: smile.mp4" in page.inner_text("#status")
    assert page.locator("#probabilities tr").count() == len(CLASS_NAMES)
    assert page.locator("#timeline circle.alpha-point").count() == 4
    heatmaps = page.locator("#heatmaps img")
    assert heatmaps.count() == 4
    assert page.locator("#heatmaps figure.best").count() == 1
    # every heatmap image actually decoded in the browser
    widths = page.eval_on_selector_all("#heatmaps img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [64] * 4
    assert "frames of 32px" in page.inner_text("#model-info")
    assert page.is_hidden("#overrides")  # the model's own settings: no notice
    assert page.is_hidden("#frame-weights-note")  # the model file does not say

    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert image.shape[0] > 600 and image.shape[1] >= 1000
    assert image.std() > 10  # not a blank page
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 200  # text, bars, heatmaps


def test_an_answer_made_with_an_override_says_so(browser, tmp_path: Path):
    """``rdam serve --num-frames 2`` on a model of K = 4: a notice beside the answer (and
    beside every person's) names the setting run and the model's own; a model trained on
    single images gets the notice that its frame weights were never learned."""
    model = save_tiny_model(
        tmp_path / "faces.safetensors", stream="faces", metadata={"frame_weights_learned": False}
    )
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), evidence=None, num_frames=2)
    video = write_video(tmp_path / "smile.mp4", face_frames=set(range(20)))
    expected = "num_frames=2 (the model was trained with 4)"
    with _serving(create_app(predictor)) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        try:
            page.goto(url + "/")
            page.set_input_files("#file", str(video))
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            assert page.is_visible("#overrides")
            assert expected in page.inner_text("#overrides")
            assert page.locator("#heatmaps img").count() == 2
            assert "weights α were never learned" in page.inner_text("#frame-weights-note")
            page.check("#people")
            page.click("#submit")
            page.wait_for_selector("#people-result:not([hidden])", timeout=60_000)
            assert page.is_visible("#people-overrides")
            assert expected in page.inner_text("#people-overrides")
            assert page.is_visible("#people-frame-weights-note")
        finally:
            page.close()


def test_a_text_file_shows_the_415_message(page, tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\n" * 20)
    page.set_input_files("#file", str(text))
    page.click("#submit")
    page.wait_for_selector("#status.error", timeout=30_000)
    message = page.inner_text("#status")
    assert message.startswith("Error 415") and "notes.txt is not a video" in message
    assert page.is_hidden("#result")


def test_swagger_ui_lists_the_operations_offline(offline_page, server: str):
    page, blocked = offline_page
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    paths = page.eval_on_selector_all(
        ".opblock .opblock-summary-path", "els => els.map(e => e.textContent.trim())"
    )
    assert sorted(paths) == ["/health", "/people", "/predict"]
    assert page.locator(".opblock-post").count() == 2
    assert page.locator(".opblock-get").count() == 1
    assert blocked == []  # nothing was even asked of the internet


def test_redoc_lists_the_operations_offline(offline_page, server: str):
    page, blocked = offline_page
    page.goto(server + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    sections = page.eval_on_selector_all(
        "[data-section-id^='operation/']", "els => els.map(e => e.dataset.sectionId)"
    )
    assert len(set(sections)) == 3, sections
    assert "/predict" in page.inner_text("body") and "/people" in page.inner_text("body")
    # ReDoc's own "API docs by Redocly" badge is an <img> from cdn.redoc.ly: the only request
    # out, cosmetic; no script, style sheet or font is fetched from outside.
    assert all(kind == "image" for kind, _ in blocked), blocked


@pytest.fixture(scope="module")
def face_server() -> Iterator[str]:
    """The web demo with the shipped face model."""
    with _serving(create_app(rdam.load())) as url:
        yield url


@pytest.mark.shared_data
def test_every_person_of_a_real_video_on_the_page(browser, face_server: str, ekman6_dir: Path):
    """joy.mp4 with "every person" ticked: the video's answer, one card per person with their
    face, answer, per-class lines and frame-weight bars, and the heatmaps of their crops."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(face_server + "/")
        page.check("#people")
        page.set_input_files("#file", str(ekman6_dir / "joy.mp4"))
        page.click("#submit")
        page.wait_for_selector("#people-result:not([hidden])", timeout=90_000)
        assert page.is_hidden("#result")
        assert page.inner_text("#video-label") == "happy"
        assert "person 0" in page.inner_text("#video-note")
        # the shipped model was trained on single images: its frame weights say nothing
        assert page.is_visible("#people-frame-weights-note")
        cards = page.locator(".person")
        assert cards.count() == 3
        first = cards.nth(0)
        assert "happy" in first.locator(".answer").inner_text()
        assert first.locator("svg path.class-line").count() == 7
        assert first.locator("svg rect.weight-bar").count() == 16
        assert first.locator("figure img").count() == 16
        faces = page.eval_on_selector_all(".person h3 img", "imgs => imgs.map(i => i.naturalWidth)")
        size = rdam.load().spec.frame_size  # the crops the model saw, at its frame size
        assert faces == [size] * 3
    finally:
        page.close()
