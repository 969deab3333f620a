"""Which tf.distribute strategy a run uses, and whether this process is the chief."""
import json
import os

import tensorflow as tf

from adder_tf.errors import UserError


def make_strategy(name="auto"):
    """auto: several workers in TF_CONFIG -> multi_worker; several GPUs -> mirrored."""
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
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy={name!r} is not one of auto, one_device, mirrored, multi_worker")


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


def _tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON: {e.msg} at position {e.pos}")
