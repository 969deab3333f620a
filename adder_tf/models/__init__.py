from adder_tf.models.adder_model import AdderModel
from adder_tf.models.blocks import BN_EPSILON, BN_MOMENTUM
from adder_tf.models.registry import architectures, build_model, tap_names

__all__ = ["AdderModel", "architectures", "build_model", "tap_names", "BN_MOMENTUM", "BN_EPSILON"]
