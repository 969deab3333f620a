"""One validated, typed description of a run, built from the command line.

Everything is checked here, before any data is read or any graph is built,
so a bad value costs the user a second, not an epoch.
"""
import dataclasses
import os

from adder_tf.errors import UserError

METHODS = ("cnn", "ann", "bnn", "kd", "mmd", "pkkd")
TEACHER_METHODS = ("kd", "mmd", "pkkd")
ARCHS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
         "vgg_small", "resnet18", "resnet50")
DATASETS = ("cifar10", "cifar100", "imagenet2012", "mnist", "digits", "npz", "folder")
FEATURE_LOSSES = ("raw", "conv1x1", "kernel", "kernel_conv1x1")
FEATURE_NORMS = ("standardize", "none")
LAPLACE_WIDTHS = ("spread", "mean")
TEACHER_MODES = ("progressive", "fixed")
STRIDE2_PADDINGS = ("symmetric", "same")
CLASSIFIERS = ("dense", "conv_bn")
CIFAR_RESNETS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
DEFAULT_REESTIMATION_STEPS = 20
VERBOSITY = (0, 1, 2)   # Keras: silent, progress bar, (ours) one line per epoch
FLAVOUR_OF = {"cnn": "conv", "ann": "adder", "bnn": "binary",
              "kd": "adder", "mmd": "adder", "pkkd": "adder"}


@dataclasses.dataclass(frozen=True)
class Config:
    model_dir: str
    arch: str = "resnet20"
    method: str = "pkkd"
    teacher: str = "progressive"
    teacher_path: str = ""
    feature_loss: str = "kernel_conv1x1"
    feature_norm: str = "standardize"
    laplace_width: str = "spread"
    stride2_padding: str = "symmetric"
    classifier: str = "dense"
    alpha: float = 1.0
    beta: float = 1.0
    temperature: float = 1.0
    dataset: str = "cifar10"
    data_dir: str = ""
    data_path: str = ""
    epochs: int = 400
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    eta: float = 0.2
    seed: int = 0
    strategy: str = "auto"
    sync_bn: bool = False
    worker_timeout: float = 30.0   # multi_worker: a peer without heartbeat this long is lost
    collective_timeout: float = 600.0   # multi_worker: a peer alive but this far behind is lost
    augment: bool = True
    steps_per_epoch: int = 0
    train_examples: int = 0
    validation_freq: int = 1       # validate every N epochs (and always after the last)
    validation_examples: int = 0   # > 0: score on held-out training images, not the test split
    num_classes: int = 0
    bn_reestimation_steps: int = -1   # -1: 20 for adder students, 0 otherwise
    flip: object = None   # None: the dataset's default
    verbose: int = 1      # the command line's default: 1 on a terminal, else 2
    jit_compile: bool = False

    @property
    def flavour(self):
        return FLAVOUR_OF[self.method]

    @property
    def model_options(self):
        """Architecture options that differ from the defaults (CIFAR ResNets only)."""
        options = {}
        if self.stride2_padding != "symmetric":
            options["stride2_padding"] = self.stride2_padding
        if self.classifier != "dense":
            options["classifier_head"] = self.classifier
        return options

    @property
    def reestimation_steps(self):
        """Training batches that re-estimate the student's BatchNorm statistics before
        each validation and the final evaluation (default: 20 for adder students)."""
        if self.bn_reestimation_steps >= 0:
            return self.bn_reestimation_steps
        return DEFAULT_REESTIMATION_STEPS if self.flavour == "adder" else 0

    @property
    def has_teacher(self):
        return self.method in TEACHER_METHODS

    @property
    def trains_teacher(self):
        return self.has_teacher and self.teacher == "progressive"

    def validate(self):
        _choice("arch", self.arch, ARCHS)
        _choice("method", self.method, METHODS)
        _choice("teacher", self.teacher, TEACHER_MODES)
        _choice("feature_loss", self.feature_loss, FEATURE_LOSSES)
        _choice("feature_norm", self.feature_norm, FEATURE_NORMS)
        _choice("laplace_width", self.laplace_width, LAPLACE_WIDTHS)
        if self.laplace_width != "spread" and self.feature_norm == "none":
            raise UserError("--laplace_width applies to --feature_norm=standardize; "
                            "--feature_norm=none is eq. 8 as written (the mean width)")
        _choice("stride2_padding", self.stride2_padding, STRIDE2_PADDINGS)
        _choice("classifier", self.classifier, CLASSIFIERS)
        if self.model_options and self.arch not in CIFAR_RESNETS:
            raise UserError(f"--stride2_padding and --classifier apply to the CIFAR ResNets "
                            f"({', '.join(CIFAR_RESNETS)}), not to --arch={self.arch}")
        _choice("dataset", self.dataset, DATASETS)
        _choice("strategy", self.strategy, STRATEGIES)
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("steps_per_epoch", self.steps_per_epoch, 0)
        _at_least("train_examples", self.train_examples, 0)
        _at_least("validation_examples", self.validation_examples, 0)
        _at_least("validation_freq", self.validation_freq, 1)
        _at_least("num_classes", self.num_classes, 0)
        _at_least("bn_reestimation_steps", self.bn_reestimation_steps, -1)
        _choice("verbose", self.verbose, VERBOSITY)
        if self.num_classes and self.dataset != "npz":
            raise UserError(f"--num_classes is for --dataset=npz; {self.dataset} has a fixed class count")
        _positive("lr", self.lr)
        _positive("temperature", self.temperature)
        _positive("worker_timeout", self.worker_timeout)
        _positive("collective_timeout", self.collective_timeout)
        for name in ("alpha", "beta", "weight_decay", "eta"):
            _at_least(name, getattr(self, name), 0.0)
        if not 0.0 <= self.momentum < 1.0:
            raise UserError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not self.model_dir:
            raise UserError("--model_dir is required: the folder a run writes and resumes from")
        if self.dataset == "npz" and not self.data_path:
            raise UserError("--dataset=npz needs --data_path to a .npz file")
        if self.dataset == "folder" and not self.data_dir:
            raise UserError("--dataset=folder needs --data_dir=DIR with DIR/train/<class>/ and DIR/test/<class>/")
        if self.data_path and not os.path.exists(self.data_path):
            raise UserError(f"--data_path {self.data_path}: no such file")
        if self.teacher == "fixed" and self.has_teacher and not self.teacher_path:
            raise UserError("--teacher=fixed needs --teacher_path to a trained CNN")
        if self.teacher_path and not os.path.exists(self.teacher_path):
            raise UserError(f"--teacher_path {self.teacher_path}: no such file or folder")
        if self.teacher_path and self.teacher != "fixed":
            raise UserError("--teacher_path is only used with --teacher=fixed")
        return self


def _choice(name, value, choices):
    if value not in choices:
        raise UserError(f"--{name}={value!r} is not one of {', '.join(map(str, choices))}")


def _at_least(name, value, low):
    if value < low:
        raise UserError(f"--{name} must be >= {low}, got {value}")


def _positive(name, value):
    if not value > 0:
        raise UserError(f"--{name} must be > 0, got {value}")
