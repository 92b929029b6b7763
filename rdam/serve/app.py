"""The web demo and HTTP API: ``create_app(predictor)`` -> a FastAPI application.

- ``GET /``: a small page (``rdam/serve/static``) to upload a video and see the prediction,
  the frame weights over time and the attention heatmaps;
- ``POST /predict``: multipart upload (field ``file``) -> :class:`PredictResponse`;
- ``POST /people``: the same upload -> :class:`PeopleResponse`: every person of the video
  (face-stream models), as ``rdam predict --people`` gives them, with faces and heatmaps;
- ``GET /health``: liveness and the model's settings;
- each ``/predict`` and ``/people`` answer carries ``overrides`` (the clip spec fields this
  server runs with other than the model file's: ``rdam serve --num-frames/--keyframes``, as
  ``rdam eval``'s report names them; ``{}`` when none) and ``model_values`` (the model file's
  value of each), and the page shows them beside the answer: never a silent other setting;
- ``GET /docs`` (Swagger UI), ``GET /redoc`` (ReDoc), ``GET /openapi.json``: the API schema.
  The docs pages load their JavaScript and CSS from this server (``/docs-static``, the files
  of the installed ``fastapi-offline`` package), not from a CDN: they work offline.

Each upload lives in its own ``tempfile.TemporaryDirectory`` (deleted after the answer) under a
fixed file name; the size limit is enforced while the body streams in (413); non-video
content is refused by its magic bytes (415); a video that cannot be decoded, or has no face for
a face model, is answered 422. The predictor (not thread-safe) runs in a worker thread under a
lock, so concurrent requests queue; more than ``max_pending`` waiting requests get 503.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

import rdam
from rdam.errors import (
    CheckpointError,
    FaceModelError,
    NonFiniteOutputError,
    RDAMError,
    VideoError,
)
from rdam.explain.render import encode_png, overlay_heatmap
from rdam.explain.report import attention_canvases, face_thumbnail
from rdam.inference import Analysis, Predictor
from rdam.inference.people import VideoPeople, analyze_people
from rdam.serve.upload import UploadError, receive_upload

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
HEATMAP_MAX_SIDE = 320
# Failures of the server itself rather than of one upload: they propagate (500). A model that
# gives NaN/inf logits is the model's (or its precision's) failure, not the upload's.
_RUN_ERRORS = (FaceModelError, CheckpointError, NonFiniteOutputError, MemoryError)


class TimelinePoint(BaseModel):
    """One sampled frame on the timeline."""

    index: int
    timestamp: float = Field(description="seconds from the start of the video")
    alpha: float = Field(description="frame weight α (Eq. 10)")
    face: bool | None = Field(None, description="a face was found (face models only)")


class Heatmap(BaseModel):
    """The location attention of one sampled frame over the frame (or its face crop)."""

    index: int
    timestamp: float
    alpha: float
    face: bool | None = None
    png: str = Field(description="base64-encoded PNG")


_OVERRIDES_DOC = (
    "clip spec fields this server runs with other than the model file's (rdam serve "
    "--num-frames / --keyframes), {field: value}, as /health's model.overrides and rdam eval's "
    "report name them; {} when the answer was made with the model's own settings"
)
_MODEL_VALUES_DOC = "the model file's value of each field in overrides ({} when none)"
_FRAME_WEIGHTS_LEARNED_DOC = (
    "false when the model was trained on single images (one-frame clips), so its frame weights "
    "were never learned (they single out no frame for a reason); true when they were; null when the model "
    "has none or its file does not say"
)


class PredictResponse(BaseModel):
    """The prediction for one uploaded video."""

    filename: str = Field(description="the client's file name, for display only")
    label: str
    score: float
    probabilities: dict[str, float]
    class_names: list[str]
    frame_weights: list[float]
    timestamps: list[float]
    face_found: list[bool] | None = None
    face_boxes: list[list[float] | None] | None = None
    faces_per_frame: list[int] | None = Field(
        default=None,
        description="faces found in each sampled frame; above 1, the largest was taken, and "
        "the frames may show different people (POST /people answers each person)",
    )
    timing: dict[str, float]
    timeline: list[TimelinePoint]
    heatmaps: list[Heatmap]
    overrides: dict[str, Any] = Field(default_factory=dict, description=_OVERRIDES_DOC)
    model_values: dict[str, Any] = Field(default_factory=dict, description=_MODEL_VALUES_DOC)
    frame_weights_learned: bool | None = Field(None, description=_FRAME_WEIGHTS_LEARNED_DOC)


class PersonAnswer(BaseModel):
    """One person (face track) of an uploaded video (the fields of ``rdam predict --people``,
    docs/people.md), with their face and heatmaps."""

    person: int
    start: float = Field(description="seconds: the start of the person's time on screen")
    end: float
    label: str | None = Field(description="the person's answer; null without evidence enough")
    score: float | None
    probabilities: dict[str, float]
    reason: str | None = Field(description="why the person has no answer (null when they do)")
    timestamps: list[float]
    boxes: list[list[float | None] | None]
    frame_probabilities: list[dict[str, float] | None] | None
    frame_weights: list[float] = Field(description="α_i / Σ α: they sum to 1")
    alpha: list[float]
    coverage: dict[str, int]
    thumbnail: str | None = Field(
        None,
        description="base64 PNG: the face of highest weight (of the most confident detection where "
        "frame_weights_learned is false)",
    )
    heatmaps: list[Heatmap]


class PeopleResponse(BaseModel):
    """Every person of one uploaded video, and the video's answer by the documented rule."""

    filename: str
    label: str | None
    probabilities: dict[str, float]
    person: int | None
    reason: str | None
    rule: str
    evidence_rules: dict[str, float]
    class_names: list[str]
    frames_searched: int
    search: str
    timing: dict[str, float]
    people: list[PersonAnswer]
    overrides: dict[str, Any] = Field(default_factory=dict, description=_OVERRIDES_DOC)
    model_values: dict[str, Any] = Field(default_factory=dict, description=_MODEL_VALUES_DOC)
    frame_weights_learned: bool | None = Field(None, description=_FRAME_WEIGHTS_LEARNED_DOC)


class ErrorResponse(BaseModel):
    detail: str
    error_type: str | None = None


def _static_dir() -> Path:
    return Path(str(resources.files("rdam.serve").joinpath("static")))


DOCS_STATIC_URL = "/docs-static"


def _docs_static_dir() -> Path:
    """Swagger UI and ReDoc bundles (JS, CSS, favicon) of the ``fastapi-offline`` package."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` with FastAPI's own page builders, pointed at local assets
    (FastAPI's defaults load them from cdn.jsdelivr.net, so the pages are blank offline)."""
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=_docs_static_dir()), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + oauth2_url,
            swagger_js_url=f"{root}{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
        )

    @app.get(oauth2_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def heatmaps_of(analysis: Analysis, max_side: int = HEATMAP_MAX_SIDE) -> list[Heatmap]:
    """Heatmap PNGs (base64) of every sampled frame: the location map over the frame or face
    crop; frames without a face (or models without location maps) show the plain picture."""
    pred = analysis.prediction
    if analysis.inputs is None:
        return []
    canvases = attention_canvases(analysis)
    mask = analysis.mask if analysis.mask is not None else np.ones(len(canvases), bool)
    out = []
    for k, canvas in enumerate(canvases):
        image = canvas
        if analysis.location_maps is not None and mask[k]:
            image = overlay_heatmap(canvas, analysis.location_maps[k])
        png = encode_png(_shrink(np.asarray(image, np.uint8), max_side))
        out.append(
            Heatmap(
                index=k,
                timestamp=pred.timestamps[k],
                alpha=pred.frame_weights[k],
                face=None if pred.face_found is None else pred.face_found[k],
                png=base64.b64encode(png).decode("ascii"),
            )
        )
    return out


def people_answers(video: VideoPeople, max_side: int = HEATMAP_MAX_SIDE) -> list[PersonAnswer]:
    """Each person of ``video`` (analysed with arrays) with their face thumbnail and heatmaps."""
    out = []
    for person in video.people:
        fields = person.to_dict()
        thumbnail, heatmaps = None, []
        analysis = person.analysis
        if analysis is not None and analysis.inputs is not None:
            face = face_thumbnail(analysis, person.frame_weights)
            if face is not None:
                thumbnail = base64.b64encode(encode_png(face)).decode("ascii")
            heatmaps = heatmaps_of(analysis, max_side)
        out.append(PersonAnswer(**fields, thumbnail=thumbnail, heatmaps=heatmaps))
    return out


_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "malformed form / no file field"},
    413: {"model": ErrorResponse, "description": "upload larger than the limit"},
    415: {"model": ErrorResponse, "description": "not a video"},
    422: {"model": ErrorResponse, "description": "unreadable video or no face found"},
    503: {"model": ErrorResponse, "description": "too many requests waiting"},
}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the video (mp4, mov, mkv, webm, avi ...) or image",
                        }
                    },
                }
            }
        },
    }
}


def _error(status: int, detail: str, error_type: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "error_type": error_type})


def create_app(
    predictor: Predictor,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pending: int = 8,
    heatmap_max_side: int = HEATMAP_MAX_SIDE,
) -> FastAPI:
    """Build the web demo / API around a loaded predictor.

    Args:
        predictor: from :func:`rdam.load`.
        max_upload_bytes: largest accepted video file (413 beyond).
        max_pending: requests allowed to wait for the model at once (503 beyond).
        heatmap_max_side: longer side of the returned heatmap PNGs.
    """
    app = FastAPI(
        title="rdam",
        version=rdam.__version__,
        description="Video emotion recognition with the Region Dual Attention Model: upload a "
        "video, get the emotion, the frame weights α over time and attention heatmaps.",
        docs_url=None,  # served from local files by _add_offline_docs
        redoc_url=None,
    )
    _add_offline_docs(app)
    overrides, model_values = predictor.spec_overrides
    if overrides:
        log.warning(
            "serving with a clip spec other than the model's: %s (model: %s); every answer says so",
            overrides,
            model_values,
        )
    lock = threading.Lock()
    pending = 0
    state_lock = asyncio.Lock()

    def analyze(path: Path) -> Analysis:
        with lock:
            return predictor.analyze(path, relations=False)

    def analyze_everyone(path: Path) -> VideoPeople:
        with lock:
            return analyze_people(predictor, path, keep_arrays=True)

    async def answer(request: Request, work: Callable[[Path], Any], respond: Callable) -> Any:
        """Receive the upload, run ``work(path)`` in a worker thread (one at a time), and
        ``respond(result, upload)`` in a worker thread too; the upload's own failures are
        answered 4xx (see the module notes)."""
        nonlocal pending
        async with state_lock:
            if pending >= max_pending:
                return _error(503, "the server is busy; try again in a moment")
            pending += 1
        try:
            with tempfile.TemporaryDirectory(prefix="rdam-upload-") as folder:
                try:
                    upload = await receive_upload(
                        request.headers.get("content-type"),
                        request.headers.get("content-length"),
                        request.stream(),
                        folder,
                        max_upload_bytes,
                    )
                except UploadError as exc:
                    return _error(exc.status, exc.message, type(exc).__name__)
                try:
                    result = await run_in_threadpool(work, upload.path)
                except _RUN_ERRORS:
                    raise
                except Exception as exc:  # this upload's own failure (typed or not): 422
                    if not isinstance(exc, RDAMError):
                        log.exception("unexpected error while reading an upload")
                    message = exc.reason if isinstance(exc, VideoError) else str(exc)
                    # The decoder may quote the server-side path: show the client's name.
                    message = (message or type(exc).__name__).replace(
                        str(upload.path), upload.filename
                    )
                    return _error(422, f"{upload.filename}: {message}", type(exc).__name__)
                return await run_in_threadpool(respond, result, upload)
        finally:
            async with state_lock:
                pending -= 1

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((_static_dir() / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness, the model's settings and the upload limit."""
        return {
            "status": "ok",
            "version": rdam.__version__,
            "model": predictor.describe(),
            "max_upload_bytes": max_upload_bytes,
        }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_UPLOAD_RESPONSES,
        openapi_extra=_UPLOAD_BODY,
    )
    async def predict(request: Request) -> Any:
        """Predict the emotion of an uploaded video (multipart field ``file``)."""

        def respond(analysis: Analysis, upload: Any) -> PredictResponse:
            pred = analysis.prediction
            timeline = [
                TimelinePoint(
                    index=k,
                    timestamp=t,
                    alpha=a,
                    face=None if pred.face_found is None else pred.face_found[k],
                )
                for k, (t, a) in enumerate(zip(pred.timestamps, pred.frame_weights, strict=True))
            ]
            return PredictResponse(
                filename=upload.filename,
                label=pred.label or "",
                score=pred.score or 0.0,
                probabilities=pred.probabilities,
                class_names=predictor.class_names,
                frame_weights=pred.frame_weights,
                timestamps=pred.timestamps,
                face_found=pred.face_found,
                face_boxes=pred.face_boxes,
                faces_per_frame=pred.faces_per_frame,
                timing=pred.timing,
                timeline=timeline,
                heatmaps=heatmaps_of(analysis, heatmap_max_side),
                overrides=pred.overrides,
                model_values=pred.model_values,
                frame_weights_learned=pred.frame_weights_learned,
            )

        return await answer(request, analyze, respond)

    @app.post(
        "/people",
        response_model=PeopleResponse,
        responses=_UPLOAD_RESPONSES,
        openapi_extra=_UPLOAD_BODY,
    )
    async def people(request: Request) -> Any:
        """Every person (face track) of an uploaded video, each with an answer or the reason
        for none, per-frame probabilities, frame weights, face and heatmaps; the video's answer
        by the documented rule (face-stream models; 422 for a frames-only model)."""

        def respond(video: VideoPeople, upload: Any) -> PeopleResponse:
            data = video.to_dict()
            data.pop("path")
            data["people"] = people_answers(video, heatmap_max_side)
            return PeopleResponse(
                filename=upload.filename, class_names=predictor.class_names, **data
            )

        return await answer(request, analyze_everyone, respond)

    return app
