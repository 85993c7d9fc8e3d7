"""`X-Forwarded-*` believed only from trusted proxies (`MIRO_TRUSTED_PROXIES`)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import trio.testing

from miro_bridge.http._proxies import TrustedProxies
from miro_bridge.http.typing import PEER_KEY
from miro_bridge.logs import configure_logging
from tests.support import StartBridge

PROXIES = TrustedProxies(
    [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1"),
        ipaddress.ip_network("::1"),
    ]
)


def scope_from(peer: str | None, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "client": (peer, 51000) if peer is not None else None,
        "headers": [(b"host", b"bridge.example"), *headers],
    }


def test_a_trusted_peer_sets_scheme_and_client() -> None:
    scope = scope_from(
        "10.1.2.3",
        (b"x-forwarded-proto", b"HTTPS "),
        (b"x-forwarded-for", b"198.51.100.7, 203.0.113.9"),
        (b"x-forwarded-host", b"bridge.example"),
    )
    PROXIES.apply(scope)
    assert scope["scheme"] == "https"
    assert scope["client"] == ("203.0.113.9", 0)  # the right-most: the left may be forged
    assert scope[PEER_KEY] == ("10.1.2.3", 51000)
    assert (b"x-forwarded-host", b"bridge.example") in scope["headers"]


def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() -> None:
    scope = scope_from(
        "127.0.0.1",
        (b"x-forwarded-for", b"198.51.100.7, 203.0.113.9"),
        (b"x-forwarded-for", b"10.9.9.9 ,10.0.0.2"),  # a second header line continues the list
    )
    PROXIES.apply(scope)
    assert scope["client"] == ("203.0.113.9", 0)

    every_hop_trusted = scope_from("::1", (b"x-forwarded-for", b"10.0.0.5, 10.0.0.6"))
    PROXIES.apply(every_hop_trusted)
    assert every_hop_trusted["client"] == ("10.0.0.5", 0)


def test_an_ipv4_peer_of_a_dual_stack_socket_is_recognised() -> None:
    scope = scope_from("::ffff:10.0.0.1", (b"x-forwarded-proto", b"https"))
    PROXIES.apply(scope)
    assert scope["scheme"] == "https"


@pytest.mark.parametrize("peer", ["192.0.2.10", "fe80::1", None])
def test_an_untrusted_peer_loses_its_forwarded_headers(peer: str | None) -> None:
    forged = [
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-host", b"elsewhere.example"),
    ]
    scope = scope_from(peer, *forged)
    PROXIES.apply(scope)
    assert scope["scheme"] == "http"
    assert scope["client"] == ((peer, 51000) if peer is not None else None)
    assert scope["headers"] == [(b"host", b"bridge.example")]


def test_an_unknown_scheme_is_not_believed() -> None:
    scope = scope_from("127.0.0.1", (b"x-forwarded-proto", b"gopher"))
    PROXIES.apply(scope)
    assert scope["scheme"] == "http"


async def test_a_spoofed_https_from_an_untrusted_peer_is_still_redirected(
    start_bridge: StartBridge,
) -> None:
    outside = await start_bridge(
        force_https=True, trusted_proxies=(), public_url="https://bridge.example"
    )
    response = await outside.client.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 308
    assert response.headers["location"] == "https://bridge.example/health"
    assert "strict-transport-security" not in response.headers

    behind_proxy = await start_bridge(force_https=True)  # the default trusts loopback
    response = await behind_proxy.client.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    redirected = await behind_proxy.client.get("/health", headers={"X-Forwarded-Proto": "http"})
    assert redirected.status_code == 308


async def test_the_access_log_names_the_client(
    start_bridge: StartBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    behind_proxy = await start_bridge()
    outside = await start_bridge(trusted_proxies=())
    forged = {"X-Forwarded-For": "203.0.113.9"}
    await behind_proxy.client.get("/no/such/route", headers={**forged, "X-Request-ID": "proxied"})
    await outside.client.get("/no/such/route", headers={**forged, "X-Request-ID": "direct"})
    await trio.testing.wait_all_tasks_blocked()  # the line is written after the answer is sent

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    clients = {
        line["request_id"]: line["client"] for line in lines if line["event"] == "http.request"
    }
    assert clients == {"proxied": "203.0.113.9", "direct": "127.0.0.1"}
