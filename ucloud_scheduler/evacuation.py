"""Whether the VMs of a dead host are restarted elsewhere now, or wait: pure logic, no I/O.

One dead host is a host failure: its VMs restart elsewhere at once (the host fenced itself
before its lease could expire, docs/failover.md). When more than `share` of the hosts died within
`grace` seconds, the likely fault is the control plane's or the network's (an etcd stall longer
than the hosts tolerate, a partition between etcd and the racks), not that many host failures at
once. Those hosts have killed their VMs and start them again in place as soon as they reach etcd;
moving every VM at once would only crowd the few hosts left and shuffle the whole cloud. So, as
Kubernetes' node lifecycle controller stops evicting when a whole zone is unhealthy, their VMs
stay assigned to them until `grace` has passed since their death; a host still dead then is
evacuated as usual. Waiting can never run a VM twice: it only delays a restart.

Hosts that lost their lease and are back already count as having died too: after a stall they
race the scheduler, and those that rejoin before it marks them DEAD must not make the few it did
mark look like ordinary single failures.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from common import model


@dataclass(frozen=True)
class HostState:
    name: str
    status: str  # model.ALIVE or model.DEAD
    dead_for: float | None  # seconds since it was marked DEAD (None: unknown or alive)
    back_for: float | None = None  # seconds since it came back on a new lease (None: never)


@dataclass(frozen=True)
class MassFailure:
    share: float = 0.5
    grace: float = 30.0

    def held(self, hosts: Iterable[HostState]) -> set[str]:
        """The dead hosts whose VMs stay put for now."""
        hosts = list(hosts)
        recent = {
            h.name
            for h in hosts
            if h.status == model.DEAD and h.dead_for is not None and h.dead_for < self.grace
        }
        back = sum(
            1
            for h in hosts
            if h.status == model.ALIVE and h.back_for is not None and h.back_for < self.grace
        )
        alive = sum(1 for h in hosts if h.status == model.ALIVE)
        died = len(recent) + back
        if recent and died >= 2 and died > self.share * (alive + len(recent)):
            return recent
        return set()
