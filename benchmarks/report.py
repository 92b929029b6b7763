"""Markdown tables from a ``run_all`` results file, for ``docs/benchmarks.md``.

    .venv/bin/python -m benchmarks.report benchmarks/results/full.json:3,5,6 \
        benchmarks/results/full_2.json

Each argument is a results file, optionally followed by ``:`` and the figures to take from it.
Prints one summary table and one detail table per figure; the prose (why a goal is missed,
what would close it) is written by hand around them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["figure"], "error", "", r["error"][:80], "", r.get("seconds")])
            continue
        met = {True: "met", False: "missed", None: "–"}[r["met"]]
        rows.append(
            [
                r["figure"],
                r["title"],
                r["goal"],
                f"{_f(r['value'])} {r['unit']}",
                met,
                r.get("seconds"),
            ]
        )
    return _table(["#", "figure", "goal", "measured", "goal", "run s"], rows)


def figure_2(r: dict[str, Any]) -> str:
    d = r["details"]
    rows = [
        [
            name,
            row["threads"],
            row["clips_per_call"],
            1e3 * row["median_s_per_call"] / row["clips_per_call"],
            row["clips_per_s"],
            row["gflops_per_s"],
            row["fraction_of_matmul_peak"],
            f"{row['max_abs_logit_diff']:.1e}",
            row["argmax_agree"],
            row["setup_s"],
        ]
        for name, row in sorted(d["levers"].items(), key=lambda kv: -kv[1]["clips_per_s"])
    ]
    peaks = ", ".join(f"{k} {v:.1f}" for k, v in d["matmul_peak_gflops"].items())
    return (
        f"Model: {d['setting']['model']}; {d['setting']['gflops_per_clip']:.2f} GFLOP per clip "
        f"of {d['setting']['frames_per_clip']} frames at {d['setting']['frame_size']} px. "
        f"Matmul GFLOP/s (same rounds): {peaks}.\n\n"
        + _table(
            [
                "lever",
                "threads",
                "clips/call",
                "ms/clip",
                "clips/s",
                "GFLOP/s",
                "of peak",
                "max |Δlogit|",
                "top-1 agree",
                "setup s",
            ],
            rows,
        )
    )


def figure_3(r: dict[str, Any]) -> str:
    rows = [
        [
            name,
            v["duration_s"],
            v["size"],
            v["frames"],
            v["keyframes"],
            v["sparse_s"],
            v["full_s"],
            v["speedup"],
            v["bound_speedup"],
        ]
        for name, v in {
            **r["details"]["videos"],
            **r["details"].get("synthetic_long_gop", {}),
        }.items()
    ]
    return _table(
        ["video", "s", "size", "frames", "keyframes", "sparse s", "full s", "speed-up", "bound"],
        rows,
    )


def figure_7(r: dict[str, Any]) -> str:
    d = r["details"]
    variants = d["setting"]["fer_variants"]
    header = ["video"] + [f"fer {v} s" for v in variants]
    names = list(d["setting"]["rdam_settings"])
    header += [f"rdam {n} s" for n in names]
    header += [f"{n} vs fer {v}" for n in names for v in variants]
    rows = []
    for video, row in d["videos"].items():
        rows.append(
            [video]
            + [row[f"fer_{v}_s"] for v in variants]
            + [row[f"rdam_{n}_s"] for n in names]
            + [row[f"speedup_{n}_vs_fer_{v}"] for n in names for v in variants]
        )
    out = _table(header, rows)
    acc = d.get("fer_accuracy_fer2013_val")
    if acc:
        classes = acc["classes"]
        rows = []
        for name, m in acc["models"].items():
            if "error" in m:
                rows.append([name, m["error"][:60]] + [""] * (len(classes) + 1))
                continue
            rows.append(
                [name, m["accuracy"], m["macro_f1"]] + [m["per_class_accuracy"][c] for c in classes]
            )
        out += "\n\n" + _table(["fer model", "top-1", "macro-F1", *classes], rows)
    return out


def figure_8(r: dict[str, Any]) -> str:
    table = r["details"]["table"]
    if not table:
        return "(no finished runs)"
    classes = list(next(iter(table.values()))["per_class_accuracy"])
    rows = []
    for head, t in table.items():
        rows.append(
            [
                head,
                len(t["seeds"]),
                f"{100 * t['accuracy']['mean']:.2f} ± {100 * t['accuracy']['std']:.2f}",
                f"{100 * t['macro_f1']['mean']:.2f} ± {100 * t['macro_f1']['std']:.2f}",
            ]
            + [f"{100 * t['per_class_accuracy'][c]['mean']:.1f}" for c in classes]
        )
    return _table(["head", "seeds", "top-1 %", "macro-F1 %", *classes], rows)


DETAILS = {2: figure_2, 3: figure_3, 7: figure_7, 8: figure_8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="FILE or FILE:1,2 (figures to take)")
    args = parser.parse_args()
    results = []
    for spec in args.results:
        path, _, figures = spec.partition(":")
        wanted = {int(n) for n in figures.split(",")} if figures else None
        for r in json.loads(Path(path).read_text())["results"]:
            if wanted is None or r.get("figure") in wanted:
                results.append(r)
    results.sort(key=lambda r: r.get("figure", 0))
    print(summary(results))
    for r in results:
        if r.get("figure") in DETAILS and "error" not in r:
            print(f"\n### Figure {r['figure']}\n")
            print(DETAILS[r["figure"]](r))


if __name__ == "__main__":
    main()
