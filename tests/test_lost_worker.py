"""A multi-worker run that loses a worker: the others stop soon, naming it;
the same commands resume from the backup (issue 24).

Two loopback workers run ``kerasnets train --strategy multiworker`` through
tests/train_worker.py's ``cli`` mode (the command line plus two test
callbacks: final weights to an .npz, and a pause mid-epoch to kill at).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kerasnets.training import cluster
from tests.test_training import ROOT, colours, free_port, load_weights  # noqa: F401

PEER_TIMEOUT = 5  # --peer-timeout: a lost worker is noticed within about twice this
STEP_LIMIT = 150  # seconds for any one phase of a test run


def train_args(dataset, output):
    return ["train", "--model", "DenseNetCIFAR", "--model-arg", "depth=7",
            "--model-arg", "growth_rate=4", "--dataset", dataset, "--output", output,
            "--epochs", "3", "--batch-size", "8", "--steps-per-epoch", "3",
            "--image-size", "32", "--lr", "0.05", "--weight-decay", "0", "--val-split", "none",
            "--seed", "7", "--strategy", "multiworker", "--peer-timeout", str(PEER_TIMEOUT)]


def start_workers(addresses, args, results, logs, pause=None):
    """One ``kerasnets train`` process per address (TF_CONFIG), worker
    ``pause[0]`` pausing at ``pause[1]`` ("E:B")."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the CLI quiets TensorFlow
    procs = []
    for index in range(len(addresses)):
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                       "task": {"type": "worker", "index": index}})
        extra = ["--pause-at", pause[1]] if pause and pause[0] == index else []
        with open(logs[index][0], "w") as out, open(logs[index][1], "w") as err:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.train_worker", "cli", results[index], *extra,
                 "--", *args], cwd=ROOT, env=dict(env), stdout=out, stderr=err))
    return procs


def wait_all(procs, logs, limit=STEP_LIMIT):
    """Waits for every process; a failure or the time limit kills the rest and
    fails the test with the logs."""
    deadline = time.monotonic() + limit
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.2)
    stop(procs)
    for index, proc in enumerate(procs):
        assert proc.returncode == 0, f"worker {index} ended with {proc.returncode}:\n" + (
            "\n".join(open(path).read()[-3000:] for path in logs[index]))


def stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def history_rows(output):
    with open(os.path.join(output, "history.csv")) as f:
        return [line.split(",") for line in f.read().splitlines()[1:]]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def kill_mid_epoch(addresses, args, results, logs, victim, at):
    """Starts the workers, waits until ``victim`` paused at ``at`` ("E:B"),
    SIGKILLs it; returns (seconds until the survivor exited, the survivor's
    stderr, the backup's metadata at the kill)."""
    backup = os.path.join(args[args.index("--output") + 1], "backup")
    procs = start_workers(addresses, args, results, logs, pause=(victim, at))
    survivor = procs[1 - victim]
    try:
        deadline = time.monotonic() + STEP_LIMIT
        while not os.path.exists(results[victim] + ".paused"):
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, (
                "\n".join(open(path).read()[-3000:] for pair in logs for path in pair))
            time.sleep(0.1)
        with open(os.path.join(backup, "training_metadata.json")) as f:
            metadata = json.load(f)
        killed = time.monotonic()
        procs[victim].send_signal(signal.SIGKILL)
        try:
            survivor.wait(timeout=STEP_LIMIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {1 - victim} still runs {STEP_LIMIT} s after worker "
                        f"{victim} was killed")
        detected = time.monotonic() - killed
    finally:
        stop(procs)
    error = logs[1 - victim][1].read_text().strip()
    assert survivor.returncode == 1, error[-3000:]
    assert procs[victim].returncode == -signal.SIGKILL
    return detected, error, metadata


@pytest.mark.heavy
def test_lost_worker_is_named_and_the_same_commands_resume(colours, tmp_path):  # noqa: F811
    output = str(tmp_path / "run")
    addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    args = train_args(colours, output)
    results = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    logs = [(tmp_path / f"worker{i}.out", tmp_path / f"worker{i}.err") for i in range(2)]
    backup = os.path.join(output, "backup")
    timeline = []

    # 1. Worker 1 is killed after step 2 of epoch 2 (every worker finished
    # epoch 1, its backup included, before step 1 of epoch 2 could run).
    detected, error, metadata = kill_mid_epoch(addresses, args, results, logs, 1, "1:1")
    assert metadata == {"epoch": 1, "batch": 0}
    # The survivor stopped within the bound, with one line naming worker 1.
    assert error.splitlines() == [error], error[-3000:]
    assert error.startswith(f"kerasnets: error: Worker 1 ({addresses[1]}) was lost"), error
    assert error.endswith("the backup of epoch 1 is kept: start every worker's command "
                          "again to resume at epoch 2."), error
    assert detected < 2 * PEER_TIMEOUT + 20, detected
    timeline.append(f"worker 1 killed in epoch 2 (after step 2 of 3): worker 0 stopped "
                    f"{detected:.1f} s later")

    # Nothing lost, nothing half-written: the backup of epoch 1, no
    # model.keras, the run "running" and unlocked.
    backed_up = digest(os.path.join(backup, "latest.weights.h5"))
    assert not os.path.exists(os.path.join(output, "model.keras"))
    assert not os.path.exists(os.path.join(output, ".lock"))
    with open(os.path.join(backup, "training_metadata.json")) as f:
        assert json.load(f) == metadata
    with open(os.path.join(output, "config.json")) as f:
        assert json.load(f)["status"] == "running"
    first_epoch = history_rows(output)
    assert [row[0] for row in first_epoch] == ["0"]
    assert not [n for n in os.listdir(output) if "partial" in n]
    assert not any(os.path.exists(path) for path in results)  # neither finished training

    # 2. The same commands resume at epoch 2; this time worker 0 (the chief,
    # which holds the coordination service) is killed in epoch 3.
    detected, error, metadata = kill_mid_epoch(addresses, args, results, logs, 0, "2:1")
    assert "resuming at epoch 2 of 3 from its backup (after epoch 1)" in (
        logs[0][0].read_text())
    assert metadata == {"epoch": 2, "batch": 0}
    assert error.splitlines() == [error], error[-3000:]
    assert error.startswith(f"kerasnets: error: Worker 0 ({addresses[0]}) was lost"), error
    assert "resume at epoch 3." in error
    assert detected < 2 * PEER_TIMEOUT + 20, detected
    assert digest(os.path.join(backup, "latest.weights.h5")) != backed_up
    assert history_rows(output)[0] == first_epoch[0]
    timeline.append(f"resumed at epoch 2; worker 0 killed in epoch 3: worker 1 stopped "
                    f"{detected:.1f} s later")

    # 3. The same commands resume at epoch 3 and end alike on both workers.
    procs = start_workers(addresses, args, results, logs)
    started = time.monotonic()
    wait_all(procs, logs)
    timeline.append(f"resumed at epoch 3, finished {time.monotonic() - started:.1f} s later")
    assert "resuming at epoch 3 of 3 from its backup (after epoch 2)" in (
        logs[0][0].read_text())
    w0, w1 = (load_weights(path) for path in results)
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    rows = history_rows(output)
    assert [row[0] for row in rows] == ["0", "1", "2"] and rows[0] == first_epoch[0]
    assert os.path.exists(os.path.join(output, "model.keras")) and not os.path.exists(backup)
    with open(os.path.join(output, "config.json")) as f:
        assert json.load(f)["completed_epochs"] == 3

    # 4. An uninterrupted run of the same commands: the same epochs.
    whole = str(tmp_path / "whole")
    whole_results = [str(tmp_path / f"whole{i}.npz") for i in range(2)]
    procs = start_workers([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"],
                          train_args(colours, whole), whole_results, logs)
    wait_all(procs, logs)
    whole_rows = history_rows(whole)
    assert [row[0] for row in whole_rows] == [row[0] for row in rows]
    np.testing.assert_allclose(float(whole_rows[0][2]), float(rows[0][2]), rtol=1e-4)
    uninterrupted = load_weights(whole_results[0])
    difference = max(float(np.abs(a - b).max()) for a, b in zip(w0, uninterrupted))
    scale = max(float(np.abs(a).max()) for a in uninterrupted)
    print(f"lost-worker timeline (--peer-timeout {PEER_TIMEOUT}): {'; '.join(timeline)}; "
          f"epochs {len(rows)} (uninterrupted {len(whole_rows)}); final loss "
          f"{float(rows[-1][2]):.4f} (uninterrupted {float(whole_rows[-1][2]):.4f}); max "
          f"weight difference {difference:.3g} (largest weight {scale:.3g})")


# ------------------------------------------------------- naming the lost peer

TASKS = {("worker", 0): "10.0.0.1:2222", ("worker", 1): "10.0.0.2:2222",
         ("worker", 2): "10.0.0.3:2222"}

# TensorFlow 2.21's messages, as a survivor of a two-worker run saw them.
HEARTBEATS = (
    "Collective ops is aborted by: Error reported from /job:worker/task:0: The following "
    "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:2\nThe "
    "tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. "
    "preemption, eviction) to debug further.")
SOCKET_CLOSED = (
    "Collective ops is aborted by: Socket closed\nAdditional GRPC error information from "
    "remote target /job:worker/replica:0/task:0 while calling "
    "/tensorflow.WorkerService/RecvBuf:\n:UNKNOWN:Error received from peer "
    "{grpc_status:14, grpc_message:\"Socket closed\"}")


@pytest.mark.parametrize("message, own, lost", [
    (HEARTBEATS, ("worker", 1), [("worker", 2, "10.0.0.3:2222")]),
    (SOCKET_CLOSED, ("worker", 1), [("worker", 0, "10.0.0.1:2222")]),
    ("failed to connect to all addresses; last error: ipv4:10.0.0.2:2222: Connection "
     "refused", ("worker", 0), [("worker", 1, "10.0.0.2:2222")]),
    ("Collective ops is aborted by: cancelled", ("worker", 0), []),
])
def test_lost_peers_named_from_tensorflow_errors(message, own, lost):
    assert cluster.lost_peers(message, TASKS, own, probe=False) == lost


def test_worker_lost_message(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": list(TASKS.values())}, "task": {"type": "worker", "index": 1}}))
    error = tf.errors.UnavailableError(None, None, HEARTBEATS)
    lost = cluster.worker_lost(error, resume_epoch=3)
    assert isinstance(lost, cluster.WorkerLost) and lost.lost == [("worker", 2, "10.0.0.3:2222")]
    assert str(lost) == (
        "Worker 2 (10.0.0.3:2222) was lost (killed, preempted or unreachable): worker 1 stopped "
        "too; the backup of epoch 3 is kept: start every worker's command again to resume at "
        "epoch 4.")
    assert "\n" not in str(cluster.worker_lost(error, resume_epoch=0))
    # A fault of this worker's own (a bad image) is not a lost worker.
    assert cluster.worker_lost(tf.errors.InvalidArgumentError(None, None, "bad"), 1) is None
    assert cluster.worker_lost(ValueError(HEARTBEATS), 1) is None


@pytest.mark.parametrize("value", [0, -1, 0.5, float("nan"), float("inf"), True, "10"])
def test_peer_timeout_is_checked(value):
    with pytest.raises(ValueError, match="peer_timeout must be a number of seconds"):
        cluster.check_peer_timeout(value)


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_cli_refuses_a_bad_peer_timeout(value, tmp_path, capsys):
    from kerasnets import cli

    argv = ["train", "--model", "MobileNetV2", "--dataset", "folder:" + str(tmp_path),
            "--output", str(tmp_path / "run"), "--strategy", "multiworker",
            "--peer-timeout", value]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("kerasnets: error:") and "\n" not in error
    assert "peer" in error
    assert not os.path.exists(tmp_path / "run")
