"""ucloud-meta's agent: a metadata server on every bridge of this host's networks, answering
each VM with its own data only (callers.py decides who is calling)."""

import logging
import threading

from common import ipam, netnames
from common.config import Config
from common.records import VM
from common.runner import Runner
from common.store import Store, keys
from common.store.mirror import Mirror
from common.tenantlinks import TenantLinks
from ucloud_meta import callers, documents
from ucloud_meta.documents import NOT_FOUND, Answer
from ucloud_meta.server import BridgeServer, Caller

log = logging.getLogger(__name__)

SOON, IDLE = 0.1, 2.0  # seconds to the next pass: a bridge is missing / all served


class MetaAgent:
    def __init__(self, store: Store, config: Config, links: TenantLinks) -> None:
        self.store = store
        self.hostname = config.hostname
        self.port: int = config.metadata_port
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.vms = Mirror(store, keys.VM, changed=self.wake)
        self.links = links
        self.servers: dict[str, BridgeServer] = {}
        self.nics: dict[tuple[int, str], callers.Nic] = {}  # (vni, address) -> NIC
        self.present: set[callers.Nic] = set()

    def run(self) -> None:
        self.vms.start()
        Runner("ucloud-meta", self.reconcile, [self.vms], self.wake, self.stop, IDLE).run()
        for server in self.servers.values():
            server.stop()
        self.vms.stop()

    def reconcile(self) -> float | None:
        """A server on every bridge of this host's networks; back soon while a bridge is
        missing."""
        vms: list[VM] = [entry.value for entry in self.vms.values()]
        self.nics = callers.index(self.hostname, vms)
        self.present = set(self.nics.values())
        wanted = {netnames.bridge(vni) for vni in ipam.host_networks(self.hostname, vms)}
        for bridge in set(self.servers):
            if bridge not in wanted or not self.servers[bridge].bound():
                self.servers.pop(bridge).stop()
                log.info("metadata on %s stopped", bridge)
        missing = False
        for bridge in wanted - set(self.servers):
            if self.links.ensure_address(bridge, netnames.METADATA_LINK_LOCAL) is None:
                missing = True
                continue
            self.servers[bridge] = BridgeServer(
                bridge, netnames.METADATA_LINK_LOCAL, self.port, self
            )
            log.info("metadata on [%s%%%s]:%d", netnames.METADATA_LINK_LOCAL, bridge, self.port)
        return SOON if missing else None

    def identify(self, bridge: str, source: str) -> callers.Nic | None:
        address = callers.normal(source)
        vni = netnames.bridge_vni(bridge)
        nic = self.nics.get((vni, address)) if vni is not None else None
        if nic is None:
            return None
        if not callers.genuine(self.links, bridge, address, nic):
            log.warning("refused %s on %s: not behind the tap of VM %s", address, bridge, nic.vm)
            return None
        return nic

    def answer(self, caller: Caller, path: str) -> Answer:
        assert isinstance(caller, callers.Nic)
        if caller not in self.present:
            return NOT_FOUND  # detached or moved since the connection was made
        vm = self.vms.entries.get(keys.vm(caller.vm))
        data = self.store.get(keys.vm_data(caller.vm))
        if vm is None or data is None:
            return NOT_FOUND
        return documents.answer(path, vm.value, data.value)
