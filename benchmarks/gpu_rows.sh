#!/usr/bin/env bash
# A table's rows on a lent GPU machine (the device tool: /work/.library/device/README.md), where
# ../shared/data does not go and a call carries at most 64 MiB with the working tree. FER2013
# travels as two parts of its files' bytes (benchmarks/pack_images.py), one per call, back to
# back (a machine stays warm 30 s); the second call unpacks them where ../shared/data would be,
# runs the driver (benchmarks/levers_fer2013.sh or ablation_fer2013.sh) on the GPU, and leaves
# the results in $OUT/results.tgz.
#
# Here, once:  .venv/bin/python -m benchmarks.pack_images ../shared/data/fer2013 --out .gpu --parts 2
#              cp ../shared/data/ferplus/fer2013_votes.csv .gpu/   (and .gpu/ in .git/info/exclude)
# Call 1 (carry [".gpu/images_0.npz"]):  bash benchmarks/gpu_rows.sh stage
# Call 2 (carry [".gpu/images_1.npz", ".gpu/fer2013_votes.csv"]):
#   DRIVER=benchmarks/levers_fer2013.sh PLAN="base:0 mixup:0" bash benchmarks/gpu_rows.sh run
#   KEEP_MODELS=1 DRIVER=benchmarks/long_fer2013.sh bash benchmarks/gpu_rows.sh run   # + model.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-/tmp/rdam-gpu/results}  # the device tool's output folder
STAGE=${STAGE:-/tmp/rdam-gpu}
mkdir -p "$STAGE" "$RESULTS"
if compgen -G ".gpu/*" > /dev/null; then cp .gpu/* "$STAGE"/; fi
if [ "${1:-run}" = stage ]; then ls -la "$STAGE"; exit 0; fi
export SHARED=${SHARED:-$(cd .. && pwd)/shared/data}
python3 -m benchmarks.pack_images --unpack "$STAGE"/images_*.npz --out "$SHARED/fer2013"
# both parts or nothing: a row trained on part of FER2013 would be scored and kept as the row
train=$(find "$SHARED/fer2013/train" -name '*.jpg' | wc -l)
val=$(find "$SHARED/fer2013/val" -name '*.jpg' | wc -l)
if [ "$train" -ne 28709 ] || [ "$val" -ne 3589 ]; then
  echo "gpu_rows.sh: FER2013 unpacked to $train train / $val val images, not 28709 / 3589: a part is missing (stage both)" >&2
  exit 3
fi
if [ -f "$STAGE/fer2013_votes.csv" ]; then
  mkdir -p "$SHARED/ferplus" && cp "$STAGE/fer2013_votes.csv" "$SHARED/ferplus/"
fi
export PYTHONPATH=$PWD RDAM=${RDAM:-"python3 -m rdam.cli"} DATA=$SHARED/fer2013
export RUNS=$STAGE/runs OUT=$STAGE/out
# its records come back to be committed: the rows' own recipes, as train_rows.sh keeps them
# for benchmarks/results (OUT is outside it here)
export KEEP_RECIPE=--keep-recipe
export EXTRA="trainer.accelerator=${ACCEL:-gpu} trainer.devices=1 ${EXTRA:-}"
nvidia-smi -L 2>/dev/null || true
status=0
"${DRIVER:?set DRIVER, e.g. benchmarks/levers_fer2013.sh}" || status=$?
tar czf "$RESULTS/results.tgz" -C "$STAGE" out $(cd "$STAGE" && ls -d runs/*/metrics.json runs/*/config.yaml runs/*/eval ${KEEP_MODELS:+runs/*/model.safetensors} 2>/dev/null)
exit $status
