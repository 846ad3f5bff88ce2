"""Cost of turning a NOTIFY body into variables: SoCo's parser against sonosd.gena.eventxml.

Run: ``.venv/bin/python -m benchmarks.parse_cost [--samples DIR] [--rounds N]``

For every real sample body (``events/*.xml``, ``gena_notify_raw/*.http``) and a synthetic
60 KB ZoneGroupTopology event (a 76-speaker household), prints the microseconds per body of:

- ``soco``: ``soco.events_base.parse_event_xml`` without its lru_cache (a new body each time,
  which is what a daemon sees: SEQ and values change) and with its DIDL cache cleared;
- ``ours``: ``sonosd.gena.eventxml.parse_event_xml`` (DIDL left lazy);
- ``ours+json``: that plus ``variables_to_json`` (what the daemon does per event; DIDL fields
  come from its cache after the first body);
- ``topology``: for ZoneGroupTopology bodies, parsing the ZoneGroupState into a Topology.

Then, for the two kinds of benchmark 7 (a volume change, a full AVTransport event) with
varied bodies (``benchmarks.payloads``: no DIDL cache hit), parse and JSON per body with the
compiled reader (``sonosd/gena/_shape.c``) and without it (the string readers and the
parsers, what an install without a C compiler runs).

Timing is the best of several rounds (the machine is shared); compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from xml.etree import ElementTree

from soco import data_structures_entry
from soco.events_base import parse_event_xml as soco_parse_cached

from benchmarks.payloads import BodyMaker, service_of
from sonosd.gena import eventxml
from sonosd.gena.eventxml import parse_event_xml, variables_to_json
from sonosd.household.topology import parse_zone_group_state

soco_parse = soco_parse_cached.__wrapped__
DEFAULT_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "samples"


def http_body(raw: bytes) -> bytes:
    """The body of a captured HTTP request."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in raw:
            return raw.split(separator, 1)[1]
    return raw


def synthetic_zgt(speakers: int = 76) -> bytes:
    """A ZoneGroupTopology NOTIFY body for a household of ``speakers`` (about 60 KB)."""
    state = ElementTree.Element("ZoneGroupState")
    groups = ElementTree.SubElement(state, "ZoneGroups")
    for index in range(0, speakers, 2):
        coordinator = f"RINCON_{index:012X}01400"
        group = ElementTree.SubElement(
            groups, "ZoneGroup", Coordinator=coordinator, ID=f"{coordinator}:{index}"
        )
        for member in (index, index + 1):
            attributes = {
                "UUID": f"RINCON_{member:012X}01400",
                "Location": f"http://10.0.{member // 200}.{member % 200 + 2}:1400/xml/"
                "device_description.xml",
                "ZoneName": f"Room {member // 2}",
                "Icon": "x-rincon-roomicon:living",
                "Configuration": "1",
                "SoftwareVersion": "94.1-76070",
                "SWGen": "2",
                "MinCompatibleVersion": "93.0-00000",
                "LegacyCompatibleVersion": "58.0-00000",
                "BootSeq": str(30 + member),
                "TVConfigurationError": "0",
                "HdmiCecAvailable": "0",
                "WirelessMode": "1",
                "WirelessLeafOnly": "0",
                "ChannelFreq": "2412",
                "BehindWifiExtender": "0",
                "WifiEnabled": "1",
                "EthLink": "0",
                "Orientation": "0",
                "RoomCalibrationState": "4",
                "SecureRegState": "3",
                "VoiceConfigState": "0",
                "MicEnabled": "0",
                "AirPlayEnabled": "1",
                "IdleState": "1",
                "MoreInfo": "",
                "SSLPort": "1443",
                "HHSSLPort": "1843",
                "ActiveZoneID": "00745a67-249c-4240-a8c0-4c43b1758510",
                "VirtualLineInSource": "spotify",
            }
            ElementTree.SubElement(group, "ZoneGroupMember", attributes)
    ElementTree.SubElement(state, "VanishedDevices")
    propertyset = ElementTree.Element("{urn:schemas-upnp-org:event-1-0}propertyset")
    prop = ElementTree.SubElement(propertyset, "{urn:schemas-upnp-org:event-1-0}property")
    ElementTree.SubElement(prop, "ZoneGroupState").text = ElementTree.tostring(
        state, encoding="unicode"
    )
    for name, value in (("ZoneGroupName", "Room 0"), ("ZoneGroupID", "RINCON_0:0")):
        prop = ElementTree.SubElement(propertyset, "{urn:schemas-upnp-org:event-1-0}property")
        ElementTree.SubElement(prop, name).text = value
    return ElementTree.tostring(propertyset)


def bodies(samples: Path) -> dict[str, tuple[str, bytes]]:
    """Every sample body by file name, with the service it belongs to."""
    found: dict[str, tuple[str, bytes]] = {}
    for path in sorted(samples.glob("events/*.xml")):
        name = path.name.lower()
        service = (
            "AVTransport"
            if name.startswith(("av", "virtual"))
            else "RenderingControl"
            if name.startswith("rendering")
            else "ZoneGroupTopology"
            if name.startswith("zonegroup")
            else "Other"
        )
        found[path.name] = (service, path.read_bytes())
    for path in sorted(samples.glob("gena_notify_raw/*.http")):
        found[path.name] = (path.name.split("_")[0], http_body(path.read_bytes()))
    found["synthetic_zgt_76_speakers"] = ("ZoneGroupTopology", synthetic_zgt())
    return found


def to_json(service: str, body: bytes) -> object:
    """What the daemon does per event: parse, then plain JSON."""
    return variables_to_json(service, parse_event_xml(body), "http://10.0.0.2:1400")


def best(function: Callable[[], object], rounds: int) -> float:
    """Best microseconds per call over ``rounds`` rounds."""
    number = 50
    return min(timeit.repeat(function, number=number, repeat=rounds)) / number * 1e6


def reader_cost(rounds: int, count: int = 300) -> dict[str, dict[str, float | None]]:
    """Microseconds of parse and JSON per body of benchmark 7's two kinds (``count`` varied
    bodies each, best of ``rounds``), by reader: ``compiled`` (``None`` where it is not
    built) and ``python``."""
    maker = BodyMaker(seed=7)
    result: dict[str, dict[str, float | None]] = {}
    for kind in ("rc_volume", "avt_full"):
        service = service_of(kind)
        varied = [maker.body(kind) for _ in range(count)]

        def run(service: str = service, varied: list[bytes] = varied) -> None:
            for body in varied:
                to_json(service, body)

        compiled = eventxml._tree3
        times: dict[str, float | None] = {"compiled": None}
        for reader, used in (("compiled", compiled), ("python", None)):
            if reader == "compiled" and used is None:
                continue
            eventxml._tree3 = used
            try:
                times[reader] = min(timeit.repeat(run, number=1, repeat=rounds)) / count * 1e6
            finally:
                eventxml._tree3 = compiled
        result[kind] = times
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)

    def soco(body: bytes) -> Callable[[], object]:
        def run() -> object:
            data_structures_entry.from_didl_string.cache_clear()
            return soco_parse(body)

        return run

    print(f"{'body':64} {'bytes':>6} {'soco':>8} {'ours':>8} {'+json':>8} {'ratio':>6} {'topo':>7}")
    total_soco = total_ours = 0.0
    for name, (service, body) in bodies(options.samples).items():
        t_soco = best(soco(body), options.rounds)
        t_ours = best(partial(parse_event_xml, body), options.rounds)
        t_json = best(partial(to_json, service, body), options.rounds)
        topology = ""
        text = parse_event_xml(body).get("zone_group_state")
        if isinstance(text, str):
            t_topology = best(partial(parse_zone_group_state, text), options.rounds)
            topology = f"{t_topology:7.1f}"
        total_soco += t_soco
        total_ours += t_json
        print(
            f"{name[:64]:64} {len(body):6d} {t_soco:8.1f} {t_ours:8.1f} {t_json:8.1f} "
            f"{t_soco / t_json:6.1f} {topology:>7}"
        )
    print(
        f"total: soco {total_soco:.0f} us, ours with JSON {total_ours:.0f} us, "
        f"{total_soco / total_ours:.1f}x"
    )
    print(f"\n{'varied bodies, parse + JSON':40} {'compiled':>9} {'python':>9} {'ratio':>6}")
    for kind, times in reader_cost(options.rounds).items():
        compiled, python = times["compiled"], times["python"]
        assert python is not None
        shown = "not built" if compiled is None else f"{compiled:9.1f}"
        ratio = "" if compiled is None else f"{python / compiled:6.1f}"
        print(f"{kind:40} {shown:>9} {python:9.1f} {ratio:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
