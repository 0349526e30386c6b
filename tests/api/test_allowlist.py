"""Client address for the allowlist: the socket peer, X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from bkvy.api.allowlist import client_address, parse_networks
from bkvy.core.config.gateway import ConfigError

PROXIES = parse_networks(["10.0.0.5", "10.1.0.0/16"], "TRUSTED_PROXIES")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["127.0.0.1"], "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.5", ["127.0.0.1"], "127.0.0.1"),
        ("10.0.0.5", ["127.0.0.1, 198.51.100.7"], "198.51.100.7"),  # right-most untrusted hop
        ("10.0.0.5", ["127.0.0.1, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),
        ("10.0.0.5", ["127.0.0.1", "198.51.100.7"], "198.51.100.7"),  # repeated headers read in order
        ("10.0.0.5", [], "10.0.0.5"),
        ("::ffff:127.0.0.1", [], "127.0.0.1"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == ipaddress.ip_address(expected)


def test_garbage_forwarded_hop_yields_no_address() -> None:
    assert client_address("10.0.0.5", ["127.0.0.1, not-an-ip"], PROXIES) is None
    assert client_address(None, [], PROXIES) is None


def test_bad_allowlist_entry_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DASHBOARD_ALLOWED_IPS"):
        parse_networks(["10.0.0.0/33"], "DASHBOARD_ALLOWED_IPS")
