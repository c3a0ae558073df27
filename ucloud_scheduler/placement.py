"""Placement: pure logic, no I/O. A pipeline of checkers (is the host alive, does the VM fit in
cpu, memory, disk with overcommit), then a ranker (spread or pack), as in Nomad's feasibility
stack. Every rejection is counted by reason so a PENDING VM's log can say why.
"""

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.config import Config
from common.records import Capacity

RESOURCES = ("cpu", "ram", "disk")


@dataclass(frozen=True)
class Policy:
    cpu_overcommit: float = 4.0
    ram_overcommit: float = 1.0
    disk_overcommit: float = 1.0
    strategy: str = "spread"  # "spread": most free memory first; "pack": least free first

    @classmethod
    def from_config(cls, config: Config) -> "Policy":
        return cls(
            config.cpu_overcommit, config.ram_overcommit, config.disk_overcommit, config.placement
        )

    def limit(self, capacity: Capacity) -> dict[str, float]:
        return {
            "cpu": capacity["cpu"] * self.cpu_overcommit,
            "ram": capacity["ram"] * self.ram_overcommit,
            "disk": capacity["disk"] * self.disk_overcommit,
        }


@dataclass
class Host:
    name: str
    capacity: Capacity
    allocated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    alive: bool = True
    maintenance: bool = False  # drained by an admin: takes no new VMs


@dataclass(frozen=True)
class Demand:
    """What one VM needs."""

    key: str
    cpu: int
    ram: int
    disk: int
    avoid: str | None = None  # never this host (the source of a migration)
    only: str | None = None  # only this host (a migration with a target)

    def __getitem__(self, resource: str) -> int:
        return getattr(self, resource)


@dataclass
class Plan:
    placements: list[tuple[Demand, str]] = field(default_factory=list)
    unplaced: dict[str, str] = field(default_factory=dict)  # demand key -> reason


def misfit(host: Host, demand: Demand, limits: dict[str, float]) -> str | None:
    """Why the demand does not fit on the host, or None if it does. Order matters only for the
    message: the first failing check is the reason counted."""
    if not host.alive:
        return "not alive"
    if host.maintenance:
        return "in maintenance"
    if demand.only is not None and host.name != demand.only:
        return "not the requested host"
    if host.name == demand.avoid:
        return "the VM is moving away from it"
    for resource, label in (("cpu", "CPUs"), ("ram", "memory"), ("disk", "disk")):
        if host.allocated[resource] + demand[resource] > limits[resource]:
            return f"not enough {label}"
    return None


def _rank(host: Host, limits: dict[str, float], strategy: str) -> float:
    free = (limits["ram"] - host.allocated["ram"]) / max(limits["ram"], 1)
    return -free if strategy == "spread" else free


def plan(demands: Iterable[Demand], hosts: Iterable[Host], policy: Policy) -> Plan:
    """Place demands in order; allocations grow as we go so later demands see earlier ones.

    Hosts sit in a heap by rank; the best host is popped and checked, so a pass over N VMs and H
    hosts costs O(N log H) while the best hosts fit, O(N H) only for VMs that fit nowhere.
    """
    result = Plan()
    hosts = [h for h in hosts]
    limits = {h.name: policy.limit(h.capacity) for h in hosts}
    by_name = {h.name: h for h in hosts}
    # Dead and drained hosts never enter the heap; they only count in the reasons.
    heap = [
        (_rank(h, limits[h.name], policy.strategy), h.name)
        for h in hosts
        if h.alive and not h.maintenance
    ]
    heapq.heapify(heap)
    dead = sum(1 for h in hosts if not h.alive)
    resting = sum(1 for h in hosts if h.alive and h.maintenance)
    for demand in demands:
        rejected: list[tuple[float, str]] = []
        reasons: Counter[str] = Counter()
        chosen = None
        while heap:
            rank, name = heapq.heappop(heap)
            reason = misfit(by_name[name], demand, limits[name])
            if reason is None:
                chosen = by_name[name]
                break
            reasons[reason] += 1
            rejected.append((rank, name))
        for item in rejected:
            heapq.heappush(heap, item)
        if chosen is None:
            if dead:
                reasons["not alive"] += dead
            if resting:
                reasons["in maintenance"] += resting
            result.unplaced[demand.key] = explain(reasons)
            continue
        for resource in RESOURCES:
            chosen.allocated[resource] += demand[resource]
        heapq.heappush(heap, (_rank(chosen, limits[chosen.name], policy.strategy), chosen.name))
        result.placements.append((demand, chosen.name))
    return result


def explain(reasons: Counter[str]) -> str:
    if not reasons:
        return "no host fits: no hosts are registered"
    parts = ", ".join(
        f"{count} {'host' if count == 1 else 'hosts'} {reason}"
        for reason, count in sorted(reasons.items())
    )
    return f"no host fits: {parts}"
