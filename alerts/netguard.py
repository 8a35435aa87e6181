"""Which URLs Labbook may POST to: no SSRF into the machine or the private network.

Slack and webhook URLs come from team members, and the worker that sends to
them sits inside the operator's network. Without a guard a destination such
as ``http://169.254.169.254/latest/meta-data/`` or ``http://10.0.0.5:6379/``
would turn "send test" into a probe of that network. So:

* only ``http`` and ``https``, a host required, no ``user:password@``;
* at save time (``resolve=False``) literal addresses and ``localhost`` names
  of the refused kinds are refused, and the name is resolved on a best-effort
  basis (a resolver that is unreachable at save time is not an error);
* at send time (``resolve=True``) the name is resolved and *every* address it
  has must be allowed, and the HTTP client then connects to the address that
  was checked (see ``resolve_target`` and ``alerts.transports.http``) so a
  second, different DNS answer (rebinding) is never used.

``ALERTS_ALLOW_PRIVATE_WEBHOOKS`` lifts the loopback/private refusals for
on-premises receivers; cloud metadata addresses stay refused even then, since
no webhook ever lives there and they hand out credentials.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*")
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL may never be sent to: bad scheme, no host, credentials, refused address."""


class BlockedAddress(UnsafeURL):
    """The URL's host is (or resolves to) an address Labbook refuses to connect to."""


class ResolutionError(OSError):
    """The host name did not resolve at send time: a DNS hiccup, worth a retry."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses the client may connect to, in resolver order."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or address literal, no brackets
    port: int
    addresses: tuple[IPAddress, ...]


def private_allowed() -> bool:
    return bool(settings.LABBOOK.get("ALERTS_ALLOW_PRIVATE_WEBHOOKS", False))


def check_url(url: str, *, resolve: bool) -> str:
    """Return ``url`` if Labbook may send to it, or raise ``UnsafeURL`` / ``BlockedAddress``.

    ``resolve=True`` (send time) also raises ``ResolutionError`` when the
    name does not resolve; ``resolve=False`` (save time) tolerates that.
    """
    if resolve:
        resolve_target(url)
        return url
    _, host, port = parse(url)
    check_host_name(host)
    literal = ip_literal(host)
    if literal is not None:
        check_address(literal, host)
        return url
    try:
        addresses = lookup(host, port)
    except ResolutionError:
        return url  # the worker's resolver decides at send time
    check_addresses(host, addresses)
    return url


def resolve_target(url: str | httpx.URL) -> Target:
    """Parse, resolve once and check every address: what the HTTP client will pin to."""
    parsed, host, port = parse(url)
    check_host_name(host)
    literal = ip_literal(host)
    addresses = (literal,) if literal is not None else lookup(host, port)
    check_addresses(host, addresses)
    return Target(url=parsed, host=host, port=port, addresses=addresses)


def parse(url: str | httpx.URL) -> tuple[httpx.URL, str, int]:
    """Parse with httpx, the parser the request is built with, so both agree on the host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
    except (httpx.InvalidURL, TypeError) as error:
        raise UnsafeURL(f"Not a valid URL: {error}") from None
    if parsed.scheme not in SCHEMES:
        raise UnsafeURL("Only http:// and https:// URLs are allowed.")
    if not parsed.raw_host:
        raise UnsafeURL("The URL needs a host.")
    if parsed.userinfo:
        raise UnsafeURL("Credentials in the URL (user:password@) are not allowed.")
    host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    if ip_literal(host) is None and not HOSTNAME_RE.fullmatch(host):
        raise UnsafeURL(f"Not a valid host name: {host!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, host, port


def check_host_name(host: str) -> None:
    """``localhost`` and ``*.localhost`` always mean this machine (RFC 6761)."""
    if private_allowed():
        return
    if host == "localhost" or host.endswith(".localhost") or host == "localhost.localdomain":
        raise BlockedAddress(f"{host} is this machine (loopback); {private_hint()}")


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


def lookup(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address the system resolver gives for ``host``, first-preferred first."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ResolutionError(f"{host} does not resolve: {error}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionError(f"{host} has no IPv4 or IPv6 address")
    return tuple(addresses)


def check_addresses(host: str, addresses: tuple[IPAddress, ...]) -> None:
    """All or nothing: one refused address refuses the name (it may be the one used later)."""
    for address in addresses:
        check_address(address, host)


def check_address(address: IPAddress, host: str) -> None:
    kind = refused_kind(address)
    if kind is None:
        return
    if kind != "cloud metadata" and private_allowed():
        return
    if _is_literal(host):  # the URL names the address itself: nothing to hide
        raise BlockedAddress(f"{address} is a {kind} address; {private_hint(kind)}")
    # Never which address: a user could map the internal network through the error.
    raise BlockedAddress(f"{host} resolves to a {kind} address; {private_hint(kind)}")


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refused_kind(address: IPAddress) -> str | None:
    """Why ``address`` is refused ("loopback", "private", ...), or None for a public one."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return refused_kind(embedded)
    if address in METADATA:
        return "cloud metadata"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("carrier-grade NAT", address in CARRIER_GRADE_NAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4): it is what gets reached."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def private_hint(kind: str = "") -> str:
    if kind == "cloud metadata":
        return "it is never allowed."
    return (
        "use a public address (or set ALERTS_ALLOW_PRIVATE_WEBHOOKS=1 for on-premises receivers)."
    )
