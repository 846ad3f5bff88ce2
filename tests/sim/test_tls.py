"""HTTPS on port 1443 (sonosd.sim.tls, and the presence and site that serve it)."""

from __future__ import annotations

import warnings
from typing import Any

import requests
from cryptography import x509
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.sim.service import HouseholdService
from sonosd.sim.tls import COMMON_NAME, self_signed_pem, server_options
from tests.conftest import free_loopback_base

GET_VOLUME = (
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    '<s:Body><u:GetVolume xmlns:u="urn:schemas-upnp-org:service:RenderingControl:1">'
    "<InstanceID>0</InstanceID><Channel>Master</Channel></u:GetVolume></s:Body></s:Envelope>"
)
SOAP_HEADERS = {
    "SOAPACTION": "urn:schemas-upnp-org:service:RenderingControl:1#GetVolume",
    "Content-Type": 'text/xml; charset="utf-8"',
}
CONTROL = "/MediaRenderer/RenderingControl/Control"


def test_certificate_is_self_signed_and_current() -> None:
    """The certificate names itself as issuer and is valid now."""
    certificate = x509.load_pem_x509_certificate(self_signed_pem())
    assert certificate.issuer == certificate.subject
    assert COMMON_NAME in certificate.subject.rfc4514_string()
    assert server_options() is server_options()


def post(url: str) -> requests.Response:
    """SOAP GetVolume to ``url`` (certificate not verified, as clients of real speakers do)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return requests.post(url, data=GET_VOLUME, headers=SOAP_HEADERS, verify=False, timeout=10)


class HttpsOnlyTests(TestCase):
    """An HTTPS-only speaker: 403 to SOAP over HTTP, SOAP over TLS on the TLS port."""

    def setUp(self) -> None:
        self.base = free_loopback_base(count=2)
        config = SimulateConfig(speakers=2, base_address=self.base, https_only=(0,), tls_port=1443)
        self.service = HouseholdService(reactor, config)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.secure, self.plain = self.service.household.speakers

    async def call(self, url: str) -> requests.Response:
        response: requests.Response = await deferToThread(post, url)
        return response

    async def test_soap_over_http_is_forbidden_over_tls_served(self) -> None:
        """SOAP over HTTP answers 403 with Sonos's page; the same call over TLS answers 200."""
        http = await self.call(f"http://{self.secure.address}:1400{CONTROL}")
        assert http.status_code == 403 and b"Error 403" in http.content
        https = await self.call(f"https://{self.secure.address}:1443{CONTROL}")
        assert https.status_code == 200 and b"<CurrentVolume>20</CurrentVolume>" in https.content

    async def test_other_speakers_and_paths_unaffected(self) -> None:
        """The description stays on HTTP; another speaker answers SOAP over HTTP, not TLS."""

        def get(url: str) -> int:
            return requests.get(url, timeout=10).status_code

        description = f"http://{self.secure.address}:1400/xml/device_description.xml"
        assert await deferToThread(get, description) == 200
        assert (await self.call(f"http://{self.plain.address}:1400{CONTROL}")).status_code == 200
        refused: Deferred[Any] = deferToThread(post, f"https://{self.plain.address}:1443{CONTROL}")
        with self.assertRaises(requests.ConnectionError):
            await refused

    async def test_switched_at_run_time_and_across_faults(self) -> None:
        """Switching off closes 1443; on again, the TLS port follows a reboot and a move."""
        await self.secure.set_https_only(False)
        assert (await self.call(f"http://{self.secure.address}:1400{CONTROL}")).status_code == 200
        await self.plain.set_https_only(True)
        await self.plain.reboot(downtime=0)
        await self.plain.when_up()
        new_address = self.base.rsplit(".", 1)[0] + ".200"
        await self.plain.change_address(new_address)
        assert (await self.call(f"https://{new_address}:1443{CONTROL}")).status_code == 200
        assert (await self.call(f"http://{new_address}:1400{CONTROL}")).status_code == 403
