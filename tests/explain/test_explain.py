"""Explanations: heatmap upsampling and overlay, relation ranking, HTML reports, CLI."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _inference_fixtures import SquareFaceDetector, save_tiny_model, write_video
from PIL import Image

import rdam
from rdam.checkpoint import load_model, save_model
from rdam.cli import main
from rdam.explain import (
    explain_videos,
    overlay_heatmap,
    relation_figure,
    top_relations,
    upsample_map,
)
from rdam.explain.render import region_centre
from rdam.explain.report import frame_weights_uniform, overrides_note, report_dirname


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain")
    bad = root / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    return {
        "model": save_tiny_model(root / "tiny.safetensors"),
        "faces_model": save_tiny_model(root / "faces.safetensors", stream="faces"),
        "video": write_video(root / "clip.mp4", num_frames=20),
        "faces": write_video(root / "faces.mp4", num_frames=20, face_frames={2, 7, 12}),
        "bad": bad,
    }


def png_images(html_text: str) -> list[Image.Image]:
    """Every embedded image of a report, decoded."""
    sources = re.findall(r"src='([^']*)'", html_text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    return [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]


# -- rendering ------------------------------------------------------------------------------------


def test_upsample_map_keeps_the_peak_where_the_region_is():
    attention = np.full((4, 4), 0.02, np.float32)
    attention[1, 3] = 0.7  # row 1, column 3
    up = upsample_map(attention, 64, 48)
    assert up.shape == (64, 48) and up.max() == pytest.approx(1.0)
    y, x = np.unravel_index(np.argmax(up), up.shape)
    # Region (1, 3) covers rows 16..31 and columns 36..47 of a 64x48 image.
    assert 16 <= y < 32 and 36 <= x < 48
    assert up[60, 2] < 0.1
    assert upsample_map(np.zeros((2, 2)), 8, 8).max() == 0.0
    with pytest.raises(ValueError):
        upsample_map(np.zeros(4), 8, 8)


def test_overlay_heats_the_attended_region_only():
    image = np.full((32, 32, 3), 128, np.uint8)
    attention = np.zeros((2, 2), np.float32)
    attention[0, 0] = 1.0
    out = overlay_heatmap(image, attention)
    assert out.shape == image.shape and out.dtype == np.uint8
    # At the peak: 55 % picture + 45 % jet(1.0) = dark red (0.5, 0, 0).
    np.testing.assert_allclose(out[0, 0], 128 * 0.55 + np.array([127.5, 0, 0]) * 0.45, atol=1)
    # Far away the map is 0: 84 % picture + 16 % jet(0.0) = dark blue (0, 0, 0.5).
    w = 0.45 * 0.35
    np.testing.assert_allclose(out[31, 31], 128 * (1 - w) + np.array([0, 0, 127.5]) * w, atol=1)


def test_top_relations_rank_entries_row_major():
    s = np.full((6, 6), 0.01)  # a 2x3 grid, region l = i * 3 + j
    s[0, 5] = 0.9  # (0,0) -> (1,2)
    s[4, 1] = 0.5  # (1,1) -> (0,1)
    s[2, 2] = 5.0  # self pair: skipped unless asked
    rel = top_relations(s, (2, 3), n=2)
    assert [(r.source, r.target) for r in rel] == [(0, 5), (4, 1)]
    assert rel[0].source_cell == (0, 0) and rel[0].target_cell == (1, 2)
    assert rel[1].source_cell == (1, 1) and rel[1].target_cell == (0, 1)
    assert rel[0].weight == pytest.approx(0.9)
    assert top_relations(s, (2, 3), n=1, include_self=True)[0].source == 2
    with pytest.raises(ValueError, match="does not fit"):
        top_relations(s, (3, 3))
    assert region_centre((1, 2), (2, 3), (40, 60)) == (50.0, 30.0)


def test_relation_figure_is_a_png():
    image = np.zeros((40, 40, 3), np.uint8)
    png = relation_figure(image, np.eye(4) * 0.5 + 0.125, (2, 2), n=3)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_report_dirname_is_safe():
    assert report_dirname(3, "../../etc/passwd") == "003_passwd"
    assert report_dirname(1, "/abs/dir/") == "001_dir"
    assert report_dirname(12, "we ird<name>.mp4") == "012_we_ird_name_.mp4"
    assert report_dirname(2, "..") == "002_clip"


# -- reports --------------------------------------------------------------------------------------


def test_reports_for_the_frame_stream(media, tmp_path):
    predictor = rdam.load(media["model"])
    out = tmp_path / "explain"
    entries = explain_videos(predictor, [media["video"], media["bad"]], out)
    assert [e.error_type for e in entries] == [None, "CorruptVideoError"]
    folder = entries[0].report.parent
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "alpha.png",
        "frame_00.png",
        "frame_01.png",
        "frame_02.png",
        "frame_03.png",
        "relations.png",
        "report.html",
    ]
    # The overlays are drawn on the decoded 64x48 frames (squash fit covers the whole frame).
    assert Image.open(folder / "frame_00.png").size == (64, 48)
    text = entries[0].report.read_text()
    assert "http://" not in text and "https://" not in text  # opens offline
    images = png_images(text)
    assert len(images) == 4 + 2  # frames, alpha plot, relations
    assert entries[0].label in text and "Strongest region relations" in text
    bad_text = entries[1].report.read_text()
    assert "CorruptVideoError" in bad_text
    index = (out / "index.html").read_text()
    assert "001_clip.mp4/report.html" in index and "002_bad.mp4/report.html" in index
    assert "CorruptVideoError" in index


def test_reports_for_the_face_stream(media, tmp_path):
    predictor = rdam.load(media["faces_model"], face_detector=SquareFaceDetector())
    entries = explain_videos(predictor, [media["faces"]], tmp_path)
    folder = entries[0].report.parent
    # Overlays on the 32 px face crops (face_XX), face boxes on the decoded frames (frame_XX).
    assert Image.open(folder / "face_00.png").size == (32, 32)
    assert Image.open(folder / "frame_00.png").size == (64, 48)
    boxed = np.asarray(Image.open(folder / "frame_00.png"))
    assert (boxed[..., 1] == 255).sum() > 20 and (boxed[..., 0] == 0).any()  # green box
    text = entries[0].report.read_text()
    assert "no face found" in text  # frame 17 has no face
    assert len(png_images(text)) == 4 + 4 + 2


def test_people_report_thumbnail_of_a_two_stream_model_is_the_face(tmp_path):
    """Two-stream models' ``inputs`` are whole frames: the person's thumbnail on the people
    page is their face cut at their box, not the whole frame."""
    from rdam.explain import write_people_report
    from rdam.inference.people import analyze_people

    model = save_tiny_model(tmp_path / "two.safetensors", arch="two_stream")
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), evidence=None)
    video = write_video(tmp_path / "f.mp4", face_frames=set(range(20)))
    result = analyze_people(predictor, video, keep_arrays=True)
    page = write_people_report(result, predictor.class_names, tmp_path / "out")
    (uri,) = re.findall(
        r"<img alt='person 0' src='data:image/png;base64,([^']*)'", page.read_text()
    )
    face = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
    assert np.all(face >= 250, axis=-1).mean() > 0.4  # the white face; the whole frame: 19 %


def test_people_report_names_the_clip_spec_overrides(tmp_path):
    """The people page and each person's page say when the answer was made with other clip
    settings than the model file's."""
    from rdam.explain import write_people_report
    from rdam.inference.people import analyze_people

    model = save_tiny_model(tmp_path / "m.safetensors", stream="faces")
    video = write_video(tmp_path / "f.mp4", face_frames=set(range(20)))
    pages = {}
    for name, k in (("own", None), ("k2", 2)):
        predictor = rdam.load(
            model, face_detector=SquareFaceDetector(), evidence=None, num_frames=k
        )
        result = analyze_people(predictor, video, keep_arrays=True)
        page = write_people_report(result, predictor.class_names, tmp_path / name)
        pages[name] = page.read_text() + (page.parent / "person_0" / "report.html").read_text()
    assert "Not the model's settings" not in pages["own"]
    expected = "Not the model's settings: run with num_frames=2 (the model was trained with 4)"
    assert pages["k2"].count(expected) == 2  # the people page and person 0's page


def test_frame_weights_uniform():
    assert frame_weights_uniform([0.5, 0.505, 0.501])
    assert not frame_weights_uniform([0.5, 0.6, 0.5])
    assert frame_weights_uniform([0.5, 0.9, 0.5], mask=[True, False, True])  # 0.9 is padding
    assert not frame_weights_uniform([0.5])  # one frame: nothing to compare
    assert not frame_weights_uniform([0.0, 0.0])


def test_a_report_says_when_the_frame_weights_single_out_no_frame(tmp_path, media):
    """A model whose frame attention never learned (trained on single images: its score
    network decays to ~0, every alpha ~0.5) fuses frames as their average; the report says so
    instead of letting the frame of highest alpha look chosen."""
    note = "this model's frame weights single out no frame"
    varied = explain_videos(rdam.load(media["model"]), [media["video"]], tmp_path / "varied")
    assert note not in varied[0].report.read_text()
    bundle = load_model(media["model"])
    with torch.no_grad():
        for p in bundle.model.temporal.score.parameters():
            p.mul_(1e-3)  # as weight decay leaves it after training on one-frame clips
    flat = save_model(
        tmp_path / "flat.safetensors", bundle.model, bundle.config, bundle.class_names, bundle.spec
    )
    entries = explain_videos(rdam.load(flat), [media["video"]], tmp_path / "flat")
    assert note in entries[0].report.read_text()


def test_report_without_location_maps(tmp_path, media):
    model = save_tiny_model(tmp_path / "avg.safetensors", region_head="average")
    entries = explain_videos(rdam.load(model), [media["video"]], tmp_path / "out")
    text = entries[0].report.read_text()
    assert "has no location attention map" in text and "Not available" in text


def test_cli_explain_and_predict_explain(media, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["explain", str(media["video"]), "--out", str(out),
                 "--checkpoint", str(media["model"]), "--top-relations", "2"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["index"]).is_file() and Path(summary["reports"][0]["report"]).is_file()
    predicted = tmp_path / "pred.json"
    code = main(["predict", str(media["video"]), "--checkpoint", str(media["model"]),
                 "--explain", str(tmp_path / "via_predict"), "--output", str(predicted)])  # fmt: skip
    assert code == 0
    assert json.loads(predicted.read_text())[0]["label"] is not None
    assert (tmp_path / "via_predict" / "001_clip.mp4" / "report.html").is_file()


def test_cli_explain_names_the_clip_spec_overrides(media, tmp_path, capsys):
    """rdam explain's summary carries the clip-spec overrides in force, as every rdam predict
    answer does (docs/clip-spec.md): {} with the model's own settings."""
    base = ["explain", str(media["video"]), "--checkpoint", str(media["model"])]
    assert main([*base, "--out", str(tmp_path / "own")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overrides"] == {} and summary["model_values"] == {}
    own_page = Path(summary["reports"][0]["report"]).read_text()
    assert "Not the model's settings" not in own_page
    assert main([*base, "--out", str(tmp_path / "k2"), "--num-frames", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overrides"] == {"num_frames": 2}
    assert summary["model_values"] == {"num_frames": 4}  # save_tiny_model's K
    assert summary["reports"][0]["label"] is not None
    # the HTML page says it too, as the web demo does beside its answer
    page = Path(summary["reports"][0]["report"]).read_text()
    assert "Not the model's settings: run with num_frames=2 (the model was trained with 4)" in page


def test_overrides_note():
    assert overrides_note({}, {}) == ""
    note = overrides_note(
        {"face_margin": 0.3, "color": "rgb"}, {"face_margin": 0.15, "color": "gray"}
    )
    assert "face_margin=0.3 (the model was trained with 0.15)" in note
    assert "color=&quot;rgb&quot; (the model was trained with &quot;gray&quot;)" in note


@pytest.mark.shared_data
def test_explain_a_real_ekman6_video(ekman6_dir: Path, media, tmp_path):
    video = sorted(ekman6_dir.glob("*.mp4"))[0]
    code = main(["explain", str(video), "--out", str(tmp_path), "--checkpoint",
                 str(media["model"])])  # fmt: skip
    assert code == 0
    reports = list(tmp_path.glob("001_*/report.html"))
    assert len(reports) == 1
    images = png_images(reports[0].read_text())
    assert len(images) == 6
    assert max(images[2].size) <= 640  # frames decoded at most 640 px


@pytest.mark.shared_data
def test_explain_file_names_match_their_pictures_with_the_default_model(
    ekman6_dir: Path, tmp_path: Path
):
    """``rdam explain`` on a real video with the shipped face model: ``face_XX.png`` is the
    face crop the model saw (its input size, grayscale, under the heatmap), ``frame_XX.png``
    the decoded frame (the video's size) with the face box drawn on it."""
    import av

    video = ekman6_dir / "joy.mp4"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frame_size = (stream.width, stream.height)
    predictor = rdam.load()
    crop = predictor.spec.frame_size
    code = main(["explain", str(video), "--out", str(tmp_path)])
    assert code == 0
    folder = tmp_path / "001_joy.mp4"
    k = predictor.num_frames
    assert sorted(p.name for p in folder.glob("face_*.png")) == [
        f"face_{i:02d}.png" for i in range(k)
    ]
    assert sorted(p.name for p in folder.glob("frame_*.png")) == [
        f"frame_{i:02d}.png" for i in range(k)
    ]
    for i in range(k):
        assert Image.open(folder / f"face_{i:02d}.png").size == (crop, crop)
        assert Image.open(folder / f"frame_{i:02d}.png").size == frame_size
    # The frame shows the green face box; the face crop is all heatmap-over-face (no box).
    boxed = np.asarray(Image.open(folder / "frame_00.png").convert("RGB")).astype(int)
    green = (boxed[..., 1] == 255) & (boxed[..., 0] == 0) & (boxed[..., 2] == 0)
    assert green.sum() > 100


def test_a_thumbnail_from_unlearned_frame_weights_is_the_surest_face():
    """Where the model's frame weights were never learned, the highest alpha picks a frame for
    no reason: the person's thumbnail is the face of the most confident detection instead."""
    from rdam.explain.report import face_thumbnail
    from rdam.inference import Prediction
    from rdam.inference.results import Analysis

    faces = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)])
    boxes = np.array([[0, 0, 4, 4, 0.70], [0, 0, 4, 4, 0.99], [np.nan] * 5])
    weights = [0.9, 0.1, 0.95]  # the highest sits on a frame without a face
    for learned, expected in ((True, 10), (None, 10), (False, 20)):
        analysis = Analysis(
            prediction=Prediction(path="v.mp4", frame_weights_learned=learned),
            stream="faces",
            inputs=faces,
            mask=np.array([True, True, False]),
            boxes=boxes,
        )
        assert face_thumbnail(analysis, weights)[0, 0, 0] == expected, learned
