"""Logging to stderr, one format for every daemon."""

import logging


def setup(level: str, daemon: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s {daemon} %(levelname)s %(name)s: %(message)s",
    )
    # gRPC and urllib3 chatter is noise at INFO.
    for noisy in ("urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
