#!/usr/bin/env bash
# Train and score a table's rows (configs in $CONFIGS, one per row) x seeds through `rdam train`
# and `rdam eval`, then render the table with `rdam report`. Resumable: run it again and it picks
# up where it stopped (a finished row has eval/eval_metrics.json; an unfinished one resumes
# exactly from checkpoints/last.ckpt, keeping its CSV log and training time). Each row is scored
# at the END of its budget (last.ckpt), never at an epoch picked on val. Runs under nice 19.
# Each finished row is also kept as $OUT/runs/<row>_s<seed>/: its run directory without the
# checkpoints (config.yaml, metrics.json, eval/eval_metrics.json, logs/metrics.csv), which is
# committed. The table is rendered from those records, so it holds every row ever finished, also
# when the run directories of earlier sessions are gone, and a row with a record is not rerun.
#
#   CONFIGS=configs/ablation/fer2013 RUNS=~/rdam-runs/fig8 OUT=benchmarks/results/fig8_full \
#     PLAN="average:0 dual:0" benchmarks/train_rows.sh
# (benchmarks/ablation_fer2013.sh and benchmarks/levers_fer2013.sh set these for their tables.)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CONFIGS:?set CONFIGS, the folder of the row configs}" "${RUNS:?set RUNS}" "${OUT:?set OUT}"
: "${PLAN:?set PLAN, the row:seed pairs in the order to run}"
DATA=${DATA:-${SHARED:-$(cd .. && pwd)/shared/data}/fer2013}
RDAM=${RDAM:-.venv/bin/rdam}
# A record in the repository's benchmarks/results is a row's own recipe: EXTRA may say where
# and how it runs, not change what it trains (a smoke test with trainer.max_epochs=1 would be
# kept as the row, and never rerun). `rdam train --keep-recipe` refuses such an override (the
# list is rdam.config.ROW_OVERRIDES); trials write their records elsewhere (OUT=/tmp/...).
KEEP_RECIPE=${KEEP_RECIPE:-}
case "$(realpath -m "$OUT")/" in
  "$(pwd)"/benchmarks/results/*) KEEP_RECIPE=--keep-recipe ;;
esac
REPORT_ARGS=${REPORT_ARGS:-"--details --paired average"}
case " ${EXTRA:-} " in  # the record's name says its seed: PLAN's, not one EXTRA slips in
  *" trainer.seed="*) echo "train_rows.sh: EXTRA sets trainer.seed; a row's seed comes from PLAN (row:seed)" >&2; exit 2 ;;
esac
mkdir -p "$RUNS" "$OUT/runs"
for item in $PLAN; do
  row=${item%%:*}; seed=${item##*:}
  dir="$RUNS/${row}_s$seed"
  record="$OUT/runs/${row}_s$seed"
  if [ -f "$record/eval/eval_metrics.json" ]; then continue; fi
  echo "$(date -u +%FT%TZ) train $row seed $seed -> $dir"
  # shellcheck disable=SC2086  # RDAM may be a command with arguments (python3 -m rdam.cli)
  nice -n 19 $RDAM train $KEEP_RECIPE -c "$CONFIGS/$row.yaml" --run-dir "$dir" \
    trainer.seed="$seed" data.root="$DATA" trainer.progress_bar=false ${EXTRA:-}
  # rdam train exits 143 when a signal stops it; never score a run that did not finish
  if [ ! -f "$dir/metrics.json" ]; then echo "$dir: no metrics.json, not finished" >&2; exit 1; fi
  # shellcheck disable=SC2086
  nice -n 19 $RDAM eval --checkpoint "$dir/checkpoints/last.ckpt" --split val --out "$dir/eval" \
    ${EVAL_ARGS:-} > "$dir/eval.json"
  mkdir -p "$record/eval" "$record/logs"
  cp "$dir/config.yaml" "$dir/metrics.json" "$record/"
  cp "$dir/logs/metrics.csv" "$record/logs/"
  cp "$dir/eval/eval_metrics.json" "$record/eval/"
  echo "$(date -u +%FT%TZ) done $row seed $seed: $(grep -m1 '"accuracy"' "$dir/eval.json")"
done
# shellcheck disable=SC2086
$RDAM report "$OUT/runs" $REPORT_ARGS --out "$OUT/report.md"
