"""Tests for sonosd.doctor: findings and sentences from the diagnostics' shape."""

from __future__ import annotations

from sonosd.doctor import NOTE, PROBLEM, UPNP_STEPS, diagnose, report
from tests.diagnostics_shapes import diagnostics, service, speaker


def problems(body: dict[str, object]) -> list[str]:
    return [f.text for f in diagnose(body) if f.severity == PROBLEM]


def test_all_is_well() -> None:
    """Every speaker evented and no sink failing: no finding, one ok line per speaker."""
    body = diagnostics(speaker("Kitchen"), speaker("Office", "192.168.1.21"))
    assert diagnose(body) == []
    assert report(body, []).splitlines() == [
        "ok: Kitchen (192.168.1.20): 8 subscriptions, NOTIFYs arrive",
        "ok: Office (192.168.1.21): 8 subscriptions, NOTIFYs arrive",
        "All is well: every followed speaker delivers its events.",
    ]


def test_events_read_without_the_compiled_reader_is_a_note() -> None:
    """A daemon installed without a C compiler reads events with the standard library's
    parsers (docs/api.md, listener.reader): a note that says how to get the compiled reader."""
    body = diagnostics(speaker("Kitchen"))
    body["listener"]["reader"] = "python"
    [finding] = diagnose(body)
    assert finding.severity == NOTE and finding.subject == "listener"
    assert "without the compiled reader" in finding.text
    assert "apt install gcc python3-dev" in finding.text


def test_nothing_followed() -> None:
    """No device, no discovery, no simulation: say where to add a speaker."""
    body = diagnostics(config={"path": "/etc/sonosd/config.yaml", "devices": []})
    [text] = problems(body)
    assert text.startswith("No speaker is followed: list one under devices in /etc/sonosd")


def test_upnp_switched_off_names_the_speaker_and_the_app_steps() -> None:
    """A speaker that answers 403 is named, with how to switch UPnP on in the Sonos app."""
    off = speaker(
        None,
        "192.168.1.20",
        availability="unknown",
        reason="HTTPError: 403 Client Error: Forbidden for url: "
        "http://192.168.1.20:1400/DeviceProperties/Control",
    )
    [text] = problems(diagnostics(off))
    assert text.startswith("192.168.1.20 refuses UPnP requests (HTTPError: 403 Client Error")
    assert UPNP_STEPS in text
    assert "Account, then Privacy & Security" in text
    assert "Connection Security, and switch UPnP on" in text


def test_upnp_disabled_state_is_recognised() -> None:
    """The availability state upnp_disabled is a problem that says where UPnP is switched on,
    once (the daemon's reason says it too)."""
    from sonosd.household.probe import UPNP_HELP

    off = speaker("Kitchen", availability="upnp_disabled", reason=UPNP_HELP)
    [text] = problems(diagnostics(off))
    assert text.startswith("Kitchen (192.168.1.20) refuses UPnP requests (HTTP 403 Forbidden)")
    assert text.count("Connection Security") == 1


def test_upnp_off_speakers_of_one_system_are_one_finding() -> None:
    """UPnP is a per-system setting: the speakers of one household that refuse it are named
    together with the steps said once; those of another household get their own finding."""
    kitchen = speaker("Kitchen", availability="upnp_disabled", reason="UPnP off")
    office = speaker("Office", "192.168.1.21", availability="upnp_disabled", reason="UPnP off")
    attic = speaker("Attic", "192.168.2.20", availability="upnp_disabled", reason="UPnP off")
    for each, household in ((kitchen, "Sonos_A"), (office, "Sonos_A"), (attic, "Sonos_B")):
        each["household"] = household
    together, alone = problems(diagnostics(kitchen, office, attic))
    assert together.startswith(
        "Kitchen (192.168.1.20) and Office (192.168.1.21) refuse UPnP requests (HTTP 403 "
        "Forbidden): UPnP is switched off for their Sonos system (Sonos_A)"
    )
    assert together.count(UPNP_STEPS) == 1
    assert alone.startswith("Attic (192.168.2.20) refuses UPnP requests")


def test_offline_and_asleep() -> None:
    """An offline speaker is a problem; a sleeping portable is a note."""
    body = diagnostics(
        speaker("Kitchen", availability="offline", reason="connection refused"),
        speaker("Roam", "192.168.1.25", availability="offline", reason="sleeping"),
        speaker("Move", "192.168.1.26", availability="asleep", reason="powered off"),
    )
    findings = diagnose(body)
    assert [f.severity for f in findings] == [PROBLEM, NOTE, NOTE]
    assert findings[0].text.startswith(
        "Kitchen (192.168.1.20) is offline (connection refused): check that it is powered on"
    )
    assert "192.168.1.20 on TCP port 1400" in findings[0].text
    assert findings[1].text.startswith("Roam (192.168.1.25) is asleep (sleeping)")
    assert findings[2].text.startswith("Move (192.168.1.26) is asleep (powered off)")
    assert "1 problem(s) found." in report(body, findings)


def test_unreachable_configured_host() -> None:
    """A configured host that never answered: check the address under devices."""
    body = diagnostics(
        speaker(None, "kitchen.lan", availability="unknown", reason="host not found")
    )
    [text] = problems(body)
    assert text.startswith(
        "sonosd cannot reach the speaker configured as kitchen.lan (host not found)"
    )


def polling_speaker(name: str = "Kitchen", host: str = "192.168.1.20") -> dict[str, object]:
    return speaker(
        name,
        host,
        services={"AVTransport": service("polling"), "Queue": service("polling")},
        callback_url="http://172.17.0.2:1400/",
    )


def test_no_notify_on_a_docker_bridge() -> None:
    """Polled speakers on a bridge network: the callback URL, the bridge, advertise, firewall."""
    body = diagnostics(
        polling_speaker(),
        polling_speaker("Office", "192.168.1.21"),
        host={
            "container": "docker",
            "bridge_network": True,
            "lan_addresses": ["172.17.0.2"],
        },
    )
    [text] = problems(body)
    assert text.startswith(
        "No NOTIFY has arrived from Kitchen (192.168.1.20), Office (192.168.1.21) since "
        "subscribing: the speakers cannot reach sonosd's callback URL http://172.17.0.2:1400/"
    )
    assert "runs in a docker on a bridge network" in text
    assert "network_mode: host" in text
    assert "listener.advertise to the host's LAN address" in text
    assert "Open TCP port 1400 in this host's firewall" in text


def test_no_notify_with_several_interfaces_or_advertise() -> None:
    """Several addresses suggest listener.advertise; a set advertise is named to check."""
    several = diagnostics(
        polling_speaker(), host={"container": None, "lan_addresses": ["192.168.1.10", "10.0.0.5"]}
    )
    [text] = problems(several)
    assert "This host has several addresses (192.168.1.10, 10.0.0.5)" in text
    advertised = diagnostics(
        polling_speaker(),
        listener={"port": 1401, "advertise": "192.168.1.99", "notify": {}},
    )
    [text] = problems(advertised)
    assert "listener.advertise is 192.168.1.99" in text
    assert "Open TCP port 1401" in text


def test_failing_subscription_gaps_and_foreign_notifies() -> None:
    """Backing off is a problem with its reason; gaps and foreign NOTIFYs are notes."""
    body = diagnostics(
        speaker(
            "Kitchen",
            services={
                "Queue": service("backing_off", reason="HTTP 503", retry_in=12.0),
                "AVTransport": service(gaps=2),
            },
        ),
        listener={"port": 1400, "notify": {"accepted": 4, "refused": {"source": 3}}},
    )
    findings = diagnose(body)
    assert [(f.severity, f.text) for f in findings] == [
        (
            PROBLEM,
            "Subscribing to Queue of Kitchen (192.168.1.20) fails (HTTP 503); sonosd tries "
            "again in 12 s.",
        ),
        (
            NOTE,
            "Kitchen (192.168.1.20) AVTransport: 2 gap(s) in its events (lost on the way); "
            "sonosd read the state again each time.",
        ),
        (
            NOTE,
            "3 NOTIFY request(s) came from an address other than the subscribed speaker's and "
            "were refused (a NAT or proxy between them?).",
        ),
    ]


def test_sinks_failing() -> None:
    """A failing webhook and an absent MQTT broker are problems; past losses are notes."""
    body = diagnostics(
        speaker("Kitchen"),
        sinks={
            "webhooks": [
                {
                    "url": "http://nodered:1880/sonos",
                    "failing": True,
                    "last_error": "connection refused",
                    "queued": 12,
                    "failed": 1,
                },
                {"url": "http://ha:8123/hook", "failing": False, "dropped": 5, "failed": 0},
            ],
            "mqtt": {"broker": "127.0.0.1:1883", "connected": False, "last_error": "timeout"},
            "callbacks": [{"name": "my.mod:fn", "failed": 2}],
        },
    )
    findings = diagnose(body)
    texts = [f.text for f in findings if f.severity == PROBLEM]
    assert texts[0].startswith(
        "Webhook http://nodered:1880/sonos fails (connection refused): 12 message(s) waiting"
    )
    assert texts[1].startswith("The MQTT broker 127.0.0.1:1883 is not connected (timeout)")
    notes = [f.text for f in findings if f.severity == NOTE]
    assert notes[0].startswith("Webhook http://ha:8123/hook delivers now, but lost 0")
    assert notes[1].startswith("The callback my.mod:fn raised 2 time(s)")


def test_upnp_switched_off_after_subscribing() -> None:
    """Subscriptions refused with 403 once UPnP is switched off name the UPnP setting, once."""
    body = diagnostics(
        speaker(
            "Kitchen",
            services={
                "AVTransport": service("backing_off", reason="HTTP 403", retry_in=3.0),
                "Queue": service("backing_off", reason="HTTP 403", retry_in=3.0),
            },
        )
    )
    [text] = problems(body)
    assert text.startswith("Kitchen (192.168.1.20) refuses UPnP requests (HTTP 403)")
    assert UPNP_STEPS in text
