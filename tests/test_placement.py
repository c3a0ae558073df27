"""Placement rules (pure logic): table cases and properties that must always hold."""

from hypothesis import given, settings
from hypothesis import strategies as st

from common.store.client import Entry
from ucloud_scheduler.placement import Demand, Host, Policy, plan
from ucloud_scheduler.scheduler import demand_of

GiB = 1024**3


def host(name: str, cpu: int = 4, ram: int = 8, disk: int = 100, alive: bool = True) -> Host:
    return Host(name, {"cpu": cpu, "ram": ram * GiB, "disk": disk * GiB}, alive=alive)


def vm(key: str, cpu: int = 1, ram: int = 1, disk: int = 10) -> Demand:
    return Demand(key, cpu, ram * GiB, disk * GiB)


def test_spread_prefers_most_free_memory() -> None:
    result = plan([vm("a"), vm("b")], [host("h1"), host("h2")], Policy())
    assert sorted(h for _, h in result.placements) == ["h1", "h2"]


def test_pack_fills_one_host_first() -> None:
    result = plan([vm("a"), vm("b")], [host("h1"), host("h2")], Policy(strategy="pack"))
    assert [h for _, h in result.placements] == ["h1", "h1"]


def test_dead_hosts_never_chosen() -> None:
    result = plan([vm("a")], [host("h1", alive=False)], Policy())
    assert result.placements == []
    assert result.unplaced["a"] == "no host fits: 1 host not alive"


def test_reasons_per_resource() -> None:
    hosts = [host("h1", cpu=1), host("h2", ram=1), host("h3", disk=1), host("h4", alive=False)]
    result = plan([vm("a", cpu=2, ram=2, disk=10)], hosts, Policy(cpu_overcommit=1.0))
    assert result.unplaced["a"] == (
        "no host fits: 1 host not alive, 1 host not enough CPUs, 1 host not enough disk,"
        " 1 host not enough memory"
    )


def test_no_hosts_at_all() -> None:
    assert plan([vm("a")], [], Policy()).unplaced["a"] == "no host fits: no hosts are registered"


def test_overcommit_ratios() -> None:
    hosts = [host("h1", cpu=2, ram=4)]
    four_cpus = [vm(str(i), cpu=2, ram=1) for i in range(4)]
    assert len(plan(four_cpus, hosts, Policy(cpu_overcommit=4.0)).placements) == 4
    hosts = [host("h1", cpu=2, ram=4)]
    assert len(plan(four_cpus, hosts, Policy(cpu_overcommit=1.0)).placements) == 1
    hosts = [host("h1", cpu=64, ram=4)]
    ram_heavy = [vm(str(i), ram=3) for i in range(3)]
    assert len(plan(ram_heavy, hosts, Policy(ram_overcommit=1.5)).placements) == 2


def test_earlier_allocations_count() -> None:
    h = host("h1", ram=4)
    h.allocated["ram"] = 3 * GiB
    result = plan([vm("a", ram=2), vm("b", ram=1)], [h], Policy())
    assert [d.key for d, _ in result.placements] == ["b"]
    assert "not enough memory" in result.unplaced["a"]


@settings(max_examples=200, deadline=None)
@given(
    hosts=st.lists(
        st.tuples(st.integers(1, 16), st.integers(1, 64), st.integers(1, 500), st.booleans()),
        max_size=8,
    ),
    vms=st.lists(
        st.tuples(st.integers(1, 8), st.integers(1, 32), st.integers(1, 200)), max_size=30
    ),
    strategy=st.sampled_from(["spread", "pack"]),
    overcommit=st.floats(1.0, 4.0),
)
def test_properties(hosts, vms, strategy, overcommit) -> None:
    """Never on a dead host, never beyond capacity x overcommit, each VM at most once, and a VM
    is left unplaced only if it fits on no live host given the placements made before it."""
    policy = Policy(cpu_overcommit=overcommit, strategy=strategy)
    pool = [host(f"h{i}", c, r, d, alive) for i, (c, r, d, alive) in enumerate(hosts)]
    demands = [vm(f"v{i}", c, r, d) for i, (c, r, d) in enumerate(vms)]
    result = plan(demands, pool, policy)
    placed = [d.key for d, _ in result.placements]
    assert len(placed) == len(set(placed))
    assert set(placed) | set(result.unplaced) == {d.key for d in demands}
    by_name = {h.name: h for h in pool}
    used = {h.name: {"cpu": 0, "ram": 0, "disk": 0} for h in pool}
    for demand, name in result.placements:
        assert by_name[name].alive
        for resource in used[name]:
            used[name][resource] += demand[resource]
    for name, totals in used.items():
        limits = policy.limit(by_name[name].capacity)
        assert all(totals[r] <= limits[r] for r in totals)


def test_a_deleted_vm_without_host_fits_anywhere() -> None:
    """A deleted VM that lost its host (killed with it, or migrating) only needs a host to
    remove its disks: it must be placed even where it would not fit to run."""

    class Kv:
        key, mod_revision, create_revision, lease = b"/v1/vm/x", 1, 1, 0
        value = (
            b'{"desired":"deleted","host":null,"status":"MIGRATING","migrate":{"from":"h1",'
            b'"to":null},"specs":{"cpu":64,"ram":1099511627776,"os_ssd":1,"hdd":[]}}'
        )

    demand = demand_of(Entry(Kv()))
    assert (demand.cpu, demand.ram, demand.disk, demand.avoid) == (0, 0, 0, None)
    assert plan([demand], [host("h1", cpu=1, ram=1)], Policy()).placements == [(demand, "h1")]
