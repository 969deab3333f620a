"""The alignment heads of PKKD: kernel transform then 1x1 conv (eq. 11-12).

One head per tapped layer and side. Which parts are used is Table 1's
ablation (`--feature_loss`), and how the two sides are compared is
`--feature_norm`:

    feature_loss     student side y_a          teacher side y_c
    raw              z                         z
    conv1x1          rho_a(standardize(z))     standardize(z)  [rho_c(...) with none]
    kernel           g(z)                      h(z)
    kernel_conv1x1   rho_a(g(z))               h(z)            [rho_c(h(z)) with none]

feature_norm="standardize" (default): every channel of y_a and y_c is
standardized before the MSE, the teacher side learns nothing (no 1x1 conv,
its width is the batch scale), and the student's width is bounded (see
`layers.kernels`). Why the teacher's width is not learned: on ResNet-20 /
CIFAR-10 a learned sigma_c ran to its lower bound in 9 of 18 taps within 4
epochs; there h = exp(-z / 2 sigma_c^2) is dominated by a few huge values
(spread 1e6 to 1e9), the standardized target is a handful of spikes and
the correlation with any student feature is ~0: the tap teaches nothing,
though its spread never falls. Why no rho_c: with a
per-channel correlation loss and a learned map on *both* sides, the optimum
for every output channel is the same most-correlated pair of directions
(the first canonical pair), so L_mid can become small while one direction
agrees and the rest of the features do not (rank collapse). With rho_c
fixed to the identity the target keeps every teacher channel, and rho_a
must predict each of them from the student's features.

feature_norm="none": eq. 13 as written: MSE between rho_a(g) and rho_c(h)
with both 1x1 convs and both widths learned freely (each width starts at
its first batch's feature scale, then is a free parameter; the exponent is
clipped only where a float would overflow), and the heads are decayed like
every other weight. This is the paper's loss; on a real network it
collapses (see docs/pkkd.md).

Orientation: g and h both decrease as their layer's similarity grows (eq. 8
read with eq. 2's sign, see `layers.kernels`), so without any 1x1 conv a
student channel is pulled towards, not against, its teacher channel.

The heads live only in training; the exported networks do not contain them.
"""
import keras
import numpy as np

from adder_tf.config import FEATURE_LOSSES, FEATURE_NORMS
from adder_tf.layers.kernels import GaussianKernel, LaplaceKernel
from adder_tf.ops.moments import standardize


@keras.saving.register_keras_serializable(package="adder_tf")
class AlignmentHead(keras.layers.Layer):
    """Kernel transform (Gaussian for a CNN tap, Laplace for an ANN tap) + 1x1 conv."""

    def __init__(self, side, feature_loss="kernel_conv1x1", feature_norm="standardize",
                 laplace_width="spread", **kwargs):
        super().__init__(**kwargs)
        if side not in ("teacher", "student"):
            raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
        if feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss must be one of {FEATURE_LOSSES}, got {feature_loss!r}")
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {feature_norm!r}")
        self.side = side
        self.feature_loss = feature_loss
        self.feature_norm = feature_norm
        self.laplace_width = laplace_width
        self.use_kernel = feature_loss.startswith("kernel")
        self.use_conv = feature_loss.endswith("conv1x1") and (
            side == "student" or feature_norm == "none")
        self.standardize_input = feature_loss == "conv1x1"
        self.kernel_transform = None
        if self.use_kernel:
            literal = feature_norm == "none"
            # The target is not something to optimise: by default the teacher's
            # width is the batch scale itself (see the module docstring).
            options = dict(bounded=not literal, learned=literal or side == "student",
                           relative=not literal)
            if side == "teacher":
                self.kernel_transform = GaussianKernel(name="gaussian", **options)
            else:
                self.kernel_transform = LaplaceKernel(
                    width="mean" if literal else laplace_width, name="laplace", **options)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.kernel_transform is not None:
            self.kernel_transform.build(input_shape)
        self.rho = None
        if self.use_conv:
            # Identity at the start: alignment begins from the features themselves.
            self.rho = keras.layers.Conv2D(
                channels, 1, name="rho",
                kernel_initializer=keras.initializers.Constant(
                    np.eye(channels, dtype="float32")[None, None]))
            self.rho.build(input_shape)

    def call(self, z):
        if self.use_kernel:
            y = self.kernel_transform(z)
        elif self.standardize_input:
            y = standardize(z)   # raw adder outputs are O(K) and negative, conv outputs O(1)
        else:
            y = z
        return self.rho(y) if self.rho is not None else y

    def sigma_value(self, z):
        """The kernel width this head uses on features z (nan without a kernel)."""
        if self.kernel_transform is None:
            return float("nan")
        return float(self.kernel_transform.sigma(z))

    def get_config(self):
        config = super().get_config()
        config.update(side=self.side, feature_loss=self.feature_loss,
                      feature_norm=self.feature_norm, laplace_width=self.laplace_width)
        return config
