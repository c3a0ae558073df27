"""Users and their ssh public keys from an LDAP directory (python-ldap).

Entries are found by `(<user attribute>=<name>)` under the base DN; their `sshPublicKey` values
(the openssh-lpk schema) are the user's directory keys. An unreachable directory is an
`Unavailable` error naming its URI, never a crash and never the bind password; the connection is
re-opened on the next call, so a restarted server is picked up without restarting ucloud.
"""

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

import ldap
import ldap.filter

from common.errors import Unavailable

log = logging.getLogger(__name__)

KEY_ATTRIBUTE = "sshPublicKey"


@dataclass(frozen=True)
class DirectoryUser:
    name: str
    ssh_keys: tuple[str, ...]


class LdapDirectory:
    def __init__(
        self,
        uri: str,
        base_dn: str,
        bind_dn: str = "",
        bind_password: str = "",
        user_attribute: str = "uid",
        timeout: float = 2.0,
    ) -> None:
        self.uri = uri
        self.base_dn = base_dn
        self._bind = (bind_dn, bind_password)
        self.user_attribute = user_attribute
        self.timeout = timeout
        self._connection: Any = None
        self._lock = threading.Lock()  # python-ldap connections are not for concurrent use

    @classmethod
    def from_config(cls, config: Any) -> "LdapDirectory | None":
        if not config.ldap_uri:
            return None
        return cls(
            config.ldap_uri,
            config.ldap_base_dn,
            config.ldap_bind_dn,
            config.ldap_bind_password,
            config.ldap_user_attribute,
            config.ldap_timeout,
        )

    def user(self, name: str) -> DirectoryUser | None:
        """The user's entry, None when the directory has no such user."""
        escaped = ldap.filter.escape_filter_chars(name)
        found = self._search(f"({self.user_attribute}={escaped})")
        return next((user for user in found if user.name == name), None)

    def users(self) -> list[DirectoryUser]:
        return self._search(f"({self.user_attribute}=*)")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _search(self, query: str) -> list[DirectoryUser]:
        with self._lock:
            for attempt in (1, 2):  # a second try on a fresh connection: slapd restarted
                try:
                    if self._connection is None:
                        self._connection = self._connect()
                    results = self._connection.search_st(
                        self.base_dn,
                        ldap.SCOPE_SUBTREE,
                        query,
                        [self.user_attribute, KEY_ATTRIBUTE],
                        timeout=self.timeout,
                    )
                    return [self._user(attributes) for _, attributes in results if attributes]
                except ldap.NO_SUCH_OBJECT:
                    return []
                except ldap.LDAPError as error:
                    self._drop()
                    if attempt == 2 or not isinstance(error, ldap.SERVER_DOWN):
                        raise Unavailable(
                            f"LDAP directory {self.uri} unavailable: {_describe(error)}"
                        ) from None
        return []

    def _connect(self) -> Any:
        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        connection.set_option(ldap.OPT_TIMEOUT, self.timeout)
        connection.set_option(ldap.OPT_REFERRALS, 0)
        connection.protocol_version = ldap.VERSION3
        bind_dn, password = self._bind
        connection.simple_bind_s(bind_dn, password)
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._connection.unbind_s()
            self._connection = None

    def _user(self, attributes: dict[str, list[bytes]]) -> DirectoryUser:
        names = attributes.get(self.user_attribute, [b""])
        keys = []
        for raw in attributes.get(KEY_ATTRIBUTE, []):
            try:
                text = raw.decode().strip()
            except UnicodeDecodeError:
                continue
            if text:
                keys.append(text)
        return DirectoryUser(names[0].decode(errors="replace"), tuple(keys))


def _describe(error: ldap.LDAPError) -> str:
    """python-ldap's error text (its `desc`), without anything of the request."""
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return str(details.get("desc") or type(error).__name__)
