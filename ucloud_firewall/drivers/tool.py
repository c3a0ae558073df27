"""Running a firewall's command-line tool (nft, pfctl): its output, or OSError with its
message (the reconcile runner retries those)."""

import subprocess


def run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise OSError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout
