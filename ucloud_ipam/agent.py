"""The host's router: the gateway address on every bridge of its networks, and router
advertisements on them (ra.py)."""

import logging
import threading

from common import ipam, netnames
from common.config import Config
from common.records import VM
from common.runner import Runner
from common.store import Store, keys
from common.store.mirror import Mirror
from common.tenantlinks import TenantLinks
from ucloud_ipam.ra import Advert, Sender

log = logging.getLogger(__name__)

SOON, IDLE = 0.1, 2.0  # seconds to the next pass: a bridge is missing / all served


class IpamAgent:
    def __init__(self, store: Store, config: Config, links: TenantLinks) -> None:
        self.hostname = config.hostname
        self.dns: list[str] = config.network_dns
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.vms = Mirror(store, keys.VM, changed=self.wake)
        self.links = links
        self.sender = Sender(links)
        # (vni, mac) of the NICs served; None before the first pass
        self._nics: set[tuple[int, str]] | None = None

    def run(self) -> None:
        self.vms.start()
        Runner("ucloud-ipam", self.reconcile, [self.vms], self.wake, self.stop, IDLE).run()
        self.vms.stop()
        self.sender.close()

    def reconcile(self) -> float | None:
        """Serve every network whose bridge exists; while a bridge is still missing (ucloud-net
        is about to make it), come back soon, so a new NIC is served before its guest asks."""
        vms: list[VM] = [entry.value for entry in self.vms.values()]
        networks = ipam.host_networks(self.hostname, vms)
        ready = [net for net in networks.values() if self._gateway(net["vni"])]
        self.sender.serve(
            Advert(net["vni"], net["prefix"], net["mtu"], tuple(self.dns)) for net in ready
        )
        self._burst_for_new_nics(vms, {net["vni"] for net in ready})
        return SOON if len(ready) < len(networks) else None

    def _burst_for_new_nics(self, vms: list[VM], ready: set[int]) -> None:
        """A NIC new on a served bridge (a hot attach, a VM arriving) gets frequent RAs for a
        few seconds, so its guest need not wait for its own router solicitation."""
        nics = {
            (nic["vni"], nic["mac"])
            for _, nic in ipam.host_nics(self.hostname, vms)
            if nic["vni"] in ready
        }
        if self._nics is not None:
            for vni in {vni for vni, _ in nics - self._nics}:
                self.sender.burst(netnames.bridge(vni))
        self._nics = nics

    def _gateway(self, vni: int) -> bool:
        """fe80::1 on the network's bridge (made by ucloud-net); False while it is missing."""
        name = netnames.bridge(vni)
        if self.links.ensure_address(name, netnames.GATEWAY_LINK_LOCAL) is None:
            return False
        self.links.refuse_router_adverts(name)
        return True
