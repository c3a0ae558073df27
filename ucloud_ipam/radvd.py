"""radvd: its configuration (a pure function of the host's networks) and its process.

One radvd per host serves every bridge. Each bridge has the same router identity on every host
(MAC from common.netnames.gateway_mac, link-local fe80::1): a VM sees one router whichever host
it is on, and RAs of other hosts never reach it (a bridge drops frames carrying its own MAC as
source). Without DNS servers configured the RAs carry only the prefix (router lifetime 0: no
default route); with `network_dns` they also announce a default route and RDNSS.
"""

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common import netnames

log = logging.getLogger(__name__)


def config(networks: Iterable[dict[str, Any]], dns: list[str]) -> str:
    blocks = []
    for net in sorted(networks, key=lambda n: n["vni"]):
        rdnss = f"\n    RDNSS {' '.join(dns)} {{ }};" if dns else ""
        blocks.append(f"""interface {netnames.bridge(net["vni"])} {{
    AdvSendAdvert on;
    IgnoreIfMissing on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    AdvDefaultLifetime {1800 if dns else 0};
    AdvLinkMTU {net["mtu"]};
    prefix {net["prefix"]} {{
        AdvOnLink on;
        AdvAutonomous on;
    }};{rdnss}
}};
""")
    return "\n".join(blocks)


class Radvd:
    """Keeps one radvd running with the wanted config; survives (and adopts) agent restarts."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.conf = run_dir / "radvd.conf"
        self.pidfile = run_dir / "radvd.pid"
        self._child: subprocess.Popen | None = None

    def pid(self) -> int | None:
        """The running radvd of this host (checked by its command line), if any."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text())
            if str(self.conf).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None

    def apply(self, text: str) -> None:
        """Run radvd with this config (start, reload on change, stop when empty)."""
        pid = self.pid()
        if not text:
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                log.info("radvd stopped: no networks on this host")
            return
        current = self.conf.read_text() if self.conf.exists() else None
        if current != text:
            self.dir.mkdir(parents=True, exist_ok=True)
            partial = self.conf.with_suffix(".tmp")
            partial.write_text(text)
            os.replace(partial, self.conf)
            if pid is not None:
                os.kill(pid, signal.SIGHUP)
                log.info("radvd reloaded")
        if pid is None:
            self._child = subprocess.Popen(
                ["radvd", "-n", "-C", str(self.conf), "-p", str(self.pidfile), "-m", "stderr"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.info("radvd started (pid %d)", self._child.pid)
