#!/usr/bin/env bash
# GPU check for a short (10-minute) GPU slot: do DPN92, SEResNeXt50_32x4d,
# MobileNetV3Large and DenseNet121 build and train on the GPU with mixed
# precision (float16), without and with XLA, and how fast?
#
#   bash tools/gpu_check.sh                  # from a copy of the repository
#   BUDGET=540 BATCH=64 SIZE=224 STEPS=10 WARMUP=2 bash tools/gpu_check.sh
#   MODELS="DPN92 DenseNet121" JIT="no yes" bash tools/gpu_check.sh
#
# Assumes a fresh machine: checks nvidia-smi, installs tensorflow[and-cuda]
# only when TensorFlow is missing or sees no GPU, and `pip install -e .` only
# when kerasnets does not import (both need network access). Each training
# run is one `python -m kerasnets benchmark --mode train --mixed-precision
# [--jit-compile] --json` process. Every step runs under `timeout`, and the
# whole script stays within BUDGET seconds (default 540): runs that would not
# fit are reported as skipped. No-XLA runs of all models come first, then XLA.
# Results (one JSON file and one log per run) go to RESULTS; with $OUT set
# (a device machine's return folder), also $OUT/gpu_check.jsonl and
# $OUT/gpu_check_logs.tar.gz.
# ALLOW_CPU=1 runs the same steps without a GPU (to test this script).
set -u
cd "$(dirname "$0")/.."

BUDGET=${BUDGET:-540}
BATCH=${BATCH:-64}
SIZE=${SIZE:-224}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-2}
RUN_LIMIT=${RUN_LIMIT:-150}   # seconds for one benchmark process at most
MODELS=${MODELS:-"DPN92 SEResNeXt50_32x4d MobileNetV3Large DenseNet121"}
JIT=${JIT:-"no yes"}
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-/tmp/kerasnets-gpu-check}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
START=$SECONDS
exec 3>&1  # guard's own messages, also from commands whose output is redirected

left() { echo $(( BUDGET - (SECONDS - START) )); }

# guard LIMIT CMD...: CMD under timeout, never past the budget.
guard() {
  local limit=$1 rest rc
  shift
  rest=$(left)
  if (( rest < 15 )); then
    echo "SKIPPED (budget of ${BUDGET}s spent): $*" >&3
    return 125
  fi
  (( limit > rest )) && limit=$rest
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  if (( rc == 124 || rc == 137 )); then
    echo "TIMEOUT after ${limit}s: $*" >&3
  fi
  return $rc
}

echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'), budget ${BUDGET}s)"
if command -v nvidia-smi >/dev/null; then
  guard 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "nvidia-smi: not found"
fi

TF_GPU_CHECK='import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "GPUs:", [g.name for g in gpus])
raise SystemExit(0 if gpus else 3)'

echo "== TensorFlow"
guard 120 "$PY" -c "$TF_GPU_CHECK"
rc=$?
if (( rc != 0 )) && [[ -z "${ALLOW_CPU:-}" ]]; then
  version=$("$PY" -c 'from importlib import metadata as m; print(m.version("tensorflow"))' 2>/dev/null)
  spec="tensorflow[and-cuda]${version:+==$version}"
  echo "TensorFlow sees no GPU (exit $rc): pip install $spec"
  if ! guard 300 "$PY" -m pip install -q --disable-pip-version-check "$spec"; then
    echo "FAILED: could not install $spec (no network?); stopping."
    exit 2
  fi
  if ! guard 120 "$PY" -c "$TF_GPU_CHECK"; then
    echo "FAILED: TensorFlow still sees no GPU; stopping."
    exit 2
  fi
fi

echo "== kerasnets"
if ! guard 120 "$PY" -c "import kerasnets, keras; print('kerasnets', kerasnets.__version__, 'Keras', keras.__version__)"; then
  echo "kerasnets does not import: pip install -e ."
  guard 300 "$PY" -m pip install -q --disable-pip-version-check -e . || {
    echo "FAILED: pip install -e . ; stopping."
    exit 2
  }
fi

echo "== training steps: batch $BATCH, ${SIZE} px, mixed precision, $STEPS steps after $WARMUP warm-up"
failures=0
for jit in $JIT; do
  for model in $MODELS; do
    flag=""
    [[ "$jit" == yes ]] && flag="--jit-compile"
    tag="${model}_$([[ "$jit" == yes ]] && echo xla || echo noxla)"
    echo "-- $model, XLA $jit ($(left)s of the budget left)"
    guard "$RUN_LIMIT" "$PY" -m kerasnets benchmark --model "$model" --mode train \
      --batch-size "$BATCH" --image-size "$SIZE" --steps "$STEPS" --warmup "$WARMUP" \
      --mixed-precision $flag --json >"$RESULTS/$tag.json" 2>"$RESULTS/$tag.log"
    rc=$?
    if (( rc == 0 )); then
      "$PY" - "$RESULTS/$tag.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
peak = r["peak_memory_bytes"]
print(f"   {r['images_per_second']:.1f} images/s, p50 {r['latency_p50_ms']:.1f} ms, "
      f"first step {r['first_step_seconds']:.1f} s, peak memory "
      f"{'-' if peak is None else f'{peak / 2**30:.2f} GiB'} ({r['precision']}, "
      f"XLA {r['jit_compile']}, {r['device']}: {r['device_name']})")
EOF
    else
      failures=$((failures + 1))
      case $rc in
        124|125|137) ;;  # guard said why
        *) echo "   FAILED (exit $rc); last lines of its log:"; tail -n 5 "$RESULTS/$tag.log" ;;
      esac
      rm -f "$RESULTS/$tag.json"
    fi
  done
done

echo "== summary (images/s; batch $BATCH, ${SIZE} px, mixed precision)"
"$PY" - "$RESULTS" $MODELS <<'EOF'
import json, os, sys
results, models = sys.argv[1], sys.argv[2:]
print("| model | no XLA | XLA | device |")
print("|---|---:|---:|---|")
for model in models:
    cells, device = [], "-"
    for tag in ("noxla", "xla"):
        path = os.path.join(results, f"{model}_{tag}.json")
        if os.path.exists(path):
            r = json.load(open(path))
            cells.append(f"{r['images_per_second']:.1f}")
            device = r["device_name"]
        else:
            cells.append("-")
    print(f"| {model} | {cells[0]} | {cells[1]} | {device} |")
EOF
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  cat "$RESULTS"/*.json >"$OUT/gpu_check.jsonl" 2>/dev/null
  tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$RESULTS" . 2>/dev/null
fi
echo "== done in $((SECONDS - START))s, $failures run(s) failed or skipped; files in $RESULTS"
(( failures == 0 ))
