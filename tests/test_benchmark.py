"""kerasnets.benchmark, `kerasnets benchmark`, and tools/bench_vs_timm.py.

Speed targets are benchmarks, not tests: nothing here asserts how fast
anything is, only that the benchmarks run and report what they promise.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys

import keras
import pytest

import kerasnets
from kerasnets import benchmark, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(model_kwargs={"alpha": 0.25}, batch_size=2, image_size=32, steps=2, warmup=1)
TINY_ARGS = ["--model", "MobileNet", "--model-arg", "alpha=0.25", "--batch-size", "2",
             "--image-size", "32", "--steps", "2", "--warmup", "1"]
FIELDS = {f.name for f in dataclasses.fields(benchmark.BenchmarkResult)}
MOBILENET_025_PARAMS = 475_544  # keras total, shared/REFERENCE.md section 1


def check_result(r, mode, precision="float32", jit_compile=False):
    assert set(r) == FIELDS
    assert (r["model"], r["mode"], r["batch_size"], r["image_size"], r["steps"],
            r["warmup"]) == ("MobileNet", mode, 2, 32, 2, 1)
    assert r["precision"] == precision
    assert r["jit_compile"] is jit_compile
    assert r["device"] in ("cpu", "gpu") and r["device_name"]
    assert r["params"] == MOBILENET_025_PARAMS
    assert r["images_per_second"] > 0 and math.isfinite(r["images_per_second"])
    assert len(r["latencies_ms"]) == 2 and all(v > 0 for v in r["latencies_ms"])
    assert 0 < r["latency_p50_ms"] <= r["latency_p95_ms"]
    assert min(r["latencies_ms"]) <= r["latency_mean_ms"] <= max(r["latencies_ms"])
    assert r["first_step_seconds"] > 0 and r["build_seconds"] > 0
    assert r["memory_source"]
    if sys.platform.startswith("linux") or r["device"] == "gpu":
        assert isinstance(r["peak_memory_bytes"], int) and r["peak_memory_bytes"] >= 0
    assert r["backend"] == keras.backend.backend() and r["backend_version"]
    if r["backend"] == "tensorflow":
        assert r["tensorflow_version"] == r["backend_version"]
    else:
        assert r["tensorflow_version"] is None
    assert r["keras_version"] == keras.__version__


# "train" (about 9 s) in the heavy tier; the fast tier measures inference.
@pytest.mark.parametrize("mode", ["infer", pytest.param("train", marks=pytest.mark.heavy)])
def test_benchmark_function(mode):
    result = benchmark.benchmark("MobileNet", mode, **TINY)
    assert isinstance(result, benchmark.BenchmarkResult)
    check_result(result.as_dict(), mode)
    assert result.summary().startswith(f"MobileNet {mode} batch 2 at 32 px, float32")


@pytest.mark.heavy
def test_benchmark_mixed_precision_train_restores_policy():
    result = benchmark.benchmark(kerasnets.MobileNet, "train", mixed_precision=True, **TINY)
    expected = "mixed_float16" if result.device == "gpu" else "mixed_bfloat16"
    check_result(result.as_dict(), "train", precision=expected)
    assert keras.config.dtype_policy().name == "float32"


def test_benchmark_jit_compile_infer():
    if benchmark.device_info()[0] == "cpu":
        with pytest.warns(UserWarning, match="jit_compile on a CPU"):
            result = benchmark.benchmark("MobileNet", "infer", jit_compile=True, **TINY)
    else:
        result = benchmark.benchmark("MobileNet", "infer", jit_compile=True, **TINY)
    check_result(result.as_dict(), "infer", jit_compile=True)


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        benchmark.benchmark("MobileNet", "predict")
    with pytest.raises(ValueError, match="steps"):
        benchmark.benchmark("MobileNet", "infer", steps=0)
    with pytest.raises(ValueError, match="Unknown model"):
        benchmark.benchmark("NoSuchNet")
    with pytest.raises(ValueError, match="mixed_precision"):
        benchmark.benchmark("MobileNet", mixed_precision="float64", **TINY)


def test_format_bytes():
    from kerasnets.text import format_bytes

    assert format_bytes(None) == "-"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(5 * 2**30) == "5.00 GiB"


@pytest.mark.heavy
def test_cli_benchmark_table(capsys):
    code = cli.main(["benchmark", "--mode", "train", *TINY_ARGS])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "MobileNet, alpha=0.25: train, batch 2, 32 px, float32" in out
    for column in ("device", "images/s", "latency p50", "latency p95", "peak memory",
                   "first step", "2 (+1 warm-up)"):
        assert column in out, out
    assert "memory: " in out and "TF " in out


def test_cli_benchmark_json(capsys):
    code = cli.main(["benchmark", "--mode", "infer", "--json", *TINY_ARGS])
    out, err = capsys.readouterr()
    assert code == 0, err
    check_result(json.loads(out), "infer")


def test_cli_benchmark_errors(capsys):
    for argv, needle in (
        (["--model", "DenseNet"], "generic builder"),
        (["--model", "MobileNet", "--model-arg", "alpha"], "NAME=VALUE"),
        (["--model", "MobileNet", "--steps", "0"], "steps"),
    ):
        code = cli.main(["benchmark", *argv])
        _, err = capsys.readouterr()
        assert code == 2  # usage errors
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kerasnets: error: "), err
        assert needle in lines[0]


@pytest.mark.heavy
@pytest.mark.parametrize("backend, jit_compile", [("jax", True), ("torch", False)])
def test_cli_benchmark_json_on_other_backends(backend, jit_compile):
    """`kerasnets benchmark` on Keras' JAX and PyTorch backends (the GPU
    check's path when TensorFlow has no GPU; the per-backend table of
    tools/bench_vs_timm.py): it runs, without TensorFlow, and says which
    backend ran. jax (test extra) and torch (parity extra): missing under
    CI=true fails."""
    import importlib.util

    from tests.parity import IN_CI

    if importlib.util.find_spec(backend) is None:
        message = f"{backend} is not installed (pip install -e '.[test,parity]')"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, "-m", "kerasnets", "benchmark", "--model", "MobileNetV3Small",
         "--mode", "train", "--batch-size", "2", "--image-size", "32", "--steps", "1",
         "--warmup", "1", "--json"]
        # jax.jit: half the time of eager JAX; PyTorch: eager, its usual mode
        + (["--jit-compile"] if jit_compile else []),
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
                 PYTHONPATH=os.pathsep.join(filter(None, [ROOT,
                                                          os.environ.get("PYTHONPATH")]))),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(r) == FIELDS
    assert (r["backend"], r["tensorflow_version"]) == (backend, None)
    assert r["backend_version"] and r["model"] == "MobileNetV3Small"
    assert r["mode"] == "train" and r["jit_compile"] is jit_compile
    assert r["images_per_second"] > 0 and len(r["latencies_ms"]) == 1
    assert r["device"] == "cpu"  # CUDA_VISIBLE_DEVICES=""
    if sys.platform.startswith("linux"):
        assert isinstance(r["peak_memory_bytes"], int) and r["peak_memory_bytes"] >= 0


def _load_bench_vs_timm():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_vs_timm", os.path.join(ROOT, "tools", "bench_vs_timm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_vs_timm_covers_every_family(timm):
    tool = _load_bench_vs_timm()
    families = {kerasnets.registry.get(name).family for name in tool.DEFAULT_MODELS}
    assert families >= {"densenet", "mobilenet", "mobilenet_v2", "mobilenet_v3", "senet",
                        "dpn"}
    assert any(f.startswith("igc") for f in families)
    for name, (peer, relation) in tool.PEERS.items():
        assert callable(getattr(kerasnets, name)), name
        if peer.startswith("pytorchcv:"):
            from pytorchcv.model_provider import _models

            assert peer.split(":", 1)[1] in _models, peer
        elif not peer.startswith("torch:"):  # torch: built below
            assert timm.is_model(peer), peer
        assert relation in ("same", "closest")
    # The IGC peers (pytorchcv's, tools/torch_peers.py's) are the same
    # networks (parameter counts) and run at any size.
    import torch

    for name, params in (("IGCV3", 3_491_688), ("IGC_L4M32", 12_251_240)):
        peer = tool.create_peer(tool.PEERS[name][0])
        assert sum(p.numel() for p in peer.parameters()) == params, name
        assert peer(torch.zeros(1, 3, 96, 96)).shape == (1, 1000)
    args = tool.parse_args(["--quick"])
    assert (args.batch_size, args.image_size, args.repeats) == (2, 64, 1)
    assert args.models == tool.DEFAULT_MODELS
    assert args.backends == ["tensorflow"]
    args = tool.parse_args(["--backends", "tensorflow", "jax", "torch"])
    assert args.backends == list(tool.BACKENDS)
    # each backend in its usual mode: XLA for JAX only
    assert tool.JIT_COMPILE == {"tensorflow": False, "jax": True, "torch": False}
    assert tool.worker_env(args, "kerasnets:torch")["KERAS_BACKEND"] == "torch"


@pytest.mark.heavy
def test_bench_vs_timm_quick(timm):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "bench_vs_timm.py"), "--quick",
         "--models", "MobileNet", "--threads", "1"],  # 1: robust to a busy machine
        cwd=ROOT, capture_output=True, text=True, timeout=420, check=False,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("Measured "), out
    for needle in ("cores", "TF ", "torch ", "timm ", "1 intra-op threads",
                   ("| model | timm model | mode | batch | size | kerasnets img/s | "
                    "timm img/s | ratio |")):
        assert needle in out, out
    rows = [line for line in out.splitlines() if line.startswith("| MobileNet |")]
    assert [row.split("|")[3].strip() for row in rows] == ["infer", "train"], out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "mobilenetv1_100" and cells[3:5] == ["2", "64"], row
        kerasnets_rate, timm_rate, ratio = (float(c) for c in cells[5:8])
        assert kerasnets_rate > 0 and timm_rate > 0 and ratio > 0
