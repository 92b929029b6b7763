"""``rdam eval``: the model's own clip spec, class names matched by name, and the same answers
as ``rdam predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _inference_fixtures import CLASS_NAMES, save_tiny_model
from PIL import Image

import rdam
from rdam.cli import main
from rdam.errors import ConfigError
from rdam.evaluation.evaluate import evaluate, match_classes, parse_class_map
from rdam.runtime import cpu_supports_bf16

REPO = Path(__file__).resolve().parents[2]


def _image_set(root: Path, classes: list[str], per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            pixels[..., c % 3] = 40 * c + 10 * i
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_parse_and_match_class_names():
    assert parse_class_map("anger=angry, sadness=sad,contempt=") == {
        "anger": "angry",
        "sadness": "sad",
        "contempt": None,
    }
    with pytest.raises(ConfigError, match="DATA_CLASS=MODEL_CLASS"):
        parse_class_map("anger")
    model = ["angry", "happy", "sad"]
    assert match_classes(["Happy", "angry"], model) == {0: 1, 1: 0}  # by name, not position
    assert match_classes(
        ["anger", "joy", "x"], model, {"anger": "angry", "joy": "happy", "x": None}
    ) == {
        0: 0,
        1: 1,
        2: None,
    }
    with pytest.raises(ConfigError, match=r"does not: \['anger', 'joy'\]") as err:
        match_classes(["anger", "joy", "sad"], model)
    assert "Model classes: ['angry', 'happy', 'sad']" in str(err.value) and "--class-map" in str(
        err.value
    )
    with pytest.raises(ConfigError, match="maps to classes the model does not have"):
        match_classes(["anger"], model, {"anger": "furious"})


def test_a_class_name_mismatch_is_an_error_and_class_map_scores_it_right(tmp_path: Path, capsys):
    model = save_tiny_model(tmp_path / "m.safetensors", num_frames=1)  # anger, joy, surprise
    renamed = ["glad", "mad", "wow", "zzz"]  # by position glad would be scored as anger
    data = _image_set(tmp_path / "data", renamed)
    assert main(["eval", str(data), "--checkpoint", str(model)]) == 2
    err = capsys.readouterr().err
    assert "the data set has classes the model does not" in err and str(CLASS_NAMES) in err

    mapping = "glad=joy,mad=anger,wow=surprise,zzz="
    assert (
        main(
            [
                "eval",
                str(data),
                "--checkpoint",
                str(model),
                "--precision",
                "fp32",
                "--class-map",
                mapping,
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["excluded"] == {"zzz": 3} and report["num_samples"] == 9
    # the right figure, by hand: each image predicted alone, its label mapped by name
    predictor = rdam.load(model, precision="fp32")
    truth = {"glad": "joy", "mad": "anger", "wow": "surprise"}
    hits = [
        predictor.predict_video(path).label == truth[name]
        for name in truth
        for path in sorted((data / name).glob("*.png"))
    ]
    assert report["accuracy"] == pytest.approx(np.mean(hits))
    assert report["split"] == "all" and report["precision"] == "fp32"


def test_eval_reports_its_spec_overrides_and_timing(tmp_path: Path):
    model = save_tiny_model(tmp_path / "m.safetensors", num_frames=1)
    data = _image_set(tmp_path / "data", CLASS_NAMES, per_class=2)
    report = evaluate(
        model, data, precision="fp32", overrides={"max_side": 16}, out_dir=tmp_path / "out"
    )
    assert report["overrides"] == {"max_side": 16} and report["clip_spec"]["max_side"] == 16
    assert report["timing"]["seconds"] > 0 and report["num_samples"] == 6
    assert json.loads((tmp_path / "out" / "eval_metrics.json").read_text())["overrides"] == {
        "max_side": 16
    }


@pytest.mark.shared_data
def test_eval_of_the_shipped_model_without_options_reproduces_the_model_card(
    fer2013_dir: Path, capsys
):
    """No config, no option: the model's spec (grey 48-px faces), class names and precision."""
    model = REPO / "rdam" / "assets" / "default_model.safetensors"
    assert main(["eval", "--checkpoint", str(model), str(fer2013_dir / "val")]) == 0
    report = json.loads(capsys.readouterr().out)
    card = json.loads((REPO / "docs" / "model-card" / "metrics.json").read_text())["fer2013_val"]
    expected = card["single_predict_precision"] if cpu_supports_bf16() else card["single"]
    assert report["precision"] == expected["precision"]
    assert report["num_samples"] == expected["num_samples"] == 3589
    assert report["accuracy"] == expected["accuracy"]
    assert report["per_class_accuracy"] == {
        k: round(v, 4) for k, v in expected["per_class_accuracy"].items()
    }
    assert report["overrides"] == {} and report["excluded"] == {}


@pytest.mark.shared_data
def test_predict_on_fer2013_faces_one_by_one_agrees_with_eval(fer2013_dir: Path, tmp_path: Path):
    """A face image is a crop already: ``predict`` must not lose it to the face detector."""
    classes = sorted(p.name for p in (fer2013_dir / "val").iterdir())
    subset = tmp_path / "val"
    paths = []
    for name in classes:
        (subset / name).mkdir(parents=True)
        for path in sorted((fer2013_dir / "val" / name).glob("*.jpg"))[:43]:
            (subset / name / path.name).symlink_to(path)
            paths.append((subset / name / path.name, name))
    report = evaluate(None, subset)
    predictor = rdam.load()
    predictions = predictor.predict_many([p for p, _ in paths], batch_size=16)
    assert all(p.ok and p.face_input == "given" for p in predictions)
    accuracy = np.mean([p.label == name for p, (_, name) in zip(predictions, paths, strict=True)])
    assert report["num_samples"] == len(paths) >= 290
    assert abs(accuracy - report["accuracy"]) <= 0.005, (accuracy, report["accuracy"])


@pytest.mark.shared_data
def test_clips_with_no_face_are_counted_and_named_not_hidden_in_the_figures(
    fer2013_dir: Path, tmp_path: Path, caplog
):
    """A face model scored on an image with no face in it: the model answers it from its
    bias alone (rdam predict refuses it), so the report counts and lists it, and says so."""
    data = tmp_path / "val"
    for name in ("happy", "sad"):
        (data / name).mkdir(parents=True)
        face = sorted((fer2013_dir / "val" / name).glob("*.jpg"))[0]
        (data / name / face.name).symlink_to(face)
    blank = data / "sad" / "wall.jpg"  # larger than a face crop: the detector is asked
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(blank)
    with caplog.at_level("WARNING", logger="rdam.evaluation.evaluate"):
        report = evaluate(None, data)
    assert report["num_samples"] == 3 and report["faceless"] == 1
    assert report["faceless_files"] == [str(blank)]
    assert "1 of 3 clips had no face in any sampled frame" in caplog.text
    # an image without a face may be a face crop the detector missed: the way out is named
    assert "--faces given takes each image as the crop" in caplog.text


def test_a_folder_of_images_gives_one_result_per_image(tmp_path: Path, capsys):
    model = save_tiny_model(tmp_path / "m.safetensors", num_frames=4)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    assert main(["predict", str(folder), "--checkpoint", str(model)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in results] == [str(folder / f"p{i}.png") for i in range(5)]
    assert all(len(r["timestamps"]) == 1 for r in results)
    assert main(["predict", str(folder), "--checkpoint", str(model), "--sequence"]) == 0
    (one,) = json.loads(capsys.readouterr().out)
    assert one["path"] == str(folder) and len(one["timestamps"]) == 4


def _probabilities(path: Path) -> tuple[list[str], np.ndarray]:
    rows = path.read_text().splitlines()
    assert rows[0] == "file," + ",".join(CLASS_NAMES)
    cells = [r.split(",") for r in rows[1:]]
    return [c[0] for c in cells], np.asarray([[float(v) for v in c[1:]] for c in cells])


def test_an_ensemble_averages_its_members_probabilities(tmp_path: Path, capsys):
    a = save_tiny_model(tmp_path / "a.safetensors", num_frames=1, seed=0)
    b = save_tiny_model(tmp_path / "b.safetensors", num_frames=1, seed=1)
    data = _image_set(tmp_path / "data", CLASS_NAMES, per_class=4)
    alone = {
        name: evaluate(path, data, precision="fp32", flip=True, out_dir=tmp_path / name)
        for name, path in (("a", a), ("b", b))
    }
    both = evaluate([a, b], data, precision="fp32", flip=True, out_dir=tmp_path / "ab")
    files, p_a = _probabilities(tmp_path / "a" / "probabilities.csv")
    # paths from the scored folder on (its name kept, as a split folder's would be)
    assert files == [f"data/{c}/{i}.png" for c in CLASS_NAMES for i in range(4)]
    np.testing.assert_allclose(p_a.sum(1), 1.0, atol=1e-5)
    _, p_b = _probabilities(tmp_path / "b" / "probabilities.csv")
    assert not np.allclose(p_a, p_b, atol=1e-3)  # two different models
    files_ab, p_ab = _probabilities(tmp_path / "ab" / "probabilities.csv")
    assert files_ab == files
    # the ensemble is the members' mean probability (each over its two mirrored views) ...
    np.testing.assert_allclose(p_ab, (p_a + p_b) / 2, atol=2e-6)
    # ... scored by hand against the folder labels
    truth = np.repeat(np.arange(len(CLASS_NAMES)), 4)
    assert both["accuracy"] == pytest.approx(np.mean(p_ab.argmax(1) == truth))
    assert both["num_samples"] == 12 and both["model"].startswith("ensemble of 2: ")
    assert [m["accuracy"] for m in both["members"]] == [
        alone["a"]["accuracy"],
        alone["b"]["accuracy"],
    ]
    assert [m["macro_f1"] for m in both["members"]] == [
        alone["a"]["macro_f1"],
        alone["b"]["macro_f1"],
    ]
    assert "members" not in alone["a"] and alone["a"]["model"] == str(a)
    # the CLI: --checkpoint twice
    args = ["eval", str(data), "--checkpoint", str(a), "--checkpoint", str(b), "--precision"]
    assert main([*args, "fp32", "--flip"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accuracy"] == both["accuracy"] and len(summary["members"]) == 2


def test_an_ensemble_of_models_with_other_classes_is_refused(tmp_path: Path, capsys):
    a = save_tiny_model(tmp_path / "a.safetensors", num_frames=1)
    other = save_tiny_model(
        tmp_path / "other.safetensors", num_frames=1, class_names=["joy", "anger", "surprise"]
    )
    data = _image_set(tmp_path / "data", CLASS_NAMES, per_class=1)
    with pytest.raises(ConfigError, match="same classes in the same order"):
        evaluate([a, other], data)
    assert main(["eval", str(data), "--checkpoint", str(a), "--checkpoint", str(other)]) == 2
    assert (
        "other.safetensors has the classes ['joy', 'anger', 'surprise']" in capsys.readouterr().err
    )
