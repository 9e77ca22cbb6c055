"""TensorFlow as every Keras student (QKeras, HGQ2) trains: its thread pools and graph options, set by the model
adapters' ``build`` (``models/backend.py``) before the first model exists, and recorded in the student metrics'
``runtime``."""
from __future__ import annotations

from ..console import warn


def tf_runtime(tf) -> dict:
    """TensorFlow's intra- and inter-op pool sizes (0: one thread per core) and whether grappler's arithmetic
    optimizer was on (``keras_runtime``)."""
    t = tf.config.threading
    return {"tensorflow_intra_op": t.get_intra_op_parallelism_threads(),
            "tensorflow_inter_op": t.get_inter_op_parallelism_threads(),
            "tensorflow_arithmetic_optimization": tf.config.optimizer.get_experimental_options().get(
                "arithmetic_optimization", True)}


def keras_runtime(tf, s) -> None:
    """TensorFlow as every Keras student trains (QKeras and HGQ2), set by the backends' ``build`` before the first
    model exists. (1) ``student.threads`` for the intra- and inter-op pools: TensorFlow fixes them when its runtime
    starts, so where it started earlier in this process with other pools, say so instead of ignoring the key.
    (2) Grappler's arithmetic optimizer off: it regroups chains of additions in an order that changes from one
    process to the next, so HGQ2 students with the EBOPs penalty (whose gradients sum several terms) came out with
    different weights run to run for the same seed and inputs, even on one thread (benchmarks/hgq_determinism.py;
    benchmarks/history/front.md, "The 10k-LUT target reached"). With it off they are reproducible; the other graph rewrites stay on."""
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    if not s.threads:
        return
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(s.threads)
        threading.set_inter_op_parallelism_threads(s.threads)
    except RuntimeError:  # the runtime has started: its pools cannot be resized
        have = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
        if have != (s.threads, s.threads):
            warn(f"student.threads={s.threads} not applied: TensorFlow started earlier in this process with "
                 f"intra/inter-op pools {have[0]}/{have[1]} (0 = one per core)")
