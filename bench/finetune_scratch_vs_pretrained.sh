#!/usr/bin/env bash
# SST-2 and RTE dev metrics of t5-tiny fine-tuned from scratch and from a short pre-training on
# WikiText-2 + Tiny Shakespeare, with generation and rank classification. Results: docs/benchmarks.md.
#   bash bench/finetune_scratch_vs_pretrained.sh [OUT_DIR] [PRETRAIN_STEPS] [FINETUNE_STEPS]
set -euo pipefail
OUT=${1:-runs/bench-finetune}
PRETRAIN_STEPS=${2:-1500}
FINETUNE_STEPS=${3:-600}
DATA=${T5LAB_SHARED_DATA:-../shared/data}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T5LAB=${T5LAB:-t5lab}
COMMON=(--report_to none --max_source_length 128 --max_target_length 8 --per_device_train_batch_size 32
        --per_device_eval_batch_size 64 --learning_rate 1e-3 --lr_scheduler_type constant_with_warmup --warmup_steps 50
        --save_strategy no --logging_steps 50 --seed 1)

start=$(date +%s)
$T5LAB pretrain --config configs/quickstart.yaml --dataset_name '' \
  --train_file "$DATA/corpus/wikitext-2-raw/wiki.test.raw,$DATA/corpus/tinyshakespeare/input.txt" \
  --max_steps "$PRETRAIN_STEPS" --save_steps "$PRETRAIN_STEPS" --output_dir "$OUT/pretrain" --report_to none
echo "pretrain_seconds $(( $(date +%s) - start ))" | tee "$OUT/timings.txt"

for task in sst2 rte; do
  for init in scratch pretrained; do
    if [ "$init" = scratch ]; then model=(--config_name t5-tiny --tokenizer_name "$OUT/pretrain"); else model=(--model_name_or_path "$OUT/pretrain"); fi
    start=$(date +%s)
    $T5LAB finetune --task "glue/$task" --data_dir "$DATA/glue" "${model[@]}" --max_steps "$FINETUNE_STEPS" \
      --output_dir "$OUT/$task-$init" "${COMMON[@]}"
    echo "${task}_${init}_seconds $(( $(date +%s) - start ))" | tee -a "$OUT/timings.txt"
    $T5LAB evaluate --task "glue/$task" --data_dir "$DATA/glue" --model_name_or_path "$OUT/$task-$init" \
      --eval_mode rank --output_dir "$OUT/$task-$init-rank" --report_to none --max_source_length 128
  done
done

echo "| task | init | generate accuracy | invalid rate | rank accuracy |"
echo "|---|---|---|---|---|"
for task in sst2 rte; do
  for init in scratch pretrained; do
    python3 - "$OUT/$task-$init/eval_results.json" "$OUT/$task-$init-rank/eval_results.json" "$task" "$init" <<'PY'
import json, sys
generate, rank = (json.load(open(p)) for p in sys.argv[1:3])
print(f"| {sys.argv[3]} | {sys.argv[4]} | {generate['eval_accuracy']:.3f} | {generate['eval_invalid_rate']:.3f} | {rank['eval_accuracy']:.3f} |")
PY
  done
done
