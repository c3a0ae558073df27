"""The host agent: liveness lease, registration, usage reports.

The liveness key /v1/alive/<hostname> lives on a lease with a short TTL; its deletion is the
host's death signal. The lease id is kept in <run_dir>/host/<hostname>.lease so a restarted agent
(upgrade, kill -9) takes over the same lease if it is still valid: a restart within the TTL does
not make the host look dead.
"""

import logging
import threading
import time

from common import fence, model
from common.config import Config
from common.errors import UcloudError
from common.records import Host
from common.store import Store, Transaction, keys
from common.store.session import Session
from ucloud_host import capacity
from ucloud_host.driver import HostFacts

log = logging.getLogger(__name__)


class HostAgent:
    def __init__(self, store: Store, config: Config, facts: HostFacts) -> None:
        self.store = store
        self.config = config
        self.facts = facts
        self.hostname: str = config.hostname
        self.stop = threading.Event()
        self.session: Session | None = None
        self.lease_file = fence.lease_file(config.run_dir, self.hostname)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._join()
                self._serve()
            except UcloudError as error:
                log.warning("etcd trouble: %s; retrying", error)
                self.stop.wait(1.0)
        if self.session is not None:
            # Keep the lease: a restarted agent adopts it; otherwise it lapses after the TTL.
            self.session.close(revoke=False)

    def _join(self) -> None:
        """Adopt our previous lease if it still lives, else take a new one; then register."""
        if self.session is None or self.session.lost.is_set():
            self.session = self._adopt() or self._new_session().start()
        caps = capacity.detect(self.config, self.facts)
        lease_id = self.session.lease_id
        lease = f"{lease_id:x}"

        def register(record: Host) -> Host:
            if record.get("status") != model.ALIVE:
                log.info(
                    "host %s is ALIVE (cpu %d, ram %d, disk %d)",
                    self.hostname,
                    caps["cpu"],
                    caps["ram"],
                    caps["disk"],
                )
                record["alive_since"] = model.now()
            if record.get("lease") not in (None, lease):
                # Our previous lease is gone: this host was dead for the cloud, even if the
                # scheduler did not mark it so before it came back (evacuation.py counts it).
                record["rejoined"] = model.now()
            record.update(
                {
                    "hostname": self.hostname,
                    "status": model.ALIVE,
                    "capacity": caps,
                    "lease_ttl": self.config.host_lease_ttl,
                    "underlay": self.config.underlay_address or None,
                    "lease": lease,
                }
            )
            return record

        def join(txn: Transaction) -> None:
            # One transaction: nobody sees the liveness key without the record that goes with
            # it (the scheduler would count a host back on a new lease as an ordinary one).
            entry = txn.get(keys.host(self.hostname))
            record: Host = entry.copy_value() if entry else {"registered": model.now()}
            record = register(record)
            txn.put(keys.alive(self.hostname), {"hostname": self.hostname}, lease=lease_id)
            txn.put(keys.host(self.hostname), record)

        self.store.transact(join)

    def _new_session(self) -> Session:
        # Refresh often: the VM agent fences when no refresh came for TTL - fence_margin, so
        # every second between the last refresh and an etcd stall is a second less of stall
        # the host survives.
        ttl = self.config.host_lease_ttl
        return Session(self.store, ttl, interval=min(ttl / 6, 0.5), on_refresh=self._publish)

    def _publish(self, session: Session) -> None:
        fence.write(self.lease_file, fence.LeaseState(session.lease_id, session.expires_at))

    def _adopt(self) -> Session | None:
        previous = fence.read(self.lease_file)
        if previous is None:
            return None
        session = self._new_session()
        if session.adopt(previous.lease_id):
            log.info("took over lease %x of the previous agent", previous.lease_id)
            return session
        return None

    def _serve(self) -> None:
        """Report usage now and then until the lease is lost (then re-join) or we stop."""
        assert self.session is not None
        next_report = 0.0
        while not self.stop.is_set():
            if time.monotonic() >= next_report:
                self._report()
                next_report = time.monotonic() + self.config.host_report_interval
            if self.session.lost.wait(0.5):
                log.warning("lease lost; re-registering")
                return

    def _report(self) -> None:
        measured = capacity.usage(self.config, self.facts)

        def report(record: Host) -> Host:
            record["usage"] = measured
            record["reported"] = model.now()
            return record

        self.store.update(keys.host(self.hostname), report)
