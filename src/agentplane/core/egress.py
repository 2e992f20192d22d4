"""Where HTTP tools and HTTP MCP servers may connect.

A tenant admin who registers a tool chooses the URL the workers call: without a policy that is
a way into every network the control plane can reach (cloud metadata at 169.254.169.254, the
database, the admin API on loopback). Only public addresses are allowed, plus loopback in
development (`make run`, the tests) and whatever `AGENTPLANE_EGRESS_ALLOW` lists: host names,
addresses or CIDR ranges, comma separated (`*` allows everything).

The check resolves the host name and refuses when any address it resolves to is refused, just
before the call; a name that resolves differently between the check and the connection (DNS
rebinding with a zero TTL) is not caught here, which an egress proxy would.
"""

import asyncio
import ipaddress
import os
import socket
from urllib.parse import urlsplit

from agentplane.core.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(DomainError):
    """A tool or MCP server URL names a host the egress policy does not allow."""

    code = "EGRESS_REFUSED"


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in os.environ.get("AGENTPLANE_EGRESS_ALLOW", "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item)
    return names, networks


def _development() -> bool:
    return os.environ.get("AGENTPLANE_ENV", "development") != "production"


def address_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_global:
        return True
    if address.is_loopback and _development():
        return True
    _, networks = _allow_list()
    return any(address in network for network in networks)


def _refused(host: str, why: str) -> EgressRefused:
    return EgressRefused(
        f"Connecting to {host!r} is not allowed: {why} "
        "(AGENTPLANE_EGRESS_ALLOW lists the hosts and ranges that are)",
        field="url",
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_static(url: str) -> None:
    """At registration: refuse what is refused without a DNS lookup (an address literal,
    `localhost`), so the operator hears it at once rather than at the first call."""
    host = (urlsplit(url).hostname or "").lower()
    names, _ = _allow_list()
    if "*" in names or host in names:
        return
    address = _literal(host)
    if host == "localhost" or host.endswith(".localhost"):
        address = ipaddress.ip_address("127.0.0.1")
    if address is not None and not address_allowed(address):
        raise _refused(host, f"{address} is not a public address")


async def check(url: str) -> None:
    """Before a call: every address the host resolves to must be allowed."""
    host = (urlsplit(url).hostname or "").lower()
    names, _ = _allow_list()
    if "*" in names or host in names:
        return
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # unresolvable: the call itself fails with the resolver's error
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not address_allowed(address):
            raise _refused(host, f"it resolves to {address}, which is not a public address")
