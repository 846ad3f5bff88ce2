# -*- test-case-name: tests.sim.test_scpd -*-
"""The UPnP services a simulated speaker offers, and their SCPD documents.

The data (service types, URLs, state variables, actions and their arguments) comes from
``data/services.json``, scraped from real Sonos firmware. Each service is known by its
SoCo-style key (``AVTransport``, ``MS_ConnectionManager``, ...). SCPD documents are generated
once per process and shared by every speaker, so a household of 100 speakers costs nothing
more than one of 1.

Per the protocol reference (section 2.4), in-argument state variables never carry a
``defaultValue``: SoCo 0.32.4 rejects a call that omits such an argument.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape

import attrs

_ZP = "ZonePlayer"
_MS = "MediaServer"
_MR = "MediaRenderer"


@attrs.frozen
class Argument:
    """One argument of an action: its name and the state variable that types it."""

    name: str
    related: str


@attrs.frozen
class Action:
    """One SOAP action: its in-arguments and out-arguments in SCPD order."""

    name: str
    inputs: tuple[Argument, ...]
    outputs: tuple[Argument, ...]


@attrs.frozen
class ServiceInfo:
    """Where a service lives on a speaker and what it declares.

    ``key`` is the SoCo-style name (``MR_ConnectionManager``), ``name`` the UPnP one
    (``ConnectionManager``); ``device`` is the (embedded) device that lists it.
    """

    key: str
    name: str
    device: str
    service_type: str
    service_id: str
    control_url: str
    event_url: str
    scpd_url: str
    actions: Mapping[str, Action]
    evented: tuple[str, ...]


#: Services of the root ZonePlayer device, in the order real firmware lists them.
ZONEPLAYER_SERVICES = (
    "AlarmClock",
    "MusicServices",
    "AudioIn",
    "DeviceProperties",
    "SystemProperties",
    "ZoneGroupTopology",
    "GroupManagement",
    "HTControl",
    "QPlay",
)
MEDIASERVER_SERVICES = ("ContentDirectory", "MS_ConnectionManager")
MEDIARENDERER_SERVICES = (
    "RenderingControl",
    "MR_ConnectionManager",
    "AVTransport",
    "Queue",
    "GroupRenderingControl",
    "VirtualLineIn",
)
#: Services only some models have (line-in, home theatre).
OPTIONAL_SERVICES = frozenset({"AudioIn", "HTControl"})


@functools.cache
def _raw() -> Mapping[str, Any]:
    text = resources.files("sonosd.sim").joinpath("data/services.json").read_text("utf-8")
    services: Mapping[str, Any] = json.loads(text)["services"]
    return services


def _build(key: str, name: str, device: str) -> ServiceInfo:
    raw = _raw()[name]
    control_url = raw["controlURL"]
    event_url = raw["eventSubURL"]
    if key == "MS_ConnectionManager":
        control_url = "/MediaServer/ConnectionManager/Control"
        event_url = "/MediaServer/ConnectionManager/Event"
    actions = {
        action["name"]: Action(
            name=action["name"],
            inputs=tuple(
                Argument(a["name"], a["relatedStateVariableName"]) for a in action.get("inputs", ())
            ),
            outputs=tuple(
                Argument(a["name"], a["relatedStateVariableName"])
                for a in action.get("outputs", ())
            ),
        )
        for action in raw["actions"]
    }
    evented = tuple(v["name"] for v in raw["stateVariables"] if v["sendEvents"])
    return ServiceInfo(
        key=key,
        name=name,
        device=device,
        service_type=raw["serviceType"],
        service_id=raw["serviceId"],
        control_url=control_url,
        event_url=event_url,
        scpd_url=raw["discoveryUri"],
        actions=actions,
        evented=evented,
    )


@functools.cache
def services() -> Mapping[str, ServiceInfo]:
    """Every service a simulated speaker can offer, by SoCo-style key."""
    table: dict[str, ServiceInfo] = {}
    for key in ZONEPLAYER_SERVICES:
        table[key] = _build(key, key, _ZP)
    for key in MEDIASERVER_SERVICES:
        table[key] = _build(key, key.removeprefix("MS_"), _MS)
    for key in MEDIARENDERER_SERVICES:
        table[key] = _build(key, key.removeprefix("MR_"), _MR)
    return table


@functools.cache
def by_control_url() -> Mapping[str, ServiceInfo]:
    """Services by control URL (SOAP dispatch ignores the SOAPACTION namespace)."""
    return {info.control_url: info for info in services().values()}


@functools.cache
def by_event_url() -> Mapping[str, ServiceInfo]:
    """Services by event subscription URL."""
    return {info.event_url: info for info in services().values()}


@functools.cache
def scpd_paths() -> Mapping[str, str]:
    """SCPD URL path -> UPnP service name, including SoCo's ``MS_``/``MR_`` aliases."""
    paths = {info.scpd_url: info.name for info in services().values()}
    paths["/xml/MS_ConnectionManager1.xml"] = "ConnectionManager"
    paths["/xml/MR_ConnectionManager1.xml"] = "ConnectionManager"
    return paths


@functools.cache
def scpd_document(name: str) -> bytes:
    """The SCPD XML document of the UPnP service ``name`` (``AVTransport``...)."""
    raw = _raw()[name]
    parts = [
        '<?xml version="1.0" encoding="utf-8" ?>',
        '<scpd xmlns="urn:schemas-upnp-org:service-1-0">',
        "<specVersion><major>1</major><minor>0</minor></specVersion>",
        "<serviceStateTable>",
    ]
    for variable in raw["stateVariables"]:
        events = "yes" if variable["sendEvents"] else "no"
        parts.append(f'<stateVariable sendEvents="{events}">')
        parts.append(f"<name>{escape(variable['name'])}</name>")
        parts.append(f"<dataType>{escape(variable['dataType'])}</dataType>")
        allowed = variable.get("allowedValues")
        if allowed is not None and not isinstance(allowed, list):
            allowed = [allowed]  # the scrape flattens one-value lists
        if allowed:
            parts.append("<allowedValueList>")
            parts.extend(f"<allowedValue>{escape(str(v))}</allowedValue>" for v in allowed)
            parts.append("</allowedValueList>")
        parts.append("</stateVariable>")
    parts.append("</serviceStateTable><actionList>")
    for action in raw["actions"]:
        parts.append(f"<action><name>{escape(action['name'])}</name><argumentList>")
        for arg in (*action.get("inputs", ()), *action.get("outputs", ())):
            parts.append(
                f"<argument><name>{escape(arg['name'])}</name>"
                f"<direction>{arg['direction']}</direction>"
                f"<relatedStateVariable>{escape(arg['relatedStateVariableName'])}"
                "</relatedStateVariable></argument>"
            )
        parts.append("</argumentList></action>")
    parts.append("</actionList></scpd>")
    return "".join(parts).encode("utf-8")
