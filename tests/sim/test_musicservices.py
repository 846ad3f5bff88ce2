"""Tests for sim.musicservices: available services, accounts, what items hold."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from sonosd.sim import musicservices
from sonosd.sim.soap import UPnPError

SHARE_META = (
    '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
    'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"><item id="x" parentID="-1" '
    'restricted="true"><dc:title>Mix</dc:title><upnp:class>object.container</upnp:class>'
    '<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">'
    "SA_RINCON{sn}_X_#Svc{sn}-0-Token</desc></item></DIDL-Lite>"
)


def test_service_types() -> None:
    """A service's type is its id * 256 + 7."""
    spotify = musicservices.by_type(2311)
    assert spotify is not None and spotify.name == "Spotify" and spotify.service_id == 9
    assert musicservices.by_type(1) is None
    assert "2311" in musicservices.type_list().split(",")
    root = ElementTree.fromstring(musicservices.descriptor_list())
    assert len(root.findall("Service")) == len(musicservices.SERVICES)


def test_service_of_an_item() -> None:
    """The descriptor names the service, else the sid of a service URI; else none."""
    meta = SHARE_META.format(sn=52231)
    assert musicservices.service_type_of("song%3a1", meta) == 52231
    assert musicservices.service_type_of("x-sonos-spotify:a?sid=9&sn=1", "") == 2311
    assert musicservices.service_type_of("http://h/a.mp3?sid=9", "") is None


def test_accounts_decide() -> None:
    """Anonymous services play without an account; others need one (else 800)."""
    assert musicservices.check_playable(65031, ()).name == "TuneIn"
    assert musicservices.check_playable(2311, (2311,)).name == "Spotify"
    for service_type, accounts in ((52231, (2311,)), (12345, (12345,))):
        with pytest.raises(UPnPError) as raised:
            musicservices.check_playable(service_type, accounts)
        assert raised.value.code == 800
    document = musicservices.accounts_xml("RINCON_1", {2311: 1})
    account = ElementTree.fromstring(document).find("Accounts/Account")
    assert account is not None and account.get("Type") == "2311"


def test_expansion_is_stable() -> None:
    """A container expands into the same few tracks every time; a track into itself."""
    spotify = musicservices.by_type(2311)
    tidal = musicservices.by_type(44551)
    assert spotify is not None and tidal is not None
    uri = "x-rincon-cpcontainer:1006206cspotify%3aplaylist%3aabc?sid=9&flags=8300&sn=1"
    first = musicservices.expand(uri, SHARE_META.format(sn=2311), spotify, 1)
    again = musicservices.expand(uri, "", spotify, 1)
    assert [t.uri for t in again] == [t.uri for t in first]
    assert 3 <= len(first) <= 5
    assert all(t.uri.startswith("x-sonos-spotify:spotify%3atrack%3a") for t in first)
    assert all(t.title.startswith("Mix #") for t in first)
    (single,) = musicservices.expand("track%2f1", "", tidal, 2)
    assert single.uri.startswith("x-sonos-http:") and "sn=2" in single.uri
    assert single.duration >= 150
