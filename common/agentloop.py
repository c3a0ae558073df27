"""The level-triggered loop of a host agent that follows the VM records (ucloud-ipam,
ucloud-meta): wait for the mirror's first listing, then reconcile on every change and
periodically. A pass that reports a missing piece (a bridge ucloud-net is about to make) is
repeated after 0.1 s, so a new NIC is served before its guest asks."""

import logging
import threading
from collections.abc import Callable

from pyroute2.netlink.exceptions import NetlinkError

from common.errors import UcloudError
from common.store.mirror import Mirror

log = logging.getLogger(__name__)

SOON, IDLE = 0.1, 2.0


def reconcile_until_stopped(
    mirror: Mirror, stop: threading.Event, wake: threading.Event, reconcile: Callable[[], bool]
) -> None:
    """`reconcile` returns True while something it needs is still missing."""
    while not mirror.wait_synced(0.5):
        if stop.is_set():
            return
    while not stop.is_set():
        wake.clear()
        missing = False
        try:
            missing = reconcile()
        except (UcloudError, OSError, NetlinkError) as error:
            log.warning("reconcile pass failed: %s", error)
        wake.wait(SOON if missing else IDLE)
