#!/usr/bin/env bash
# The recipe levers of issue "A stronger default model": configs/levers/fer2013/ (the shipped
# recipe at 15 epochs, one change per row) x seeds 0 and 1, through benchmarks/train_rows.sh
# (rdam train, rdam eval on last.ckpt against the FER2013 labels and the FER+ majority, rdam
# report --details --paired base). Resumable.
#
#   nohup benchmarks/levers_fer2013.sh > ~/rdam-runs/levers/driver.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# The order the rows ran in (done rows are skipped); sgd_nesterov has no seed 1: it lost 9 points,
# ten times a seed spread. One thread of the machine is the long run's (configs/fer2013_face_v4.yaml).
export PLAN=${PLAN:-"base:0 sgd_nesterov:0 random_erasing:0 mixup:0 soft_labels:0 distill:0
  batch128:0 soft_labels_half:0 distill:1 votes_teacher:0 base:1 soft_labels_half:1
  votes_teacher:1 soft_labels:1 random_erasing:1 mixup:1 batch128:1 resnet18:0 resnet18:1"}
export CONFIGS=configs/levers/fer2013
export RUNS=${RUNS:-$HOME/rdam-runs/levers}
export OUT=${OUT:-benchmarks/results/levers}
export EVAL_ARGS="--labels folder,ferplus:${SHARED:-$(cd .. && pwd)/shared/data}/ferplus/fer2013_votes.csv"
export REPORT_ARGS="--details --group-by run_name --paired fer2013_lever_base"
exec benchmarks/train_rows.sh
