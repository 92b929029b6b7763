#!/usr/bin/env bash
# Figure 8 at a real budget (issue "The paper's central claim on real faces"): every FER2013
# ablation row of configs/ablation/fer2013/ x seed, through `rdam train` and `rdam eval`, then
# `rdam report`. Resumable: run it again and it picks up where it stopped (a finished row has
# eval/eval_metrics.json; an unfinished one resumes exactly from checkpoints/last.ckpt).
# Each row is scored at the END of its budget (last.ckpt), never at an epoch picked on val.
#
#   nohup benchmarks/ablation_fer2013.sh > ~/rdam-runs/fig8/driver.log 2>&1 &
#   RUNS=/tmp/x PLAN="average:0 dual:0" EXTRA="trainer.max_epochs=1" benchmarks/ablation_fer2013.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$HOME/rdam-runs/fig8}
# Run order (row:seed): the paired average/dual comparison first, then the other heads and the
# baselines, then the 96-px grid (4x the compute per row). Override with PLAN="average:0 dual:0".
PLAN=${PLAN:-"average:0 dual:0 average:1 dual:1 location:0 relation:0 qan:0 attention_clusters:0
  location:1 relation:1 qan:1 attention_clusters:1 average_96px:0 dual_96px:0 average_96px:1 dual_96px:1"}
DATA=${DATA:-$(cd .. && pwd)/shared/data/fer2013}
OUT=${OUT:-benchmarks/results/fig8_full}
RDAM=${RDAM:-.venv/bin/rdam}
mkdir -p "$RUNS" "$OUT/logs"
for item in $PLAN; do
  row=${item%%:*}; seed=${item##*:}
  dir="$RUNS/${row}_s$seed"
  if [ -f "$dir/eval/eval_metrics.json" ]; then continue; fi
  echo "$(date -u +%FT%TZ) train $row seed $seed -> $dir"
  nice -n 19 "$RDAM" train -c "configs/ablation/fer2013/$row.yaml" --run-dir "$dir" \
    trainer.seed="$seed" data.root="$DATA" trainer.progress_bar=false ${EXTRA:-}
  nice -n 19 "$RDAM" eval --checkpoint "$dir/checkpoints/last.ckpt" --split val --out "$dir/eval" \
    > "$dir/eval.json"
  cp "$dir/logs/metrics.csv" "$OUT/logs/${row}_s${seed}_metrics.csv"
  cp "$dir/eval/eval_metrics.json" "$OUT/logs/${row}_s${seed}_eval.json"
  echo "$(date -u +%FT%TZ) done $row seed $seed: $(grep -m1 '"accuracy"' "$dir/eval.json")"
done
"$RDAM" report "$RUNS"/*_s* --details --paired average --out "$OUT/report.md"
