"""Fixtures shared by the test files."""

import signal

import pytest


@pytest.fixture
def sigint_handler():
    """The test's own Ctrl-C handler back afterwards, whatever the script installed."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)
