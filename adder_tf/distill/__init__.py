"""Distillation of a CNN teacher into an adder student: PKKD, KD, NST (and Supervised)."""
from adder_tf.distill.methods import KD, NST, PKKD, Supervised

__all__ = ["PKKD", "KD", "NST", "Supervised"]
