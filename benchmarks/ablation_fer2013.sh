#!/usr/bin/env bash
# Figure 8 at a real budget (issue "The paper's central claim on real faces"): every FER2013
# ablation row of configs/ablation/fer2013/ x seed, through benchmarks/train_rows.sh (rdam train,
# rdam eval on last.ckpt, rdam report --details --paired average). Resumable.
#
#   nohup benchmarks/ablation_fer2013.sh > ~/rdam-runs/fig8/driver.log 2>&1 &
#   RUNS=/tmp/x OUT=/tmp/x/out PLAN="average:0 dual:0" EXTRA="trainer.max_epochs=1" benchmarks/ablation_fer2013.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Run order (row:seed): the paired average/dual comparison first, then the 96-px grid at seed 0
# (3.2x the training step, figure 14; it also tells issue "A stronger default model" what
# resolution gives), then the other heads and the baselines, then the second 96-px seed.
export PLAN=${PLAN:-"average:0 dual:0 average:1 dual:1 dual_96px:0 average_96px:0 location:0 relation:0
  qan:0 attention_clusters:0 location:1 relation:1 qan:1 attention_clusters:1 average_96px:1 dual_96px:1"}
export CONFIGS=configs/ablation/fer2013
export RUNS=${RUNS:-$HOME/rdam-runs/fig8}
export OUT=${OUT:-benchmarks/results/fig8_full}
export REPORT_ARGS="--details --paired average"
exec benchmarks/train_rows.sh
