"""Tests for SCPD generation and device descriptions (sonosd.sim.scpd, description)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from sonosd.sim import scpd
from sonosd.sim.description import device_description, offered_services
from sonosd.sim.models import MODELS, Identity

NS = "{urn:schemas-upnp-org:service-1-0}"
DNS = "{urn:schemas-upnp-org:device-1-0}"


@pytest.mark.parametrize("path", sorted(scpd.scpd_paths()))
def test_scpd_is_consistent(path: str) -> None:
    """Every SCPD parses, every argument's state variable exists, no defaultValue anywhere."""
    root = ElementTree.fromstring(scpd.scpd_document(scpd.scpd_paths()[path]))
    names = {v.findtext(f"{NS}name") for v in root.iter(f"{NS}stateVariable")}
    assert names
    for argument in root.iter(f"{NS}argument"):
        assert argument.findtext(f"{NS}relatedStateVariable") in names
    assert not list(root.iter(f"{NS}defaultValue"))


def test_soco_aliases_and_urls() -> None:
    """SoCo's MS_/MR_ConnectionManager SCPD aliases exist and control URLs are distinct."""
    paths = scpd.scpd_paths()
    assert paths["/xml/MS_ConnectionManager1.xml"] == "ConnectionManager"
    assert paths["/xml/MR_ConnectionManager1.xml"] == "ConnectionManager"
    services = scpd.services()
    assert services["MS_ConnectionManager"].control_url == "/MediaServer/ConnectionManager/Control"
    assert services["Queue"].service_type == "urn:schemas-sonos-com:service:Queue:1"
    assert len(scpd.by_control_url()) == len(services) == 17


@pytest.mark.parametrize("number", sorted(MODELS))
def test_device_description(number: str) -> None:
    """The description has the speaker's room, UDN, serial and its services on 3 devices."""
    import random

    identity = Identity.draw(random.Random(1))
    model = MODELS[number]
    offered = offered_services(model)
    root = ElementTree.fromstring(
        device_description(
            identity=identity,
            model=model,
            room_name="Den & Co",
            address="127.0.0.2",
            offered=offered,
        )
    )
    device = root.find(f"{DNS}device")
    assert device is not None
    assert device.findtext(f"{DNS}roomName") == "Den & Co"
    assert device.findtext(f"{DNS}UDN") == f"uuid:{identity.uid}"
    assert device.findtext(f"{DNS}serialNum") == identity.serial
    assert device.findtext(f"{DNS}modelName") == model.name
    ids = {s.findtext(f"{DNS}serviceId") for s in root.iter(f"{DNS}service")}
    assert len(ids) == len(offered) - 1  # both ConnectionManagers share one serviceId
    assert ("urn:upnp-org:serviceId:HTControl" in ids) == model.home_theater
    assert ("urn:upnp-org:serviceId:AudioIn" in ids) == model.line_in
    assert len(root.findall(f"{DNS}device/{DNS}deviceList/{DNS}device")) == 2
