"""The VM agent: for every VM assigned to this host, make the hypervisor match `desired`.

Level-triggered (common/runner.py): a mirror of /v1/vm/ wakes the loop on any change, and a 1 s
tick notices qemu processes that died; each pass compares every VM's record with what the
hypervisor reports and hands one step per VM to a worker thread (reconcile.plan decides, this
module acts). A VM with a step in flight is left alone until it finishes; a step that failed is
retried with back-off; a step that cannot succeed (TerminalError) puts the VM in ERROR with the
reason. After a restart the agent finds its running VMs by their processes and adopts them:
nothing is started twice.
"""

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypedDict, Unpack

from prometheus_client import Counter, Gauge

from common import fence, model, netnames
from common.config import Config
from common.errors import Conflict, NotFound, UcloudError
from common.imagestore import Disk, DiskError, FileSource, ImageStore
from common.poll import poll
from common.records import VM, VMData
from common.runner import Retries, Runner, TerminalError
from common.store import Store, Transaction, keys, lease_is
from common.store.client import Entry
from common.store.mirror import Mirror
from ucloud_vm import configdrive
from ucloud_vm.driver import Hypervisor, HypervisorError, PowerState, VMSpec
from ucloud_vm.fencing import Fencer
from ucloud_vm.reconcile import Action, Step, plan

log = logging.getLogger(__name__)

ACTIONS = Counter("ucloud_vm_actions_total", "steps applied", ["action", "result"])
RUNNING_VMS = Gauge("ucloud_vm_running", "hypervisor processes of this host")

CRASH_LIMIT = 3  # unexpected exits within CRASH_WINDOW seconds before giving up
CRASH_WINDOW = 120.0


class Observed(TypedDict, total=False):
    """Fields of a VM record the agent writes besides `status` and `log` (_record)."""

    desired: str  # model.STOPPED only: the guest powered itself off
    console: dict[str, str]
    rebooted: str | None
    retries_seen: int


class VMAgent:
    def __init__(self, store: Store, config: Config, driver: Hypervisor, disks: ImageStore) -> None:
        self.store = store
        self.config = config
        self.hostname: str = config.hostname
        self.driver = driver
        self.disks = disks
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.mirror = Mirror(store, keys.VM, changed=self.wake)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vm-step")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._crashes: dict[str, list[float]] = defaultdict(list)  # under _lock
        self.retries = Retries()
        self._fenced: set[str] = set()  # VMs the fencing watchdog killed
        self.fencer = Fencer(
            fence.lease_file(config.run_dir, self.hostname), config.fence_margin, driver
        )

    def run(self) -> None:
        threading.Thread(target=self._watchdog, name="fencing", daemon=True).start()
        self.mirror.start()
        Runner("ucloud-vm", self.reconcile_pass, [self.mirror], self.wake, self.stop, 1.0).run()
        self.mirror.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _watchdog(self) -> None:
        while not self.stop.wait(0.1):
            try:
                killed = self.fencer.check()
            except Exception:
                log.exception("fencing check failed")
                continue
            if self.fencer.fenced:
                # Every VM that ran is down now, killed by us or by ucloud-watchdog (which may
                # come first): when it starts again, that is not a crash.
                running = [
                    uuid
                    for uuid, entry in self.mine().items()
                    if entry.value["desired"] == model.RUNNING
                    and entry.value["status"] == model.STATUS_RUNNING
                ]
                with self._lock:
                    self._fenced.update(killed, running)
            if killed:
                self.wake.set()

    # -- the pass ------------------------------------------------------------------------------

    def mine(self) -> dict[str, Entry]:
        return {
            keys.last_part(e.key): e
            for e in self.mirror.values()
            if e.value.get("host") == self.hostname
        }

    def reconcile_pass(self) -> None:
        assigned = self.mine()
        states = self.driver.observe()
        RUNNING_VMS.set(len(states))
        fenced = self.fencer.current_lease() is None
        for uuid in set(assigned) | set(states):
            entry = assigned.get(uuid)
            state = states.get(uuid, PowerState.GONE)
            nics = self.driver.nics(uuid) if entry and state is PowerState.RUNNING else None
            step = plan(entry.value if entry else None, state, self._may_restart(uuid), nics)
            if step.action is Action.NOTHING or (fenced and step.action is Action.START):
                continue
            if not self.retries.ready(uuid, step.action):
                continue  # its last step failed: back off
            self._submit(uuid, entry, step)
        self._forget_leftovers(assigned, states)

    def _may_restart(self, uuid: str) -> bool:
        with self._lock:
            recent = [t for t in self._crashes[uuid] if t > time.monotonic() - CRASH_WINDOW]
            self._crashes[uuid] = recent
            return len(recent) < CRASH_LIMIT

    def _submit(self, uuid: str, entry: Entry | None, step: Step) -> None:
        with self._lock:
            if uuid in self._busy:
                return
            self._busy.add(uuid)
        self.pool.submit(self._run_step, uuid, entry, step)

    def _run_step(self, uuid: str, entry: Entry | None, step: Step) -> None:
        try:
            self.apply(uuid, entry, step)
            self.retries.succeeded(uuid)
            ACTIONS.labels(step.action.value, "ok").inc()
        except TerminalError as error:
            ACTIONS.labels(step.action.value, "failed").inc()
            log.warning("VM %s: %s", uuid, error.message)
            if entry is not None:
                error_step = Step(Action.REPORT, model.ERROR, error.message)
                self._record(uuid, error_step, retries_seen=entry.value.get("retries", 0))
        except Exception as error:
            ACTIONS.labels(step.action.value, "failed").inc()
            delay = self.retries.failed(uuid, step.action)
            if isinstance(error, UcloudError):
                log.warning(
                    "VM %s: %s failed: %s; retry in %.0f s", uuid, step.action.value, error, delay
                )
            else:
                log.exception("VM %s: %s failed; retry in %.0f s", uuid, step.action.value, delay)
        finally:
            with self._lock:
                self._busy.discard(uuid)
            self.wake.set()

    def _forget_leftovers(self, assigned: dict[str, Entry], states: dict[str, PowerState]) -> None:
        """Run dirs of VMs that are neither assigned here nor running here."""
        root = Path(self.config.run_dir) / "vm"
        if not root.is_dir():
            return
        with self._lock:
            busy = set(self._busy)
        for directory in root.iterdir():
            uuid = directory.name
            if uuid not in assigned and uuid not in states and uuid not in busy:
                self.driver.forget(uuid)

    # -- steps -----------------------------------------------------------------------------

    def apply(self, uuid: str, entry: Entry | None, step: Step) -> None:
        action = step.action
        if action is Action.KILL_STRAY:
            log.warning(
                "VM %s runs here but is not assigned to %s: stopping it", uuid, self.hostname
            )
            self.driver.kill(uuid)
            self.driver.forget(uuid)
            return
        assert entry is not None
        vm: VM = entry.value
        if action is Action.START:
            self._start(uuid, vm, step)
        elif action is Action.POWER_OFF:
            self.driver.power_off(uuid, self.config.vm_stop_timeout)
            self._record(uuid, step)
        elif action is Action.END:
            self.driver.kill(uuid)
            self._record(uuid, step)
        elif action is Action.GUEST_OFF:
            self.driver.kill(uuid)
            self._record(uuid, step, desired=model.STOPPED)
        elif action is Action.REBOOT:
            self.driver.reboot(uuid)
            self._record(uuid, step, rebooted=vm.get("reboot_requested"))
        elif action is Action.DELETE:
            self._delete(uuid)
        elif action is Action.HAND_OVER:
            self._hand_over(uuid, step)
        elif action is Action.SYNC_NICS:
            self._sync_nics(uuid, vm)
        elif action is Action.REPORT:
            extra: Observed = (
                {"retries_seen": vm.get("retries", 0)} if step.status == model.ERROR else {}
            )
            self._record(uuid, step, **extra)

    def _start(self, uuid: str, vm: VM, step: Step) -> None:
        with self._lock:
            after_fencing = uuid in self._fenced
            self._fenced.discard(uuid)
            if step.crashed and not after_fencing:
                self._crashes[uuid].append(time.monotonic())
        if after_fencing:
            step = Step(step.action, step.status, "restarted after the host fenced itself")
        lease = self._claim(uuid)
        if lease is None:
            return
        specs = vm["specs"]
        nics = self._nics(vm)
        if not self._taps_ready(nics):
            log.info(
                "VM %s waits for its taps (ucloud-net) and their rules (ucloud-firewall)", uuid
            )
            return
        try:
            disks = self.disks.prepare_vm_disks(
                uuid, vm["image"], specs["os_ssd"], specs.get("hdd") or []
            )
            if self.config.config_drive:
                disks = [*disks, self._config_drive(uuid, vm)]
            # Making disks can take long: if the lease the claim was made under lapsed
            # meanwhile, the VM may be starting elsewhere already. Checked right before qemu.
            if self.fencer.current_lease() != lease:
                log.warning(
                    "VM %s not started: the host lease changed while its disks were made", uuid
                )
                return
            self.driver.start(
                VMSpec(
                    uuid,
                    specs["cpu"],
                    specs["ram"],
                    disks,
                    str(Path(self.config.run_dir) / "vm" / uuid),
                    nics,
                )
            )
        except (NotFound, DiskError, HypervisorError) as error:
            raise TerminalError(f"cannot start: {error}") from None
        self._record(uuid, step, console=self.driver.console(uuid))

    def _config_drive(self, uuid: str, vm: VM) -> Disk:
        """The VM's config drive (ucloud_vm/configdrive.py), made anew at every start."""
        entry = self.store.get(keys.vm_data(uuid))
        data: VMData = entry.value if entry else {"ssh_keys": [], "user_data": None}
        run = Path(self.config.run_dir) / "vm" / uuid
        run.mkdir(parents=True, exist_ok=True)
        path = configdrive.build(run, vm, data)
        return Disk("config", FileSource(str(path)), format="raw", read_only=True)

    @staticmethod
    def _nics(vm: VM) -> list[dict[str, Any]]:
        """The NICs as the hypervisor takes them: {"mac", "slot", "tap"} (slot an int, though
        ucloud_vm/driver.py still says dict[str, str])."""
        return [
            {"mac": nic["mac"], "slot": nic["slot"], "tap": netnames.tap(nic["mac"])}
            for nic in vm.get("networks", [])
        ]

    def _taps_ready(self, nics: list[dict[str, Any]], timeout: float = 10.0) -> bool:
        """ucloud-net makes the taps as soon as it sees the VM here, and ucloud-firewall puts
        their rules in force (it marks them): give both a moment. A NIC is plugged in only
        then, so it never sends unfiltered."""
        marks = netnames.firewall_marks(self.config.run_dir)
        filtered = self.config.firewall != "none"

        def ready(tap: str) -> bool:
            return self.driver.port_ready(tap) and (not filtered or (marks / tap).exists())

        return poll(lambda: all(ready(nic["tap"]) for nic in nics), timeout, stop=self.stop)

    def _sync_nics(self, uuid: str, vm: VM) -> None:
        """Hot-plug the NICs the record has and the VM lacks; unplug the others."""
        have = self.driver.nics(uuid)
        if have is None:
            return
        wanted = {nic["mac"]: nic for nic in self._nics(vm)}
        for mac in sorted(have - set(wanted)):
            self.driver.detach_nic(uuid, mac)
            log.info("VM %s: NIC %s unplugged", uuid, mac)
        for mac, nic in sorted(wanted.items()):
            if mac not in have:
                if not self._taps_ready([nic]):
                    raise HypervisorError(f"tap {nic['tap']} did not appear")
                self.driver.attach_nic(uuid, nic)
                log.info("VM %s: NIC %s plugged into %s", uuid, mac, nic["tap"])

    def _claim(self, uuid: str) -> int | None:
        """Before starting a VM: prove, in one transaction, that it is still assigned here (its
        record unchanged since read) and that this host is alive under the lease it runs on;
        the record then names that lease (`incarnation`). A host back from a partition thus
        never starts a VM the scheduler moved away. Returns the lease, or None."""
        lease = self.fencer.current_lease()
        if lease is None:
            log.warning("VM %s not started: the host lease is stale (fenced)", uuid)
            return None

        def claim(txn: Transaction) -> bool:
            entry = txn.get(keys.vm(uuid))
            if entry is None or entry.value.get("host") != self.hostname:
                return False
            txn.require(lease_is(keys.alive(self.hostname), lease))
            txn.put(entry.key, {**entry.value, "incarnation": f"{self.hostname}/{lease:x}"})
            return True

        try:
            return lease if self.store.transact(claim, attempts=1).value else None
        except Conflict:
            log.info("VM %s not started: its record or the host lease changed", uuid)
            return None

    def _hand_over(self, uuid: str, step: Step) -> None:
        """Migration source: stop the VM, then give it up (host None) for the scheduler to place."""
        self.driver.power_off(uuid, self.config.vm_stop_timeout)

        def release(vm: VM) -> VM | None:
            if vm.get("host") != self.hostname or not vm.get("migrate"):
                return None
            vm["host"] = None
            vm["status"] = model.MIGRATING
            return model.add_log(vm, f"{step.message} on {self.hostname}")

        self.store.update(keys.vm(uuid), release)

    def _delete(self, uuid: str) -> None:
        self.driver.kill(uuid)
        self.disks.remove_vm_disks(uuid)
        self.driver.forget(uuid)

        def release(txn: Transaction) -> bool:
            entry = txn.get(keys.vm(uuid))
            if entry is None or entry.value.get("host") != self.hostname:
                return False
            model.release(txn, entry.value)
            return True

        if self.store.transact(release).value:
            log.info("VM %s deleted", uuid)

    def _record(self, uuid: str, step: Step, **fields: Unpack[Observed]) -> None:
        """Write the observed outcome, unless the VM moved away or nothing changed."""

        def mutate(vm: VM) -> VM | None:
            if vm.get("host") != self.hostname:
                return None
            before = dict(vm)
            if step.status:
                vm["status"] = step.status
            vm.update(fields)
            # An action always leaves a line; a mere report only when it says something new.
            line = f"{step.message} on {self.hostname}" if step.message else None
            log_it = line is not None and (
                step.action is not Action.REPORT or model.last_log_message(vm) != line
            )
            if vm == before and not log_it:
                return None
            if line is not None and log_it:
                model.add_log(vm, line)
            return vm

        self.store.update(keys.vm(uuid), mutate)
