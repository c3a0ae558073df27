"""The host's lease, as the host agent last saw it, shared with the VM agent through a file.

ucloud-host writes <run_dir>/host/<hostname>.lease after every successful keep-alive: the lease id
and `expires_at`, a CLOCK_MONOTONIC time before which etcd cannot expire the lease (see
common/store/session.py). ucloud-vm reads it ten times a second and kills every VM of the host
once `expires_at - fence_margin` has passed without a newer refresh: a host that lost etcd (or
whose ucloud-host died) stops its VMs *before* the scheduler may restart them elsewhere.
CLOCK_MONOTONIC is system-wide, so both processes compare the same clock.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LeaseState:
    lease_id: int
    expires_at: float  # time.monotonic() seconds

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()


def lease_file(run_dir: str, hostname: str) -> Path:
    return Path(run_dir) / "host" / f"{hostname}.lease"


def write(path: Path, state: LeaseState) -> None:
    """Atomic: a reader sees the old or the new state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"lease_id": state.lease_id, "expires_at": state.expires_at}))
    os.replace(partial, path)


def read(path: Path) -> LeaseState | None:
    try:
        data = json.loads(path.read_text())
        return LeaseState(int(data["lease_id"]), float(data["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
