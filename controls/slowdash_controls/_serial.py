"""Serial ports (``ctrl.serial(port, baudrate)``), Trio-native, with the same API as Ethernet.

::

    dev = ctrl.serial("/dev/ttyUSB0", baudrate=9600, parity="E")   # pyserial's settings
    dev.set("*IDN?\\n"); dev.do_get_line()
    dev.scpi().command("MEAS:V0").get()

pyserial opens and configures the port (baud rate, byte size, parity, stop bits, flow
control: any ``serial.Serial`` keyword), in a worker thread. Then ``VMIN=1, VTIME=0`` is set with
termios (pyserial leaves ``VMIN=0``, on which a read with nothing waiting returns zero bytes, and
Trio would take that for the end of the stream), pyserial's descriptor is duplicated and
pyserial closes its own, and all I/O goes through a ``trio.lowlevel.FdStream`` on the
duplicate: waiting is a plain Trio checkpoint, so timeouts and cancellation work as on TCP.
Everything else (lines, SCPI, Telnet, timeouts, reconnects, stale exchanges) is the stream
transport of :mod:`slowdash_controls._ethernet`. POSIX only.

A port that cannot be opened raises :class:`DeviceConnectionError` naming it; a device that
goes away (a USB adapter unplugged) breaks the link, and the port is reopened on the next use,
with back-off while that fails.
"""

from __future__ import annotations

import os
import termios
from typing import Any

import serial
import trio

from ._ethernet import MAX_LINE_LENGTH, StreamNode

__all__ = ["SerialNode"]


class SerialNode(StreamNode):
    """A serial port: ``set(value)`` sends text or bytes, ``get()`` receives a chunk,
    ``do_get_line()``, ``do_flush_input()``, ``scpi()`` and ``telnet()`` as on Ethernet.

    ``pyserial_kwargs`` are ``serial.Serial`` settings (``bytesize``, ``parity``,
    ``stopbits``, ``xonxoff``, ``rtscts``, ``exclusive``...); they are checked here, so a
    bad setting fails when the node is made, not on first use. pyserial's own ``timeout`` and
    SlowPy's ``polling_interval`` are not used (the node's ``timeout`` bounds each operation).
    """

    def __init__(
        self,
        port: str = "/dev/ttyUSB0",
        baudrate: int = 9600,
        *,
        timeout: float | None = 10.0,
        connect_timeout: float = 5.0,
        max_line_length: int = MAX_LINE_LENGTH,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        **pyserial_kwargs: Any,
    ) -> None:
        pyserial_kwargs.pop("polling_interval", None)  # SlowPy's read timeout; not needed here
        pyserial_kwargs.pop("write_timeout", None)
        pyserial_kwargs.pop("inter_byte_timeout", None)
        serial.Serial(None, baudrate, **pyserial_kwargs)  # validates; opens nothing
        self.port = port
        self.baudrate = baudrate
        self.pyserial_kwargs = pyserial_kwargs
        super().__init__(
            port,
            self._open_port,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_line_length=max_line_length,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    async def _open_port(self) -> trio.abc.Stream:
        fd = await trio.to_thread.run_sync(
            open_serial_fd, self.port, self.baudrate, self.pyserial_kwargs
        )
        return trio.lowlevel.FdStream(fd)


def open_serial_fd(port: str, baudrate: int, pyserial_kwargs: dict[str, Any]) -> int:
    """Open ``port`` with pyserial and return a descriptor of it set to ``VMIN=1, VTIME=0``.

    Blocking (termios, ioctls): run it in a worker thread. The caller owns the descriptor.
    """
    port_handle = serial.Serial(port, baudrate, **pyserial_kwargs)
    try:
        fd = port_handle.fileno()
        attributes = termios.tcgetattr(fd)
        attributes[6][termios.VMIN] = 1
        attributes[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attributes)
        return os.dup(fd)
    finally:
        port_handle.close()
