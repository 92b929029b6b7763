"""`rdam report`: the paper's tables from real (tiny) run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _runs import tiny_run

from rdam.cli import main
from rdam.errors import ConfigError, RunNotFinishedError
from rdam.evaluation.evaluate import evaluate
from rdam.evaluation.report import (
    Cell,
    ReportError,
    RunResult,
    build_report,
    find_run_dirs,
    method_of,
    read_run,
    render_report,
)
from rdam.runtime import device_name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three finished runs: average (seed 0), dual (seeds 0 and 1); one of them evaluated."""
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root / "average_s0", "average", seed=0)
    dual = tiny_run(root / "dual_s0", "dual", seed=0)
    tiny_run(root / "dual_s1", "dual", seed=1)
    evaluate(dual.model_file, out_dir=root / "dual_s0" / "eval")
    return root


def test_method_and_data_set_come_from_the_run_config(runs: Path) -> None:
    average = read_run(runs / "average_s0")
    assert average.method.label == "test_resnet + average aggregation"
    assert average.method.table == "ablation"
    assert (average.dataset, average.dataset_name) == ("synthetic-I", "synthetic")
    assert average.sources["accuracy"] == "best val/acc in training"
    dual = read_run(runs / "dual_s0")
    assert dual.method.label == "test_resnet + regional dual attention"
    assert dual.sources["accuracy"] == "eval (eval/eval_metrics.json)"
    assert dual.sources["macro_f1"].startswith("eval")


def test_an_averaged_runs_score_is_its_last_not_its_best_epoch(runs: Path, tmp_path: Path):
    """With weight averaging the exported model is the average at the end (last.ckpt), not the
    best epoch: unscored, the run reads its last val/acc (the average's), not the best epoch's
    score of another network (while its macro-F1 was already the last one's)."""
    import shutil

    run = tmp_path / "average_s0"
    shutil.copytree(runs / "average_s0", run)
    summary = json.loads((run / "metrics.json").read_text())
    summary["best"]["score"] = 0.99  # an epoch before the average better than the end
    summary["exported_checkpoint"] = str(run / "checkpoints" / "last.ckpt")
    (run / "metrics.json").write_text(json.dumps(summary))
    result = read_run(run)
    assert result.sources["accuracy"] == "last val/acc in training"
    assert result.values["accuracy"] == summary["metrics"]["val/acc"] != 0.99
    summary["exported_checkpoint"] = summary["best_checkpoint"]  # the best one was exported
    (run / "metrics.json").write_text(json.dumps(summary))
    assert read_run(run).values["accuracy"] == 0.99


def test_report_averages_runs_of_one_method_and_data_set(runs: Path) -> None:
    results = {d.name: read_run(d) for d in find_run_dirs([runs])}
    assert sorted(results) == ["average_s0", "dual_s0", "dual_s1"]
    text = render_report(list(results.values()))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Method"))
    assert header == "| Method | Accuracy on synthetic-I (%) |"
    rows = [line for line in lines if line.startswith("| test_resnet")]
    # the paper's row order: average aggregation first, dual attention last
    assert rows[0].startswith("| test_resnet + average aggregation |")
    assert rows[1].startswith("| test_resnet + regional dual attention |")
    average = results["average_s0"].values["accuracy"]
    assert rows[0] == f"| test_resnet + average aggregation | {100 * average:.2f} |"
    duals = [results[n].values["accuracy"] for n in ("dual_s0", "dual_s1")]
    assert Cell(duals).format() in rows[1] and "(n=2)" in rows[1]
    assert "Comparison" not in text  # no QAN / Attention clusters / two-stream run


def test_rdam_report_cli_prints_and_writes_markdown(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.md"
    code = main(["report", str(runs / "average_s0"), str(runs / "dual_s0"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed == out.read_text()
    assert "regional dual attention" in printed and "n=" not in printed.split("\n\n")[1]
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_unfinished_run_is_a_clear_error(runs: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((runs / "dual_s1" / "config.yaml").read_text())
    with pytest.raises(ReportError, match="did not finish"):
        build_report([broken])


def test_skip_unfinished_leaves_a_training_run_out_and_says_so(
    runs: Path, tmp_path: Path, capsys
) -> None:
    """A table while some rows still train: those rows are left out by name, the rest is the
    table of the finished runs alone."""
    still = tmp_path / "all" / "dual_s2"
    still.mkdir(parents=True)
    (still / "config.yaml").write_text((runs / "dual_s1" / "config.yaml").read_text())
    finished = [runs / "average_s0", runs / "dual_s0", runs / "dual_s1"]
    text = build_report([*finished, still], skip_unfinished=True)
    alone = build_report(finished)
    assert text.startswith(alone)
    assert text[len(alone) :] == (
        f"\nLeft out, not finished (no metrics.json, and no evaluation of its end): {still}\n"
    )
    with pytest.raises(ReportError, match="no run under .* has finished yet"):
        build_report([still], skip_unfinished=True)
    args = ["report", *map(str, finished), str(still)]
    assert main(args) == 2 and "did not finish" in capsys.readouterr().err
    assert main([*args, "--skip-unfinished"]) == 0
    assert f"Left out, not finished (no metrics.json, and no evaluation of its end): {still}" in (
        capsys.readouterr().out
    )


def test_cell_statistics() -> None:
    cell = Cell([0.5, 0.7, 0.6])
    assert cell.mean == pytest.approx(0.6)
    assert cell.std == pytest.approx(0.1)  # sample standard deviation
    assert cell.format() == "60.00 ± 10.00 (n=3)"
    assert Cell([0.4567]).format() == "45.67"


def test_method_labels_follow_the_paper() -> None:
    def label(**model):
        return method_of({"backbone": "resnet50", **model}).label

    assert label(region_head="average", temporal="average") == "ResNet-50 + average aggregation"
    assert label(region_head="location") == "ResNet-50 + regional location attention"
    assert label(region_head="relation") == "ResNet-50 + regional relationship attention"
    assert label(region_head="dual") == "ResNet-50 + regional dual attention"
    assert label(region_head="average", temporal="attention") == (
        "ResNet-50 + average aggregation + frame attention"
    )
    assert label(arch="qan") == "Quality-aware network (ResNet-50)"
    assert label(arch="attention_clusters") == "Attention clusters (ResNet-50)"
    assert label(arch="two_stream", region_head="dual") == "Our method (two-stream RDAM, ResNet-50)"


def test_comparison_table_has_one_column_per_data_set() -> None:
    """Table 5 layout: methods by data set (both streams of a data set share a column)."""

    def run(arch: str, name: str, acc: float, stream: str = "frames") -> RunResult:
        method = method_of({"arch": arch, "backbone": "resnet50", "region_head": "dual"})
        suffix = {"frames": "-I", "faces": "-F", "both": ""}[stream]
        return RunResult(
            Path(name), method, name + suffix, name, {"accuracy": acc}, {"accuracy": "x"}
        )

    text = render_report(
        [
            run("qan", "MHED", 0.46),
            run("two_stream", "MHED", 0.66, "both"),
            run("two_stream", "MHED", 0.64, "both"),
            run("attention_clusters", "HEIV", 0.50),
            run("rdam", "MHED", 0.47),
        ]
    )
    assert "| Method | Accuracy on MHED-I (%) |" in text
    assert "| Method | Accuracy on MHED (%) | Accuracy on HEIV (%) |" in text
    assert "| Quality-aware network (ResNet-50) | 46.00 | – |" in text
    assert "| Attention clusters (ResNet-50) | – | 50.00 |" in text
    assert "| Our method (two-stream RDAM, ResNet-50) | 65.00 ± 1.41 (n=2) | – |" in text
    comparison = text[text.index("Comparison") :]
    assert comparison.index("Quality") < comparison.index("Attention") < comparison.index("Our")


def test_a_comparison_method_run_on_two_streams_keeps_them_apart() -> None:
    """QAN on frames and on faces of MHED are two results, not one cell "n=2" of their mean:
    that method's runs take their stream's column; the others stay in the data set's."""

    def run(arch: str, acc: float, stream: str) -> RunResult:
        method = method_of({"arch": arch, "backbone": "resnet50", "region_head": "dual"})
        suffix = {"frames": "-I", "faces": "-F", "both": ""}[stream]
        return RunResult(Path(arch + stream), method, "MHED" + suffix, "MHED", {"accuracy": acc})

    text = render_report(
        [run("qan", 0.50, "faces"), run("qan", 0.70, "frames"), run("two_stream", 0.66, "both")]
    )
    comparison = text[text.index("Comparison") :]
    assert (
        "| Method | Accuracy on MHED-F (%) | Accuracy on MHED-I (%) | Accuracy on MHED (%) |"
        in (comparison)
    )
    assert "| Quality-aware network (ResNet-50) | 50.00 | 70.00 | – |" in comparison
    assert "| Our method (two-stream RDAM, ResNet-50) | – | – | 66.00 |" in comparison
    assert "(n=2)" not in comparison


def test_details_and_seed_paired_differences(runs: Path, capsys) -> None:
    """``rdam report --details --paired average``: per group the seeds, accuracy, macro-F1,
    per-class accuracy and training hours; dual minus average seed by seed."""
    results = {d.name: read_run(d) for d in find_run_dirs([runs])}
    assert main(["report", str(runs), "--details", "--paired", "average"]) == 0
    text = capsys.readouterr().out
    details = text[text.index("**Per run group**") : text.index("**Paired by seed**")]
    dual_row = next(line for line in details.splitlines() if "dual attention" in line)
    cells = [c.strip() for c in dual_row.strip("|").split("|")]
    assert cells[1:3] == ["synthetic-I", "2 (0, 1)"]
    duals = [results[n].values["accuracy"] for n in ("dual_s0", "dual_s1")]
    assert cells[3] == Cell(duals).format()
    per_class = results["dual_s0"].per_class  # only dual_s0 was evaluated
    assert per_class and cells[5 : 5 + len(per_class)] == [
        f"{100 * v:.1f}" for v in per_class.values()
    ]
    hours = [results[n].train_seconds / 3600 for n in ("dual_s0", "dual_s1")]
    assert all(h > 0 for h in hours) and cells[-2] == f"{sum(hours) / 2:.2f}"
    # what the runs trained with, from their metrics.json: both here, on this CPU in float32
    assert cells[-1] == f"32-true on {device_name(torch.device('cpu'))}"
    assert "| Training h / run | Trained with |" in details
    paired = text[text.index("**Paired by seed**") :].splitlines()
    (row,) = [line for line in paired if line.startswith("| test_resnet + regional dual")]
    diff = 100 * (results["dual_s0"].values["accuracy"] - results["average_s0"].values["accuracy"])
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "test_resnet + average aggregation" and cells[3] == "0"  # seed 1 unpaired
    assert cells[4] == f"{diff:+.2f}" == cells[5]


def test_pairs_are_by_seed_and_official_split_and_one_baseline_row() -> None:
    """VideoEmotion-8's ten official splits share a seed: each split pairs with its own
    baseline split, not with the last one read. Two rows matching the baseline (two
    backbones) are refused, not mixed seed by seed."""
    from rdam.evaluation.ablation import paired_table
    from rdam.evaluation.report import Method

    average = Method("R + average aggregation", "ablation", (0, "R"))
    dual = Method("R + regional dual attention", "ablation", (6, "R"))

    def run(method: Method, head: str, split: int, accuracy: float, backbone: str = "R"):
        return RunResult(Path(f"{head}{backbone}_{split}"), method, "ve8-I", "ve8",
                         {"accuracy": accuracy}, seed=0, region_head=head,
                         identity={"trainer.seed": 0, "data.options.split_index": split})  # fmt: skip

    runs = [run(average, "average", k, 0.4 + 0.1 * k) for k in (1, 2, 3)]
    runs += [run(dual, "dual", k, 0.41 + 0.1 * k) for k in (1, 2, 3)]
    text = paired_table(runs, "average")
    (row,) = [line for line in text.splitlines() if line.startswith("| R + regional dual")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "0 (split 1), 0 (split 2), 0 (split 3)"
    assert cells[4] == "+1.00, +1.00, +1.00" and cells[5] == "+1.00 ± 0.00"
    other = Method("S + average aggregation", "ablation", (0, "S"))
    with pytest.raises(ReportError, match=r"several rows match it on ve8-I .*--paired"):
        paired_table([*runs, run(other, "average", 1, 0.9, backbone="S")], "average")
    with pytest.raises(
        ReportError, match=r"two 'R \+ average aggregation' runs on ve8-I at seed 0 \(split 1\)"
    ):
        paired_table([*runs, run(average, "average", 1, 0.9, backbone="again")], "average")
    # two runs of a method at one seed are not two paired seeds either
    with pytest.raises(
        ReportError, match=r"two 'R \+ regional dual attention' runs on ve8-I at seed 0 \(split 2\)"
    ):
        paired_table([*runs, run(dual, "dual", 2, 0.9, backbone="again")], "average")


def test_one_data_set_at_two_frame_sizes_gets_a_column_each() -> None:
    from rdam.evaluation.report import Method, with_frame_sizes

    head = Method("R + regional dual attention", "ablation", (6, "R"))
    runs = [
        RunResult(
            Path(f"r{size}"), head, "fer2013-F", "fer2013", {"accuracy": acc}, frame_size=size
        )
        for size, acc in ((48, 0.6), (96, 0.7))
    ]
    assert [r.dataset for r in with_frame_sizes(runs)] == ["fer2013-F (48 px)", "fer2013-F (96 px)"]
    text = render_report(runs)
    assert "Accuracy on fer2013-F (48 px) (%) | Accuracy on fer2013-F (96 px) (%)" in text
    assert "| R + regional dual attention | 60.00 | 70.00 |" in text
    assert [r.dataset for r in with_frame_sizes(runs[:1])] == ["fer2013-F"]
    # the 96-px run found first on disk (average_96px_s0 sorts before average_s0): the columns
    # still read 48 px, then 96 px
    text = render_report(runs[::-1])
    assert "Accuracy on fer2013-F (48 px) (%) | Accuracy on fer2013-F (96 px) (%)" in text


def test_rows_by_run_name_for_runs_of_one_model_and_other_recipes(runs: Path) -> None:
    """``--group-by run_name``: a row per ``trainer.run_name`` (the levers of a recipe change
    no model, so by method they would fall in one row), paired against a row's label."""
    results = {d.name: read_run(d) for d in find_run_dirs([runs])}
    names = {name: r.run_name for name, r in results.items()}
    assert len(set(names.values())) == 2, names  # average vs dual (seeds share a run name)
    text = build_report([runs], group_by="run_name", details=True, paired=names["average_s0"])
    rows = [line for line in text.splitlines() if line.startswith(f"| {names['dual_s0']} |")]
    assert rows, text  # the dual runs' row, in the main table and the details
    paired = text[text.index("**Paired by seed**") :]
    assert f"| {names['dual_s0']} | {names['average_s0']} |" in paired
    with pytest.raises(ConfigError, match="grouping"):
        build_report([runs], group_by="colour")


def test_details_give_the_accuracy_on_each_other_label_set() -> None:
    """Runs scored with ``rdam eval --labels folder,ferplus:...`` get a FER+ column."""
    from rdam.evaluation.ablation import details_table
    from rdam.evaluation.report import Method

    head = Method("R + regional dual attention", "ablation", (6, "R"))
    runs = [
        RunResult(
            Path(f"r{seed}"),
            head,
            "fer2013-F",
            "fer2013",
            {"accuracy": acc},
            seed=seed,
            label_sets={"folder": acc, "ferplus": plus},
        )
        for seed, acc, plus in ((0, 0.60, 0.70), (1, 0.62, 0.74))
    ]
    lines = details_table(runs).splitlines()
    header = next(line for line in lines if line.startswith("| Method"))
    assert "Accuracy on ferplus labels (%)" in header and "folder labels" not in header
    row = [c.strip() for c in lines[-1].strip("|").split("|")]
    assert row[5] == Cell([0.70, 0.74]).format() == "72.00 ± 2.83 (n=2)"


def test_trained_with_names_each_precision_and_device_once_and_unrecorded_runs() -> None:
    from rdam.evaluation.ablation import details_table, trained_with
    from rdam.evaluation.report import Method

    head = Method("R + average aggregation", "ablation", (1, "R"))

    def run(name: str, *compute: tuple[str, str]) -> RunResult:
        calls = [{"precision": p, "device": d, "seconds": 1.0} for p, d in compute]
        return RunResult(Path(name), head, "fer2013-F", "fer2013", {"accuracy": 0.6}, compute=calls)

    zen4 = ("bf16-mixed", "AMD EPYC (AVX512-BF16)")
    zen3 = ("32-true", "AMD EPYC (no native bf16)")
    runs = [run("a", zen4, zen3, zen3), run("b"), run("c", zen4)]
    assert trained_with(runs) == (
        "bf16-mixed on AMD EPYC (AVX512-BF16); 32-true on AMD EPYC (no native bf16); not recorded"
    )
    assert trained_with(runs[2:]) == "bf16-mixed on AMD EPYC (AVX512-BF16)"
    # the column is there only when some run recorded it (older tables render unchanged)
    assert "Trained with" in details_table(runs)
    assert "Trained with" not in details_table([run("d"), run("e")])


def test_a_cell_mixing_scored_and_unscored_runs_says_so(runs: Path) -> None:
    """dual_s0 was scored by rdam eval on its exported model, dual_s1 only by its training
    log: the report names what differs under its tables (rdam.evaluation.mixing)."""
    text = build_report([runs])
    note = text[text.index("**Runs of one cell that differ in more than their seed**") :]
    (line,) = [x for x in note.splitlines() if x.startswith("- test_resnet + regional dual")]
    assert "eval.model_file: 'model.safetensors' in dual_s0; '(not set)' in dual_s1" in line
    assert "trainer.seed" not in line  # what tells runs apart is not a difference
    assert "average aggregation" not in note  # a cell of one run mixes nothing


def test_runs_scored_on_other_clips_are_named_under_the_tables(runs: Path, tmp_path: Path):
    """Two seeds of one cell, one scored with another clip length (``rdam eval
    --num-frames``): the cell's mean mixes two tests, and the note under the tables says in
    what (also for ``--class-map`` and ``--faces``, read the same way from eval_metrics.json)."""
    import shutil

    cell = tmp_path / "cell"
    for name in ("dual_s0", "dual_s1"):
        shutil.copytree(runs / name, cell / name, ignore=shutil.ignore_patterns("eval*"))
    evaluate(cell / "dual_s0" / "model.safetensors", out_dir=cell / "dual_s0" / "eval")
    evaluate(cell / "dual_s1" / "model.safetensors", out_dir=cell / "dual_s1" / "eval",
             overrides={"num_frames": 1})  # fmt: skip
    text = build_report([cell])
    note = text[text.index("**Runs of one cell that differ in more than their seed**") :]
    (line,) = [x for x in note.splitlines() if x.startswith("- test_resnet + regional dual")]
    assert "eval.overrides: {} in dual_s0; {'num_frames': 1} in dual_s1" in line
    for same in ("eval.class_map", "eval.face_input", "eval.model_file"):
        assert same not in line  # the same in both
    assert read_run(cell / "dual_s0").settings["eval.face_input"] == "auto"


def test_a_class_with_no_clip_in_the_split_has_no_per_class_figure(
    runs: Path, tmp_path: Path, capsys
) -> None:
    """A class the scored split lacks (``--class-map contempt=``, a small split) has no
    accuracy in eval_metrics.json (None, support 0): the details table gives it no figure,
    where it showed 0.0, and a mean over runs leaves it out."""
    import shutil

    run = tmp_path / "runs" / "dual_s0"
    shutil.copytree(runs / "dual_s0", run)
    (path,) = run.glob("eval/eval_metrics.json")
    metrics = json.loads(path.read_text())
    missing = next(iter(metrics["per_class"]))
    metrics["per_class"][missing].update(accuracy=None, f1=None, support=0)
    path.write_text(json.dumps(metrics))
    result = read_run(run)
    assert (
        missing not in result.per_class and len(result.per_class) == len(metrics["per_class"]) - 1
    )
    assert main(["report", str(tmp_path / "runs"), "--details"]) == 0
    details = capsys.readouterr().out.split("**Per run group**")[1]
    header = next(line for line in details.splitlines() if line.startswith("| Method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    # no run has a figure for it: no column (with another run that has it: that run's figure)
    assert f"{missing} (%)" not in columns
    assert [f"{c} (%)" in columns for c in result.per_class] == [True] * len(result.per_class)


def test_the_stream_of_a_config_that_leaves_it_unset_comes_from_the_model(
    runs: Path, tmp_path: Path
) -> None:
    """A config without ``data.stream`` (a cache's spec gave it) is reported under the stream
    the model was trained with: its score's clip spec, else its model file's; not under the
    bare data set name, which the comparison table uses for two-stream runs."""
    import shutil

    import yaml

    from rdam.config import ExperimentConfig, recipe_sha256

    run = tmp_path / "dual_s0"
    shutil.copytree(runs / "dual_s0", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["stream"] == "frames"
    config["data"]["stream"] = None
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (path,) = run.glob("eval/eval_metrics.json")
    metrics = json.loads(path.read_text())  # (the recipe changed with the config: re-sign it)
    metrics["recipe_sha256"] = recipe_sha256(ExperimentConfig.from_dict(config).to_dict())
    path.write_text(json.dumps(metrics))
    assert read_run(run).dataset == "synthetic-I"  # eval_metrics.json's clip spec
    metrics["clip_spec"]["stream"] = "faces"
    path.write_text(json.dumps(metrics))
    assert read_run(run).dataset == "synthetic-F"
    shutil.rmtree(path.parent)
    assert read_run(run).dataset == "synthetic-I"  # model.safetensors' header
    assert read_run(run).frame_size == config["data"]["frame_size"]


def test_the_same_run_twice_in_one_cell_is_refused(runs: Path, tmp_path: Path) -> None:
    import shutil

    record = tmp_path / "records" / "dual_s1"  # a run and its record (train_rows.sh)
    shutil.copytree(runs / "dual_s1", record, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(ReportError, match=r"dual_s1 and .*dual_s1 are the same run of"):
        build_report([runs, tmp_path / "records"])


def test_mixed_settings_names_each_setting_and_its_values_by_run() -> None:
    from rdam.evaluation.mixing import check_no_duplicates, mixed_settings
    from rdam.evaluation.report import Method

    head = Method("R + average aggregation", "ablation", (1, "R"))

    def run(name: str, seed: int, **settings: object) -> RunResult:
        base = {"optim.lr": 0.001, "trainer.max_epochs": 30, "eval.split": "val"}
        return RunResult(Path(name), head, "fer2013-F", "fer2013", {"accuracy": 0.6},
                         settings={**base, **settings}, identity={"trainer.seed": seed})  # fmt: skip

    seeds = [run("a_s0", 0), run("a_s1", 1), run("a_s2", 2)]
    assert mixed_settings(seeds) == []
    check_no_duplicates(seeds)
    mixed = [*seeds, run("lever_s0", 0, **{"trainer.max_epochs": 15, "optim.lr": 0.1})]
    assert mixed_settings(mixed) == [
        "- R + average aggregation, fer2013-F: optim.lr: 0.001 in a_s0, a_s1, a_s2; 0.1 in "
        "lever_s0 | trainer.max_epochs: 30 in a_s0, a_s1, a_s2; 15 in lever_s0"
    ]
    check_no_duplicates(mixed)  # other settings: another run, not the same one twice
    with pytest.raises(ReportError, match="a_s1 and again_s1 are the same run"):
        check_no_duplicates([*seeds, run("again_s1", 1)])


def test_a_score_of_a_checkpoint_before_the_runs_end_is_refused(runs: Path, tmp_path: Path):
    import shutil

    run = tmp_path / "average_s0"
    shutil.copytree(runs / "average_s0", run)
    report = evaluate(run / "checkpoints" / "last.ckpt", out_dir=run / "eval")
    trained = json.loads((run / "metrics.json").read_text())
    assert report["checkpoint"] == {"global_step": trained["global_step"], "epoch": 0}
    assert read_run(run).sources["accuracy"] == "eval (eval/eval_metrics.json)"  # the end
    # the directory's run went on (or another one finished there) after the score
    (run / "metrics.json").write_text(json.dumps({**trained, "global_step": 99}))
    step = trained["global_step"]
    with pytest.raises(ReportError, match=rf"scored last.ckpt at step {step}, but the run "
                       r"finished at step 99: score the run's final checkpoint again"):  # fmt: skip
        read_run(run)
    # scored before the run finished (no metrics.json), even in its last epoch: checkpoints
    # are saved inside epochs too (trainer.checkpoint_every_n_steps)
    (run / "metrics.json").unlink()
    with pytest.raises(RunNotFinishedError, match=r"epoch 1 of 1 \(step \d+\) and the run has not"):
        read_run(run)
    # a table while it trains on: --skip-unfinished leaves it out by name, as a run with no
    # score at all (it is still training), instead of failing the table
    text = build_report([runs / "dual_s0", run], skip_unfinished=True)
    assert text.endswith(
        f"Left out, not finished (no metrics.json, and no evaluation of its end): {run}\n"
    )
    assert text.startswith(build_report([runs / "dual_s0"]))


def test_a_score_of_another_runs_model_is_refused(runs: Path, tmp_path: Path) -> None:
    """rdam eval --out into another run's directory (or an earlier run's score left in a
    directory trained anew): the evaluation records the scored model's recipe, and the report
    refuses it beside a config.yaml of another recipe or seed."""
    import shutil

    run = tmp_path / "dual_s1"
    shutil.copytree(runs / "dual_s1", run, ignore=shutil.ignore_patterns("eval*"))
    report = evaluate(runs / "dual_s0" / "model.safetensors", out_dir=run / "eval")
    assert len(report["recipe_sha256"]) == 16
    with pytest.raises(ReportError, match=r"trained with another recipe \(or seed\) than this"):
        read_run(run)
    evaluate(run / "model.safetensors", out_dir=run / "eval")  # its own model: accepted
    assert read_run(run).sources["accuracy"] == "eval (eval/eval_metrics.json)"


def test_a_score_against_another_label_set_says_so(runs: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "dual_s0"
    shutil.copytree(runs / "dual_s0", run, ignore=shutil.ignore_patterns("checkpoints"))
    assert read_run(run).sources["accuracy"] == "eval (eval/eval_metrics.json)"
    scored = json.loads((run / "eval" / "eval_metrics.json").read_text())
    (run / "eval" / "eval_metrics.json").write_text(json.dumps({**scored, "labels": "ferplus"}))
    source = "eval (eval/eval_metrics.json, against ferplus labels)"
    assert read_run(run).sources["accuracy"] == source
    assert f"Values from: {source}." in build_report([run])


def test_a_run_with_several_evaluations_is_refused(runs: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "dual_s0"
    shutil.copytree(runs / "dual_s0", run, ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(run / "eval", run / "eval_tencrop")
    with pytest.raises(ReportError, match=r"several evaluations \(eval/eval_metrics.json, "
                       r"eval_tencrop/eval_metrics.json\)"):  # fmt: skip
        read_run(run)


def test_how_ferplus_votes_were_read_is_a_setting_of_the_score() -> None:
    """A committed lever record scored against FER2013's labels and the FER+ votes: the rule
    that turned the votes into labels and the votes file are settings of the score, so two
    runs scored under another rule are named under the tables."""
    record = Path(__file__).resolve().parents[2] / "benchmarks/results/levers/runs/base_s0"
    settings = read_run(record).settings
    assert settings["eval.ferplus.majority_rule"] == "plurality"
    assert settings["eval.ferplus.votes"] == "fer2013_votes.csv"
    assert settings["eval.labels"] == "folder" and "eval.folder.votes" not in settings
