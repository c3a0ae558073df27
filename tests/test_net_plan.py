"""ucloud-net's plan: which links a host needs and the steps to get there (pure logic)."""

from ucloud_net.plan import Links, Step, desired, steps


def vm(host: str | None, *nics: tuple[int, str], desired_state: str = "running") -> dict:
    return {
        "host": host,
        "desired": desired_state,
        "networks": [
            {"vni": vni, "mac": mac, "mtu": 1500, "prefix": f"fd00:{vni:x}::/64"}
            for vni, mac in nics
        ],
    }


HOSTS = [{"hostname": f"h{i}", "status": "ALIVE", "underlay": f"fd00::{i}"} for i in (1, 2, 3)]


def test_desired_links_and_peers() -> None:
    vms = [
        vm("h1", (100, "02:00:00:00:00:01"), (200, "02:00:00:00:00:02")),
        vm("h2", (100, "02:00:00:00:00:03")),
        vm("h3", (200, "02:00:00:00:00:04")),
        vm("h3", (300, "02:00:00:00:00:05")),  # a network h1 has no VM on
        vm(None, (100, "02:00:00:00:00:06")),  # not placed yet
        vm("h1", (400, "02:00:00:00:00:07"), desired_state="deleted"),
    ]
    links = desired("h1", vms, HOSTS)
    assert links.networks == {100: 1500, 200: 1500}
    assert links.taps == {"ut020000000001": 100, "ut020000000002": 200}
    assert links.peers == {100: {"fd00::2"}, 200: {"fd00::3"}}


def test_dead_hosts_are_no_peers() -> None:
    hosts = [{**h, "status": "DEAD"} if h["hostname"] == "h2" else h for h in HOSTS]
    links = desired(
        "h1", [vm("h1", (100, "02:00:00:00:00:01")), vm("h2", (100, "02:00:00:00:00:02"))], hosts
    )
    assert links.peers == {100: set()}


def test_steps_create_before_remove() -> None:
    want = Links({100: 1500}, {"ut1": 100}, {100: {"a", "b"}})
    have = Links({100: 1500, 200: 1430}, {"ut1": 100, "ut2": 200}, {100: {"b", "c"}, 200: {"d"}})
    assert steps(want, have) == [
        Step("add_peer", 100, peer="a"),
        Step("del_peer", 100, peer="c"),
        Step("del_tap", 200, name="ut2"),
        Step("del_network", 200),
    ]


def test_steps_from_nothing_and_back() -> None:
    want = Links({100: 1500}, {"ut1": 100}, {100: {"a"}})
    assert [s.action for s in steps(want, Links())] == ["add_network", "add_tap", "add_peer"]
    assert steps(want, want) == []
    assert [s.action for s in steps(Links(), want)] == ["del_tap", "del_network"]


def test_tap_in_the_wrong_bridge_is_replugged() -> None:
    want = Links({100: 1500}, {"ut1": 100}, {100: set()})
    have = Links({100: 1500}, {"ut1": -1}, {100: set()})
    assert steps(want, have) == [Step("add_tap", 100, name="ut1", mtu=1500)]


def test_incomplete_network_is_added_again() -> None:
    want = Links({100: 1500}, {}, {100: set()})
    assert steps(want, Links({100: 0}, {}, {100: set()})) == [Step("add_network", 100, mtu=1500)]
