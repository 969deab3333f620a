from adder_tf.models.registry import architectures, build_model, inference_model

__all__ = ["architectures", "build_model", "inference_model"]
