"""The firewall agent: level-triggered (common/runner.py) on mirrors of /v1/vm/ and /v1/host/.
Each pass computes this host's policy (policy.desired) and has the driver put it in force in one
atomic step; the driver skips a pass that changes nothing. Then it marks the ports in force
(`netnames.firewall_marks`): ucloud-vm plugs a NIC into its tap only once the mark is there, so
a NIC never sends before its rules exist. A restarted agent re-applies everything at once; the
rules in the kernel stay in force while it is away."""

import logging
import threading
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily

from common import netnames
from common.config import Config
from common.runner import Runner
from common.store import Store, keys
from common.store.mirror import Mirror
from ucloud_firewall import policy
from ucloud_firewall.driver import Firewall

log = logging.getLogger(__name__)


class FirewallAgent:
    def __init__(self, store: Store, config: Config, driver: Firewall) -> None:
        self.config = config
        self.driver = driver
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.vms = Mirror(store, keys.VM, changed=self.wake)
        self.hosts = Mirror(store, keys.HOST, changed=self.wake)
        self.marks = netnames.firewall_marks(config.run_dir)
        self.ports: dict[str, str] = {}  # tap -> VM uuid, of the policy in force
        REGISTRY.register(_DropCollector(self))

    def run(self) -> None:
        for mirror in (self.vms, self.hosts):
            mirror.start()
        Runner(
            "ucloud-firewall", self.reconcile, [self.vms, self.hosts], self.wake, self.stop, 2.0
        ).run()
        for mirror in (self.vms, self.hosts):
            mirror.stop()

    def reconcile(self) -> None:
        wanted = policy.desired(
            self.config.hostname,
            (e.value for e in self.vms.values()),
            (e.value for e in self.hosts.values()),
            self.config.metadata_port,
            default_deny=self.config.firewall_default_ingress == "deny",
            underlay_interface=self.config.underlay_interface,
        )
        if self.driver.apply(wanted):
            log.info(
                "rules in force for %d port(s), %d peer(s)", len(wanted.ports), len(wanted.peers)
            )
        self.ports = {port.tap: port.vm for port in wanted.ports}
        self._mark(set(self.ports))

    def _mark(self, taps: set[str]) -> None:
        """One empty file per port in force; stale ones removed."""
        self.marks.mkdir(parents=True, exist_ok=True)
        present = {path.name for path in self.marks.iterdir()}
        for tap in taps - present:
            (self.marks / tap).touch()
        for tap in present - taps:
            (self.marks / tap).unlink(missing_ok=True)


class _DropCollector:
    """Drop counters read from the kernel at scrape time (the kernel keeps them, not us)."""

    def __init__(self, agent: FirewallAgent) -> None:
        self.agent = agent

    def collect(self) -> Any:
        drops = self.agent.driver.drops()
        by_class = CounterMetricFamily(
            "ucloud_firewall_dropped_packets", "packets dropped, by rule class", labels=["rule"]
        )
        for name, packets in sorted(drops.by_class.items()):
            by_class.add_metric([name], packets)
        by_port = CounterMetricFamily(
            "ucloud_firewall_port_dropped_packets",
            "packets dropped, by VM port",
            labels=["tap", "vm"],
        )
        for tap, packets in sorted(drops.by_port.items()):
            by_port.add_metric([tap, self.agent.ports.get(tap, "")], packets)
        yield by_class
        yield by_port
