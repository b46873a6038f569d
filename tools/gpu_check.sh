#!/usr/bin/env bash
# GPU check for a short (10-minute) GPU slot: do DPN92, SEResNeXt50_32x4d,
# MobileNetV3Large and DenseNet121 build and train on the GPU with mixed
# precision (float16), with and without XLA, how fast, and how fast is timm
# (PyTorch) on the same GPU?
#
#   bash tools/gpu_check.sh                  # from a copy of the repository
#   BUDGET=540 BATCH=64 SIZE=224 STEPS=10 WARMUP=2 bash tools/gpu_check.sh
#   MODELS="DPN92 DenseNet121" JIT="no yes" BACKEND=jax TIMM=no bash tools/gpu_check.sh
#
# Backend (BACKEND, default: TensorFlow if it can get a GPU, else JAX):
# - tensorflow: assumes a fresh machine: installs tensorflow[and-cuda] only
#   when TensorFlow is missing or sees no GPU, and `pip install -e .` only
#   when kerasnets does not import (both need network access).
# - jax: Keras' JAX backend (KERAS_BACKEND=jax), used when BACKEND=jax, or
#   when TensorFlow cannot get a GPU (no network to install it, or the
#   install fails) and JAX sees a GPU. Needs no network: wheels in .whl/ at
#   the repository root (keras, namex, optree) are installed into SITE
#   (default /tmp/site) and kerasnets runs from this checkout (PYTHONPATH).
#   Under JAX, "XLA no" runs the training step eagerly, op by op.
# Each kerasnets run is one `python -m kerasnets benchmark --mode train
# --mixed-precision [--jit-compile] --json` process; each timm run (TIMM=no
# to skip; needs torch and timm installed) is one `tools/gpu_timm.py`
# process: the timm counterpart, PyTorch eager, autocast float16,
# channels_last, same batch, size and steps. Order: per model kerasnets
# with XLA, then timm; the no-XLA runs of all models come last. Every step
# runs under `timeout`, and the whole script stays within BUDGET seconds
# (default 540): runs that would not fit are reported as skipped.
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
BACKEND=${BACKEND:-}          # empty (TensorFlow, else JAX), tensorflow or jax
TIMM=${TIMM:-yes}
SITE=${SITE:-/tmp/site}
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-/tmp/kerasnets-gpu-check}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
START=$SECONDS
exec 3>&1  # guard's own messages, also from commands whose output is redirected

case "$BACKEND" in
  ""|tensorflow|jax) ;;
  *) echo "BACKEND=$BACKEND: expected tensorflow or jax (or nothing)"; exit 2 ;;
esac

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

JAX_GPU_CHECK='import jax
devices = jax.devices()
print("JAX", jax.__version__, "devices:", devices)
raise SystemExit(0 if devices[0].platform != "cpu" else 3)'

NETWORK_CHECK='import urllib.request
urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=5).close()'

backend=""
if [[ "$BACKEND" != jax ]]; then
  echo "== TensorFlow"
  guard 120 "$PY" -c "$TF_GPU_CHECK"
  rc=$?
  if (( rc == 0 )) || [[ -n "${ALLOW_CPU:-}" && ( rc -eq 3 || "$BACKEND" == tensorflow ) ]]
  then
    backend=tensorflow
  elif [[ -n "${ALLOW_CPU:-}" ]]; then
    echo "TensorFlow does not import (exit $rc)"
  elif [[ "$BACKEND" == tensorflow ]] || guard 20 "$PY" -c "$NETWORK_CHECK" 2>/dev/null; then
    version=$("$PY" -c 'from importlib import metadata as m; print(m.version("tensorflow"))' 2>/dev/null)
    spec="tensorflow[and-cuda]${version:+==$version}"
    echo "TensorFlow sees no GPU (exit $rc): pip install $spec"
    if ! guard 300 "$PY" -m pip install -q --disable-pip-version-check "$spec"; then
      echo "could not install $spec"
    elif ! guard 120 "$PY" -c "$TF_GPU_CHECK"; then
      echo "TensorFlow still sees no GPU"
    else
      backend=tensorflow
    fi
    if [[ -z "$backend" && "$BACKEND" == tensorflow ]]; then
      echo "FAILED: no TensorFlow with a GPU (BACKEND=tensorflow); stopping."
      exit 2
    fi
  else
    echo "TensorFlow is missing or sees no GPU (exit $rc), and no network to install it"
  fi
  [[ -z "$backend" ]] && echo "trying Keras' JAX backend instead"
fi

if [[ -z "$backend" ]]; then
  echo "== JAX"
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing the carried wheels into $SITE: $(cd .whl && echo *.whl)"
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
      echo "no pip: unpacking them instead"
      mkdir -p "$SITE" && for wheel in .whl/*.whl; do "$PY" -m zipfile -e "$wheel" "$SITE"; done \
        && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    elif guard 120 "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl; then
      export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
      echo "WARNING: the carried wheels did not install; going on with what is installed"
    fi
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
  guard 120 "$PY" -c "$JAX_GPU_CHECK"
  rc=$?
  if (( rc != 0 )) && ! [[ -n "${ALLOW_CPU:-}" && rc -eq 3 ]]; then
    echo "FAILED: JAX sees no GPU (exit $rc); stopping."
    exit 2
  fi
  backend=jax
fi
echo "== backend: $backend (KERAS_BACKEND=${KERAS_BACKEND:-tensorflow})"

echo "== kerasnets"
KERASNETS_CHECK='import sys, kerasnets, keras
print("kerasnets", kerasnets.__version__, "Keras", keras.__version__, "backend",
      keras.backend.backend(), "TensorFlow imported:", "tensorflow" in sys.modules)'
if ! guard 120 "$PY" -c "$KERASNETS_CHECK"; then
  if [[ "$backend" == jax ]]; then
    echo "FAILED: kerasnets does not import from $PWD on JAX; stopping."
    exit 2
  fi
  echo "kerasnets does not import: pip install -e ."
  guard 300 "$PY" -m pip install -q --disable-pip-version-check -e . || {
    echo "FAILED: pip install -e . ; stopping."
    exit 2
  }
fi

timm_ok=""
if [[ "$TIMM" != no ]]; then
  echo "== timm"
  if guard 120 "$PY" -c "import torch, timm; print('PyTorch', torch.__version__, 'timm',
      timm.__version__, 'CUDA', torch.cuda.is_available())"; then
    timm_ok=1
  else
    echo "torch/timm do not import: no timm runs"
  fi
fi

# report FILE: prints a run's result and leaves only its JSON line in FILE.
REPORT='import json, sys
path = sys.argv[1]
lines = [line for line in open(path) if line.startswith("{")]
if not lines:
    raise SystemExit("   no JSON result")
r = json.loads(lines[-1])
open(path, "w").write(json.dumps(r) + "\n")
peak = r["peak_memory_bytes"]
peak = "-" if peak is None else "%.2f GiB" % (peak / 2**30)
how = "eager PyTorch" if r["backend"] == "torch" else "XLA %s" % r["jit_compile"]
print("   %.1f images/s, p50 %.1f ms, first step %.1f s, peak memory %s (%s, %s, %s %s, %s: %s)"
      % (r["images_per_second"], r["latency_p50_ms"], r["first_step_seconds"], peak,
         r["precision"], how, r["backend"], r["backend_version"], r["device"],
         r["device_name"]))'

failures=0
done_tags=""  # this run's results (RESULTS may hold older ones)
# run TAG TITLE CMD...: one measurement, stdout to RESULTS/TAG.json.
run() {
  local tag=$1 title=$2 rc
  shift 2
  echo "-- $title ($(left)s of the budget left)"
  rm -f "$RESULTS/$tag.json"
  guard "$RUN_LIMIT" "$@" >"$RESULTS/$tag.json" 2>"$RESULTS/$tag.log"
  rc=$?
  if (( rc == 0 )) && "$PY" -c "$REPORT" "$RESULTS/$tag.json"; then
    done_tags="$done_tags $tag"
    return 0
  fi
  failures=$((failures + 1))
  case $rc in
    124|125|137) ;;  # guard said why
    *) echo "   FAILED (exit $rc); last lines of its log:"; tail -n 5 "$RESULTS/$tag.log" ;;
  esac
  rm -f "$RESULTS/$tag.json"
}

kerasnets_run() {  # MODEL yes|no
  local flag="" tag="${1}_noxla" title="$1, kerasnets, XLA no"
  if [[ "$2" == yes ]]; then
    flag="--jit-compile" tag="${1}_xla" title="$1, kerasnets, XLA yes"
  elif [[ "$backend" == jax ]]; then
    title="$title (JAX eager, op by op)"
  fi
  run "$tag" "$title" "$PY" -m kerasnets benchmark --model "$1" --mode train \
    --batch-size "$BATCH" --image-size "$SIZE" --steps "$STEPS" --warmup "$WARMUP" \
    --mixed-precision $flag --json
}

echo "== training steps: batch $BATCH, ${SIZE} px, mixed precision, $STEPS steps after" \
     "$WARMUP warm-up; kerasnets on $backend"
for model in $MODELS; do
  [[ " $JIT " == *" yes "* ]] && kerasnets_run "$model" yes
  if [[ -n "$timm_ok" ]]; then
    run "${model}_timm" "$model, timm (PyTorch eager)" "$PY" tools/gpu_timm.py \
      --model "$model" --batch-size "$BATCH" --image-size "$SIZE" --steps "$STEPS" \
      --warmup "$WARMUP" ${ALLOW_CPU:+--allow-cpu}
  fi
done
if [[ " $JIT " == *" no "* ]]; then
  for model in $MODELS; do
    kerasnets_run "$model" no
  done
fi

echo "== summary (images/s; batch $BATCH, ${SIZE} px, mixed precision; kerasnets on $backend)"
DONE="$done_tags" "$PY" - "$RESULTS" $MODELS <<'EOF'
import json, os, sys
results, models = sys.argv[1], sys.argv[2:]
done = set(os.environ["DONE"].split())

def load(model, tag):
    path = os.path.join(results, f"{model}_{tag}.json")
    return json.load(open(path)) if f"{model}_{tag}" in done else None

def rate(r):
    return "-" if r is None else f"{r['images_per_second']:.1f}"

def memory(r):
    peak = None if r is None else r["peak_memory_bytes"]
    return "-" if peak is None else f"{peak / 2**30:.2f}"

print("| model | kerasnets no-XLA | kerasnets XLA | timm | ratio (XLA / timm) "
      "| peak GiB XLA / timm | timm model | device |")
print("|---|---:|---:|---:|---:|---:|---|---|")
backends, timm_ran = set(), False
for model in models:
    noxla, xla, timm = (load(model, tag) for tag in ("noxla", "xla", "timm"))
    timm_ran = timm_ran or timm is not None
    ratio = (f"{xla['images_per_second'] / timm['images_per_second']:.2f}"
             if xla and timm else "-")
    device = next((r["device_name"] for r in (xla, noxla, timm) if r), "-")
    for r in (noxla, xla):
        if r:
            backends.add(f"{r['backend']} {r['backend_version']}, Keras {r['keras_version']}")
    print(f"| {model} | {rate(noxla)} | {rate(xla)} | {rate(timm)} | {ratio} "
          f"| {memory(xla)} / {memory(timm)} | {timm['timm_model'] if timm else '-'} "
          f"| {device} |")
if backends:
    eager = any(b.startswith("jax") for b in backends)
    print("kerasnets:", "; ".join(sorted(backends)) + (" (no-XLA = eager, op by op)"
                                                     if eager else ""))
if timm_ran:
    print("timm: PyTorch eager, autocast float16 + GradScaler, channels_last")
EOF
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  for tag in $done_tags; do cat "$RESULTS/$tag.json"; done >"$OUT/gpu_check.jsonl"
  tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$RESULTS" . 2>/dev/null
fi
echo "== done in $((SECONDS - START))s on $backend, $failures run(s) failed or skipped;" \
     "files in $RESULTS"
(( failures == 0 ))
