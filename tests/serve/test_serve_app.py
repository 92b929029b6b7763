"""The web API: predictions, upload limits (413), non-video uploads (415), unreadable videos
(422), hostile file names, temporary files, concurrency and the OpenAPI schema."""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from _inference_fixtures import CLASS_NAMES, SquareFaceDetector, save_tiny_model, write_video
from fastapi.testclient import TestClient
from PIL import Image

import rdam
from rdam.checkpoint import load_model, save_model
from rdam.serve import create_app
from rdam.serve.upload import (
    UploadTooLarge,
    display_name,
    format_bytes,
    receive_upload,
    sniff_container,
    sniff_image,
)

LIMIT = 200_000


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    return {
        "model": save_tiny_model(root / "tiny.safetensors"),
        "video": write_video(root / "clip.mp4"),
        "root": root,
    }


@pytest.fixture(scope="module")
def predictor(media: dict[str, Path]) -> rdam.inference.Predictor:
    return rdam.load(media["model"])


@pytest.fixture
def client(predictor) -> Iterator[TestClient]:
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture
def upload_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every temporary folder of the app goes here, so a test can see what is left."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_predict_returns_the_prediction_timeline_and_heatmaps(client, media, predictor):
    data = media["video"].read_bytes()
    r = client.post("/predict", files={"file": ("clip.mp4", data, "video/mp4")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = predictor.predict_video(media["video"])
    assert body["label"] == expected.label and body["filename"] == "clip.mp4"
    assert body["class_names"] == CLASS_NAMES
    np.testing.assert_allclose(
        list(body["probabilities"].values()), list(expected.probabilities.values()), atol=1e-6
    )
    assert [p["timestamp"] for p in body["timeline"]] == expected.timestamps
    np.testing.assert_allclose([p["alpha"] for p in body["timeline"]], expected.frame_weights)
    assert len(body["heatmaps"]) == 4
    image = Image.open(io.BytesIO(base64.b64decode(body["heatmaps"][0]["png"])))
    assert image.format == "PNG" and image.size == (64, 48)


def test_a_model_with_non_finite_output_is_a_server_error_not_the_uploads(tmp_path, media):
    """NaN logits are the model's failure (500), not a 422 that blames the upload."""
    bundle = load_model(media["model"])
    with torch.no_grad():
        bundle.model.classifier.bias.fill_(float("nan"))
    path = save_model(
        tmp_path / "nan.safetensors", bundle.model, bundle.config, bundle.class_names, bundle.spec
    )
    app = create_app(rdam.load(path), max_upload_bytes=LIMIT)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/predict", files={"file": ("clip.mp4", media["video"].read_bytes())})
    assert r.status_code == 500, r.text


def test_face_model_reports_faces(tmp_path):
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    # masking frames without a face, not the evidence rules, is what this test is about
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), evidence=None)
    with TestClient(create_app(predictor)) as client:
        video = write_video(tmp_path / "faces.mp4", face_frames={2, 7})
        r = client.post("/predict", files={"file": ("f.mp4", video.read_bytes())})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["face_found"] == [True, True, False, False]
        assert body["faces_per_frame"] == [1, 1, 0, 0]
        assert [h["face"] for h in body["heatmaps"]] == [True, True, False, False]
        assert body["face_boxes"][2] is None and len(body["face_boxes"][0]) == 5
        nofaces = write_video(tmp_path / "none.mp4")
        r = client.post("/predict", files={"file": ("none.mp4", nofaces.read_bytes())})
        assert r.status_code == 422 and r.json()["error_type"] == "NoFaceError"
        assert "no face found" in r.json()["detail"]


def test_answers_carry_the_clip_spec_overrides_in_force(tmp_path):
    """``rdam serve --num-frames`` (an override of the model file's clip spec): each /predict
    and /people answer says so, with the model's own value; without one, {} (an override equal
    to the model's value is none, as in ``rdam eval``'s report)."""
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")  # K = 4
    video = write_video(tmp_path / "f.mp4", face_frames=set(range(20))).read_bytes()
    for num_frames, overrides, model_values in [
        (2, {"num_frames": 2}, {"num_frames": 4}),
        (None, {}, {}),
        (4, {}, {}),
    ]:
        predictor = rdam.load(
            model, face_detector=SquareFaceDetector(), evidence=None, num_frames=num_frames
        )
        with TestClient(create_app(predictor)) as client:
            answers = {}
            for route in ("/predict", "/people"):
                r = client.post(route, files={"file": ("f.mp4", video)})
                assert r.status_code == 200, r.text
                answers[route] = body = r.json()
                assert (body["overrides"], body["model_values"]) == (overrides, model_values)
            assert len(answers["/predict"]["timestamps"]) == (num_frames or 4)  # what was run
            schema = client.get("/openapi.json").json()["components"]["schemas"]
            for name in ("PredictResponse", "PeopleResponse"):
                assert {"overrides", "model_values"} <= set(schema[name]["properties"])


def test_a_two_stream_persons_thumbnail_is_their_face(tmp_path):
    """A two-stream model's ``inputs`` are whole frames: a person's thumbnail is still their
    face (cut at their box), never the whole frame, which may show other people."""
    model = save_tiny_model(tmp_path / "two.safetensors", arch="two_stream")
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), evidence=None)
    video = write_video(tmp_path / "f.mp4", face_frames=set(range(20)))
    with TestClient(create_app(predictor)) as client:
        r = client.post("/people", files={"file": ("f.mp4", video.read_bytes())})
    assert r.status_code == 200, r.text
    (person,) = r.json()["people"]
    face = np.asarray(Image.open(io.BytesIO(base64.b64decode(person["thumbnail"]))))
    # the white square (the face) fills most of the face crop; a whole 64x48 frame: 19 %
    assert np.all(face >= 250, axis=-1).mean() > 0.4


def test_upload_limit_from_content_length(client, upload_root):
    r = client.post("/predict", files={"file": ("big.mp4", b"\0" * (LIMIT + 100_000))})
    assert r.status_code == 413
    assert "exceeds the limit of 195.3 KB" in r.json()["detail"]
    assert list(upload_root.iterdir()) == []


def test_upload_limit_while_streaming(client, upload_root):
    """No Content-Length (chunked body): reading stops once the limit is passed."""
    boundary = b"XyZ"

    def body() -> Iterator[bytes]:
        yield (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"
               b"Content-Type: video/mp4\r\n\r\n")  # fmt: skip
        for _ in range(100):
            yield b"\x00\x00\x00\x18ftypmp42" + b"\0" * (16_384 - 12)
        yield b"\r\n--XyZ--\r\n"

    r = client.post(
        "/predict",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"},
    )
    assert r.status_code == 413 and r.json()["error_type"] == "UploadTooLarge"
    assert list(upload_root.iterdir()) == []


def test_receive_upload_stops_reading_at_the_limit(tmp_path):
    """The receiver itself: chunks after the limit are never pulled from the body."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        for _ in range(100):
            pulled += 1
            yield b"\0" * 16_384
        yield b"\r\n--B--\r\n"

    with pytest.raises(UploadTooLarge, match="exceeds the limit"):
        asyncio.run(
            receive_upload("multipart/form-data; boundary=B", None, body(), tmp_path, LIMIT)
        )
    assert pulled == LIMIT // 16_384 + 1  # stopped on the first chunk past the limit
    assert (tmp_path / "upload.bin").stat().st_size <= LIMIT


def test_a_body_cut_short_is_refused_not_predicted(client, media, upload_root):
    """A body that ends inside the file part (no closing boundary) is a cut-short upload: 400,
    never an answer for the part of the video that arrived."""
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    video = media["video"].read_bytes()
    headers = {"content-type": "multipart/form-data; boundary=B"}
    r = client.post("/predict", content=head + video, headers=headers)
    assert r.status_code == 400, r.text
    assert "cut short" in r.json()["detail"] and r.json()["error_type"] == "UploadError"
    assert list(upload_root.iterdir()) == []
    r = client.post("/predict", content=head + video + b"\r\n--B--\r\n", headers=headers)
    assert r.status_code == 200, r.text  # the same body, complete


def test_uploads_that_are_neither_video_nor_image_are_415(client, upload_root):
    r = client.post("/predict", files={"file": ("notes.txt", b"hello\n" * 100, "text/plain")})
    assert r.status_code == 415
    assert r.json()["detail"].startswith("notes.txt is not a video or an image")
    # a video content type does not help: the content decides
    r = client.post("/predict", files={"file": ("x.mp4", b"\0" * 600, "video/mp4")})
    assert r.status_code == 415
    r = client.post("/predict", files={"file": ("empty.mp4", b"", "video/mp4")})
    assert r.status_code == 415 and "empty" in r.json()["detail"]
    r = client.post("/predict", content=b"raw bytes", headers={"content-type": "video/mp4"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert list(upload_root.iterdir()) == []


def test_an_image_upload_is_a_one_frame_clip(client, predictor, tmp_path, upload_root):
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(png, format="PNG")
    # the content decides, whatever the name says
    r = client.post("/predict", files={"file": ("photo.mp4", png.getvalue(), "video/mp4")})
    assert r.status_code == 200, r.text
    (tmp_path / "photo.png").write_bytes(png.getvalue())
    expected = predictor.predict_video(tmp_path / "photo.png")
    assert r.json()["label"] == expected.label and len(r.json()["timestamps"]) == 1
    assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert list(upload_root.iterdir()) == []


def test_missing_file_field_is_400(client):
    r = client.post("/predict", files={"video": ("clip.mp4", b"\0" * 10)})
    assert r.status_code == 400 and "field named 'file'" in r.json()["detail"]


def test_unreadable_video_is_422_and_names_only_the_client_file(client, media, upload_root):
    truncated = media["video"].read_bytes()[:300]
    r = client.post("/predict", files={"file": ("cut.mp4", truncated, "video/mp4")})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("cut.mp4: ") and str(upload_root) not in detail
    assert r.json()["error_type"] in ("CorruptVideoError", "EmptyVideoError")
    assert list(upload_root.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["../../escape.mp4", "/tmp/absolute.mp4", "..\\..\\win.mp4", "a\x00b.mp4", ".."]
)
def test_hostile_file_names_are_harmless(client, media, upload_root, name):
    r = client.post("/predict", files={"file": (name, media["video"].read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    assert "/" not in r.json()["filename"] and "\\" not in r.json()["filename"]
    assert list(upload_root.iterdir()) == []  # the upload folder is gone
    for place in (upload_root.parent, upload_root.parent.parent, Path("/tmp")):
        assert not any((place / n).exists() for n in ("escape.mp4", "absolute.mp4", "win.mp4"))


def test_display_name_and_sniffing():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\x\\clip.mov") == "clip.mov"
    assert display_name("a\x00\x1bb.mp4") == "ab.mp4"
    assert display_name("..") == display_name("") == display_name(None) == "upload"
    assert sniff_container(b"\x00\x00\x00\x20ftypisom" + b"\0" * 20) == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + b"\0" * 20) == "matroska"
    assert sniff_container(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert sniff_container(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert sniff_container(b"\x89PNG\r\n\x1a\n" + b"\0" * 20) is None
    assert sniff_container(b"GIF89a") is None
    # an iPhone photo (HEIC) or an AVIF image is ISO BMFF too, but no video: 415, not "corrupt"
    assert sniff_container(b"\x00\x00\x00\x18ftypheic" + b"\0" * 20) is None
    assert sniff_container(b"\x00\x00\x00\x1cftypavif" + b"\0" * 20) is None
    # a BMP is "BM" and a DIB header of a size BMP defines, not any body starting with "BM"
    bmp = b"BM" + b"\0" * 12 + (40).to_bytes(4, "little") + b"\0" * 20
    assert sniff_image(bmp) == ".bmp"
    assert sniff_image(b"BMW owners' manual, chapter 1") is None
    assert format_bytes(200 * 1024 * 1024) == "200 MB" and format_bytes(512) == "512 bytes"


def test_concurrent_requests_are_all_answered(client, media):
    data = media["video"].read_bytes()

    def post(i: int) -> tuple[int, str]:
        r = client.post("/predict", files={"file": (f"c{i}.mp4", data, "video/mp4")})
        return r.status_code, r.json().get("label")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(post, range(4)))
    assert {code for code, _ in results} == {200}
    assert len({label for _, label in results}) == 1


def test_busy_server_answers_503(predictor, media):
    with TestClient(create_app(predictor, max_pending=0)) as client:
        r = client.post("/predict", files={"file": ("a.mp4", media["video"].read_bytes())})
        assert r.status_code == 503 and "busy" in r.json()["detail"]


def test_page_health_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="upload-form"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["class_names"] == CLASS_NAMES
    assert health["max_upload_bytes"] == LIMIT
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/predict"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["file"]["format"] == "binary" and body["required"] == ["file"]
    assert {"200", "413", "415", "422"} <= set(post["responses"])
    fields = schema["components"]["schemas"]["PredictResponse"]["properties"]
    assert {"label", "probabilities", "timeline", "heatmaps"} <= set(fields)
    assert client.get("/docs").status_code == 200


def test_cli_serve_builds_the_app(monkeypatch, media):
    import uvicorn

    from rdam.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    code = main(["serve", "--checkpoint", str(media["model"]), "--port", "8123",
                 "--max-upload-mb", "1.5"])  # fmt: skip
    assert code == 0 and seen["host"] == "127.0.0.1" and seen["port"] == 8123
    with TestClient(seen["app"]) as client:
        assert client.get("/health").json()["max_upload_bytes"] == int(1.5 * 1024 * 1024)


@pytest.mark.shared_data
def test_people_answers_every_person_with_faces_and_heatmaps(ekman6_dir: Path):
    """``POST /people`` with the shipped model on joy.mp4: the fields of
    ``rdam predict --people`` for each person, with their face and heatmaps."""
    from rdam.inference.people import VIDEO_RULE, analyze_people

    shipped = rdam.load()
    video = ekman6_dir / "joy.mp4"
    with TestClient(create_app(shipped)) as c, video.open("rb") as f:
        r = c.post("/people", files={"file": ("joy.mp4", f, "video/mp4")})
    assert r.status_code == 200, r.text
    data = r.json()
    expected = analyze_people(shipped, video)
    assert data["filename"] == "joy.mp4" and data["rule"] == VIDEO_RULE
    assert (data["label"], data["person"]) == (expected.label, expected.person) == ("happy", 0)
    assert data["class_names"] == shipped.class_names
    assert len(data["people"]) == len(expected.people) == 3
    for got, want in zip(data["people"], expected.people):
        assert (got["person"], got["label"], got["reason"]) == (
            want.person,
            want.label,
            want.reason,
        )
        assert got["frame_weights"] == pytest.approx(want.frame_weights, abs=1e-6)
        assert sum(got["frame_weights"]) == pytest.approx(1.0, abs=1e-5)
        face = Image.open(io.BytesIO(base64.b64decode(got["thumbnail"])))
        assert face.size == (shipped.spec.frame_size,) * 2
        assert len(got["heatmaps"]) == len(got["timestamps"]) == got["coverage"]["frames"]


def test_people_needs_a_face_model_and_says_so(client, media):
    with media["video"].open("rb") as f:
        r = client.post("/people", files={"file": ("clip.mp4", f, "video/mp4")})
    assert r.status_code == 422
    assert "face-stream model" in r.json()["detail"] and r.json()["error_type"] == "ConfigError"
