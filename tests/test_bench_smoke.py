"""Every benchmark runs, at toy sizes: a bench that breaks is found by the test suite, not by
the next person who needs its figures. Only the exit status and a printed table are checked;
the figures mean nothing at these sizes (docs/benchmarks.md has the real ones)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

SMOKE = {
    "scheduler": ["--hosts", "10", "--vms", "10", "--runs", "1"],
    "net_reconcile": ["--networks", "3"],
    "firewall": ["--ports", "20", "--runs", "3", "--rounds", "1"],
    "metadata": [],
    "vm": ["--boots", "1"],
    "network": ["--runs", "1"],
    "failover": ["--runs", "1"],
    "api": ["--vms", "50"],
    "rbd": ["--size", "8", "--runs", "1", "--vms", "1"],
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_bench_runs(bench: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *SMOKE[bench]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "|---" in done.stdout or "|-" in done.stdout, done.stdout[-2000:]


def test_every_bench_has_a_smoke_run() -> None:
    benches = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"__init__", "util"}
    assert benches == set(SMOKE)
