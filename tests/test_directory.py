"""common/directory.py against a real slapd (tests/slapd.py): users, keys, filter escaping,
anonymous reads, a directory down, hung and back, and use from several threads."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import ldap
import ldap.modlist
import pytest

from common import config as configuration
from common.directory import DirectoryUser, LdapDirectory
from common.errors import Unavailable
from tests.slapd import Slapd
from tests.test_ssh_keys import make_key


def directory(slapd: Slapd, **options: object) -> LdapDirectory:
    """Bound as the fixture's rootdn, as a configured ucloud would bind with a service DN."""
    return LdapDirectory(slapd.uri, slapd.base_dn, slapd.bind_dn, slapd.bind_password, **options)


def test_users_and_keys(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1), make_key(2)])
    slapd.add_user("dave", [])
    users = directory(slapd)
    assert users.user("carol") == DirectoryUser("carol", (make_key(1), make_key(2)))
    assert users.user("dave") == DirectoryUser("dave", ())
    assert users.user("nobody") is None
    assert users.user("Carol") is None  # LDAP matches case-insensitively; ucloud names do not
    assert sorted(users.users(), key=lambda u: u.name) == [
        DirectoryUser("carol", (make_key(1), make_key(2))),
        DirectoryUser("dave", ()),
    ]
    users.close()


@pytest.mark.parametrize("hostile", ["*", "a)(uid=*", "carol)(uid=*", "c*", "*)(|(uid=*", "\\2a"])
def test_filter_metacharacters_match_nobody_else(slapd: Slapd, hostile: str) -> None:
    slapd.add_user("carol", [make_key(1)])
    users = directory(slapd)
    assert users.user(hostile) is None
    users.close()


def test_keys_are_stripped_text(slapd: Slapd) -> None:
    slapd.add_user("carol", [f"  {make_key(1)}\n", "   ", make_key(2)])
    raw = [(ldap.MOD_ADD, "sshPublicKey", [b"\xff\xfe not utf-8"])]
    slapd.as_root(lambda c: c.modify_s(f"uid=carol,{slapd.base_dn}", raw))
    users = directory(slapd)
    assert users.user("carol").ssh_keys == (make_key(1), make_key(2))
    slapd.set_keys("carol", [make_key(3)])
    assert users.user("carol").ssh_keys == (make_key(3),)  # read anew on every call
    users.close()


def test_two_entries_with_one_name_give_nobody_the_keys(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1)])
    impostor = {
        "objectClass": [b"inetOrgPerson", b"ldapPublicKey"],
        "uid": [b"carol"],
        "cn": [b"impostor"],
        "sn": [b"impostor"],
        "sshPublicKey": [make_key(9).encode()],
    }
    dn = f"cn=impostor,{slapd.base_dn}"
    slapd.as_root(lambda c: c.add_s(dn, ldap.modlist.addModlist(impostor)))
    assert directory(slapd).user("carol") is None


def test_anonymous_bind_reads_names_and_keys(slapd: Slapd) -> None:
    # The fixture's ACL lets anyone read uid and sshPublicKey, nothing else.
    slapd.add_user("carol", [make_key(1)])
    users = LdapDirectory(slapd.uri, slapd.base_dn)
    assert users.user("carol") == DirectoryUser("carol", (make_key(1),))
    assert [u.name for u in users.users()] == ["carol"]
    users.close()


def test_down_and_back(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1)])
    users = directory(slapd, timeout=1.0)
    assert users.user("carol") is not None
    slapd.stop()
    for _ in range(2):  # with the kept connection, then with none
        started = time.monotonic()
        with pytest.raises(Unavailable) as error:
            users.user("carol")
        assert time.monotonic() - started < 0.5  # refused at once: no waiting for the timeout
        assert slapd.uri in error.value.message
        assert slapd.bind_password not in error.value.message
    slapd.start()
    assert users.user("carol").ssh_keys == (make_key(1),)  # the same object works again
    users.close()


def test_a_restart_between_calls_is_not_an_error(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1)])
    users = directory(slapd)
    assert users.user("carol") is not None
    slapd.stop()
    slapd.start()
    assert users.user("carol").ssh_keys == (make_key(1),)  # reconnected on SERVER_DOWN
    users.close()


@contextmanager
def frozen(slapd: Slapd) -> Iterator[None]:
    """slapd stopped by SIGSTOP: the kernel still accepts connections, nothing answers."""
    assert slapd.process is not None
    os.kill(slapd.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(slapd.process.pid, signal.SIGCONT)


def test_a_hung_directory_costs_one_timeout(slapd: Slapd) -> None:
    slapd.add_user("carol", [make_key(1)])
    kept = directory(slapd, timeout=0.5)
    assert kept.user("carol") is not None
    fresh = directory(slapd, timeout=0.5)
    with frozen(slapd):
        for users in (kept, fresh):  # a search without answer; a bind without answer
            started = time.monotonic()
            with pytest.raises(Unavailable, match=r"no answer within 0\.5 s"):
                users.user("carol")
            assert 0.4 < time.monotonic() - started < 0.9
    assert kept.user("carol") is not None and fresh.user("carol") is not None
    kept.close()
    fresh.close()


def test_wrong_password_is_unavailable_without_the_password(slapd: Slapd) -> None:
    users = LdapDirectory(slapd.uri, slapd.base_dn, slapd.bind_dn, "not-the-password")
    with pytest.raises(Unavailable) as error:
        users.user("carol")
    assert "Invalid credentials" in error.value.message
    assert "not-the-password" not in error.value.message
    assert "not-the-password" not in repr(users)


def test_a_missing_base_dn_is_an_error_not_an_empty_directory(slapd: Slapd) -> None:
    users = LdapDirectory(slapd.uri, "ou=nobody,dc=ucloud,dc=test")
    with pytest.raises(Unavailable, match="base DN 'ou=nobody,dc=ucloud,dc=test' not found"):
        users.users()


def test_several_threads_share_one_directory(slapd: Slapd) -> None:
    names = [f"user{n}" for n in range(8)]
    for n, name in enumerate(names):
        slapd.add_user(name, [make_key(n + 1)])
    users = directory(slapd)
    wrong: list[object] = []

    def lookups(n: int) -> None:
        for _ in range(20):
            found = users.user(names[n])
            if found != DirectoryUser(names[n], (make_key(n + 1),)):
                wrong.append(found)

    for _round in ("first", "after a restart"):
        threads = [threading.Thread(target=lookups, args=(n,)) for n in range(len(names))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []
        slapd.stop()
        slapd.start()
    users.close()


def test_from_config() -> None:
    assert LdapDirectory.from_config(configuration.load("/dev/null", environ={})) is None
    settings = {
        "ldap_uri": "ldap://[::1]:3389/",
        "ldap_base_dn": "ou=people,dc=example",
        "ldap_user_attribute": "cn",
        "ldap_timeout": "0.5",
    }
    config = configuration.load("/dev/null", environ={}, overrides=settings)
    users = LdapDirectory.from_config(config)
    assert users is not None
    assert (users.uri, users.base_dn, users.bind_dn, users.user_attribute, users.timeout) == (
        "ldap://[::1]:3389/",
        "ou=people,dc=example",
        "",
        "cn",
        0.5,
    )
    with pytest.raises(ValueError, match="positive"):
        LdapDirectory("ldap://[::1]/", "dc=example", timeout=0)
