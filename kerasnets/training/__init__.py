"""Training and evaluation: strategies, mixed precision, the fit recipe.

One recipe, two doors: ``kerasnets train`` on the command line and
``kerasnets.training.train`` in Python (notebooks) do the same thing:

The settings of a run are one ``TrainConfig``. Modules: ``distribute``
(strategies, devices, mixed precision), ``cluster`` (a multi-worker run's lost
workers: heartbeat timeout, ``WorkerLost``), ``recipe`` (model, optimizer,
schedule, loss: shared with the tuner), ``initialization`` (from scratch:
residual blocks start as identities), ``batchnorm`` (precise BatchNorm
statistics), ``callbacks``, ``rundir`` (a run
folder's lifecycle: its states and the steps between them), ``run`` (``train``), ``evaluate``.

1. pick a ``tf.distribute`` strategy (``get_strategy``): one device, several
   GPUs (MirroredStrategy), several machines (MultiWorkerMirroredStrategy
   from ``TF_CONFIG``) or a TPU (TPUClusterResolver); on the JAX backend
   ``"data-parallel"`` is ``keras.distribution.DataParallel`` over every
   device (``JaxDataParallel``; several hosts through
   ``keras.distribution.initialize``);
2. under its scope and the mixed-precision policy (float16 on GPUs,
   bfloat16 on TPUs), build the model (``build_model``): a kerasnets builder,
   optionally from pretrained weights with a new classifier for the
   dataset's classes and a frozen backbone; its probabilities are float32;
3. input pipelines from ``kerasnets.data`` (per-replica batches, sharded
   per worker), normalised for the model's weights;
4. compile (SGD with Nesterov momentum or AdamW, cosine or step schedule,
   decoupled weight decay off 1-D parameters, label smoothing) and
   ``model.fit`` with callbacks that write into the output directory:
   ``backup/`` (BackupAndRestore: a run started again with the same output
   directory resumes where it stopped), ``checkpoints/last.weights.h5`` and
   ``best.weights.h5``, ``history.csv``, ``training_curves.png``,
   ``config.json`` and at the end ``model.keras``.

With several workers every worker runs the same program with its own
``TF_CONFIG``; only the chief writes into the output directory, the others
write the same files into a private temporary directory. Resuming assumes
the output directory is shared storage (a bucket, NFS) or, failing that,
that each worker restarts on the machine that holds its own backup. A worker
that dies is noticed by the others within ``peer_timeout`` seconds: they stop
with ``WorkerLost`` naming it, and the same commands resume from the backup.
"""

from kerasnets.training.callbacks import (  # noqa: F401
    CURVES_FILE,
    HISTORY_FILE,
    make_callbacks,
    plot_history,
)
from kerasnets.training.cluster import PEER_TIMEOUT, WorkerLost  # noqa: F401
from kerasnets.training.distribute import (  # noqa: F401
    STRATEGIES,
    JaxDataParallel,
    activated,
    data_parallel,
    device_kind,
    get_strategy,
    is_chief,
    keras_compatible,
    mixed_precision_policy,
    requested_policy,
    task,
    tpu_resolver,
    write_dir,
)
from kerasnets.training.evaluate import Evaluation, evaluate  # noqa: F401
from kerasnets.training.recipe import (  # noqa: F401
    OPTIMIZERS,
    SCHEDULES,
    build_model,
    compile_model,
    default_learning_rate,
    get_builder,
    learning_rate_schedule,
    make_optimizer,
    use_synchronized_batch_norm,
)
from kerasnets.training.rundir import RunConflict, RunLocked  # noqa: F401
from kerasnets.training.run import (  # noqa: F401
    CONFIG_FILE,
    MODEL_FILE,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    count_examples,
    read_run_config,
    train,
)

__all__ = [
    "Evaluation",
    "RunConflict",
    "RunLocked",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "WorkerLost",
    "build_model",
    "compile_model",
    "device_kind",
    "evaluate",
    "get_strategy",
    "is_chief",
    "make_callbacks",
    "mixed_precision_policy",
    "plot_history",
    "read_run_config",
    "tpu_resolver",
    "train",
    "write_dir",
]
