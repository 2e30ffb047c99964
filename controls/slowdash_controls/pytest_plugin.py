"""pytest fixtures for testing control scripts against simulated devices.

Enable them in the top-level ``conftest.py`` of your tests::

    pytest_plugins = ["slowdash_controls.pytest_plugin"]

(pytest accepts ``pytest_plugins`` only in the top-level conftest; in a nested one, import
the fixtures you use instead: ``from slowdash_controls.pytest_plugin import fake_instrument``.)

Async fixtures need pytest-trio (``trio_mode = true``, or ``@pytest.mark.trio`` on the tests):

- ``fake_instrument``: a :class:`~slowdash_controls.testing.FakeScpiInstrument` (a
  :class:`~slowdash_controls.testing.SimulatedPowerSupply`) listening on 127.0.0.1;
  ``inst.port`` for ``ctrl.ethernet("127.0.0.1", inst.port)``, ``inst.ethernet()`` for a node,
  ``inst.ethernet(memory=True)`` for one over memory streams (usable with ``autojump_clock``);
- ``fake_serial_device``: a :class:`~slowdash_controls.testing.FakeSerialDevice` on a pty;
  ``dev.port`` for ``ctrl.serial(dev.port)``.

For sync tests (a plain script's code, no Trio in the test):

- ``fake_instrument_in_thread``: the same instrument, run by a Trio loop in a thread of its own.

This module imports pytest; ``slowdash_controls`` itself never imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from .testing import (
    FakeScpiInstrument,
    FakeSerialDevice,
    open_fake_instrument,
    open_fake_serial_device,
    run_in_thread,
)

__all__ = ["fake_instrument", "fake_instrument_in_thread", "fake_serial_device"]


@pytest.fixture
async def fake_instrument() -> AsyncIterator[FakeScpiInstrument]:
    """A simulated SCPI power supply on 127.0.0.1 (and over memory streams)."""
    async with open_fake_instrument() as instrument:
        yield instrument


@pytest.fixture
async def fake_serial_device() -> AsyncIterator[FakeSerialDevice]:
    """A simulated SCPI power supply behind a pseudo-terminal (``.port`` is its path)."""
    async with open_fake_serial_device() as device:
        yield device


@pytest.fixture
def fake_instrument_in_thread() -> Iterator[FakeScpiInstrument]:
    """A simulated SCPI power supply on 127.0.0.1, served from a thread (for sync tests)."""
    with run_in_thread(FakeScpiInstrument()) as instrument:
        yield instrument
