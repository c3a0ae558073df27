"""When a dead host's VMs move (ucloud_scheduler/evacuation.py): pure logic."""

from ucloud_scheduler.evacuation import HostState, MassFailure

RULE = MassFailure(share=0.5, grace=30)


def alive(name: str) -> HostState:
    return HostState(name, "ALIVE", None)


def dead(name: str, seconds: float | None) -> HostState:
    return HostState(name, "DEAD", seconds)


def test_one_dead_host_is_evacuated_at_once() -> None:
    assert RULE.held([dead("a", 1), alive("b"), alive("c")]) == set()
    # also when it is half of a two-host cloud: one failure is not a mass failure
    assert RULE.held([dead("a", 1), alive("b")]) == set()


def test_most_hosts_dying_together_wait() -> None:
    assert RULE.held([dead("a", 1), dead("b", 2), alive("c")]) == {"a", "b"}
    assert RULE.held([dead(n, 0) for n in "abcd"]) == set("abcd")


def test_the_wait_ends_after_the_grace() -> None:
    assert RULE.held([dead("a", 31), dead("b", 31), alive("c")]) == set()
    # the long dead no longer count: the recent one alone is an ordinary failure
    assert RULE.held([dead("a", 300), dead("b", 300), dead("c", 1), alive("d")]) == set()


def test_a_minority_dying_together_is_evacuated() -> None:
    hosts = [dead("a", 1), dead("b", 1), *(alive(n) for n in "cdefg")]
    assert RULE.held(hosts) == set()


def test_hosts_dead_since_an_unknown_time_do_not_count() -> None:
    assert RULE.held([dead("a", None), dead("b", 1), alive("c")]) == set()


def back(name: str, seconds: float) -> HostState:
    return HostState(name, "ALIVE", None, seconds)


def test_hosts_back_already_count_as_having_died_together() -> None:
    """After a stall the others rejoined before the scheduler marked them DEAD: still a mass
    failure, the one marked waits too."""
    assert RULE.held([dead("a", 1), back("b", 1), back("c", 2)]) == {"a"}
    # long back: an ordinary single failure
    assert RULE.held([dead("a", 1), back("b", 300), back("c", 300)]) == set()
    # nobody dead: nothing to hold
    assert RULE.held([back("b", 1), back("c", 1), alive("d")]) == set()
