"""Tests for sonosd.household.readiness: ready or not, and why, from the supervisor's status."""

from __future__ import annotations

from sonosd.household.readiness import counts, health_reasons, readiness, summary_line
from tests.diagnostics_shapes import service, speaker


def status(*speakers: dict[str, object]) -> dict[str, object]:
    return {"speakers": list(speakers)}


def test_every_speaker_evented_is_ready() -> None:
    """Online speakers whose every subscription receives NOTIFYs: ready, no reason."""
    found = readiness(status(speaker("Kitchen"), speaker("Office", "192.168.1.21")))
    assert found.ready
    assert found.reasons == ()
    assert found.counts["evented"] == 2


def test_nothing_followed_is_not_ready() -> None:
    """No speaker at all is not ready, and says what to do."""
    found = readiness(status())
    assert not found.ready
    assert found.reasons[0].startswith("no speaker is followed")


def test_polling_is_ready_only_when_allowed() -> None:
    """A speaker whose NOTIFYs never came is polled: not ready, unless the config accepts it."""
    polled = speaker("Kitchen", services={"AVTransport": service("polling", evented=False)})
    assert readiness(status(polled), allow_polling=True).ready
    found = readiness(status(polled))
    assert not found.ready
    assert found.reasons == (
        "Kitchen (192.168.1.20): AVTransport: no NOTIFY arrives (polling every few seconds "
        "instead)",
    )


def test_reasons_name_the_speaker_and_what_is_wrong() -> None:
    """Offline, unidentified, backing off and waiting speakers each get their reason."""
    found = readiness(
        status(
            speaker("Kitchen", availability="offline", reason="timeout"),
            speaker(None, "192.168.1.30", availability="unknown", reason="connection refused"),
            speaker(
                "Office",
                "192.168.1.21",
                services={
                    "Queue": service("backing_off", reason="HTTP 500", retry_in=4.2),
                    "AlarmClock": service("subscribed", evented=False),
                    "AVTransport": service("lost", reason="speaker offline"),
                },
            ),
        )
    )
    assert not found.ready
    assert found.reasons == (
        "Kitchen (192.168.1.20) is offline (timeout)",
        "192.168.1.30 is not identified yet: connection refused",
        "Office (192.168.1.21): Queue: subscribing failed (HTTP 500), retrying in 4 s; "
        "AlarmClock: waiting for the first NOTIFY; AVTransport: subscription lost (speaker "
        "offline)",
    )


def test_counts_and_summary_line() -> None:
    """The systemd status line counts speakers evented, polling and online, and clients."""
    polled = speaker("Den", "192.168.1.22", services={"AVTransport": service("polling")})
    household = status(
        speaker("Kitchen"), polled, speaker("Office", "192.168.1.21", availability="offline")
    )
    assert counts(household) == {
        "total": 3,
        "online": 2,
        "offline": 1,
        "asleep": 0,
        "upnp_disabled": 0,
        "unknown": 0,
        "evented": 1,
        "polling": 1,
    }
    assert summary_line(household, 1) == ("3 speakers: 1 evented, 1 polling, 2 online; 1 client")


def test_asleep_and_upnp_disabled() -> None:
    """An asleep speaker is ready and healthy; one with UPnP off is neither, and the reason
    says so; counts give both."""
    household = status(
        speaker("Kitchen"),
        speaker("Patio", "192.168.1.23", availability="asleep", services={}),
        speaker("Den", "192.168.1.22", availability="upnp_disabled", reason="switch it on"),
    )
    found = readiness(household)
    assert found.reasons == ("Den (192.168.1.22) has UPnP switched off: switch it on",)
    assert health_reasons(household) == found.reasons
    assert (counts(household)["asleep"], counts(household)["upnp_disabled"]) == (1, 1)
    assert readiness(status(speaker("Kitchen"), speaker("Patio", availability="asleep"))).ready


def test_health_reasons() -> None:
    """Health is degraded for offline speakers, unidentifiable hosts and services polling,
    lost or backing off; not for what is still starting."""
    starting = status(
        speaker("Kitchen", services={"AVTransport": service("subscribed", evented=False)}),
        speaker(None, "192.168.1.30", availability="unknown", services={}),
    )
    assert health_reasons(starting) == ()
    failing = status(
        {**speaker(None, "192.168.1.30", availability="unknown", reason="timeout"), "failures": 2},
        speaker("Den", "192.168.1.22", services={"Queue": service("lost", reason="HTTP 503")}),
        speaker("Office", "192.168.1.21", availability="offline", reason="timeout"),
    )
    assert health_reasons(failing) == (
        "192.168.1.30 cannot be identified (timeout)",
        "Den (192.168.1.22): Queue: subscription lost (HTTP 503)",
        "Office (192.168.1.21) is offline (timeout)",
    )
