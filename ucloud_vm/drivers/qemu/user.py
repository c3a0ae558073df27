"""The unprivileged user qemu runs as (`qemu_user`, docs/vm.md "Privileges").

qemu is started with that user's credentials already in place (setpriv sets them, then execs
qemu), not with `-runas`: qemu 7.2 drops root with setuid() after it installed its seccomp
filter, so `-runas` together with `-sandbox elevateprivileges=deny` dies of SIGSYS. This way
qemu never holds root's rights at all, and the sandbox still refuses every set*id call.

What qemu opens by name must therefore be its user's: the VM's run dir (0700) and the VM's own
disks (0600). That directory is then writable by qemu, and root still works in it (the config
drive, qemu.log, the serial log cap): a name there may be a symlink or a hard link qemu put in
place to make root write elsewhere, so root opens files there only through `open_own`, never
following a link.
"""

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QemuUser:
    UMASK = 0o077  # for qemu: what it creates (sockets, pidfile, serial log) is its user's alone

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, e.g. kvm for /dev/kvm

    @classmethod
    def named(cls, name: str) -> "QemuUser":
        """The system user `name`; ValueError if there is none (scripts/setup.sh makes it) or
        it is root (whose qemu would hold every right the user is there to take away)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(
                f"qemu_user {name!r} does not exist (scripts/setup.sh creates it)"
            ) from None
        if entry.pw_uid == 0:
            raise ValueError(f"qemu_user {name!r} is root: qemu must run unprivileged")
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name, entry.pw_uid, entry.pw_gid, groups)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run as this user, with its own groups only (the agent's are dropped), by
        setpriv (util-linux). Not Popen's user/group/extra_groups: with those Python forks
        instead of vfork, and a fork of the multi-threaded agent runs gRPC's fork handlers in
        the child, which abort it before it execs."""
        groups = ",".join(str(group) for group in self.groups)
        ids = [f"--reuid={self.uid}", f"--regid={self.gid}", f"--groups={groups}"]
        return ["setpriv", *ids, "--", *argv]

    def can_enter(self, directory: Path) -> bool:
        """Whether this user may reach into `directory` (every directory above it searchable):
        asked of a process running as the user, the only exact answer (ACLs, groups)."""
        check = subprocess.run(self.command(["test", "-x", str(directory)]), check=False)
        return check.returncode == 0

    def own_dir(self, directory: Path) -> None:
        """Make `directory` (its parent is root's) and give it to the user, 0700."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, self.uid, self.gid, follow_symlinks=False)
        directory.chmod(0o700)

    def open_own(self, path: Path, flags: int = os.O_RDONLY) -> int:
        """`path` opened without following a symlink, made the user's and 0600; the caller
        closes the descriptor. OSError for anything but a regular file with one link (a hard
        link to a host file would otherwise be handed to qemu)."""
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise OSError(f"{path} is not a regular file with a single link")
            os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def give(self, path: Path) -> None:
        """Hand an existing file (a VM's disk) to the user, 0600."""
        os.close(self.open_own(path))
