"""BatchNorm statistics that describe a network as it is now, under any strategy.

An adder network's BatchNorm inputs move under AdderNet's adaptive learning
rate, so moving averages of past batches describe weights that no longer
exist. `reestimate(model, data)` sets every trainable BatchNorm's moving
mean and variance to the batch-size-weighted average of the statistics of
`steps` batches under today's weights. The data is read as `fit` reads it
(Keras's own adapters; arrays and finite `PyDataset`s shuffled). Each batch
runs in training mode with every momentum at 0, so Keras's own update leaves
that batch's statistics in the moving variables (any model works:
functional, Sequential, nested, subclassed); they are pooled in float64
over batches and replicas (`adder_tf.strategy.sum_over_replicas`), so every
replica and worker ends with the global batch's values. Frozen BatchNorms
keep theirs. An adder layer trained without any of this (a plain
keras.Model fitted without the callback) warns once (docs/batchnorm.md).
"""
from adder_tf.batchnorm.fit import BatchNormReestimation, ReestimatingFit
from adder_tf.batchnorm.statistics import DEFAULT_STEPS, reestimate, reestimated_layers

__all__ = ["reestimate", "reestimated_layers", "BatchNormReestimation", "ReestimatingFit",
           "DEFAULT_STEPS"]
