"""Link-local addresses the host puts on its tenant bridges (fe80::1 for router
advertisements, fe80::a9fe:a9fe for the metadata service). Each daemon adds its own, without
duplicate address detection: every host's bridge of a network carries the same ones on purpose,
and the bridges of different hosts never see each other's frames from these addresses."""

import socket

from pyroute2 import IPRoute

IFA_F_NODAD = 0x02


def ensure(ipr: IPRoute, ifname: str, address: str) -> int | None:
    """Put `address`/64 on the link; its index, or None while the link does not exist."""
    try:  # one syscall; pyroute2's link_lookup dumps every link, on every reconcile pass
        index = socket.if_nametoindex(ifname)
    except OSError:
        return None
    present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=10)}
    if address not in present:
        ipr.addr("add", index=index, address=address, prefixlen=64, flags=IFA_F_NODAD)
    return index
