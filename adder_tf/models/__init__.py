from adder_tf.models.blocks import BN_EPSILON, BN_MOMENTUM
from adder_tf.models.registry import architectures, build_model, tap_names

__all__ = ["architectures", "build_model", "tap_names", "BN_MOMENTUM", "BN_EPSILON"]
