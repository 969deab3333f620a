"""A whole run: config -> data -> models -> trainer -> fit -> results and exports.

Re-running the same command on the same model_dir resumes: the backup
(Keras's BackupAndRestore, written atomically: `adder_tf.checkpoint`) keeps
the weights of every network and head, both optimizers' slots and step
counters (and with them the learning-rate schedule's position) and the
epoch counter, written at every epoch end. Every file a run writes is
written whole or not at all (`adder_tf.atomic_io`); Ctrl-C stops after the
current step (`adder_tf.interrupt`).
"""
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from adder_tf import atomic_io, checkpoint
from adder_tf import export as export_lib
from adder_tf.batchnorm import BatchNormReestimation
from adder_tf.data import load_dataset
from adder_tf import distill
from adder_tf.models import build_model, tap_names
from adder_tf.optim import AdderSGD
from adder_tf.errors import UserError
from adder_tf.interrupt import GracefulStop
from adder_tf.strategy import is_chief, is_multi_worker, lost_worker, make_strategy, worker_dir
from adder_tf.teacher import load_teacher


def train(config):
    """Trains as `config` says and returns the results dict (also in results.json)."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy, config.worker_timeout, config.collective_timeout)
    data = load_dataset(config.dataset, config.batch_size, data_dir=config.data_dir or None,
                        data_path=config.data_path or None, seed=config.seed,
                        augment=config.augment, train_examples=config.train_examples,
                        validation_examples=config.validation_examples,
                        num_classes=config.num_classes, flip=config.flip)
    steps = config.steps_per_epoch or _pass_steps(data.train)
    os.makedirs(config.model_dir, exist_ok=True)
    with strategy.scope():
        trainer, taps = _build_trainer(config, data, steps * config.epochs)
    probe = _probe_images(data)
    callbacks = _callbacks(config, trainer, probe, strategy)
    backup = next(c for c in callbacks if isinstance(c, checkpoint.AtomicBackupAndRestore))
    backup.set_model(trainer)
    backup.restore()
    if config.validation_freq > 1:
        from adder_tf.callbacks import ValidationPlaceholders
        callbacks.insert(0, ValidationPlaceholders(trainer.test_names))   # before CSVLogger
    if trainer.teacher is not None and strategy.num_replicas_in_sync == 1:
        from adder_tf.callbacks import GradientShares
        callbacks.insert(0, GradientShares(*next(iter(data.train))))   # before CSVLogger
    trainer.bn_reestimation_steps = config.reestimation_steps
    if config.reestimation_steps:
        # Before every validation and when fit ends, under any strategy; on the first
        # batches of the epoch's own data (from (seed, epoch) alone, like training).
        callbacks.insert(0, BatchNormReestimation(data_of_epoch=data.train_from,
                                                    steps=config.reestimation_steps))
    start = time.time()
    stop = next(c for c in callbacks if isinstance(c, GracefulStop))
    resumed_from, resumed_step = backup.resumed_from, backup.resumed_step
    try:
        with stop:
            _fit(trainer, backup, data, steps, config, callbacks)
        with stop.after_training():
            final = trainer.evaluate(data.test, verbose=0, return_dict=True)
    except tf.errors.OpError as e:
        lost = lost_worker(strategy, e, checkpoint.completed_epochs(stop.backup_dir))
        if lost is None:
            raise
        raise lost from None
    with stop.after_training():
        reestimation = _reestimation(callbacks)
        results = _results(config, trainer, strategy, final, resumed_from, time.time() - start)
        results["resumed_from_step"] = resumed_step   # steps of epoch resumed_from + 1 it held
        results.update(_final_health(trainer, callbacks, probe))
        if reestimation is not None:
            results["bn_reestimation"] = {
                "steps": reestimation.steps,
                "seconds_per_validation": round(sum(reestimation.seconds) / max(len(reestimation.seconds), 1), 2)}
        if is_chief():
            export_lib.export_run(trainer, config.model_dir, taps, results["epochs_completed"])
            atomic_io.write_text(os.path.join(config.model_dir, "results.json"),
                                 json.dumps(results, indent=2), "results", results["epochs_completed"])
    return results


def _fit(trainer, backup, data, steps, config, callbacks):
    """fit from where the backup resumes; a checkpoint saved inside an epoch first gets the
    rest of that epoch as a fit of its own (its steps, on the epoch's data past them).

    Epoch e's batches come from (seed, e) alone: the run resumed from the position the
    checkpoint it loaded holds sees what an undisturbed one does from there on."""
    options = dict(validation_data=data.test, validation_freq=_validation_epochs(config),
                   callbacks=callbacks, verbose=1 if config.verbose == 1 else 0, shuffle=False)
    epoch, step = backup.resumed_from, backup.resumed_step
    if step:
        if step >= steps:
            raise UserError(f"the checkpoint in {backup.backup_dir} holds step {step} of epoch "
                            f"{epoch + 1}, but an epoch here has {steps} steps; resume with the "
                            "--steps_per_epoch and --batch_size it was written with")
        trainer.fit(data.train_from(epoch, config.steps_per_epoch).skip(step), epochs=epoch + 1,
                    steps_per_epoch=steps - step, **options)
        epoch += 1
        backup.continue_at(epoch)
    # Also with no epoch left: fit's end re-estimates the statistics (once per weights).
    trainer.fit(data.train_from(epoch, config.steps_per_epoch), epochs=config.epochs,
                steps_per_epoch=steps, **options)


def _validation_epochs(config):
    """Every validation_freq-th epoch and the last one (Keras counts epochs from 1)."""
    if config.validation_freq == 1:
        return 1
    return sorted({e for e in range(config.validation_freq, config.epochs + 1, config.validation_freq)}
                  | {config.epochs})


def _pass_steps(train_ds):
    """Batches in one pass over the training data."""
    steps = int(train_ds.cardinality())
    if steps <= 0:
        steps = sum(1 for _ in train_ds)
    return steps


def _optimizer(config, total_steps, eta):
    schedule = keras.optimizers.schedules.CosineDecay(config.lr, max(total_steps, 1))
    return AdderSGD(schedule, momentum=config.momentum, eta=eta, l2=config.weight_decay)


def _build_trainer(config, data, total_steps):
    """The run's distiller, built through the public API; and the networks' tap names."""
    student = build_model(config.arch, config.flavour, data.input_shape, data.num_classes,
                          sync_bn=config.sync_bn, **config.model_options)
    taps = tap_names(student)
    teacher = None
    if config.has_teacher:
        teacher = (load_teacher(config.teacher_path, config.arch, data)
                   if config.teacher == "fixed" else
                   build_model(config.arch, "conv", data.input_shape, data.num_classes,
                               sync_bn=config.sync_bn, **config.model_options))
    pairs = [(name, name) for name in taps]
    progressive = config.teacher == "progressive"
    if config.method == "pkkd":
        trainer = distill.PKKD(teacher, student, taps=pairs, alpha=config.alpha, beta=config.beta,
                               temperature=config.temperature, feature_loss=config.feature_loss,
                               feature_norm=config.feature_norm, progressive=progressive,
                               laplace_width=config.laplace_width)
    elif config.method == "kd":
        trainer = distill.KD(teacher, student, alpha=config.alpha,
                             temperature=config.temperature, progressive=progressive)
    elif config.method == "mmd":
        trainer = distill.NST(teacher, student, taps=pairs, beta=config.beta,
                              progressive=progressive)
    else:
        trainer = distill.Supervised(student)
    teacher_opt = _optimizer(config, total_steps, 0.0) if config.trains_teacher else None
    trainer.compile(optimizer=_optimizer(config, total_steps, config.eta),
                    teacher_optimizer=teacher_opt, jit_compile=config.jit_compile)
    return trainer, taps


PROBE_IMAGES = 256


def _reestimation(callbacks):
    """The BatchNorm re-estimation callback in use, or None (off)."""
    return next((c for c in callbacks if isinstance(c, BatchNormReestimation)), None)


def _probe_images(data):
    """A fixed batch of test images for the per-tap health figures."""
    return next(iter(data.test.unbatch().batch(PROBE_IMAGES)))[0]


def _final_health(trainer, callbacks, probe):
    """feature_health and dead_taps for results.json (methods with heads only)."""
    from adder_tf.callbacks import DistillationLogger
    from adder_tf.distill.health import dead_taps, feature_health
    logger = next(c for c in callbacks if isinstance(c, DistillationLogger))
    if not trainer.uses_heads or logger.start is None:
        return {}
    health = feature_health(trainer, probe, logger.start)
    return {"feature_health": health, "dead_taps": dead_taps(health, logger.start)}


def _callbacks(config, trainer, probe, strategy):
    from adder_tf.callbacks import DistillationLogger, EpochLine, NonFiniteGuard, TensorBoard
    folder = worker_dir(config.model_dir)
    os.makedirs(folder, exist_ok=True)
    logs = os.path.join(folder, "logs")
    backup = _backup_dir(config)
    workers = strategy if is_multi_worker(strategy) else None
    saver = checkpoint.AtomicBackupAndRestore(backup, workers)
    # The history row and the health line are written before the checkpoint: a
    # kill between them replays that epoch, `_history` keeps its last row and
    # the health file drops lines past the resumed epoch. GracefulStop
    # comes last, so that a Ctrl-C during an epoch's end stops after its checkpoint.
    return ([EpochLine(config.epochs)] if config.verbose == 2 else []) + [
        NonFiniteGuard(),
        checkpoint.HistoryLogger(_history_path(config.model_dir)),
        DistillationLogger(logs, probe, os.path.join(folder, "feature_health_start.json"),
                           os.path.join(folder, "feature_health_epochs.jsonl")),
        saver,
        TensorBoard(logs, histogram_freq=1, write_graph=False),
        GracefulStop(backup, workers, saver),
    ]


def _backup_dir(config):
    return os.path.join(worker_dir(config.model_dir), "backup")


def _history_path(model_dir):
    return os.path.join(worker_dir(model_dir), "history.csv")


def _history(model_dir):
    """Per-epoch logs; an epoch replayed after a kill keeps its last row."""
    path = _history_path(model_dir)
    rows = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    by_epoch = {int(row["epoch"]): {k: float(row[k]) for k in rows.dtype.names
                                    if np.isfinite(row[k])} for row in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _pair(final, prefix):
    return {"top1": float(final[f"{prefix}top1"]), "top5": float(final[f"{prefix}top5"])}


def _results(config, trainer, strategy, final, resumed_from, seconds):
    history = _history(config.model_dir)
    results = {
        "method": config.method, "arch": config.arch, "dataset": config.dataset,
        "epochs_completed": len(history), "resumed_from_epoch": resumed_from,
        "replicas": strategy.num_replicas_in_sync, "seed": config.seed,
        "student": _pair(final, ""),
        "scored_on": (f"validation ({config.validation_examples} held-out training images)"
                      if config.validation_examples else "test"),
        "optimizer_steps": {"student": int(trainer.optimizer.iterations.numpy())},
        "train_seconds_this_session": round(seconds, 1),
        "config": {k: v for k, v in vars(config).items()},
        "history": history,
    }
    if config.has_teacher:
        results["teacher"] = _pair(final, "teacher_")
        results["teacher"]["mode"] = config.teacher
        if trainer.teacher_optimizer is not None:
            results["optimizer_steps"]["teacher"] = int(trainer.teacher_optimizer.iterations.numpy())
    best = max(history, key=lambda r: r.get("val_top1", 0.0), default=None)
    if best is not None and "val_top1" in best:
        results["student_best_epoch"] = {"epoch": int(best["epoch"]) + 1,
                                         "top1": best["val_top1"]}
    return results
