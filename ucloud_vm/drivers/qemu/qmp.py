"""The QMP monitor of one qemu: a typed method per command the driver uses, and its events.

Built on qemu.qmp's QMPClient: commands are pipelined on one connection, events (which may arrive
before a command's return) are kept for `wait_event`. All Monitors run on one asyncio loop in a
daemon thread, so any thread may call them, concurrently. A qemu QMP socket serves one connection
at a time (a second waits, unanswered, until the first closes): keep one Monitor per qemu.
"""

import asyncio
import atexit
import contextlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

from qemu import qmp as qemu_qmp

from ucloud_vm.driver import HypervisorError

T = TypeVar("T")

# qemu.qmp logs what it also raises (end-of-file, dropped late replies); the errors below tell it.
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_open: "weakref.WeakSet[Monitor]" = weakref.WeakSet()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="qmp", daemon=True).start()
        return _loop


@atexit.register
def _close_all() -> None:
    """Disconnect cleanly at exit (else asyncio complains of destroyed pending tasks)."""
    for monitor in list(_open):
        monitor.close()


class QMPError(HypervisorError):
    """The QMP socket or protocol failed, or qemu refused a command (then `error_class` is its
    QMP error class, e.g. "DeviceNotFound", and the connection stays usable)."""

    def __init__(self, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class


class _Recorder(qemu_qmp.EventListener):
    """Keeps the last events (qemu.qmp's own listeners keep every event for ever)."""

    def __init__(self) -> None:
        super().__init__()
        self.recent: deque[dict[str, Any]] = deque(maxlen=256)

    async def put(self, event: qemu_qmp.Message) -> None:
        self.recent.append(dict(event))


class Monitor:
    """A connection to the QMP socket at `path`, negotiated on construction (QMPError if that
    fails within `connect_timeout` seconds). Commands wait up to `timeout` seconds for their
    return and raise QMPError on a socket, protocol or qemu error. close() ends the connection."""

    def __init__(self, path: str, timeout: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._client = qemu_qmp.QMPClient(path)
        self._client.events.event_filter = lambda _: False  # the recorder keeps them instead
        self._recorder = _Recorder()
        self._client.register_listener(self._recorder)
        self._run("connect", self._client.connect(path), connect_timeout)
        _open.add(self)

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, what: str, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(work, _event_loop())
        try:
            return future.result(timeout or self.timeout)
        except TimeoutError:
            future.cancel()
            raise QMPError(f"QMP {what} on {self.path}: timed out") from None
        except qemu_qmp.ExecuteError as error:
            raise QMPError(f"QMP {what}: {error}", error.error_class) from None
        except (qemu_qmp.QMPError, OSError, EOFError) as error:
            raise QMPError(f"QMP {what} on {self.path}: {error}") from None

    @property
    def connected(self) -> bool:
        """False once qemu closed the connection (it quit or died) or close() was called."""
        return self._client.runstate is qemu_qmp.Runstate.RUNNING

    def close(self) -> None:
        """End the connection. Idempotent; never raises (the EOFError that follows `quit` and
        the error that ended a lost connection are dropped)."""
        _open.discard(self)
        with contextlib.suppress(QMPError):
            self._run("disconnect", self._client.disconnect())

    def execute(self, command: str, timeout: float | None = None, **arguments: Any) -> Any:
        """Run any QMP command; returns its `return` value. Prefer the typed methods below."""
        return self._run(command, self._client.execute(command, arguments or None), timeout)

    # -- commands ------------------------------------------------------------------------------

    def status(self, timeout: float | None = None) -> str:
        """query-status: the run state, e.g. "running", "paused", "prelaunch", or "shutdown" (the
        guest powered off and qemu, started with -no-shutdown, waits to be told to quit)."""
        return self.execute("query-status", timeout)["status"]

    def system_powerdown(self) -> None:
        """Press the ACPI power button. Returns at once; a guest that heeds it powers off later
        (event SHUTDOWN). POWERDOWN is emitted, possibly before this returns."""
        self.execute("system_powerdown")

    def system_reset(self) -> None:
        """Hard reset: the guest boots again in the same process (event RESET)."""
        self.execute("system_reset")

    def quit(self, timeout: float | None = None) -> None:
        """End qemu: it flushes and closes its disks, emits SHUTDOWN and closes the connection
        (`connected` turns False; close() is still to be called). qemu may exit before its return
        reaches us: that counts as success too."""
        try:
            self.execute("quit", timeout)
        except QMPError as error:
            if error.error_class is not None or self.connected:
                raise

    def getfd(self, name: str, fd: int) -> None:
        """Send qemu a copy of descriptor `fd` (SCM_RIGHTS) and have it kept as `name`, for a
        command that takes it by name (netdev_add's `fd`), which then owns it. A name given
        again replaces the earlier descriptor. The caller still closes its own `fd`."""

        async def give() -> None:
            # On the loop's thread: the socket is the loop's, and no command is half sent.
            self._client.send_fd_scm(fd)
            await self._client.execute("getfd", {"fdname": name})

        self._run("getfd", give())

    def closefd(self, name: str) -> None:
        """Close the descriptor kept as `name` (QMPError if there is none)."""
        self.execute("closefd", fdname=name)

    def netdev_add(self, id: str, type: str, **options: Any) -> None:
        """Create a network backend (e.g. type "tap" with `ifname`); QMPError if `id` exists."""
        self.execute("netdev_add", id=id, type=type, **options)

    def netdev_del(self, id: str) -> None:
        """Remove a network backend; QMPError if there is none or a device still uses it."""
        self.execute("netdev_del", id=id)

    def device_add(self, driver: str, id: str, **properties: Any) -> None:
        """Hot-plug a device (e.g. driver "virtio-net-pci" with `netdev`, `mac`, `bus`)."""
        self.execute("device_add", driver=driver, id=id, **properties)

    def device_del(self, id: str) -> None:
        """Ask for a hot-unplug. For PCI the guest must release the device first: it is gone
        only at the event DEVICE_DELETED with data {"device": id}. Asking again while the guest
        thinks is a QMPError, and so is an unknown id (error_class "DeviceNotFound")."""
        self.execute("device_del", id=id)

    def peripherals(self) -> list[str]:
        """The ids of the devices added with an id (the children in qom-list of
        /machine/peripheral), e.g. ["rp0", "nic-525400000001"]."""
        found = self.execute("qom-list", path="/machine/peripheral")
        return [child["name"] for child in found if child["type"].startswith("child<")]

    # -- events --------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """The events received since the last call (at most the last 256), oldest first, each
        {"event": name, "data": {...}, "timestamp": {...}}; they are forgotten. Call it before
        an action whose event is awaited, so that an earlier one is not taken for it."""

        async def take() -> list[dict[str, Any]]:
            taken = list(self._recorder.recent)
            self._recorder.recent.clear()
            return taken

        return self._run("events", take())

    def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any] | None:
        """The oldest kept event called `name` whose data has these items (it is forgotten),
        waiting up to `timeout` seconds for one to arrive; None if none did. QMPError if the
        connection is lost meanwhile (qemu died: no event will come)."""

        def matches(event: dict[str, Any]) -> bool:
            got = event.get("data", {})
            return event["event"] == name and all(got.get(k) == v for k, v in data.items())

        async def wait() -> dict[str, Any] | None:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                for event in self._recorder.recent:
                    if matches(event):
                        self._recorder.recent.remove(event)
                        return event
                if not self.connected:
                    raise EOFError("connection closed")
                if asyncio.get_running_loop().time() >= deadline:
                    return None
                await asyncio.sleep(0.01)

        return self._run(f"wait for {name}", wait(), timeout + self.timeout)
