# -*- test-case-name: tests.sim.test_household -*-
"""The ZoneGroupState document every speaker of a household reports (reference section 3.7).

Pure formatting: the household describes its groups as ``ZoneGroupView`` values and this
module writes the modern (firmware >= 10.1) document, with ``<ZoneGroups>`` and
``<VanishedDevices>``; home-theatre satellites are ``<Satellite>`` children of their soundbar's
``ZoneGroupMember`` (as the captured fw 69 and fw 94.1 documents have them). ``Location`` must
point at each member's own description URL because SoCo builds its instances from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import quoteattr

import attrs


@attrs.frozen
class MemberView:
    """One ``ZoneGroupMember`` as it appears in the document."""

    uid: str
    location: str
    zone_name: str
    boot_seq: int
    software_version: str
    invisible: bool = False
    channel_map: str = ""
    ht_sat_chan_map: str = ""
    icon: str = ""
    more_info: str = ""
    satellites: tuple[MemberView, ...] = ()
    """Home-theatre satellites (sub, surrounds), written as ``<Satellite>`` children."""


@attrs.frozen
class ZoneGroupView:
    """One group: its ID (``<coordinator uid>:<n>``), coordinator and members in order."""

    group_id: str
    coordinator: str
    members: tuple[MemberView, ...]


@attrs.frozen
class VanishedView:
    """A speaker the household lost sight of, and why (``powered off``, ``sleeping``...)."""

    uid: str
    zone_name: str
    reason: str
    mac: str
    last_known_ip: str
    model: str = ""
    ht_sat_chan_map: str = ""


def _member(member: MemberView, element: str = "ZoneGroupMember") -> str:
    attributes: list[tuple[str, str]] = [
        ("UUID", member.uid),
        ("Location", member.location),
        ("ZoneName", member.zone_name),
        ("Icon", member.icon),
        ("Configuration", "1"),
    ]
    if member.invisible:
        attributes.append(("Invisible", "1"))
    attributes += [
        ("SoftwareVersion", member.software_version),
        ("SWGen", "2"),
        ("MinCompatibleVersion", "78.0-00000"),
        ("LegacyCompatibleVersion", "58.0-00000"),
    ]
    if member.channel_map:
        attributes.append(("ChannelMapSet", member.channel_map))
    if member.ht_sat_chan_map:
        attributes.append(("HTSatChanMapSet", member.ht_sat_chan_map))
    attributes += [
        ("BootSeq", str(member.boot_seq)),
        ("TVConfigurationError", "0"),
        ("HdmiCecAvailable", "0"),
        ("WirelessMode", "0"),
        ("WirelessLeafOnly", "0"),
        ("ChannelFreq", "2412"),
        ("BehindWifiExtender", "0"),
        ("WifiEnabled", "1"),
        ("EthLink", "1"),
        ("Orientation", "0"),
        ("RoomCalibrationState", "4"),
        ("SecureRegState", "3"),
        ("VoiceConfigState", "0"),
        ("MicEnabled", "0"),
        ("AirPlayEnabled", "0"),
        ("IdleState", "1"),
        ("MoreInfo", member.more_info),
        ("SSLPort", "1443"),
        ("HHSSLPort", "1843"),
    ]
    text = " ".join(f"{name}={quoteattr(value)}" for name, value in attributes)
    if not member.satellites:
        return f"<{element} {text}/>"
    children = "".join(_member(satellite, "Satellite") for satellite in member.satellites)
    return f"<{element} {text}>{children}</{element}>"


def zone_group_state(groups: Iterable[ZoneGroupView], vanished: Iterable[VanishedView] = ()) -> str:
    """The unescaped ZoneGroupState XML document."""
    parts = ["<ZoneGroupState><ZoneGroups>"]
    for group in groups:
        parts.append(
            f"<ZoneGroup Coordinator={quoteattr(group.coordinator)} ID={quoteattr(group.group_id)}>"
        )
        parts.extend(_member(member) for member in group.members)
        parts.append("</ZoneGroup>")
    parts.append("</ZoneGroups><VanishedDevices>")
    for device in vanished:
        model = f" ModelInfo={quoteattr(device.model)}" if device.model else ""
        channels = (
            f" HTSatChanMapSet={quoteattr(device.ht_sat_chan_map)}"
            if device.ht_sat_chan_map
            else ""
        )
        parts.append(
            f"<Device UUID={quoteattr(device.uid)} ZoneName={quoteattr(device.zone_name)} "
            f"Reason={quoteattr(device.reason)}{model} Mac={quoteattr(device.mac)} "
            f'LastKnownIP={quoteattr(device.last_known_ip)} MoreInfo=""{channels} SWGen="2"/>'
        )
    parts.append("</VanishedDevices></ZoneGroupState>")
    return "".join(parts)
