"""Where webhooks and candidate-model calls may go: public addresses only, unless an operator allows more (the
SSRF guard).

A destination is refused when its host is, or resolves to, a loopback, private, link-local, multicast,
unspecified, reserved or otherwise non-global address. IPv4 addresses embedded in IPv6 ones
(``::ffff:127.0.0.1``, 6to4, NAT64) are judged by the IPv4 address.

>>> policy = EgressPolicy()
>>> policy.refusal("127.0.0.1", ipaddress.ip_address("127.0.0.1"))
'loopback'
>>> policy.refusal("example.com", ipaddress.ip_address("93.184.215.14")) is None
True
>>> EgressPolicy.parse(False, "10.0.0.0/8, hooks.internal").refusal("x", ipaddress.ip_address("10.1.2.3")) is None
True
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field

import httpx

from core.errors import Unprocessable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class ForbiddenDestination(Unprocessable, ValueError):
    """A URL whose host is, or resolves to, an address the egress policy refuses."""

    def __init__(self, url: str, host: str, address: str, reason: str, policy: EgressPolicy | None = None) -> None:
        self.url, self.host, self.address, self.reason = url, host, address, reason
        policy = policy or EgressPolicy()
        where = host if host == address else f"{host} ({address})"
        super().__init__(
            f"{policy.subject} {where} is not a public address ({reason}); it must be public unless "
            f"{policy.settings_prefix}_ALLOW_PRIVATE_NETWORKS or {policy.settings_prefix}_ALLOWED_NETWORKS allow it"
        )


def _unwrap(address: Address) -> Address:
    """The IPv4 address carried inside an IPv4-mapped, 6to4 or NAT64 IPv6 address, else ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def classify(address: Address) -> str | None:
    """Why ``address`` is not a public destination, or None when it is.

    >>> [classify(ipaddress.ip_address(a)) for a in ("10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "8.8.8.8")]
    ['private', 'link-local', 'loopback', None]
    """
    address = _unwrap(address)
    for reason, matches in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    ):
        if matches:
            return reason
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations are allowed: public ones, plus ``networks`` and ``hosts``, or all of them. ``subject``
    and ``settings_prefix`` name what is guarded and the settings that widen it, for error messages."""

    allow_private: bool = False
    networks: tuple[Network, ...] = field(default=())
    hosts: frozenset[str] = field(default=frozenset())
    subject: str = "webhook receiver"
    settings_prefix: str = "DRIFTLOOP_WEBHOOK"

    @classmethod
    def parse(
        cls,
        allow_private: bool,
        allowed: str,
        subject: str = "webhook receiver",
        settings_prefix: str = "DRIFTLOOP_WEBHOOK",
    ) -> EgressPolicy:
        """A policy from settings: ``allowed`` is a comma-separated list of CIDRs and host names."""
        networks, hosts = [], set()
        for entry in filter(None, (part.strip() for part in allowed.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(allow_private, tuple(networks), frozenset(hosts), subject, settings_prefix)

    def refusal(self, host: str, address: Address) -> str | None:
        """Why ``host`` at ``address`` is refused, or None when it is allowed."""
        if self.allow_private or host.lower().rstrip(".") in self.hosts:
            return None
        if any(_unwrap(address) in net or address in net for net in self.networks):
            return None
        return classify(address)

    async def resolve(self, url: str) -> list[Address] | None:
        """The addresses to connect to for ``url``, all of them allowed; None when every destination is.

        Raises ``ForbiddenDestination`` when any address of the host is refused (a name with one private
        record is refused whole), ``OSError`` when the name does not resolve.
        """
        if self.allow_private:
            return None
        parsed = httpx.URL(url)
        host = parsed.host
        try:
            addresses: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parsed.port or (443 if parsed.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        for address in addresses:
            if reason := self.refusal(host, address):
                raise ForbiddenDestination(url, host, str(address), reason, self)
        return addresses

    async def check_registration(self, url: str, timeout_s: float = 2.0) -> None:
        """Refuse ``url`` at registration: literal addresses, local names, and names that resolve to refused
        addresses. A name that does not resolve now is accepted; delivery checks it again."""
        host = httpx.URL(url).host.lower().rstrip(".")
        if not self.allow_private and host not in self.hosts and (host in LOCAL_NAMES or host.endswith(".localhost")):
            raise ForbiddenDestination(url, host, "127.0.0.1", "loopback", self)
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.resolve(url), timeout_s)


def pinned(url: str, address: Address) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """``url`` rewritten to connect to ``address`` (so a second DNS answer cannot redirect the request),
    with the ``Host`` header and TLS server name of the original host: (url, headers, request extensions)."""
    original = httpx.URL(url)
    headers = {"host": original.netloc.decode("ascii")}
    extensions = {"sni_hostname": original.host} if original.scheme == "https" else {}
    return original.copy_with(host=str(address)), headers, extensions
