"""SIGTERM handled like Ctrl-C: raised as ``Terminated`` in the main thread, remembered while a run watches."""

from __future__ import annotations

import os
import signal

import pytest

from graft.base.signals import Terminated, exit_code, sigterm_as_interrupt, what
from graft.runs.interrupts import InterruptWatch


def test_sigterm_raises_terminated_within_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler before the next line
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_handler_of_the_caller_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("mine"))
    try:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["mine"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_terminated_is_an_interrupt_with_its_own_exit_code_and_words():
    assert isinstance(Terminated(), KeyboardInterrupt)
    assert (exit_code(Terminated()), what(Terminated())) == (143, "terminated (SIGTERM)")
    assert (exit_code(KeyboardInterrupt()), what(KeyboardInterrupt())) == (130, "interrupted")


def test_the_run_s_watch_remembers_a_sigterm_and_raises_it_again():
    before = signal.getsignal(signal.SIGTERM)
    watch = InterruptWatch()
    with pytest.raises(Terminated), sigterm_as_interrupt(), watch.watching():
        os.kill(os.getpid(), signal.SIGTERM)
    assert watch.requested and watch.terminated
    with pytest.raises(Terminated):  # what the Keras callback calls at the next batch end, if TF swallowed it
        watch.check()
    assert signal.getsignal(signal.SIGTERM) is before
