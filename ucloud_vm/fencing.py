"""Self-fencing: kill every VM of this host before the host's lease can expire at etcd.

The host agent publishes its lease after every keep-alive (common/fence.py). If no refresh came
for TTL - fence_margin seconds (etcd unreachable, ucloud-host dead or hung), this host may be
declared dead any moment and its VMs restarted elsewhere, so they are killed now. VMs start only
while the lease is fresh, and only after a transaction that compares the host's liveness key with
that very lease (agent.py), so a host that comes back never restarts a VM that moved away.
"""

import logging
import threading
from pathlib import Path

from prometheus_client import Counter

from common import fence
from ucloud_vm.driver import Hypervisor

log = logging.getLogger(__name__)

FENCED = Counter("ucloud_vm_fenced_total", "times this host killed its VMs to fence itself")


class Fencer:
    def __init__(self, lease_path: Path, margin: float, driver: Hypervisor) -> None:
        self.lease_path = lease_path
        self.margin = margin
        self.driver = driver
        self._lease: int | None = None
        self._lock = threading.Lock()

    def current_lease(self) -> int | None:
        """The host's lease while it is fresh enough to run VMs under; None when fenced."""
        state = fence.read(self.lease_path)
        if state is None or state.remaining() <= self.margin:
            return None
        return state.lease_id

    @property
    def fenced(self) -> bool:
        """The last check found the lease stale."""
        with self._lock:
            return self._lease is None

    def check(self) -> list[str]:
        """One watchdog tick: fence if the lease is (about to be) stale; returns the VMs
        killed."""
        lease = self.current_lease()
        with self._lock:
            was, self._lease = self._lease, lease
        if lease is not None:
            if was is None:
                log.info("host lease %x is fresh: VMs may run", lease)
            return []
        killed = self.driver.fence()
        if killed:
            FENCED.inc()
            log.error(
                "host lease stale (no refresh for too long): killed %d VM(s): %s",
                len(killed),
                ", ".join(killed),
            )
        elif was is not None:
            log.error("host lease stale: fenced (no VMs were running)")
        return killed
