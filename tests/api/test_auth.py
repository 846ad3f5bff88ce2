"""Tests for sonosd.api.auth: tokens, scopes, the open-on-loopback default, origin guards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.api.auth import (
    INVALID,
    OPEN,
    UNAUTHORIZED,
    Authenticator,
    Denied,
    Grant,
    auth_required,
    bearer_token,
    forbidden,
    host_allowed,
    is_local_address,
    origin_allowed,
    query_first,
)
from sonosd.config import Token

READER = Token(name="ha", secret="r3ad-only", scopes=frozenset({"read"}))
ADMIN = Token(name="admin", secret="c0ntrol", scopes=frozenset({"read", "control"}))


def test_bearer_header() -> None:
    """The token of an Authorization header is taken from the Bearer scheme only."""
    assert bearer_token(b"Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(b"Bearer ") is None
    assert bearer_token(None) is None


def test_valid_tokens_grant_their_scopes() -> None:
    """A configured token grants exactly its scopes, by header or query parameter."""
    auth = Authenticator([READER, ADMIN])
    assert auth.check(b"Bearer r3ad-only", None) == Grant("ha", frozenset({"read"}))
    granted = auth.check(None, b"c0ntrol")
    assert isinstance(granted, Grant)
    assert granted.allows("control")


def test_header_wins_over_query() -> None:
    """When both are present the header is the credential."""
    auth = Authenticator([READER, ADMIN])
    assert auth.check(b"Bearer wrong", b"c0ntrol") == INVALID


def test_missing_and_wrong_tokens() -> None:
    """No token is 401 unauthorized; a wrong one is 401 invalid_token."""
    auth = Authenticator([READER])
    assert auth.check(None, None) == UNAUTHORIZED
    assert auth.check(b"Bearer r3ad-onl", None) == INVALID
    assert auth.check(b"Bearer r3ad-only-", None) == INVALID
    assert "invalid_token" in INVALID.challenge


def test_not_required_is_open() -> None:
    """An API that needs no token grants every scope, whatever is presented."""
    auth = Authenticator([], required=False)
    assert auth.check(None, None) == OPEN
    assert auth.check(b"Bearer nonsense", None) == OPEN


def test_required_without_tokens_refuses_all() -> None:
    """Required with no token configured refuses every request."""
    auth = Authenticator([], required=True)
    assert isinstance(auth.check(b"Bearer x", None), Denied)


def test_forbidden_names_scope() -> None:
    """The 403 says which scope is missing, in the body and the challenge."""
    denied = forbidden("control")
    assert denied.status == 403
    assert 'scope="control"' in denied.challenge
    assert denied.body()["error"]["code"] == "forbidden"


def test_error_bodies_leak_nothing() -> None:
    """Error bodies name no token and no scope held."""
    for denied in (UNAUTHORIZED, INVALID):
        text = str(denied.body())
        assert "r3ad" not in text and "ha" not in denied.message


def test_local_addresses() -> None:
    """Loopback addresses and unix sockets are local; wildcards and LAN addresses are not."""
    assert is_local_address("127.0.0.1")
    assert is_local_address("127.3.4.5")
    assert is_local_address("::1")
    assert is_local_address(None)
    assert not is_local_address("0.0.0.0")
    assert not is_local_address("::")
    assert not is_local_address("192.168.1.10")
    assert not is_local_address("")


def test_auth_required_default() -> None:
    """By default tokens are needed off loopback, or on loopback once tokens exist."""
    assert auth_required(None, (), local=False)
    assert not auth_required(None, (), local=True)
    assert auth_required(None, (READER,), local=True)
    assert not auth_required(False, (READER,), local=False)
    assert auth_required(True, (), local=True)


def test_host_guard() -> None:
    """An open API answers IP literals and localhost only (DNS rebinding guard)."""
    assert host_allowed(b"127.0.0.1:8080")
    assert host_allowed(b"[::1]:8080")
    assert host_allowed(b"localhost:8080")
    assert host_allowed(None)
    assert not host_allowed(b"evil.example:8080")
    assert host_allowed(b"pi.lan:8080", ["pi.lan"])


def test_origin_guard() -> None:
    """Browsers may use the API from an origin whose host and port are the Host asked,
    whatever its scheme (TLS ended by a proxy), or from a configured one; scripts always."""
    assert origin_allowed(None, b"127.0.0.1:8080", ())
    assert origin_allowed(b"http://127.0.0.1:8080", b"127.0.0.1:8080", ())
    assert origin_allowed(b"https://127.0.0.1:8080", b"127.0.0.1:8080", ())
    assert origin_allowed(b"https://Sonos.LAN", b"sonos.lan", ())
    assert not origin_allowed(b"http://127.0.0.1:8081", b"127.0.0.1:8080", ())
    assert not origin_allowed(b"https://sonos.lan", b"sonos.lan:8080", ())
    assert not origin_allowed(b"http://evil.example", b"127.0.0.1:8080", ())
    assert origin_allowed(b"http://ha.lan:8123", b"127.0.0.1:8080", ("http://ha.lan:8123",))
    assert origin_allowed(b"http://any", b"127.0.0.1:8080", ("*",))


def test_query_first() -> None:
    """The first value of a query parameter, or None."""
    assert query_first({b"a": [b"1", b"2"]}, b"a") == b"1"
    assert query_first({b"a": []}, b"a") is None
    assert query_first({}, b"a") is None


@given(st.text(max_size=40))
def test_only_exact_secrets_pass(presented: str) -> None:
    """No string other than a configured secret is granted anything."""
    auth = Authenticator([READER, ADMIN])
    result = auth.check(None, presented)
    if presented in (READER.secret, ADMIN.secret):
        assert isinstance(result, Grant)
    else:
        assert isinstance(result, Denied)


def test_near_misses_and_odd_tokens_refused() -> None:
    """Prefixes, extensions, other lengths and non-ASCII tokens are refused, never an error."""
    auth = Authenticator([READER, ADMIN])
    for presented in ("r3ad", "r3ad-only-", "c0ntrol" * 40, "r3ad-onlé", "\udcff"):
        assert auth.check(None, presented) is INVALID
        assert auth.check(f"Bearer {presented}".encode("utf-8", "surrogatepass"), None) is INVALID


def test_every_configured_token_is_compared_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/api.md: tokens are compared with hmac.compare_digest, against every configured
    token every time: the first token, the last and a wrong one cost the same comparisons."""
    import hmac

    third = Token(name="third", secret="thr33", scopes=frozenset({"read"}))
    auth = Authenticator([READER, ADMIN, third])
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented, name in (("r3ad-only", "ha"), ("thr33", "third"), ("nope", None)):
        calls.clear()
        result = auth.check(f"Bearer {presented}", None)
        assert (result.name if isinstance(result, Grant) else None) == name
        assert calls == [32, 32, 32], presented
