"""Where training runs: ``tf.distribute`` strategies, devices, mixed precision,
and which process of a cluster writes the run's files."""

import contextlib
import hashlib
import json
import os
import tempfile
import warnings

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu", "data-parallel")


def get_strategy(name="auto", tpu=None, peer_timeout=None):
    """A ``tf.distribute.Strategy`` by name.

    - ``"auto"``: a TPU when one is named (``tpu``), announced by the
      environment (``TPU_NAME``, ``COLAB_TPU_ADDR``) or attached (TPU VM);
      else MirroredStrategy over several GPUs; else the default strategy on
      the single GPU or the CPU.
    - ``"cpu"``: the default strategy pinned to the CPU (GPUs unused).
    - ``"mirrored"``: MirroredStrategy over the local GPUs (or the logical CPU
      devices when there is no GPU).
    - ``"multiworker"``: MultiWorkerMirroredStrategy configured by
      ``TF_CONFIG``; create it first, before any other TensorFlow work. A
      worker that stops sending heartbeats for ``peer_timeout`` seconds
      (default ``cluster.PEER_TIMEOUT``; fixed by the first call) counts as
      lost: the others' collectives abort (``cluster.worker_lost``).
    - ``"tpu"``: TPUStrategy through ``TPUClusterResolver(tpu)``: ``tpu`` is a
      TPU name, a ``grpc://host:8470`` address or ``"local"`` (TPU VM).

    ``"data-parallel"``: synchronous data parallelism over every local
    accelerator, on any backend that has it (``data_parallel``): on JAX
    ``keras.distribution.DataParallel`` (all hosts' devices on a multi-host
    setup), on TensorFlow the same as ``"mirrored"``.

    ``tf.distribute`` drives TensorFlow only: on Keras' JAX and PyTorch
    backends ``"auto"`` is the default strategy (the backend computes on its
    own default device), JAX also takes ``"data-parallel"``, and the others
    raise ValueError. A ``JaxDataParallel`` is returned as it is.
    """
    if isinstance(name, JaxDataParallel):
        return name
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}: expected one of {STRATEGIES}.")
    from kerasnets.training.cluster import check_peer_timeout

    check_peer_timeout(peer_timeout)
    import keras

    backend = keras.backend.backend()
    if name == "data-parallel":
        return data_parallel()
    if backend != "tensorflow":
        if name != "auto":
            if name == "cpu":
                hint = ("set JAX_PLATFORMS=cpu" if backend == "jax"
                        else "set CUDA_VISIBLE_DEVICES=''")
            elif backend == "jax":
                hint = ("'data-parallel' spreads each batch over JAX's devices "
                        "(keras.distribution.DataParallel)")
            else:
                hint = "run it with KERAS_BACKEND=tensorflow"
            raise ValueError(
                f"Strategy {name!r} is a tf.distribute strategy, which runs on the "
                f"TensorFlow backend only (KERAS_BACKEND is {backend}): use 'auto' "
                f"({backend}'s default device); {hint}.")
        import tensorflow as tf

        return tf.distribute.get_strategy()
    # One strategy per kind and process: TensorFlow allows one multi-worker
    # strategy and one TPU initialisation per process, and two mirrored
    # strategies over the same devices would share collective-op keys.
    key = (name, tpu) + tuple(os.environ.get(v) for v in ("TF_CONFIG", "TPU_NAME",
                                                           "COLAB_TPU_ADDR"))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _new_strategy(name, tpu, peer_timeout)
    return _STRATEGIES[key]


_STRATEGIES = {}


def _new_strategy(name, tpu, peer_timeout=None):
    import tensorflow as tf

    if name == "tpu" or (name == "auto" and _tpu_announced(tpu)):
        return _tpu_strategy(tpu)
    if name == "multiworker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise RuntimeError(
                "--strategy multiworker needs TF_CONFIG: every worker runs the "
                'same command with TF_CONFIG=\'{"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}\' '
                "(its own index)."
            )
        try:
            json.loads(config)
        except ValueError as error:
            raise RuntimeError(f"TF_CONFIG is not valid JSON: {error}") from error
        from kerasnets.training import cluster

        cluster.configure_heartbeats(peer_timeout)
        return keras_compatible(tf.distribute.MultiWorkerMirroredStrategy())
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def keras_compatible(strategy):
    """Lets Keras 3 ``fit``/``evaluate`` run under MultiWorkerMirroredStrategy.

    Keras 3 (up to 3.15 at least, keras-team/keras#20585) calls
    ``strategy.reduce`` in two ways that MultiWorkerMirroredStrategy rejects:
    on the whole (images, labels) structure of the first batch (to learn the
    input shapes), and with ``axis=0`` on scalar per-replica logs (the loss and
    metrics of each step). This makes ``reduce`` of this strategy object map
    over structures and reduce scalars across replicas (``axis=None``); every
    worker makes the same calls in the same order. Other strategies are
    returned unchanged.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy
    if getattr(strategy, "_kerasnets_reduce", None) is not None:
        return strategy
    reduce = strategy.reduce

    def reduce_one(reduce_op, value, axis):
        if axis is not None:
            parts = (strategy.experimental_local_results(value)
                     if isinstance(value, tf.distribute.DistributedValues) else (value,))
            if parts and getattr(parts[0], "shape", None) is not None and parts[0].shape.rank == 0:
                axis = None  # a scalar per replica: reduce across replicas only
        return reduce(reduce_op, value, axis=axis)

    def nested_reduce(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda v: reduce_one(reduce_op, v, axis), value)

    strategy.reduce = nested_reduce
    strategy._kerasnets_reduce = reduce
    return strategy


def _tpu_announced(tpu):
    import tensorflow as tf

    if tpu or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    try:
        return bool(tf.config.list_physical_devices("TPU"))
    except Exception:  # noqa: BLE001 - no TPU platform in this build
        return False


def tpu_resolver(tpu=None):
    """``TPUClusterResolver`` for ``tpu`` (name, grpc address, "local") or
    the environment; raises a RuntimeError that says what to pass."""
    import tensorflow as tf

    if tpu is None:
        if os.environ.get("COLAB_TPU_ADDR"):
            tpu = "grpc://" + os.environ["COLAB_TPU_ADDR"]
        elif os.environ.get("TPU_NAME"):
            tpu = os.environ["TPU_NAME"]
        elif _local_tpu():
            tpu = "local"
        else:
            raise RuntimeError(
                "No TPU found: pass --tpu with a TPU name, a grpc://HOST:8470 "
                "address or 'local' (on a TPU VM), set TPU_NAME, or use "
                "--strategy auto/cpu/mirrored."
            )
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except Exception as error:  # noqa: BLE001 - TF raises ValueError or others
        raise RuntimeError(f"Cannot resolve the TPU {tpu!r}: {error}") from error


def _local_tpu():
    import tensorflow as tf

    try:
        return bool(tf.config.list_physical_devices("TPU"))
    except Exception:  # noqa: BLE001
        return False


def _tpu_strategy(tpu):
    import tensorflow as tf

    resolver = tpu_resolver(tpu)
    try:
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001
        raise RuntimeError(
            f"Cannot connect to the TPU {tpu or resolver.master()!r}: {error}"
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def device_kind(strategy):
    """"tpu", "gpu" or "cpu": where ``strategy`` computes."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.platform
    import tensorflow as tf

    if isinstance(strategy, (tf.distribute.TPUStrategy,)) or "TPU" in type(strategy).__name__:
        return "tpu"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        devices = (strategy.extended._device,)  # noqa: SLF001 - no public accessor
    else:
        try:
            devices = tuple(strategy.extended.worker_devices)
        except RuntimeError:  # the default strategy has no device list
            devices = ()
    if not devices:  # the default strategy: TensorFlow's own placement
        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    return "gpu" if any("GPU" in str(d).upper() for d in devices) else "cpu"


def mixed_precision_policy(strategy):
    """Policy name for mixed precision on ``strategy``'s devices:
    mixed_float16 on GPUs, mixed_bfloat16 on TPUs (and CPUs)."""
    return "mixed_float16" if device_kind(strategy) == "gpu" else "mixed_bfloat16"


def requested_policy(mixed_precision, strategy):
    """The dtype policy a run asked for: None (float32), a policy name, or
    True for the strategy's own (``mixed_precision_policy``); warns that
    bfloat16 on a CPU is for testing. Warnings point at the caller's caller
    (``train``, ``tuner.search``)."""
    if not mixed_precision:
        return None
    policy = (mixed_precision if isinstance(mixed_precision, str)
              else mixed_precision_policy(strategy))
    if policy == "mixed_bfloat16" and device_kind(strategy) == "cpu":
        warnings.warn("Mixed precision on CPU (bfloat16) is for testing: it is "
                      "rarely faster than float32 there.", stacklevel=3)
    return policy


def task(strategy):
    """(task_type, task_id) of this process in a multi-worker cluster, or
    (None, None) on one machine."""
    if isinstance(strategy, JaxDataParallel):  # JAX processes are "workers" 0..n-1
        return ("worker", strategy.process_id) if strategy.num_processes > 1 else (None, None)
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """Whether this process writes the run's outputs (the chief, or worker 0
    of a cluster without a chief, or the only process)."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.process_id == 0
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return True
    if task_type != "worker" or task_id != 0:
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return "chief" not in spec


def write_dir(output, strategy):
    """Where this process writes: ``output`` for the chief, a private
    temporary directory (stable for ``output``, so a restarted worker finds
    its own backup) for the other workers."""
    if is_chief(strategy):
        return output
    task_type, task_id = task(strategy)
    digest = hashlib.sha1(os.path.abspath(output).encode()).hexdigest()[:10]
    return os.path.join(
        tempfile.gettempdir(), "kerasnets-workers", f"{digest}-{task_type}-{task_id}"
    )


# ----------------------------------------------- data parallelism (any backend)

# Keras' multi-host settings (keras.distribution.initialize reads them).
MULTI_HOST_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                        "KERAS_DISTRIBUTION_PROCESS_ID")


def data_parallel():
    """The ``"data-parallel"`` strategy of this process's Keras backend.

    - JAX: a ``JaxDataParallel`` over every device of the default kind
      (GPUs, TPU cores, else the CPU; one device is a mesh of one). When
      Keras' multi-host variables are set (``MULTI_HOST_VARIABLES``), the
      process first joins the cluster (``keras.distribution.initialize``)
      and the mesh spans every host's devices.
    - TensorFlow: MirroredStrategy over the local GPUs, as ``"mirrored"``
      (several machines: ``"multiworker"``).
    - PyTorch: ValueError (Keras has no data-parallel training there).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return get_strategy("mirrored")
    if backend != "jax":
        raise ValueError(
            f"Strategy 'data-parallel' runs on the JAX backend (keras.distribution."
            f"DataParallel) and on TensorFlow (MirroredStrategy); Keras' {backend} backend "
            "has no data-parallel training: use --strategy auto (one device), or set "
            "KERAS_BACKEND=jax or tensorflow.")
    key = ("data-parallel",)
    if key not in _STRATEGIES:
        _join_hosts()
        _STRATEGIES[key] = JaxDataParallel()
    return _STRATEGIES[key]


def _join_hosts():
    """``keras.distribution.initialize()`` when Keras' multi-host variables
    are set and this process has not joined its cluster yet."""
    settings = {v: os.environ[v] for v in MULTI_HOST_VARIABLES if os.environ.get(v)}
    if not settings:
        return
    import jax
    import keras

    if getattr(jax.distributed, "is_initialized", lambda: False)():  # jax >= 0.4.31
        return
    try:
        keras.distribution.initialize()
    except (RuntimeError, ValueError) as error:
        shown = " ".join(f"{k}={v}" for k, v in settings.items())
        raise RuntimeError(
            f"Cannot join the multi-host JAX cluster ({shown}): {error}. Start every host "
            "with the same KERAS_DISTRIBUTION_JOB_ADDRESSES (the coordinator's host:port "
            "first) and KERAS_DISTRIBUTION_NUM_PROCESSES and its own "
            "KERAS_DISTRIBUTION_PROCESS_ID (0 .. n-1), before anything runs on JAX."
        ) from error


class JaxDataParallel:
    """``keras.distribution.DataParallel`` over a 1-D mesh of every device
    (every host's), with the parts of a ``tf.distribute.Strategy`` that
    kerasnets' workflows use: ``scope``, ``num_replicas_in_sync``,
    ``distribute_datasets_from_function``.

    Variables are replicated, each global batch is split along its first axis
    over the devices, and gradients are averaged over the global batch: a run
    computes what one device would with the same global batch. Batches are
    global (``batch_size`` is divisible by the device count); on several
    hosts each process reads its own shard of the data, in batches of its
    share of the global batch (as a ``tf.distribute`` input pipeline does),
    and process 0 writes the run's files.
    """

    def __init__(self, devices=None):
        import jax
        import keras

        devices = list(devices or keras.distribution.list_devices())
        self.devices = devices
        self.distribution = keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=False)  # one pipeline per process: sharded
        self.num_replicas_in_sync = len(devices)
        self.num_processes = jax.process_count()
        self.process_id = jax.process_index()
        self.platform = devices[0].split(":")[0].lower()
        self.cluster_resolver = None

    def __repr__(self):
        return (f"JaxDataParallel({self.num_replicas_in_sync} devices"
                + (f", {self.num_processes} processes" if self.num_processes > 1 else "")
                + ")")

    def scope(self):
        """Makes the distribution Keras' current one (``keras.distribution``)."""
        return self.distribution.scope()

    def distribute_datasets_from_function(self, dataset_fn):
        """``dataset_fn``'s dataset for this process: one input pipeline per
        process, each giving its share of every global batch (all of it on
        one host); Keras assembles the global batch over the mesh."""
        import tensorflow as tf

        return dataset_fn(tf.distribute.InputContext(
            num_input_pipelines=self.num_processes, input_pipeline_id=self.process_id,
            num_replicas_in_sync=self.num_processes))

    def distribute_batch(self, batch):
        """This process's part of a global batch as a global ``jax.Array``
        split over the mesh (precise BatchNorm's forward passes)."""
        import jax
        import numpy as np

        batch = np.asarray(batch)
        layout = self.distribution.get_data_layout(batch.shape).backend_layout
        return jax.make_array_from_process_local_data(layout, batch)


def activated(strategy):
    """A context for a whole run under ``strategy``: a JAX distribution is
    Keras' current one throughout (``fit``, ``evaluate``, saving and loading
    read it then); ``tf.distribute`` strategies need none (a model keeps the
    scope it was built in)."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.scope()
    return contextlib.nullcontext()
