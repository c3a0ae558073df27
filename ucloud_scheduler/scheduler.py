"""The scheduler loop: campaign for leadership, then keep mirrors of VMs, hosts and liveness keys
and run a placement pass whenever something changed.

Writes are single-attempt `Store.transact` bodies over the mirrors' entries: they commit only if
no record read changed since (compared by mod_revision) and the leader key is still ours (its
create revision), so neither a racing scheduler nor a deposed leader can place a VM twice or on
stale information. A write that loses is not retried: the next pass sees the new state.
"""

import functools
import logging
import threading
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from common import model
from common.errors import Conflict
from common.poll import poll
from common.records import VM
from common.records import Host as HostRecord
from common.runner import Runner
from common.store import Store, Transaction, absent, keys
from common.store.client import Entry
from common.store.election import Election
from common.store.mirror import Mirror
from ucloud_scheduler.evacuation import HostState, MassFailure
from ucloud_scheduler.placement import Demand, Host, Plan, Policy, plan

log = logging.getLogger(__name__)

PLACED = Counter("ucloud_scheduler_placements_total", "VMs placed on a host")
PENDING_VMS = Gauge("ucloud_scheduler_pending_vms", "VMs waiting for a host")
LEADER = Gauge("ucloud_scheduler_leader", "1 while this instance is the leader")

BATCH = 50  # placements per transaction (etcd allows 128 operations by default)


class Scheduler:
    def __init__(
        self,
        store: Store,
        policy: Policy,
        identity: str,
        lease_ttl: int,
        shared_storage: bool = False,
        mass_failure: MassFailure | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.shared_storage = shared_storage  # may a dead host's VMs restart elsewhere?
        self.mass_failure = mass_failure or MassFailure()
        self._held: set[str] = set()  # dead hosts whose VMs wait (evacuation.py), for the log
        self.election = Election(store, keys.SCHEDULER_LEADER, identity, lease_ttl)
        self.changed = threading.Event()
        self.stop = threading.Event()
        self._new_mirrors()

    def _new_mirrors(self) -> None:
        """Fresh mirrors for a term of leadership (a deposed leader's copies may be stale)."""
        self.vms = Mirror(self.store, keys.VM, changed=self.changed)
        self.hosts = Mirror(self.store, keys.HOST, changed=self.changed)
        self.alive = Mirror(self.store, keys.ALIVE, changed=self.changed)
        # Revision of our last write per mirror: the next pass first waits to see it, so it
        # never plans on a copy that misses its own placements.
        self._written: dict[Mirror, int] = {self.vms: 0, self.hosts: 0}

    def run(self) -> None:
        """Lead (or wait to lead) until `stop` is set."""
        while not self.stop.is_set():
            if not self.election.campaign(self.stop):
                break
            LEADER.set(1)
            try:
                self._lead()
            finally:
                LEADER.set(0)
        self.election.resign()

    def _lead(self) -> None:
        self._new_mirrors()
        mirrors = (self.vms, self.hosts, self.alive)
        for mirror in mirrors:
            mirror.start()
        try:
            # Wakes on any change; the idle interval only bounds how long a lost leadership
            # goes unnoticed.
            Runner(
                "ucloud-scheduler",
                self.schedule_pass,
                mirrors,
                self.changed,
                self.stop,
                idle=1.0,
                until=lambda: not self.election.is_leader(),
            ).run()
        finally:
            for mirror in mirrors:
                mirror.stop()
            if not self.election.is_leader():
                log.warning("lost leadership")

    def _await_own_writes(self) -> None:
        poll(lambda: all(m.revision >= r for m, r in self._written.items()), 5, interval=0.002)

    def _wrote(self, mirror: Mirror, revision: int) -> None:
        self._written[mirror] = max(self._written[mirror], revision)

    def schedule_pass(self) -> None:
        self._await_own_writes()
        self._mark_dead_hosts()
        vms = self.vms.values()
        self._evacuate_dead_hosts(vms)
        if self.shared_storage:
            self._drain_hosts(vms)
        hosts = self._hosts(vms)
        pending = sorted(
            (e for e in vms if _needs_host(e.value)), key=lambda e: (e.value["created"], e.key)
        )
        PENDING_VMS.set(len(pending))
        if pending:
            by_key = {e.key: e for e in pending}
            result = plan((demand_of(e) for e in pending), hosts, self.policy)
            self._write_placements(result, by_key)
            self._write_reasons(result, by_key)

    def _hosts(self, vms: list[Entry]) -> list[Host]:
        alive = {keys.last_part(e.key) for e in self.alive.values()}
        hosts: dict[str, Host] = {}
        for entry in self.hosts.values():
            record: HostRecord = entry.value
            name = record["hostname"]
            hosts[name] = Host(
                name,
                record["capacity"],
                alive=record.get("status") == model.ALIVE and name in alive,
                maintenance=bool(record.get("maintenance")),
            )
        for entry in vms:
            vm: VM = entry.value
            host = hosts.get(vm["host"]) if vm["host"] else None
            if host is not None:
                host.allocated["cpu"] += vm["specs"]["cpu"]
                host.allocated["ram"] += vm["specs"]["ram"]
                host.allocated["disk"] += model.vm_disk_bytes(vm)
        return list(hosts.values())

    def _mark_dead_hosts(self) -> None:
        """A host whose liveness key is gone is DEAD (the key's deletion is the death signal).

        The host and liveness mirrors are separate watches, so one may run ahead of the other;
        the write therefore checks, in the same transaction, that the key really is absent.
        """
        alive = {keys.last_part(e.key) for e in self.alive.values()}
        for entry in self.hosts.values():
            record: HostRecord = entry.value
            name = record["hostname"]
            if record.get("status") != model.ALIVE or name in alive:
                continue

            def mark(txn: Transaction, entry: Entry = entry, name: str = name) -> None:
                record: HostRecord = txn.seen(entry)
                record["status"] = model.DEAD
                record["died"] = model.now()
                txn.require(absent(keys.alive(name)))
                txn.put(entry.key, record)

            if self._commit(self.hosts, mark):
                log.warning("host %s lost its liveness key: DEAD", name)

    def _evacuate_dead_hosts(self, vms: list[Entry]) -> None:
        """VMs of a DEAD host: on shared storage they leave it (KILLED, no host) to be placed
        elsewhere; otherwise ERROR with the reason. The host's lease has expired (that is what
        made it DEAD), so the host has fenced itself: restarting elsewhere cannot run a VM
        twice. Each write compares the host record too, so a host that came back meanwhile
        keeps its VMs. When many hosts died at once, their VMs wait a while (evacuation.py)."""
        held = self._held_hosts()
        dead = {
            e.value["hostname"]: e
            for e in self.hosts.values()
            if e.value.get("status") == model.DEAD and e.value["hostname"] not in held
        }
        for entry in vms:
            vm: VM = entry.copy_value()
            host = dead.get(vm["host"]) if vm["host"] else None
            if host is None:
                continue
            if self.shared_storage:
                vm["host"] = None
                vm["status"] = model.KILLED
                vm["migrate"] = None
                model.add_log(vm, f"host {host.value['hostname']} died: to be restarted elsewhere")
            elif vm["status"] != model.ERROR and vm["desired"] != model.DELETED:
                vm["status"] = model.ERROR
                vm["retries_seen"] = vm.get("retries", 0)
                model.add_log(
                    vm,
                    f"host {host.value['hostname']} died and the disks are not on"
                    " shared storage: not restarted elsewhere (start it again once"
                    " the host is back)",
                )
            else:
                continue
            self._write_if(vm, entry, host)

    def _held_hosts(self) -> set[str]:
        states = [
            HostState(
                record["hostname"],
                record.get("status", model.ALIVE),
                model.seconds_since(record["died"]) if record.get("died") else None,
                model.seconds_since(record["rejoined"]) if record.get("rejoined") else None,
            )
            for record in (e.value for e in self.hosts.values())
        ]
        held = self.mass_failure.held(states)
        if held != self._held:
            if held:
                log.warning(
                    "%d of %d hosts died within %.0f s (%s): a control-plane or network fault"
                    " rather than host failures; their VMs stay assigned to them until %.0f s"
                    " after their death, so they restart in place if the hosts come back",
                    len(held),
                    len(states),
                    self.mass_failure.grace,
                    ", ".join(sorted(held)),
                    self.mass_failure.grace,
                )
            else:
                log.info("no mass failure (any more): dead hosts' VMs restart elsewhere")
            self._held = held
        return held

    def _drain_hosts(self, vms: list[Entry]) -> None:
        """VMs of a host in maintenance get a migration request; the host's agent stops them and
        hands them over, then they are placed like any other."""
        draining = {
            e.value["hostname"]: e
            for e in self.hosts.values()
            if e.value.get("maintenance") and e.value.get("status") == model.ALIVE
        }
        for entry in vms:
            vm: VM = entry.copy_value()
            source = vm["host"]
            host = draining.get(source) if source else None
            if (
                source is None
                or host is None
                or vm.get("migrate")
                or vm["desired"] == model.DELETED
            ):
                continue
            vm["migrate"] = {"from": source, "to": None}
            model.add_log(vm, f"host {source} is in maintenance: migrating")
            self._write_if(vm, entry, host)

    def _commit(self, mirror: Mirror, write: Callable[[Transaction], None]) -> bool:
        """One attempt at a leader write over mirrored entries; False when something it read
        changed (or leadership was lost): the next pass looks again."""

        def fenced(txn: Transaction) -> None:
            txn.require(*self.election.fence())
            write(txn)

        try:
            committed = self.store.transact(fenced, attempts=1)
        except Conflict:
            return False
        if committed.revision is not None:
            self._wrote(mirror, committed.revision)
        return True

    def _write_if(self, vm: VM, entry: Entry, host: Entry) -> None:
        """Write vm if neither it nor its host record changed since read (and we lead)."""

        def write(txn: Transaction) -> None:
            txn.seen(entry)
            txn.seen(host)
            txn.put(entry.key, vm)

        self._commit(self.vms, write)

    def _fenced_update(self, entry: Entry, mutate: Callable[[VM], VM | None]) -> None:
        def write(txn: Transaction) -> None:
            new = mutate(txn.seen(entry))
            if new is not None:
                txn.put(entry.key, new)

        self._commit(self.vms, write)

    def _write_placements(self, result: Plan, by_key: dict[str, Entry]) -> None:
        writes: list[tuple[Entry, VM]] = []
        for demand, host in result.placements:
            entry = by_key[demand.key]
            vm: VM = entry.copy_value()
            vm["host"] = host
            vm["status"] = model.SCHEDULED
            vm.pop("migrate", None)
            model.add_log(vm, f"scheduled on {host}")
            writes.append((entry, vm))
        for start in range(0, len(writes), BATCH):
            batch = writes[start : start + BATCH]
            if self._commit(self.vms, functools.partial(_put_all, writes=batch)):
                PLACED.inc(len(batch))
                continue
            # Some VM changed under us (deleted, stopped...): place the rest one by one; the
            # changed ones are looked at again in the next pass.
            for write in batch:
                if self._commit(self.vms, functools.partial(_put_all, writes=[write])):
                    PLACED.inc()
        if writes:
            log.info("placed %d VM(s)", len(writes))

    def _write_reasons(self, result: Plan, by_key: dict[str, Entry]) -> None:
        """Say in the log of every unplaced VM why it waits (once per distinct reason)."""
        for key, reason in result.unplaced.items():
            entry = by_key[key]
            if model.last_log_message(entry.value) == reason:
                continue
            self._fenced_update(entry, functools.partial(_logged, message=reason))


def _put_all(txn: Transaction, writes: list[tuple[Entry, VM]]) -> None:
    for entry, vm in writes:
        txn.seen(entry)
        txn.put(entry.key, vm)


def _logged(vm: VM, message: str) -> VM:
    return model.add_log(vm, message)


def _needs_host(vm: VM) -> bool:
    """Waiting for a host: new VMs, and VMs moved off a host (killed with it, or migrating),
    even if deleted meanwhile: the new host's agent removes their disks."""
    if vm["host"] is not None:
        return False
    return vm["desired"] != model.DELETED or vm["status"] in (model.KILLED, model.MIGRATING)


def demand_of(entry: Entry) -> Demand:
    vm: VM = entry.value
    if vm["desired"] == model.DELETED:
        # Only its disks are left to remove: any live host will do, however full (a VM that
        # could not be placed elsewhere must still be deletable).
        return Demand(entry.key, 0, 0, 0)
    migrate = vm.get("migrate")
    return Demand(
        entry.key,
        vm["specs"]["cpu"],
        vm["specs"]["ram"],
        model.vm_disk_bytes(vm),
        avoid=migrate.get("from") if migrate else None,
        only=migrate.get("to") if migrate else None,
    )
