"""Hyperparameter search with keras-tuner: hypermodels of every family.

Hypermodels in the style of ``keras_tuner.applications`` (``HyperResNet``,
``HyperEfficientNet``): each takes ``input_shape`` (or ``input_tensor``) and
``classes`` and its ``build(hp)`` returns a compiled model:

    =================  ======================================================
    HyperDenseNet      blocks, growth_rate, bottleneck, compression, dropout
    HyperMobileNet     version (v1/v2/v3), alpha, depth_multiplier,
                       model_type, minimalistic, dropout
    HyperSENet         depth, cardinality, se_ratio, dropout
    HyperDPN           k_r, groups, k_sec, inc_sec, small
    HyperIGC           L, M, depth, residual (IGC v1, CIFAR layout)
    HyperKerasNets     family, then that family's space (conditional scopes)
    =================  ======================================================

Every hypermodel also tunes the optimizer (AdamW or SGD with Nesterov
momentum, the training recipe's, with decoupled weight decay off 1-D
parameters) and a constant learning rate; with ``augmentation=True`` the
strength of a random rotation, zoom and contrast change. Each class
docstring tabulates its hyperparameters, their ranges and defaults. Every
value in a space builds (channel counts that the groups divide, enough
resolution for every stride), so no trial is lost to a bad combination.

With ``weights`` (a pretrained tag such as ``"imagenet"``, or a weights
file) a hypermodel searches a fine-tuning instead: it builds the pretrained
``backbone`` (a named builder of its family, ``DenseNet121`` by default for
DenseNet) without its classifier, adds a new head for ``classes``, and tunes
the learning rate, how much of the backbone stays frozen (``freeze_depth``)
and the head's dropout.

Models take RGB images with 0-255 pixels: each normalises its input itself
(an ``ImageNormalization`` layer with the mean and std of its weights, or of
its family's published weights when it trains from scratch), so one input
pipeline serves every family and a saved model needs no preprocessing.
Labels are one-hot (``kerasnets.data.load(..., one_hot=True)``).

    >>> import keras_tuner
    >>> from kerasnets.tuner import HyperMobileNet
    >>> hypermodel = HyperMobileNet(input_shape=(96, 96, 3), classes=10)
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy",
    ...                                  max_trials=20, directory="runs")

``search`` does the whole job (data pipelines from ``kerasnets.data``, a
``tf.distribute`` strategy from ``kerasnets.training``, the tuner, the best
model saved as ``DIRECTORY/PROJECT/best_model.keras``); ``kerasnets tune`` is
its command line:

    >>> result = kerasnets.tuner.search("mobilenet", "folder:/data/flowers",
    ...                                 directory="runs", project_name="flowers",
    ...                                 tuner="hyperband", epochs=9, image_size=128)
    >>> result.best_hyperparameters.values

A search is resumable: run it again with the same directory and project and
it reloads the finished trials (keras-tuner's ``DIRECTORY/PROJECT/trial_*``
layout), reruns a trial that was interrupted, and continues up to
``max_trials`` (a larger ``max_trials`` continues a finished search).

Distributed tuning
------------------
keras-tuner's own chief/worker mode spreads the trials of one search over
processes and machines. The chief runs the oracle (it picks hyperparameters
and records results over gRPC, training nothing); every worker runs trials.
All of them run the same command, with three environment variables:

    # on the chief (10.0.0.1), and on each worker with its own id
    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief   kerasnets tune --family dpn --dataset cifar10 \\
        --directory /shared/tuning --project dpn ...
    KERASTUNER_TUNER_ID=tuner0  kerasnets tune --family dpn ... (same arguments)
    KERASTUNER_TUNER_ID=tuner1  kerasnets tune --family dpn ... (same arguments)

- ``KERASTUNER_TUNER_ID`` is ``chief`` for the chief and any other unique
  name (``tuner0``, ``tuner1``, ...) for a worker; the chief listens on
  ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT``, workers connect to it.
- ``--directory`` must be storage every process reads and writes (the same
  machine, NFS, a bucket): workers write each trial's checkpoint into its
  ``trial_*`` folder, the chief reads the best one at the end and writes
  ``best_model.keras`` (workers write no best model).
- The chief returns once every trial has ended and every worker has been
  told to stop (keras-tuner checks every 20 seconds); workers return when the
  oracle has no trial left for them. Restarting the chief with the same
  directory resumes the search, and reruns trials that were interrupted.
- Each worker trains with its own ``--strategy`` (``mirrored`` for all the
  GPUs of its machine; ``data-parallel`` for all of them on any backend: on
  JAX ``keras.distribution.DataParallel`` over the machine's devices);
  ``max_trials`` counts the trials of all workers.
"""

from kerasnets.tuner.hypermodels import (  # noqa: F401
    DEFAULT_BACKBONES,
    FINETUNE_LR,
    FREEZE_DEPTHS,
    HEAD_DROPOUTS,
    SCRATCH_LR,
    FAMILIES,
    HYPERMODELS,
    OPTIMIZERS,
    STRATEGIES,
    TUNERS,
    HyperDenseNet,
    HyperDPN,
    HyperIGC,
    HyperKerasNets,
    HyperMobileNet,
    HyperSENet,
    freeze,
    get_hypermodel,
)
from kerasnets.tuner.search import (  # noqa: F401
    SearchResult,
    distributed_role,
    hyperparameters_table,
    make_tuner,
    parse_fixed,
    search,
    trials_table,
)

__all__ = [
    "FAMILIES",
    "HyperDenseNet",
    "HyperDPN",
    "HyperIGC",
    "HyperKerasNets",
    "HyperMobileNet",
    "HyperSENet",
    "SearchResult",
    "distributed_role",
    "freeze",
    "get_hypermodel",
    "hyperparameters_table",
    "make_tuner",
    "parse_fixed",
    "search",
    "trials_table",
]
