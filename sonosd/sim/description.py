# -*- test-case-name: tests.sim.test_scpd -*-
"""The UPnP device description (``/xml/device_description.xml``) of a simulated speaker.

The shape follows real firmware (protocol reference section 1.2): a root ZonePlayer device
with its own services and two embedded devices, MediaServer and MediaRenderer. The values that
clients read (roomName, UDN, serialNum, modelName, versions) come from the speaker.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape

from sonosd.sim import scpd
from sonosd.sim.models import Identity, Model


def _services(keys: Iterable[str], offered: frozenset[str]) -> str:
    table = scpd.services()
    parts = ["<serviceList>"]
    for key in keys:
        if key not in offered:
            continue
        info = table[key]
        parts.append(
            "<service>"
            f"<serviceType>{info.service_type}</serviceType>"
            f"<serviceId>{info.service_id}</serviceId>"
            f"<controlURL>{info.control_url}</controlURL>"
            f"<eventSubURL>{info.event_url}</eventSubURL>"
            f"<SCPDURL>{info.scpd_url}</SCPDURL>"
            "</service>"
        )
    parts.append("</serviceList>")
    return "".join(parts)


def _common(model: Model, description: str) -> str:
    return (
        "<manufacturer>Sonos, Inc.</manufacturer>"
        "<manufacturerURL>http://www.sonos.com</manufacturerURL>"
        f"<modelNumber>{model.number}</modelNumber>"
        f"<modelDescription>{escape(description)}</modelDescription>"
        f"<modelName>{escape(model.name)}</modelName>"
        f"<modelURL>http://www.sonos.com/products/zoneplayers/{model.number}</modelURL>"
    )


def _icon(model: Model, with_id: bool) -> str:
    icon_id = "<id>0</id>" if with_id else ""
    return (
        f"<iconList><icon>{icon_id}<mimetype>image/png</mimetype><width>48</width>"
        f"<height>48</height><depth>24</depth><url>/img/icon-{model.number}.png</url>"
        "</icon></iconList>"
    )


def _embedded(
    model: Model, name: str, shown_as: str, udn: str, keys: Iterable[str], offered: frozenset[str]
) -> str:
    """The opening of an embedded device, up to its services: ``name`` (``Media Server``, of
    device type ``MediaServer``), a friendly name beginning with ``shown_as`` (escaped), the
    UDN ``udn`` and the services of ``keys`` that the speaker offers."""
    label = f"{model.name} {name}"
    return (
        "<device>"
        f"<deviceType>urn:schemas-upnp-org:device:{name.replace(' ', '')}:1</deviceType>"
        f"<friendlyName>{shown_as} - {escape(label)}</friendlyName>"
        + _common(model, label)
        + f"<UDN>uuid:{udn}</UDN>"
        + _services(keys, offered)
    )


def device_description(
    *,
    identity: Identity,
    model: Model,
    room_name: str,
    address: str,
    offered: frozenset[str],
) -> bytes:
    """The device description document of one speaker, as UTF-8 bytes.

    ``offered`` is the set of service keys this speaker has (see ``scpd.services``).
    """
    uid = identity.uid
    room = escape(room_name)
    body = (
        '<?xml version="1.0" encoding="utf-8" ?>'
        '<root xmlns="urn:schemas-upnp-org:device-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        "<device>"
        "<deviceType>urn:schemas-upnp-org:device:ZonePlayer:1</deviceType>"
        f"<friendlyName>{escape(address)} - {escape(model.name)} - {uid}</friendlyName>"
        + _common(model, model.name)
        + f"<softwareVersion>{model.software_version}</softwareVersion>"
        "<swGen>2</swGen>"
        f"<hardwareVersion>{model.hardware_version}</hardwareVersion>"
        f"<serialNum>{identity.serial}</serialNum>"
        f"<MACAddress>{identity.mac}</MACAddress>"
        f"<UDN>uuid:{uid}</UDN>"
        + _icon(model, with_id=True)
        + "<minCompatibleVersion>78.0-00000</minCompatibleVersion>"
        "<legacyCompatibleVersion>58.0-00000</legacyCompatibleVersion>"
        "<apiVersion>1.38.1</apiVersion><minApiVersion>1.1.0</minApiVersion>"
        f"<displayVersion>{model.display_version}</displayVersion>"
        "<extraVersion/><nsVersion>31</nsVersion>"
        f"<roomName>{room}</roomName>"
        f"<displayName>{escape(model.display_name)}</displayName>"
        "<zoneType>20</zoneType>"
        "<feature1>0x00000000</feature1><feature2>0x05c18332</feature2>"
        "<feature3>0x0141580e</feature3>"
        "<seriesid>A201</seriesid><variant>2</variant>"
        f"<internalSpeakerSize>{model.speaker_size}</internalSpeakerSize>"
        "<memory>1024</memory><flash>1024</flash><ampOnTime>20</ampOnTime>"
        "<retailMode>0</retailMode><SSLPort>1443</SSLPort><securehhSSLPort>1843</securehhSSLPort>"
        + _services(scpd.ZONEPLAYER_SERVICES, offered)
        + "<deviceList>"
        + _embedded(
            model, "Media Server", escape(address), f"{uid}_MS", scpd.MEDIASERVER_SERVICES, offered
        )
        + "</device>"
        + _embedded(
            model, "Media Renderer", room, f"{uid}_MR", scpd.MEDIARENDERER_SERVICES, offered
        )
        + '<X_Rhapsody-Extension xmlns="http://www.real.com/rhapsody/xmlns/upnp-1-0">'
        f"<deviceID>urn:rhapsody-real-com:device-id-1-0:sonos_1:{uid}</deviceID>"
        '<deviceCapabilities><interactionPattern type="real-rhapsody-upnp-1-0"/>'
        "</deviceCapabilities></X_Rhapsody-Extension>"
        '<qq:X_QPlay_SoftwareCapability xmlns:qq="http://www.tencent.com">QPlay:2'
        "</qq:X_QPlay_SoftwareCapability>"
        + _icon(model, with_id=False)
        + "</device></deviceList></device></root>"
    )
    return body.encode("utf-8")


def offered_services(model: Model) -> frozenset[str]:
    """The service keys a speaker of ``model`` offers."""
    keys = set(scpd.services()) - scpd.OPTIONAL_SERVICES
    if model.line_in:
        keys.add("AudioIn")
    if model.home_theater:
        keys.add("HTControl")
    return frozenset(keys)
