"""Import TensorFlow without its start-up chatter on stderr.

TensorFlow's C++ runtime prints oneDNN/CUDA notices before its logging is
initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide them; every worker would print
them. We silence file descriptor 2 for the import only (PERENNIAL_TF_LOGS=1 keeps
them), and hide CUDA devices when no GPU was asked for. Its thread pools are sized once
per process (`configure_threads`, to the CPUs a worker was given: `cpu_count`).
"""

from __future__ import annotations

import os
import sys


def import_tensorflow(threads: int = 0):
    """The `tensorflow` module, imported quietly on first use.

    `threads` > 0 sizes TensorFlow's intra-op pool (and inter-op to at most 2)
    before the runtime starts; it has no effect once TensorFlow is running.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get("PERENNIAL_TF_LOGS"):
        import tensorflow as tf

        _set_threads(tf, threads)
        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        _set_threads(tf, threads)
        tf.constant(0)  # initialises the runtime (and prints the rest) while muted
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


def _set_threads(tf, threads: int) -> None:
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))


_THREADS_SET = False


def configure_threads(num_threads: int) -> None:
    """Size TensorFlow's pools to the CPUs this process was given (first call wins)."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    import_tensorflow(threads=max(1, int(num_threads)))
    _THREADS_SET = True


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
