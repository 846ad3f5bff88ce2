# -*- test-case-name: tests.household.test_readiness -*-
"""Readiness, health and the one-line summary, read from ``HouseholdSupervisor.status()``
(pure).

The daemon is *ready* when every followed speaker is online and *evented*: each of its
subscriptions is ``subscribed`` and its NOTIFYs arrive (a speaker whose NOTIFYs never came is
``polling``, which counts as ready only with ``api.ready_when_polling: true``). An *asleep*
speaker (a portable sleeping or switched to Bluetooth) is no obstacle: nothing is wrong, it
cannot be evented until it wakes. ``/api/v1/ready``, ``/api/v1/health`` (``degraded`` with
``health_reasons``), systemd's ``STATUS=`` line and the metrics read the same status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Readiness:
    """Whether the daemon is ready, and why not (one line per problem)."""

    ready: bool
    reasons: tuple[str, ...] = ()
    counts: Mapping[str, int] = attrs.field(factory=dict)


def speaker_label(speaker: Mapping[str, Any]) -> str:
    """``Kitchen (192.168.1.20)``, or the host alone before the speaker is identified."""
    name = speaker.get("name")
    host = speaker.get("host")
    return f"{name} ({host})" if name else str(host)


def speaker_ok(speaker: Mapping[str, Any], allow_polling: bool) -> bool:
    """Whether a speaker status counts as ready (an asleep speaker does)."""
    if speaker.get("availability") == "asleep":
        return True
    if speaker.get("availability") != "online":
        return False
    services = speaker.get("services") or {}
    return all(
        service.get("evented") or (allow_polling and service.get("state") == "polling")
        for service in services.values()
    )


#: The availability statuses a speaker status may have (``SpeakerSupervisor.status``).
AVAILABILITY = ("online", "offline", "asleep", "upnp_disabled", "unknown")


def counts(status: Mapping[str, Any]) -> dict[str, int]:
    """``total``, then per availability (``online``, ``offline``, ``asleep``,
    ``upnp_disabled``, ``unknown``), then ``evented`` and ``polling`` speakers."""
    speakers = status.get("speakers") or []
    result = {"total": len(speakers), **dict.fromkeys(AVAILABILITY, 0)}
    result["evented"] = result["polling"] = 0
    for speaker in speakers:
        availability = speaker.get("availability", "unknown")
        key = availability if availability in AVAILABILITY else "unknown"
        result[key] += 1
        services = (speaker.get("services") or {}).values()
        if availability == "online" and services:
            if all(service.get("evented") for service in services):
                result["evented"] += 1
            elif any(service.get("state") == "polling" for service in services):
                result["polling"] += 1
    return result


def service_problem(name: str, service: Mapping[str, Any]) -> str:
    """Why one subscription is not evented, in a few words."""
    state = service.get("state")
    reason = service.get("reason")
    if state == "polling":
        return f"{name}: no NOTIFY arrives (polling every few seconds instead)"
    if state == "subscribed":
        return f"{name}: waiting for the first NOTIFY"
    if state == "backing_off":
        retry = service.get("retry_in")
        when = f", retrying in {retry:.0f} s" if isinstance(retry, int | float) else ""
        return f"{name}: subscribing failed ({reason or 'unknown error'}){when}"
    if state == "lost":
        return f"{name}: subscription lost ({reason or 'unknown reason'})"
    return f"{name}: {state}"


def readiness(status: Mapping[str, Any], *, allow_polling: bool = False) -> Readiness:
    """Whether every followed speaker is evented (or polled, when ``allow_polling``)."""
    speakers = status.get("speakers") or []
    total = counts(status)
    if not speakers:
        return Readiness(
            False,
            ("no speaker is followed: list one under devices (or set discovery: true)",),
            total,
        )
    reasons: list[str] = []
    for speaker in speakers:
        if speaker_ok(speaker, allow_polling):
            continue
        label = speaker_label(speaker)
        availability = speaker.get("availability")
        why = speaker.get("reason")
        if availability == "offline":
            reasons.append(f"{label} is offline ({why or 'no answer'})")
            continue
        if availability == "upnp_disabled":
            reasons.append(f"{label} has UPnP switched off: {why}")
            continue
        if availability != "online":
            detail = f": {why}" if why else ""
            reasons.append(f"{label} is not identified yet{detail}")
            continue
        services = speaker.get("services") or {}
        problems = [
            service_problem(name, service)
            for name, service in services.items()
            if not (service.get("evented") or (allow_polling and service.get("state") == "polling"))
        ]
        reasons.append(f"{label}: " + "; ".join(problems))
    return Readiness(not reasons, tuple(reasons), total)


def health_reasons(status: Mapping[str, Any]) -> tuple[str, ...]:
    """Why ``/api/v1/health`` says ``degraded`` (empty: it does not): a followed speaker
    offline or with UPnP switched off, a configured host that could not be identified, or a
    subscription of an online speaker polling, lost or backing off. What merely has not
    happened yet (a speaker being identified, a first NOTIFY awaited) is *starting*, and an
    asleep speaker is fine: neither is a reason."""
    reasons: list[str] = []
    for speaker in status.get("speakers") or []:
        label = speaker_label(speaker)
        availability = speaker.get("availability")
        why = speaker.get("reason")
        if availability == "offline":
            reasons.append(f"{label} is offline ({why or 'no answer'})")
        elif availability == "upnp_disabled":
            reasons.append(f"{label} has UPnP switched off: {why}")
        elif availability == "unknown" and speaker.get("failures") and why:
            reasons.append(f"{label} cannot be identified ({why})")
        elif availability == "online":
            services = speaker.get("services") or {}
            problems = [
                service_problem(name, service)
                for name, service in services.items()
                if service.get("state") in ("polling", "backing_off", "lost")
            ]
            if problems:
                reasons.append(f"{label}: " + "; ".join(problems))
    return tuple(reasons)


def summary_line(status: Mapping[str, Any], clients: int) -> str:
    """The daemon in one line (systemd's ``STATUS=``):
    ``3 speakers: 3 evented, 0 polling, 3 online; 2 clients``."""
    total = counts(status)
    plural = "" if total["total"] == 1 else "s"
    client_plural = "" if clients == 1 else "s"
    return (
        f"{total['total']} speaker{plural}: {total['evented']} evented, "
        f"{total['polling']} polling, {total['online']} online; "
        f"{clients} client{client_plural}"
    )
