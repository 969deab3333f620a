"""What a distiller logs: its losses, top-1/top-5 of both networks, and compile(metrics=...).

Every metric object is made up front (at construction, or in compile):
none may be created inside a replicated step. Metrics given to
`compile(metrics=[...], weighted_metrics=[...])` see (labels, the
student's logits), in training and in evaluation, the weighted ones with
the batch's sample weights, as `keras.Model` applies them.
"""
import keras
import tensorflow as tf

ACCURACY_NAMES = ("accuracy", "acc")


def make_trackers(loss_names, has_teacher, num_classes):
    """{name: metric} for the losses (Mean) and both networks' top-1 / top-5."""
    trackers = {n: keras.metrics.Mean(name=n) for n in loss_names}
    k = min(5, num_classes)
    for prefix in ("", "teacher_") if has_teacher else ("",):
        trackers[f"{prefix}top1"] = keras.metrics.SparseCategoricalAccuracy(name=f"{prefix}top1")
        trackers[f"{prefix}top5"] = keras.metrics.SparseTopKCategoricalAccuracy(
            k=k, name=f"{prefix}top5")
    return trackers


def _metric(identifier):
    """A Metric object for a compile(metrics=...) entry; labels are class indices."""
    if isinstance(identifier, str) and identifier in ACCURACY_NAMES:
        return keras.metrics.SparseCategoricalAccuracy(name=identifier)
    metric = keras.metrics.get(identifier)
    if isinstance(metric, type):
        metric = metric()
    if not isinstance(metric, keras.metrics.Metric):
        name = identifier if isinstance(identifier, str) else getattr(metric, "__name__", "metric")
        metric = keras.metrics.MeanMetricWrapper(metric, name=name)
    return metric


def user_metrics(metrics, weighted_metrics, taken):
    """[(metric, weighted)] from compile's arguments; a name already logged is refused."""
    out = []
    for entries, weighted in ((metrics, False), (weighted_metrics, True)):
        if entries is None:
            continue
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"a distiller's {'weighted_' if weighted else ''}metrics must be a "
                             f"list of metrics, got {type(entries).__name__}")
        for entry in entries:
            metric = _metric(entry)
            if metric.name in taken:
                raise ValueError(f"metric name {metric.name!r} is already logged by the distiller; "
                                 "give the metric another name")
            taken = set(taken) | {metric.name}
            out.append((metric, weighted))
    return out


def update_accuracy(trackers, prefix, labels, logits, sample_weight=None):
    logits = tf.cast(logits, tf.float32)  # in_top_k takes float32 only
    trackers[f"{prefix}top1"].update_state(labels, logits, sample_weight)
    trackers[f"{prefix}top5"].update_state(labels, logits, sample_weight)


def update_user_metrics(metrics, labels, logits, sample_weight=None):
    for metric, weighted in metrics:
        metric.update_state(labels, logits, sample_weight if weighted else None)


def results(metrics):
    """{name: result} for the step's return value."""
    out = {m.name: m.result() for m in metrics}
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3 reduces step logs across workers with a mean over axis 0,
        # which fails on scalars (tensorflow/tensorflow#72388): hand it
        # one-element vectors, which it reduces back to scalars.
        out = {n: tf.reshape(v, [1]) for n, v in out.items()}
    return out
