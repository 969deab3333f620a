"""Which tf.distribute strategy a run uses, whether this process is the chief, and where replicas meet.

`sum_over_replicas` is the library's one all-reduce: the moments of a
distillation step, BatchNorm re-estimation's pooled statistics and the
workers' agreement on where to resume or stop all sum through it.
"""
import json
import os
import socket
import weakref

import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.config import Config
from adder_tf.errors import UserError


def make_strategy(name="auto", worker_timeout=Config.worker_timeout,
                  collective_timeout=Config.collective_timeout):
    """auto: several workers in TF_CONFIG -> multi_worker; several GPUs -> mirrored.

    multi_worker only: a peer whose heartbeat is missing for `worker_timeout`
    seconds (its process dead or frozen) is declared gone, and a collective
    that waits longer than `collective_timeout` for a peer (alive but stuck)
    fails, so a worker whose peer is lost stops within about that time
    instead of TensorFlow's defaults (no limit on a collective). The second
    must exceed the longest time one worker can run ahead of another.
    """
    if name == "auto":
        if _tf_config().get("cluster", {}).get("worker"):
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(devices or None)
    if name == "multi_worker":
        if not _tf_config().get("cluster"):
            raise UserError("--strategy=multi_worker needs TF_CONFIG with a cluster spec")
        _configure_coordination(worker_timeout)
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise UserError(f"--strategy={name!r} is not one of auto, one_device, mirrored, multi_worker")


def _configure_coordination(timeout):
    """The coordination service as MultiWorkerMirroredStrategy sets it up, with our heartbeat."""
    if internals.eager_context().coordination_service is not None:
        return
    jobs = _tf_config()["cluster"]
    leader = "chief" if "chief" in jobs else "worker"
    internals.eager_context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0",
        heartbeat_timeout_in_ms=int(timeout * 1000))
    for job in ("chief", "worker"):
        if job in jobs:
            internals.eager_context().coordination_service.coordinated_job_list.add(
                name=job, num_tasks=len(jobs[job]))


def is_chief():
    """The worker that writes exports and results.json (worker 0, or the chief task)."""
    task = _tf_config().get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0
        and "chief" not in _tf_config().get("cluster", {}))


def worker_dir(model_dir):
    """The folder this worker writes checkpoints and logs to.

    Every worker must checkpoint (the collective ops need all of them in
    the save), but only the chief's files are the run's: the chief writes
    to model_dir, the others to model_dir/workertemp_<index>, as Keras 2's
    multi-worker callbacks did, so that workers never overwrite each other.
    """
    if is_chief():
        return model_dir
    return os.path.join(model_dir, f"workertemp_{_tf_config().get('task', {}).get('index', 0)}")


def loopback_tf_configs(workers):
    """TF_CONFIG values (JSON) for `workers` workers on this machine, one per worker, on free ports.

    For trying --strategy=multi_worker on one host: start each worker with its value.
    """
    socks = [socket.socket() for _ in range(workers)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]}
    for s in socks:
        s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(workers)]


def _tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON: {e.msg} at position {e.pos}")


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def sum_over_replicas(values):
    """`values` (a tensor or a nest of them) summed over every replica in sync."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)
    return values


def gather_over_replicas(strategy, value):
    """`value` (a number) from every replica of `strategy`, as a list, through one all-reduce.

    Called from outside a step by every worker at the same point: what lets the
    workers agree on the epoch to resume from and on the step to stop at.
    """
    gather = _GATHERS.get(strategy)
    if gather is None:
        gather = _GATHERS[strategy] = _gather_function(strategy)
    summed = strategy.experimental_local_results(gather(tf.constant(float(value))))
    return summed[0].numpy().tolist()


_GATHERS = weakref.WeakKeyDictionary()   # strategy -> its traced gather (one trace each)


def _gather_function(strategy):
    n = strategy.num_replicas_in_sync

    def replica(value):
        ctx = tf.distribute.get_replica_context()
        return sum_over_replicas(tf.one_hot(ctx.replica_id_in_sync_group, n,
                                            on_value=value, dtype=tf.float32))

    return tf.function(lambda value: strategy.run(replica, args=(value,)))


class WorkerLost(RuntimeError):
    """Another worker stopped answering: this one stops too, with one line saying what to do."""


# What a collective raises on the surviving workers when a peer process is gone.
_LOST_PEER = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
              tf.errors.CancelledError, tf.errors.AbortedError)


def lost_worker(strategy, error, kept_epochs):
    """A WorkerLost to raise instead of `error` when it says a peer is gone; else None."""
    if not is_multi_worker(strategy) or not isinstance(error, _LOST_PEER):
        return None
    kept = f"epoch {kept_epochs}'s checkpoint is kept" if kept_epochs else "no epoch was completed"
    return WorkerLost(f"another worker stopped answering ({type(error).__name__}); this worker "
                      f"stopped too; {kept}: run every worker's command again to resume")
