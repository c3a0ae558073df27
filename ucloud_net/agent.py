"""The network agent: level-triggered (common/runner.py). Mirrors of /v1/vm/ and /v1/host/ wake
the loop (plus a 2 s tick); each pass computes the links this host should have
(plan.desired), compares them with what the kernel has (driver.observe) and applies the
difference. A restarted agent therefore repairs drift and never duplicates a link."""

import logging
import threading
from collections.abc import Callable

from prometheus_client import Counter

from common.runner import Runner
from common.store import Store, keys
from common.store.mirror import Mirror
from ucloud_net import plan
from ucloud_net.driver import NetworkDriver

log = logging.getLogger(__name__)

STEPS = Counter("ucloud_net_steps_total", "link changes applied", ["action", "result"])


class NetAgent:
    def __init__(self, store: Store, hostname: str, driver: NetworkDriver) -> None:
        self.hostname = hostname
        self.driver = driver
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.vms = Mirror(store, keys.VM, changed=self.wake)
        self.hosts = Mirror(store, keys.HOST, changed=self.wake)

    def run(self) -> None:
        for mirror in (self.vms, self.hosts):
            mirror.start()
        Runner(
            "ucloud-net", self.reconcile, [self.vms, self.hosts], self.wake, self.stop, 2.0
        ).run()
        for mirror in (self.vms, self.hosts):
            mirror.stop()

    def reconcile(self) -> None:
        want = plan.desired(
            self.hostname,
            (e.value for e in self.vms.values()),
            (e.value for e in self.hosts.values()),
        )
        for step in plan.steps(want, self.driver.observe()):
            self._apply(step)

    def _apply(self, step: plan.Step) -> None:
        calls: dict[str, Callable[[], None]] = {
            "add_network": lambda: self.driver.add_network(step.vni, step.mtu),
            "del_network": lambda: self.driver.del_network(step.vni),
            "add_tap": lambda: self.driver.add_tap(step.name, step.vni, step.mtu),
            "del_tap": lambda: self.driver.del_tap(step.name),
            "add_peer": lambda: self.driver.add_peer(step.vni, step.peer),
            "del_peer": lambda: self.driver.del_peer(step.vni, step.peer),
        }
        try:
            calls[step.action]()
            STEPS.labels(step.action, "ok").inc()
            log.info("%s vni %d %s%s", step.action, step.vni, step.name, step.peer)
        except Exception as error:
            STEPS.labels(step.action, "failed").inc()
            log.warning(
                "%s vni %d %s%s failed: %s", step.action, step.vni, step.name, step.peer, error
            )
