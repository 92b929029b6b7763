#!/usr/bin/env bash
# The long run of the default-model recipe (issue "A stronger default model"): configs/<row>.yaml
# (default fer2013_face_v4: 80 epochs + 10 of weight averaging) through benchmarks/train_rows.sh,
# like the lever rows: rdam train, then rdam eval on last.ckpt (with weight averaging, the
# average) against the FER2013 labels and the FER+ majority, logs into benchmarks/results/long/.
# Resumable: run it again and it goes on exactly from checkpoints/last.ckpt.
#
#   EXTRA="trainer.threads=1" nohup benchmarks/long_fer2013.sh >> ~/rdam-runs/long/driver.log 2>&1 &
# (on a lent GPU: DRIVER=benchmarks/long_fer2013.sh in benchmarks/gpu_rows.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAN=${PLAN:-"fer2013_face_v4:0"}
export CONFIGS=configs
export RUNS=${RUNS:-$HOME/rdam-runs/long}
export OUT=${OUT:-benchmarks/results/long}
export EVAL_ARGS="--labels folder,ferplus:${SHARED:-$(cd .. && pwd)/shared/data}/ferplus/fer2013_votes.csv"
export REPORT_ARGS="--details --group-by run_name"
exec benchmarks/train_rows.sh
