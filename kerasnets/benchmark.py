"""Throughput, latency and memory of a model: ``kerasnets benchmark``.

    from kerasnets import benchmark
    result = benchmark.benchmark("DPN92", mode="train", batch_size=64,
                                 mixed_precision=True)
    print(result.images_per_second, result.latency_p50_ms, result.peak_memory_bytes)

The model is built with ``weights=None`` (random weights: speed does not
depend on them) and a 1000-class top, on random inputs that already sit on
the device. Then ``warmup`` steps (the first traces the graph, and compiles it
with XLA under ``jit_compile``) and ``steps`` timed steps, each waiting for
its result, so that each step's time is the latency of one batch.

- ``mode="infer"``: ``model.predict_on_batch`` (inference mode: BatchNorm
  uses its moving statistics, no dropout).
- ``mode="train"``: ``model.train_on_batch`` after the compile recipe of
  ``kerasnets train`` (``training.compile_model``: SGD with Nesterov momentum,
  decoupled weight decay, cosine schedule, label-smoothed cross-entropy,
  top-1/top-5 metrics), i.e. the step ``model.fit`` runs.
- ``mixed_precision=True``: the Keras policy ``mixed_float16`` on a GPU
  (with loss scaling, as ``compile`` adds it), ``mixed_bfloat16`` on a
  CPU/TPU (``training.mixed_precision_policy``); outputs stay float32.
- ``jit_compile``: XLA for the step function. Off unless asked for; note that
  Keras' own default ("auto") turns XLA on whenever a GPU is visible, so
  ``jit_compile=False`` here is an explicit "no XLA". XLA on a CPU is usually
  slower (depthwise convolutions: 10x), so it is never chosen there for you.

Backends: TensorFlow, JAX (``KERAS_BACKEND=jax``) and PyTorch
(``KERAS_BACKEND=torch``); the models are plain ``keras.layers``/``keras.ops``
and kerasnets' own layers, so they run there unchanged. TensorFlow is never
imported under JAX or PyTorch. On JAX, ``jit_compile=True`` is ``jax.jit``
(XLA, JAX's normal mode) and ``jit_compile=False`` runs the step eagerly, op
by op (each operation dispatched on its own: much slower, and the first step
compiles every operation's kernel); the inputs are numpy random numbers put
on the device first, and the model's variables are waited for before the
timed steps and at the last one, since JAX dispatches asynchronously. On
PyTorch, ``jit_compile=False`` is eager PyTorch (its normal mode) and
``jit_compile=True`` is ``torch.compile`` (as Keras' torch trainer applies
it; the first step compiles); inputs are tensors on Keras' device, and on a
GPU CUDA is synchronised before the timed steps and after the last one. ``BenchmarkResult.backend`` and
``backend_version`` say which ran (``tensorflow_version`` is None off
TensorFlow).

Peak memory: on a GPU, TensorFlow's allocator peak on ``GPU:0`` during the
benchmark (``tf.config.experimental.get_memory_info``; reset at the start when
TensorFlow allows it); under JAX, the XLA allocator's ``peak_bytes_in_use``
of the first device (``jax.Device.memory_stats``): the process's peak, which
JAX cannot reset, so run one benchmark a process; under PyTorch, the CUDA
caching allocator's peak (``torch.cuda.max_memory_allocated``, reset at the
start). On a CPU, the growth of the process's peak resident
set size during the benchmark: on Linux the peak (``VmHWM``) is reset first
through ``/proc/self/clear_refs`` and compared with the resident size before
the model is built (read with psutil when installed); elsewhere the growth of
``resource.getrusage``'s ``ru_maxrss``, which stays at zero when the process
had peaked higher before. ``BenchmarkResult.memory_source`` says which.

To benchmark on the CPU of a machine with a GPU, hide the GPU:
``CUDA_VISIBLE_DEVICES= kerasnets benchmark ...``.
"""

import dataclasses
import gc
import os
import platform
import sys
import time
import warnings
from typing import Optional

from kerasnets.text import format_bytes

MODES = ("infer", "train")


@dataclasses.dataclass
class BenchmarkResult:
    """What ``benchmark`` measured (times in milliseconds or seconds,
    memory in bytes)."""

    model: str
    mode: str
    batch_size: int
    image_size: int
    steps: int
    warmup: int
    precision: str  # the Keras dtype policy: float32, mixed_float16, mixed_bfloat16
    jit_compile: bool  # XLA (torch.compile under PyTorch), as the model ran
    backend: str  # the Keras backend: "tensorflow", "jax" or "torch"
    device: str  # "gpu" or "cpu"
    device_name: str
    images_per_second: float  # batch_size * steps / time of the timed steps
    latency_p50_ms: float  # per batch
    latency_p95_ms: float
    latency_mean_ms: float
    first_step_seconds: float  # trace (and XLA compile) plus one step
    build_seconds: float
    peak_memory_bytes: Optional[int]
    memory_source: str
    params: int
    backend_version: str  # TensorFlow's, JAX's or PyTorch's version
    tensorflow_version: Optional[str]  # None unless the backend is TensorFlow
    keras_version: str
    latencies_ms: list = dataclasses.field(default_factory=list, repr=False)

    def as_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        """One line: model, setting, images/s, latency, memory."""
        memory = format_bytes(self.peak_memory_bytes)
        xla = ", XLA" if self.jit_compile else ""
        return (f"{self.model} {self.mode} batch {self.batch_size} at {self.image_size} px, "
                f"{self.precision}{xla}, {self.device} ({self.device_name}), "
                f"{self.backend} {self.backend_version}: "
                f"{self.images_per_second:.1f} images/s, latency p50 "
                f"{self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms, "
                f"peak memory {memory}")


# ------------------------------------------------------------------ memory


class _GPUPeak:
    def __init__(self, tf, device="GPU:0"):
        self.tf, self.device = tf, device
        self.reset = True
        try:
            tf.config.experimental.reset_memory_stats(device)
        except (ValueError, RuntimeError, AttributeError):
            self.reset = False
        self.source = (f"TensorFlow allocator peak on {device} "
                       "(tf.config.experimental.get_memory_info"
                       + (", reset at the start)" if self.reset else
                          ", not resettable here: the process's peak)"))

    def stop(self):
        try:
            return int(self.tf.config.experimental.get_memory_info(self.device)["peak"])
        except (ValueError, RuntimeError, KeyError):
            return None


class _JAXPeak:
    """The XLA allocator's peak on a JAX device: the process's peak (JAX has
    no reset)."""

    def __init__(self, device):
        self.device = device
        self.source = (f"JAX/XLA allocator peak_bytes_in_use on {device} "
                       "(jax.Device.memory_stats): the process's peak, not reset")

    def stop(self):
        try:
            stats = self.device.memory_stats()
            return int(stats["peak_bytes_in_use"]) if stats else None
        except (KeyError, RuntimeError, TypeError, ValueError):
            return None


def _status_kib(field):
    """A ``/proc/self/status`` field in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _current_rss():
    """(bytes, how) of the resident set size now."""
    try:
        import psutil

        return psutil.Process().memory_info().rss, "psutil"
    except ImportError:
        rss = _status_kib("VmRSS")
        return rss, "/proc/self/status"


def _ru_maxrss_bytes():
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # kB on Linux


class _TorchPeak:
    """The CUDA caching allocator's peak (reset at the start)."""

    def __init__(self):
        import torch

        torch.cuda.reset_peak_memory_stats()
        self.source = ("PyTorch CUDA allocator peak (torch.cuda.max_memory_allocated, "
                       "reset at the start)")

    def stop(self):
        import torch

        return int(torch.cuda.max_memory_allocated())


class _CPUPeak:
    """Growth of the process's peak RSS between start and stop."""

    def __init__(self):
        self.reset = False
        if sys.platform.startswith("linux"):
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM, the peak RSS, to the current RSS
                self.reset = _status_kib("VmHWM") is not None
            except OSError:
                self.reset = False
        if self.reset:
            self.before, how = _current_rss()
            self.source = (f"peak RSS growth: VmHWM (reset via /proc/self/clear_refs) "
                           f"minus the RSS before building ({how})")
        else:
            try:
                self.before = _ru_maxrss_bytes()
            except ImportError:  # no resource module (Windows)
                self.before = None
            self.source = ("peak RSS growth: resource.getrusage ru_maxrss after minus "
                           "before (0 if the process had peaked higher before)")

    def stop(self):
        if self.reset:
            peak = _status_kib("VmHWM")
            if peak is not None and self.before is not None:
                return max(0, peak - self.before)
            return None
        if self.before is None:
            return None
        return max(0, _ru_maxrss_bytes() - self.before)


# ----------------------------------------------------------------- devices


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BACKENDS = ("tensorflow", "jax", "torch")


def _backend():
    """The Keras backend's name, one of ``BACKENDS`` (others: ValueError)."""
    import keras

    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ValueError(f"kerasnets.benchmark runs on the {', '.join(BACKENDS)} "
                         f"backends, not {name!r} (set KERAS_BACKEND).")
    return name


def _torch_device_info():
    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return "gpu", torch.cuda.get_device_name(0) + (f" (1 of {count})" if count > 1 else "")
    cores = os.cpu_count() or 1
    return "cpu", f"{_cpu_name()}, {cores} cores"


def _jax_device_info():
    import jax

    devices = jax.devices()
    device = devices[0]
    if device.platform == "cpu":
        cores = os.cpu_count() or 1
        return "cpu", f"{_cpu_name()}, {cores} cores"
    kind = "tpu" if device.platform == "tpu" else "gpu"
    name = getattr(device, "device_kind", None) or str(device)
    return kind, name + (f" (1 of {len(devices)})" if len(devices) > 1 else "")


def device_info():
    """("gpu" or "cpu", a readable name) of where the Keras backend
    (TensorFlow, or JAX's first device) will compute."""
    if _backend() == "jax":
        return _jax_device_info()
    if _backend() == "torch":
        return _torch_device_info()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        except (ValueError, RuntimeError, AttributeError):
            name = None
        name = name or gpus[0].name
        return "gpu", name + (f" (1 of {len(gpus)})" if len(gpus) > 1 else "")
    cores = os.cpu_count() or 1
    return "cpu", f"{_cpu_name()}, {cores} cores"


# --------------------------------------------------------------- benchmark


def _policy(mixed_precision, backend, kind):
    """The dtype policy for ``mixed_precision`` on ``backend`` / device ``kind``."""
    from kerasnets import training

    if not mixed_precision:
        return "float32"
    if isinstance(mixed_precision, str):
        if mixed_precision not in ("mixed_float16", "mixed_bfloat16", "float32"):
            raise ValueError(f"mixed_precision {mixed_precision!r}: expected True, False, "
                             "'mixed_float16' or 'mixed_bfloat16'")
        return mixed_precision
    if backend != "tensorflow":
        return "mixed_float16" if kind == "gpu" else "mixed_bfloat16"
    import tensorflow as tf

    return training.mixed_precision_policy(tf.distribute.get_strategy())


def _device_inputs(batch_size, image_size, seed, mode, backend):
    """Random images in [-1, 1) and one-hot labels (train), on the JAX or
    PyTorch device Keras computes on."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (batch_size, image_size, image_size, 3)).astype("float32")
    y = None
    if mode == "train":
        y = np.eye(1000, dtype="float32")[rng.integers(0, 1000, batch_size)]
    if backend == "jax":
        import jax

        put = jax.device_put
    else:
        import keras

        put = keras.ops.convert_to_tensor  # on Keras' torch device
    return put(x), None if y is None else put(y)


def benchmark(model, mode="infer", *, batch_size=32, image_size=224, mixed_precision=False,
              jit_compile=False, steps=20, warmup=3, model_kwargs=None, seed=0):
    """Images/s, per-batch latency and peak memory of a kerasnets model.

    Args:
        model: builder name ("DPN92") or builder function; ``model_kwargs``
            go to the builder (``{"alpha": 0.25}``).
        mode: "infer" (``predict_on_batch``) or "train" (``train_on_batch``
            with the ``kerasnets train`` compile recipe).
        batch_size, image_size: input of ``batch_size`` x image_size x
            image_size x 3 random images.
        mixed_precision: False, True (mixed_float16 on GPU, mixed_bfloat16 on
            CPU) or a policy name.
        jit_compile: XLA-compile the step (default False; see the module doc).
        steps: timed steps; warmup: untimed steps before (at least 1).

    Returns:
        ``BenchmarkResult``.
    """
    import keras
    import numpy as np

    from kerasnets import training

    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: expected one of {MODES}.")
    if batch_size < 1 or image_size < 1:
        raise ValueError("batch_size and image_size must be at least 1")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    warmup = max(1, int(warmup))
    builder = training.get_builder(model)
    name = builder.__name__
    backend = _backend()
    if backend == "jax":
        import jax
    elif backend == "torch":
        import torch
    else:
        import tensorflow as tf
    kind, device_name = device_info()
    policy = _policy(mixed_precision, backend, kind)
    jit_compile = bool(jit_compile)
    if jit_compile and kind == "cpu" and backend == "tensorflow":
        warnings.warn("jit_compile on a CPU: XLA's CPU kernels are often slower than "
                      "TensorFlow's (depthwise convolutions about 10x).", stacklevel=2)

    gc.collect()
    if kind == "cpu":
        memory = _CPUPeak()
    elif backend == "jax":
        memory = _JAXPeak(jax.devices()[0])
    elif backend == "torch":
        memory = _TorchPeak()
    else:
        memory = _GPUPeak(tf)
    start = time.perf_counter()
    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(policy)
        net = training.build_model(builder, 1000, image_size, weights=None,
                                   **(model_kwargs or {}))
        if mode == "train":
            training.compile_model(net, optimizer="sgd", batch_size=batch_size,
                                   total_steps=warmup + steps)
            # What compile(jit_compile=...) sets; explicit, since Keras' "auto"
            # would choose XLA whenever a GPU is visible.
            net.jit_compile = jit_compile
        else:
            net.compile(jit_compile=jit_compile)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    build_seconds = time.perf_counter() - start

    wait = None  # TensorFlow: each step's numpy result waited for the step
    if backend == "jax":
        x, y = _device_inputs(batch_size, image_size, seed, mode, backend)

        def wait():  # JAX dispatches asynchronously: wait for the new weights too
            jax.block_until_ready([v.value for v in net.variables])
    elif backend == "torch":
        x, y = _device_inputs(batch_size, image_size, seed, mode, backend)
        if kind == "gpu":
            def wait():  # the optimizer's last kernels may still run
                torch.cuda.synchronize()
    else:
        x = tf.random.stateless_uniform((batch_size, image_size, image_size, 3), (seed, 1),
                                        -1.0, 1.0)
    if mode == "train":
        if backend == "tensorflow":
            labels = tf.random.stateless_uniform((batch_size,), (seed, 2), 0, 1000,
                                                 dtype=tf.int32)
            y = tf.one_hot(labels, 1000)

        def step():
            return net.train_on_batch(x, y)  # returns numpy: waits for the step
    else:
        def step():
            return net.predict_on_batch(x)  # numpy: waits for the step

    start = time.perf_counter()
    step()
    first_step_seconds = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    if wait:
        wait()
    latencies = []
    for i in range(steps):
        start = time.perf_counter()
        step()
        if wait and i == steps - 1:
            wait()
        latencies.append(time.perf_counter() - start)
    peak = memory.stop()

    ms = np.asarray(latencies) * 1000.0
    backend_version = (jax if backend == "jax" else torch if backend == "torch"
                       else tf).__version__
    result = BenchmarkResult(
        model=name, mode=mode, batch_size=batch_size, image_size=image_size, steps=steps,
        warmup=warmup, precision=policy, jit_compile=bool(net.jit_compile), backend=backend,
        device=kind, device_name=device_name,
        images_per_second=batch_size * steps / float(np.sum(latencies)),
        latency_p50_ms=float(np.percentile(ms, 50)),
        latency_p95_ms=float(np.percentile(ms, 95)),
        latency_mean_ms=float(np.mean(ms)),
        first_step_seconds=first_step_seconds, build_seconds=build_seconds,
        peak_memory_bytes=peak, memory_source=memory.source,
        params=int(net.count_params()),
        backend_version=backend_version,
        tensorflow_version=backend_version if backend == "tensorflow" else None,
        keras_version=keras.__version__, latencies_ms=[float(v) for v in ms],
    )
    return result


__all__ = ["BACKENDS", "MODES", "BenchmarkResult", "benchmark", "device_info",
           "format_bytes"]
