"""The SSRF guard: which URLs may be saved, which may be sent to, and what it says."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from alerts import netguard
from alerts.netguard import BlockedAddress, ResolutionError, UnsafeURL, check_url

REFUSED = [
    ("http://127.0.0.1/hook", "127.0.0.1"),
    ("http://127.0.0.2:8080/hook", "127.0.0.2"),
    ("http://localhost/hook", "localhost"),
    ("http://LOCALHOST./hook", "localhost"),
    ("http://api.localhost/hook", "api.localhost"),
    ("http://10.1.2.3/hook", "10.1.2.3"),
    ("http://172.16.0.1/hook", "172.16.0.1"),
    ("http://172.31.255.254/hook", "172.31.255.254"),
    ("http://192.168.1.20/hook", "192.168.1.20"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://169.254.1.1/hook", "169.254.1.1"),
    ("http://100.64.0.1/hook", "100.64.0.1"),
    ("http://100.100.100.200/hook", "100.100.100.200"),
    ("http://0.0.0.0/hook", "0.0.0.0"),  # noqa: S104
    ("http://224.0.0.1/hook", "224.0.0.1"),
    ("http://240.0.0.1/hook", "240.0.0.1"),
    ("http://[::1]/hook", "::1"),
    ("http://[::]/hook", "::"),
    ("http://[fd00::1]/hook", "fd00::1"),
    ("http://[fe80::1]/hook", "fe80::1"),
    ("http://[fd00:ec2::254]/hook", "fd00:ec2::254"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:7f00:1"),
    ("http://[::ffff:10.0.0.1]/hook", "::ffff:a00:1"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "64:ff9b::a9fe:a9fe"),  # NAT64 of the metadata IP
    ("http://127.1/hook", "127.1"),  # inet_aton shorthand, caught by resolving it
    ("http://2130706433/hook", "2130706433"),  # 127.0.0.1 as one integer
]

NOT_URLS = [
    ("ftp://example.com/file", "http"),
    ("file:///etc/passwd", "http"),
    ("javascript:alert(1)", "http"),
    ("gopher://example.com:70/", "http"),
    ("http:///hook", "host"),
    ("http://user:secret@example.com/hook", "Credentials"),
    ("http://token@example.com/hook", "Credentials"),
    ("http://evil.example\\@127.0.0.1/hook", "Credentials"),
    ("http://exa mple.com/hook", "valid"),
    ("http://exa%2fmple.com/hook", "valid"),
]


@pytest.mark.parametrize(("url", "address"), REFUSED)
def test_it_refuses_private_addresses_at_save_time(url: str, address: str) -> None:
    with pytest.raises(BlockedAddress) as caught:
        check_url(url, resolve=False)
    assert address in str(caught.value) or "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(("url", "address"), REFUSED)
def test_it_refuses_private_addresses_at_send_time(url: str, address: str) -> None:
    with pytest.raises(BlockedAddress):
        check_url(url, resolve=True)


@pytest.mark.parametrize(("url", "words"), NOT_URLS)
@pytest.mark.parametrize("resolve", [False, True])
def test_it_refuses_what_is_not_a_plain_http_url(url: str, words: str, resolve: bool) -> None:
    with pytest.raises(UnsafeURL, match=words):
        check_url(url, resolve=resolve)


def test_the_refusal_names_the_address_and_its_kind() -> None:
    with pytest.raises(BlockedAddress, match=r"^10\.1\.2\.3 is a private address"):
        check_url("http://10.1.2.3/hook", resolve=False)
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254 is a cloud metadata address"):
        check_url("http://169.254.169.254/", resolve=False)


def test_a_blocked_address_is_a_value_error() -> None:
    assert issubclass(BlockedAddress, ValueError)


def test_it_accepts_public_addresses(fake_dns: Any) -> None:
    fake_dns.answer("hooks.example.com", ["93.184.216.34", "2606:2800:220:1::248"])
    for url in (
        "https://hooks.example.com/services/T0/B0/xyz",
        "http://93.184.216.34:8080/hook",
        "https://[2606:2800:220:1::248]/hook",
    ):
        assert check_url(url, resolve=False) == url
        assert check_url(url, resolve=True) == url


def test_it_refuses_a_name_that_resolves_to_a_private_address(fake_dns: Any) -> None:
    fake_dns.answer("intranet.example.com", ["10.0.0.5"])
    with pytest.raises(BlockedAddress, match=r"intranet\.example\.com resolves to a private"):
        check_url("https://intranet.example.com/hook", resolve=False)
    with pytest.raises(BlockedAddress) as refused:
        check_url("https://intranet.example.com/hook", resolve=True)
    assert "10.0.0.5" not in str(refused.value)  # the error never maps the internal network


def test_one_private_address_among_public_ones_refuses_the_name(fake_dns: Any) -> None:
    fake_dns.answer("mixed.example.com", ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(BlockedAddress, match=r"mixed\.example\.com resolves to a loopback address"):
        check_url("https://mixed.example.com/hook", resolve=True)


def test_a_name_that_does_not_resolve_is_fine_at_save_time_only(fake_dns: Any) -> None:
    fake_dns.answer("not-yet.example.com", None)
    assert check_url("https://not-yet.example.com/h", resolve=False).endswith("/h")
    with pytest.raises(ResolutionError, match=r"not-yet\.example\.com"):
        check_url("https://not-yet.example.com/h", resolve=True)


def test_resolving_checks_the_answer_of_send_time_not_of_save_time(fake_dns: Any) -> None:
    fake_dns.answer("rebind.example.com", ["93.184.216.34"], ["127.0.0.1"])
    check_url("https://rebind.example.com/hook", resolve=False)
    with pytest.raises(BlockedAddress, match=r"rebind\.example\.com resolves to a loopback"):
        check_url("https://rebind.example.com/hook", resolve=True)


def test_resolve_target_gives_the_checked_addresses_to_pin(fake_dns: Any) -> None:
    fake_dns.answer("hooks.example.com", ["93.184.216.34", "93.184.216.35"])
    target = netguard.resolve_target("https://Hooks.Example.com.:8443/x?y=1")
    assert target.host == "hooks.example.com"
    assert target.port == 8443
    assert target.addresses == (
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("93.184.216.35"),
    )
    assert fake_dns.lookups == ["hooks.example.com"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.20/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
    ],
)
def test_the_setting_allows_private_receivers(url: str, allow_private: dict[str, Any]) -> None:
    assert check_url(url, resolve=False) == url
    assert check_url(url, resolve=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_cloud_metadata_stays_refused_even_when_private_is_allowed(
    url: str, allow_private: dict[str, Any]
) -> None:
    with pytest.raises(BlockedAddress, match="metadata"):
        check_url(url, resolve=True)


def test_the_setting_still_requires_http_without_credentials(
    allow_private: dict[str, Any],
) -> None:
    with pytest.raises(UnsafeURL):
        check_url("http://user:pw@127.0.0.1/hook", resolve=False)
    with pytest.raises(UnsafeURL):
        check_url("file:///etc/passwd", resolve=False)
