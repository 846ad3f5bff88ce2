"""Tests for sonosd.securesoap: unmodified SoCo against simulated speakers that refuse SOAP
over HTTP (the simulator's HTTPS-only mode), with UPnP switched off, and plain ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import soco
import soco.services
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.securesoap import TLS_PORT, SecureSoap, install
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.soco_helpers import in_thread

# What the daemon silences once (``install``): unverified HTTPS to speakers is deliberate.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


class Recording:
    """``requests``, recording the URL of every request it sends."""

    exceptions = requests.exceptions

    def __init__(self) -> None:
        self.urls: list[str] = []

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.urls.append(url)
        return requests.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        self.urls.append(url)
        return requests.get(url, **kwargs)


@pytest.fixture(autouse=True)
def _shim() -> Iterator[None]:
    """Each test puts its own recording shim in place; the daemon's comes back after."""
    before = soco.services.requests
    yield
    soco.services.requests = before


class SecureSoapTests(TestCase):
    """A household of three: an HTTPS-only speaker, a plain one, and one to switch."""

    def setUp(self) -> None:
        base = free_loopback_base(count=3)
        config = SimulateConfig(speakers=3, base_address=base, https_only=(0,), tls_port=TLS_PORT)
        self.service = HouseholdService(reactor, config)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.strict, self.plain, self.other = self.service.household.speakers
        self.http = Recording()
        self.shim = SecureSoap(self.http)
        soco.services.requests = self.shim

    async def test_https_only_speaker_is_controlled_over_tls(self) -> None:
        """A speaker that answers 403 over HTTP is sent the request again over HTTPS and
        remembered: its next requests go over HTTPS directly."""
        device = soco.SoCo(self.strict.address)
        await in_thread(lambda: setattr(device, "volume", 31))
        self.assertEqual(self.strict.rendering.volume, 31)
        self.assertEqual(self.shim.secure, {self.strict.address})
        self.assertEqual(
            [url.split("/")[2] for url in self.http.urls if "Control" in url],
            [f"{self.strict.address}:1400", f"{self.strict.address}:{TLS_PORT}"],
        )
        self.http.urls.clear()
        self.assertEqual(await in_thread(lambda: device.volume), 31)
        await in_thread(lambda: device.play())
        controls = [url for url in self.http.urls if "Control" in url]
        self.assertTrue(controls)
        self.assertTrue(
            all(url.startswith(f"https://{self.strict.address}:{TLS_PORT}/") for url in controls)
        )

    async def test_plain_speaker_never_over_tls(self) -> None:
        """A speaker that answers over HTTP is never asked over HTTPS."""
        device = soco.SoCo(self.plain.address)
        await in_thread(lambda: setattr(device, "volume", 12))
        self.assertEqual(self.plain.rendering.volume, 12)
        self.assertEqual(self.shim.secure, set())
        self.assertTrue(all(url.startswith("http://") for url in self.http.urls))

    async def test_upnp_off_403_stands(self) -> None:
        """With UPnP switched off (403 on both ports), the 403 is SoCo's answer and nothing
        is remembered."""
        self.service.household.set_modes(upnp=False)
        device = soco.SoCo(self.strict.address)
        with self.assertRaises(requests.HTTPError) as raised:
            await in_thread(lambda: device.volume)
        self.assertEqual(raised.exception.response.status_code, 403)
        self.assertEqual(self.shim.secure, set())

    async def test_speaker_taking_http_again_is_forgotten(self) -> None:
        """A remembered speaker whose HTTPS port closes (it takes HTTP again) is sent the
        request over HTTP, and forgotten."""
        await self.other.set_https_only(True)
        device = soco.SoCo(self.other.address)
        await in_thread(lambda: setattr(device, "mute", True))
        self.assertEqual(self.shim.secure, {self.other.address})
        await self.other.set_https_only(False)
        await in_thread(lambda: setattr(device, "mute", False))
        self.assertFalse(self.other.rendering.mute)
        self.assertEqual(self.shim.secure, set())

    def test_install_once(self) -> None:
        """``install`` puts one shim in place of SoCo's requests and keeps it."""
        soco.services.requests = requests
        shim = install()
        self.assertIs(soco.services.requests, shim)
        self.assertIs(install(), shim)
        self.assertIs(shim.exceptions, requests.exceptions)
