"""A multi-worker cluster's peers: how soon a lost worker is noticed, and the
error that names it.

MultiWorkerMirroredStrategy runs TensorFlow's coordination service: every
worker sends heartbeats to the service on worker 0 (the chief). A worker
killed, preempted or cut off stops them; after the heartbeat timeout
(``peer_timeout``) the service aborts the collective operations of every
other worker, and their ``fit`` raises ``UnavailableError`` instead of
waiting forever. A dead worker 0 closes its connections: the others' next
collective fails at once (or their own heartbeats fail within the timeout).
``worker_lost`` turns those errors into one ``WorkerLost`` naming the lost
worker (task and address).
"""

import json
import os
import re
import socket

# Seconds without heartbeats after which a worker counts as lost
# (TensorFlow's own default).
PEER_TIMEOUT = 10.0

_TASK = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")
# Phrases of TensorFlow's errors that name the lost task(s) after them.
_NAMING = ("are unhealthy", "remote target", "Task ", "task ")


class WorkerLost(RuntimeError):
    """A worker of the multi-worker cluster stopped (killed, preempted, its
    machine gone): this one stopped too. ``lost``: [(task type, index,
    address)] where known."""

    def __init__(self, message, lost=()):
        super().__init__(message)
        self.lost = list(lost)


def check_peer_timeout(peer_timeout):
    """``peer_timeout`` (seconds, None for ``PEER_TIMEOUT``) as a float, or a
    ValueError saying what is allowed."""
    if peer_timeout is None:
        return PEER_TIMEOUT
    if isinstance(peer_timeout, bool) or not isinstance(peer_timeout, (int, float)) or not (
            1 <= peer_timeout <= 86400):
        raise ValueError(f"peer_timeout must be a number of seconds from 1 to 86400; "
                         f"received {peer_timeout!r}.")
    return float(peer_timeout)


def configure_heartbeats(peer_timeout=None):
    """Sets the coordination service's heartbeat timeout to ``peer_timeout``
    seconds for the multi-worker strategy about to be created from
    ``TF_CONFIG`` (the settings MultiWorkerMirroredStrategy would choose, with
    this timeout). Call it before the strategy and any other TensorFlow work.
    """
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    timeout = check_peer_timeout(peer_timeout)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec()
    if resolver.task_type not in ("chief", "worker") or not spec.jobs:
        return  # an evaluator, or no cluster: the strategy says what is wrong
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=int(timeout * 1000),
    )


def cluster_tasks():
    """{(task type, index): address} of ``TF_CONFIG``'s cluster, and this
    process' (task type, index)."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        tasks = {(job, i): address for job, addresses in config.get("cluster", {}).items()
                 for i, address in enumerate(addresses)}
        own = config.get("task", {})
        return tasks, (own.get("type"), int(own.get("index", 0)))
    except (ValueError, TypeError, AttributeError):
        return {}, (None, None)


def lost_peers(message, tasks, own, probe=True):
    """The peers ``message`` (a TensorFlow error) says are lost, as [(task
    type, index, address)]: the tasks it names after "unhealthy" / "remote
    target" (else anywhere), or whose address it names; failing that, with
    ``probe``, the peers whose port no longer answers."""
    candidates = []
    for phrase in _NAMING:
        at = message.find(phrase)
        if at >= 0:
            candidates = [(job, int(i)) for job, i in _TASK.findall(message[at:])]
            candidates = [t for t in candidates if t in tasks and t != own]
            if candidates:
                break
    if not candidates:
        candidates = [t for t in tasks if t != own and (
            f"/job:{t[0]}/replica:0/task:{t[1]}" in message
            or f"/job:{t[0]}/task:{t[1]}" in message or tasks[t] in message)]
    if not candidates and probe:
        candidates = [t for t in tasks if t != own and not _answers(tasks[t])]
    unique = list(dict.fromkeys(candidates))
    return [(job, i, tasks[(job, i)]) for job, i in sorted(unique)]


def _answers(address, timeout=2.0):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def is_peer_failure(error):
    """Whether ``error`` is a collective operation aborted because a peer
    stopped (rather than a fault of this worker's own data or model)."""
    import tensorflow as tf

    if isinstance(error, tf.errors.UnavailableError):
        return True
    if not isinstance(error, tf.errors.OpError):
        return False
    text = str(error.message if hasattr(error, "message") else error)
    return any(phrase in text for phrase in (
        "Collective ops is aborted", "stopped sending heartbeats", "unhealthy",
        "Socket closed", "Connection reset", "failed to connect"))


def worker_lost(error, resume_epoch=None):
    """A ``WorkerLost`` for ``error`` when it says a peer of this
    multi-worker run stopped, else None. ``resume_epoch``: the epoch (from 0)
    the last backup resumes at, for the message."""
    if not is_peer_failure(error):
        return None
    tasks, own = cluster_tasks()
    message = getattr(error, "message", None) or str(error)
    lost = lost_peers(message, tasks, own)
    if lost:
        who = " and ".join(f"{job} {i} ({address})" for job, i, address in lost)
        who, verb = who[0].upper() + who[1:], "were" if len(lost) > 1 else "was"
    else:
        who, verb = "A worker of the cluster", "was"
    if resume_epoch:
        kept = (f"the backup of epoch {resume_epoch} is kept: start every worker's command "
                f"again to resume at epoch {resume_epoch + 1}")
    else:
        kept = ("no epoch was finished yet: start every worker's command again to train "
                "from the start")
    own_name = f"{own[0]} {own[1]}" if own[0] else "this worker"
    return WorkerLost(f"{who} {verb} lost (killed, preempted or unreachable): {own_name} "
                      f"stopped too; {kept}.", lost)
