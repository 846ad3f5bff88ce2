# -*- test-case-name: tests.test_doctor -*-
"""``sonosctl doctor``: plain sentences on why events do not arrive, from the diagnostics.

``diagnose(diagnostics)`` reads the JSON of ``GET /api/v1/diagnostics`` (documented in
docs/api.md) and returns findings: *problems* (something does not work: the exit status is 1)
and *notes* (worth knowing, nothing to fix now). It is pure and imports nothing of the daemon,
so that ``sonosctl`` stays a plain client of the API.

What it recognises, in the order a user should look at it:

- nothing is followed (no devices, no discovery);
- a speaker that refuses UPnP (HTTP 403 on port 1400): UPnP is switched off in the Sonos app
  (the speakers of one household together: the setting is the system's);
- a speaker that is asleep (a portable off its charger) or offline, or that cannot be reached
  at the configured address;
- subscriptions without a single NOTIFY (the speakers cannot reach the callback URL: a Docker
  bridge network, several interfaces, ``listener.advertise``, a firewall);
- subscriptions that fail and are retried;
- sinks that fail (webhooks, MQTT, callbacks);
- events read without the compiled reader (sonosd was installed where no C compiler was).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PROBLEM = "problem"
NOTE = "note"

#: Where UPnP is switched on again: the Sonos app (iOS or Android), per Sonos' support
#: article "Adjust Connection Security settings".
UPNP_STEPS = (
    "in the Sonos app (iOS or Android) open Account, then Privacy & Security (under Legal and "
    "Privacy), then Connection Security, and switch UPnP on"
)

#: The availability states of a speaker with UPnP switched off, or asleep (a portable sleeping
#: or switched to Bluetooth); an older daemon said these only in its reasons.
_UPNP_STATES = frozenset({"upnp_disabled", "upnp_off"})
_ASLEEP_STATES = frozenset({"asleep", "sleeping"})
_ASLEEP_WORDS = ("sleeping", "asleep", "switch to bluetooth")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor says: ``problem`` or ``note``, about ``subject``."""

    severity: str
    subject: str
    text: str


def label(speaker: Mapping[str, Any]) -> str:
    """``Kitchen (192.168.1.20)``, or the configured host before the speaker is identified."""
    name = speaker.get("name")
    host = speaker.get("host") or speaker.get("configured_host")
    return f"{name} ({host})" if name else str(host)


def _refuses_upnp(speaker: Mapping[str, Any]) -> bool:
    """UPnP switched off: the speaker (or its subscriptions) answer 403 Forbidden."""
    if speaker.get("availability") in _UPNP_STATES:
        return True
    if speaker.get("availability") != "online" and "403" in str(speaker.get("reason") or ""):
        return True
    services = (speaker.get("services") or {}).values()
    return any(
        s.get("state") in ("backing_off", "lost") and "403" in str(s.get("reason") or "")
        for s in services
    )


def _asleep(speaker: Mapping[str, Any]) -> bool:
    if speaker.get("availability") in _ASLEEP_STATES:
        return True
    reason = str(speaker.get("reason") or "").lower()
    return speaker.get("availability") == "offline" and any(w in reason for w in _ASLEEP_WORDS)


def _upnp_off_system(speakers: Sequence[Mapping[str, Any]]) -> Finding:
    """One finding for the speakers of one Sonos system that refuse UPnP."""
    names = [label(speaker) for speaker in speakers]
    who = ", ".join(names[:-1]) + f" and {names[-1]}"
    return Finding(
        PROBLEM,
        who,
        f"{who} refuse UPnP requests (HTTP 403 Forbidden): UPnP is switched off for their "
        f"Sonos system ({speakers[0].get('household')}), and sonosd needs it for events and "
        f"control. To switch it on, {UPNP_STEPS}. sonosd tries again by itself.",
    )


def _followed_nothing(diagnostics: Mapping[str, Any]) -> bool:
    config = diagnostics.get("config") or {}
    return (
        not diagnostics.get("speakers")
        and not config.get("devices")
        and not config.get("discovery")
        and not config.get("simulate")
    )


def speaker_findings(speaker: Mapping[str, Any]) -> list[Finding]:
    """What is wrong with one speaker's availability (not its subscriptions)."""
    who = label(speaker)
    host = speaker.get("host") or speaker.get("configured_host")
    reason = speaker.get("reason")
    availability = speaker.get("availability")
    if _refuses_upnp(speaker):
        if availability in _UPNP_STATES:
            # Its reason already says where the switch is: said once, below.
            reason = "HTTP 403 Forbidden"
        elif speaker.get("availability") == "online":
            reason = next(
                (
                    str(s.get("reason"))
                    for s in (speaker.get("services") or {}).values()
                    if "403" in str(s.get("reason") or "")
                ),
                reason,
            )
        return [
            Finding(
                PROBLEM,
                who,
                f"{who} refuses UPnP requests ({reason or 'HTTP 403 Forbidden'}): UPnP is "
                f"switched off for this Sonos system, and sonosd needs it for events and "
                f"control. To switch it on, {UPNP_STEPS}. sonosd tries again by itself.",
            )
        ]
    if _asleep(speaker):
        return [
            Finding(
                NOTE,
                who,
                f"{who} is asleep ({reason or 'sleeping'}): a portable speaker sleeps off its "
                "charger. Nothing to fix; sonosd subscribes again when it wakes up.",
            )
        ]
    if availability == "offline":
        return [
            Finding(
                PROBLEM,
                who,
                f"{who} is offline ({reason or 'no answer'}): check that it is powered on "
                f"and on the network, and that this host reaches {host} on TCP port 1400. "
                "sonosd checks it again by itself.",
            )
        ]
    if availability != "online" and speaker.get("uid") is None and reason:
        return [
            Finding(
                PROBLEM,
                who,
                f"sonosd cannot reach the speaker configured as {host} ({reason}): check the "
                "address under devices, that the speaker is on, and that this host reaches "
                "it on TCP port 1400. sonosd tries again by itself.",
            )
        ]
    return []


def _callback_advice(diagnostics: Mapping[str, Any], url: str | None) -> list[str]:
    """Why the speakers may not reach ``url``, from the host and the listener settings."""
    host = diagnostics.get("host") or {}
    listener = diagnostics.get("listener") or {}
    advice: list[str] = []
    port = listener.get("port") or (urlsplit(url).port if url else None) or 1400
    advertise = listener.get("advertise")
    lan = [str(a) for a in host.get("lan_addresses") or []]
    callback_host = urlsplit(url).hostname if url else None
    if host.get("bridge_network"):
        advice.append(
            f"sonosd runs in a {host.get('container') or 'container'} on a bridge network: "
            f"its address ({', '.join(lan) or 'private'}) is private to the container host, "
            "so the speakers cannot reach it. Use host networking (network_mode: host), or "
            f"publish the port ({port}:{port}) and set listener.advertise to the host's LAN "
            "address."
        )
    elif host.get("container"):
        advice.append(
            f"sonosd runs in a {host.get('container')}: with a bridge network, publish port "
            f"{port} and set listener.advertise to the host's LAN address, or use host "
            "networking."
        )
    if advertise:
        advice.append(
            f"listener.advertise is {advertise}: it must be this host's address on the "
            "speakers' network (or the address that forwards to it)."
        )
    elif len(lan) > 1:
        advice.append(
            f"This host has several addresses ({', '.join(lan)}): set listener.advertise to "
            "the one on the speakers' network."
        )
    if callback_host and _is_loopback(callback_host):
        advice.append(
            f"The callback URL names a loopback address ({callback_host}): speakers on the "
            "network can never reach it; set listener.interface or listener.advertise."
        )
    advice.append(
        f"Open TCP port {port} in this host's firewall for connections from the speakers "
        f"(for example: ufw allow proto tcp from 192.168.1.0/24 to any port {port})."
    )
    if lan:
        advice.append(f"This host's addresses: {', '.join(lan)}.")
    return advice


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def subscription_findings(diagnostics: Mapping[str, Any]) -> list[Finding]:
    """Subscriptions without NOTIFYs (grouped by callback URL), and failing ones."""
    findings: list[Finding] = []
    silent: dict[str | None, list[str]] = {}
    for speaker in diagnostics.get("speakers") or []:
        if speaker.get("availability") != "online":
            continue
        who = label(speaker)
        services = speaker.get("services") or {}
        polling = [name for name, s in services.items() if s.get("state") == "polling"]
        if polling:
            silent.setdefault(speaker.get("callback_url"), []).append(
                who if len(polling) == len(services) else f"{who} ({', '.join(polling)})"
            )
        upnp_off = _refuses_upnp(speaker)
        for name, service in services.items():
            if service.get("state") == "backing_off" and not upnp_off:
                retry = service.get("retry_in")
                when = f" in {retry:.0f} s" if isinstance(retry, int | float) else " by itself"
                findings.append(
                    Finding(
                        PROBLEM,
                        who,
                        f"Subscribing to {name} of {who} fails "
                        f"({service.get('reason') or 'unknown error'}); sonosd tries again"
                        f"{when}.",
                    )
                )
            gaps = int(service.get("gaps") or 0)
            if gaps:
                findings.append(
                    Finding(
                        NOTE,
                        who,
                        f"{who} {name}: {gaps} gap(s) in its events (lost on the way); "
                        "sonosd read the state again each time.",
                    )
                )
    for url, names in silent.items():
        where = url or "(unknown)"
        text = (
            f"No NOTIFY has arrived from {', '.join(names)} since subscribing: the speakers "
            f"cannot reach sonosd's callback URL {where}, so sonosd polls their state "
            "instead (slower, and some changes are missed). "
        )
        findings.append(
            Finding(PROBLEM, "events", text + " ".join(_callback_advice(diagnostics, url)))
        )
    notify = (diagnostics.get("listener") or {}).get("notify") or {}
    refused = notify.get("refused") or {}
    if int(refused.get("source") or 0):
        findings.append(
            Finding(
                NOTE,
                "events",
                f"{refused['source']} NOTIFY request(s) came from an address other than the "
                "subscribed speaker's and were refused (a NAT or proxy between them?).",
            )
        )
    return findings


def sink_findings(sinks: Mapping[str, Any]) -> list[Finding]:
    """Webhook targets that fail, an MQTT broker that is away, callbacks that raise."""
    findings: list[Finding] = []
    for target in sinks.get("webhooks") or []:
        url = target.get("url")
        if target.get("failing"):
            findings.append(
                Finding(
                    PROBLEM,
                    f"webhook {url}",
                    f"Webhook {url} fails ({target.get('last_error') or 'unknown error'}): "
                    f"{target.get('queued', 0)} message(s) waiting, {target.get('failed', 0)} "
                    "given up so far. Check that the receiver runs and answers 2xx.",
                )
            )
        elif int(target.get("dropped") or 0) or int(target.get("failed") or 0):
            findings.append(
                Finding(
                    NOTE,
                    f"webhook {url}",
                    f"Webhook {url} delivers now, but lost {target.get('failed', 0)} "
                    f"message(s) after retries and dropped {target.get('dropped', 0)} from a "
                    "full queue earlier.",
                )
            )
    mqtt = sinks.get("mqtt")
    if mqtt:
        broker = mqtt.get("broker")
        if not mqtt.get("connected"):
            findings.append(
                Finding(
                    PROBLEM,
                    "mqtt",
                    f"The MQTT broker {broker} is not connected "
                    f"({mqtt.get('last_error') or 'connecting'}): events are not published "
                    "(the retained state is republished once it is back).",
                )
            )
        elif mqtt.get("stalled"):
            findings.append(
                Finding(
                    PROBLEM,
                    "mqtt",
                    f"The MQTT broker {broker} does not read what sonosd sends: publishing is "
                    "paused until it catches up.",
                )
            )
    for callback in sinks.get("callbacks") or []:
        if int(callback.get("failed") or 0):
            findings.append(
                Finding(
                    NOTE,
                    f"callback {callback.get('name')}",
                    f"The callback {callback.get('name')} raised {callback['failed']} time(s); "
                    "its exceptions are in the daemon's log.",
                )
            )
    return findings


def diagnose(diagnostics: Mapping[str, Any]) -> list[Finding]:
    """Every finding of the diagnostics, problems first."""
    findings: list[Finding] = []
    if _followed_nothing(diagnostics):
        path = (diagnostics.get("config") or {}).get("path") or "the configuration"
        findings.append(
            Finding(
                PROBLEM,
                "configuration",
                f"No speaker is followed: list one under devices in {path} (one per "
                "household is enough: the others are found through it), or set discovery: "
                "true.",
            )
        )
    speakers = diagnostics.get("speakers") or []
    # UPnP is switched on and off per Sonos system: the speakers of one household that refuse
    # it are one finding (the steps said once).
    systems: dict[str, list[Mapping[str, Any]]] = {}
    for speaker in speakers:
        household = speaker.get("household")
        if household and _refuses_upnp(speaker):
            systems.setdefault(household, []).append(speaker)
    together = {
        id(speaker): members
        for members in systems.values()
        if len(members) > 1
        for speaker in members
    }
    for speaker in speakers:
        members = together.get(id(speaker))
        if members is None:
            findings.extend(speaker_findings(speaker))
        elif members[0] is speaker:
            findings.append(_upnp_off_system(members))
    findings.extend(subscription_findings(diagnostics))
    findings.extend(sink_findings(diagnostics.get("sinks") or {}))
    if (diagnostics.get("listener") or {}).get("reader") == "python":
        findings.append(
            Finding(
                NOTE,
                "listener",
                "Events are read without the compiled reader (sonosd/gena/_shape.c was not "
                "built: no C compiler where sonosd was installed), which costs more CPU per "
                "event. Install gcc and the Python headers (Debian: apt install gcc "
                "python3-dev), then install sonosd again.",
            )
        )
    return sorted(findings, key=lambda f: f.severity != PROBLEM)


def healthy_lines(diagnostics: Mapping[str, Any], findings: Sequence[Finding]) -> list[str]:
    """One line per speaker with nothing to report."""
    lines = []
    for speaker in diagnostics.get("speakers") or []:
        who = label(speaker)
        services = speaker.get("services") or {}
        if speaker.get("availability") != "online":
            continue
        if any(who == finding.subject or who in finding.text for finding in findings):
            continue
        if services and all(s.get("evented") for s in services.values()):
            lines.append(f"ok: {who}: {len(services)} subscriptions, NOTIFYs arrive")
    return lines


def report(diagnostics: Mapping[str, Any], findings: Iterable[Finding]) -> str:
    """The doctor's text: problems, then notes, then what is fine."""
    found = list(findings)
    lines = [f"{finding.severity}: {finding.text}" for finding in found]
    lines.extend(healthy_lines(diagnostics, found))
    problems = sum(1 for finding in found if finding.severity == PROBLEM)
    if problems:
        lines.append(f"{problems} problem(s) found.")
    else:
        lines.append("All is well: every followed speaker delivers its events.")
    return "\n".join(lines)
