"""Importing TensorFlow for a command, without its C++ start-up chatter on the terminal."""

from __future__ import annotations

import os


def import_tensorflow() -> None:
    """Import TensorFlow with its oneDNN/CUDA start-up lines kept off stderr.

    Those lines are written to file descriptor 2 before TensorFlow's log level applies, so the
    import and the first device probe run with fd 2 pointed at /dev/null. An import error is
    still raised (and printed) after fd 2 is restored. Commands call this after checking their
    arguments, so a usage error answers without paying for the import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
