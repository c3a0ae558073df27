"""A throwaway slapd for tests: its own config, schema and data under a temp dir, on a free
loopback port; stop() and start() again keep port and data ("LDAP down and back")."""

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist

from common.poll import wait_until
from ucloud_aio.procs import free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=ucloud,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"

# openssh-lpk, which Debian does not ship (PLATFORM.md)
OPENSSH_LPK = """
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
    DESC 'OpenSSH public key' EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
    DESC 'OpenSSH LPK objectclass' MAY ( sshPublicKey $ uid ) )
"""

# As a directory for ucloud would be set up: anyone (ucloud binding anonymously) may read the
# names and keys of users, nothing else; the rootdn (bind_dn here) may do anything anyway.
ACCESS = f"""
access to attrs=userPassword by anonymous auth by * none
access to dn.subtree="{SUFFIX}" attrs=entry,objectClass,uid,sshPublicKey by * read
access to * by * none
"""


class Slapd:
    """slapd with suffix dc=ucloud,dc=test and an empty ou=people (the base_dn), configured and
    preloaded by the constructor; start() runs it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="uldap-", dir="/tmp"))  # short: under /tmp
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}/"
        self.base_dn = PEOPLE
        self.bind_dn = ROOT_DN
        self.bind_password = "test-secret-pw"
        self.process: subprocess.Popen | None = None
        try:
            self._configure()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _configure(self) -> None:
        (self.dir / "data").mkdir()
        (self.dir / "openssh-lpk.schema").write_text(OPENSSH_LPK)
        hashed = subprocess.run(
            ["/usr/sbin/slappasswd", "-s", self.bind_password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        schemas = "".join(
            f"include /etc/ldap/schema/{name}.schema\n"
            for name in ("core", "cosine", "nis", "inetorgperson")
        )
        (self.dir / "slapd.conf").write_text(
            f"{schemas}include {self.dir}/openssh-lpk.schema\n"
            f"pidfile {self.dir}/slapd.pid\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            f"database mdb\nsuffix {SUFFIX}\nrootdn {ROOT_DN}\nrootpw {hashed}\n"
            f"directory {self.dir}/data\nmaxsize 10485760\n{ACCESS}"
        )
        base = (
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: ucloud\n"
            f"o: ucloud\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"
        )
        (self.dir / "base.ldif").write_text(base)
        subprocess.run(
            ["/usr/sbin/slapadd", "-q", "-f", str(self.dir / "slapd.conf"), "-l", "base.ldif"],
            check=True,
            cwd=self.dir,
            capture_output=True,
        )

    def settings(self) -> dict[str, str]:
        """The ucloud.conf keys that point ucloud at this directory."""
        return {
            "ldap_uri": self.uri,
            "ldap_base_dn": self.base_dn,
            "ldap_bind_dn": self.bind_dn,
            "ldap_bind_password": self.bind_password,
        }

    def start(self) -> "Slapd":
        """Runs slapd on this fixture's port and data; returns once it accepts connections."""
        with open(self.dir / "slapd.log", "ab") as log:
            self.process = subprocess.Popen(
                [SLAPD, "-f", str(self.dir / "slapd.conf"), "-h", self.uri, "-d", "0"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        process = self.process

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"slapd exited; see {self.dir / 'slapd.log'}") from None
                return False

        wait_until(listening, 10, "slapd to listen")
        return self

    def stop(self) -> None:
        """Kills slapd (SIGKILL: as abrupt as a crash); start() brings it back, same data."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        """Kills slapd and removes its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def as_root(self, change: Callable[[Any], object]) -> None:
        """Runs change(connection) on a connection bound as the rootdn (test data)."""
        connection = ldap.initialize(self.uri)
        try:
            connection.simple_bind_s(self.bind_dn, self.bind_password)
            change(connection)
        finally:
            connection.unbind_s()

    def add_user(self, name: str, keys: list[str]) -> None:
        """An inetOrgPerson + ldapPublicKey entry uid=name under ou=people."""
        entry = {
            "objectClass": [b"inetOrgPerson", b"ldapPublicKey"],
            "uid": [name.encode()],
            "cn": [name.encode()],
            "sn": [name.encode()],
        }
        if keys:
            entry["sshPublicKey"] = [k.encode() for k in keys]
        self.as_root(lambda c: c.add_s(f"uid={name},{PEOPLE}", ldap.modlist.addModlist(entry)))

    def set_keys(self, name: str, keys: list[str]) -> None:
        """Replaces the user's sshPublicKey values (none: removes them all)."""
        values = [k.encode() for k in keys] or None
        change = [(ldap.MOD_REPLACE, "sshPublicKey", values)]
        self.as_root(lambda c: c.modify_s(f"uid={name},{PEOPLE}", change))
