"""Figure 17: does the face margin frame detected faces as FER2013's crops are framed?

    .venv/bin/python -m benchmarks.face_framing [--per-class 100] [--framing-limit 2000] \
        [--out benchmarks/results/face_framing.json]

1. **The training crops' framing** (``rdam framing``, :func:`rdam.data.framing.measure_framing`):
   YuNet on FER2013 *train* faces, enlarged to 192 px. Its median says which ``face_margin``
   makes ``square_crop_window`` cut a detected face as FER2013 cut its faces.
2. **What the margin does** (a stand-in, since no labelled face video is here): FER2013 *val*
   faces, enlarged 4x to 192 px and set in a 384-px frame, around them either the face
   mirrored outwards (``reflect``: something face-like around the face, as a frame has hair,
   neck and background) or black. Each is scored through ``rdam.evaluate``'s detect path
   (``--faces detect``, as ``rdam predict`` crops a video frame) at several margins, the
   shipped weights, their clip spec otherwise; ``given`` (the 48-px faces as they are, what
   ``rdam eval`` scores) is the ceiling. Clips in which YuNet finds no face are answered from
   the classifier's bias and counted, at every margin alike.
3. **Lighting** (the crops' grey levels): FER2013's faces are histogram-equalized, video faces
   are not. The given val faces, as they are and dimmed as a video might light them (:func:`_dim`),
   under ``color: gray`` (the shipped model's) and ``gray_equalized``; and the framed faces at
   the measured margin under ``gray_equalized``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import fer2013_root, machine_info, write_json

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.25)
CONTEXTS = ("reflect", "black")
COLORS = ("gray", "gray_equalized")


def _stage(val: Path, out: Path, per_class: int) -> dict[str, Path]:
    """The first ``per_class`` val faces of each class as given (symlinks) and in each context
    (enlarged to 192 px, padded by 96 px on every side)."""
    import cv2
    import numpy as np

    borders = {"reflect": cv2.BORDER_REFLECT_101, "black": cv2.BORDER_CONSTANT}
    roots = {name: out / name for name in ("given", "dim", *CONTEXTS)}
    rng = np.random.default_rng(0)
    for cls in sorted(p.name for p in val.iterdir() if p.is_dir()):
        for root in roots.values():
            (root / cls).mkdir(parents=True)
        for path in sorted((val / cls).glob("*.jpg"))[:per_class]:
            (roots["given"] / cls / path.name).symlink_to(path.resolve())
            grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
            cv2.imwrite(str(roots["dim"] / cls / f"{path.stem}.png"), _dim(grey, rng))
            face = cv2.resize(cv2.imread(str(path)), (192, 192), interpolation=cv2.INTER_CUBIC)
            for context in CONTEXTS:
                framed = cv2.copyMakeBorder(face, 96, 96, 96, 96, borders[context], value=0)
                cv2.imwrite(str(roots[context] / cls / f"{path.stem}.png"), framed)
    return roots


def _dim(grey, rng):
    """A face as a video might light it: a gamma of 0.6-1.7, then its contrast cut to 0.2-0.45
    around a mean of 0.2-0.6 (the Ekman-6 samples' face crops have grey-level spreads of 27-84
    where FER2013's equalized faces have 75)."""
    import numpy as np

    x = grey ** np.exp(rng.uniform(np.log(0.6), np.log(1.7)))
    x = np.clip((x - x.mean()) * rng.uniform(0.2, 0.45) + rng.uniform(0.2, 0.6), 0, 1)
    return (x * 255 + 0.5).astype(np.uint8)


def _scores(report: dict) -> dict:
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "clips": report["num_samples"],
        "faceless": report["faceless"],
    }


def run(per_class: int, framing_limit: int, threads: int) -> dict:
    import rdam
    from rdam.data.faces import FaceDetector
    from rdam.data.framing import draw, measure_framing
    from rdam.data.layouts import load_manifest
    from rdam.data.video import read_image
    from rdam.evaluation.evaluate import evaluate
    from rdam.threads import set_cpu_threads

    set_cpu_threads(threads)
    root = fer2013_root()
    shipped = rdam.load()
    spec = shipped.spec

    train = draw(load_manifest(root).split("train").records, framing_limit)  # as rdam framing
    detector = FaceDetector(score_threshold=spec.face_score)
    crops = [read_image(r.path) for r in train]  # read once: the framing and the grey spread
    framing = measure_framing(crops, detector)
    margins = sorted({*MARGINS, framing.face_margin})

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        roots = _stage(root / "val", Path(tmp), per_class)
        for color in COLORS:  # the given crops, as they are and dimmed, under each color
            for name in ("given", "dim"):
                report = evaluate(
                    None, str(roots[name]), face_input="given", overrides={"color": color}
                )
                rows[f"{name}, {color}"] = _scores(report)
                print(name, color, rows[f"{name}, {color}"], flush=True)
        for context in CONTEXTS:
            report = evaluate(
                None,
                str(roots[context]),
                face_input="detect",
                overrides={"face_margin": framing.face_margin, "color": "gray_equalized"},
            )
            rows[f"{context}, margin {framing.face_margin}, gray_equalized"] = _scores(report)
            for margin in margins:
                report = evaluate(
                    None,
                    str(roots[context]),
                    face_input="detect",
                    overrides={"face_margin": margin},
                )
                rows[f"{context}, margin {margin}"] = _scores(report)
                print(context, margin, rows[f"{context}, margin {margin}"], flush=True)
    votes = root.parent / "ferplus" / "fer2013_votes.csv"
    whole_val = {}
    for color in COLORS:  # every val face as given, against both label sets
        report = evaluate(
            None, str(root / "val"), overrides={"color": color}, labels=f"folder,ferplus:{votes}"
        )
        whole_val[color] = {k: v["accuracy"] for k, v in report["label_sets"].items()}
        print("whole val", color, whole_val[color], flush=True)
    spreads = [crop[..., 0].std() for crop in crops]
    return {
        "figure": 17,
        "title": "face margin against the training crops' framing (FER2013)",
        "shipped_face_margin": spec.face_margin,
        "framing": {"split": "train", "drawn": framing_limit, "seed": 0, **framing.to_dict()},
        "val_faces_per_class": per_class,
        "scores": rows,
        "whole_val_given": whole_val,
        "lighting": {
            "fer2013_train_grey_spread": _quartiles(spreads),
            "ekman6_face_crops": _video_crop_lighting(shipped),
        },
        "machine": machine_info(),
    }


def _quartiles(values) -> dict:
    import numpy as np

    q25, q50, q75 = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75), "n": len(values)}


def _video_crop_lighting(predictor) -> dict:
    """Per Ekman-6 sample, the shipped model's grey face crops (as ``rdam predict`` makes
    them): median over the crops of the equalization gap and of the grey-level spread
    (standard deviation)."""
    import numpy as np

    from benchmarks.common import ekman6_videos
    from rdam.data.framing import equalization_gap
    from rdam.errors import NoFaceError

    out = {}
    for video in ekman6_videos():
        try:
            analysis = predictor.analyze(video, keep_arrays=True)
        except NoFaceError as exc:
            out[video.name] = {"error": str(exc)}
            continue
        crops = [c[..., 0] for c in analysis.inputs[analysis.mask]]
        out[video.name] = {
            "crops": len(crops),
            "equalization_gap": float(np.median([equalization_gap(c) for c in crops])),
            "grey_spread": float(np.median([c.std() for c in crops])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--framing-limit", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/face_framing.json"))
    args = parser.parse_args()
    write_json(run(args.per_class, args.framing_limit, args.threads), args.out)


if __name__ == "__main__":
    main()
