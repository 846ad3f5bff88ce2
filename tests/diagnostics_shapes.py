"""Speaker and service statuses in the shape ``HouseholdSupervisor.status()`` gives them, for
the tests of what reads that shape (readiness, the doctor, the metrics)."""

from __future__ import annotations

from typing import Any

from sonosd.config import DEFAULT_SERVICES


def service(state: str = "subscribed", **fields: Any) -> dict[str, Any]:
    """One subscription's status (evented when subscribed, unless told otherwise)."""
    body: dict[str, Any] = {
        "state": state,
        "evented": state == "subscribed",
        "polling": state == "polling",
        "sid": "uuid:RINCON_1_sub1",
        "timeout": 1800,
        "next_renewal": 800.0,
        "retry_in": None,
        "reason": None,
        "gaps": 0,
        "events": 3,
    }
    body.update(fields)
    return body


def speaker(
    name: str | None = "Kitchen",
    host: str = "192.168.1.20",
    availability: str = "online",
    reason: str | None = None,
    services: dict[str, dict[str, Any]] | None = None,
    callback_url: str = "http://192.168.1.10:1400/",
) -> dict[str, Any]:
    """One speaker's status, every default service evented unless ``services`` says."""
    return {
        "host": host,
        "configured_host": host,
        "uid": None if name is None else f"RINCON_{name.upper()}01400",
        "name": name,
        "availability": availability,
        "reason": reason,
        "callback_url": callback_url,
        "services": services
        if services is not None
        else ({s: service() for s in DEFAULT_SERVICES} if availability == "online" else {}),
    }


def diagnostics(*speakers: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A ``/api/v1/diagnostics`` body around ``speakers``."""
    body: dict[str, Any] = {
        "config": {"path": "/etc/sonosd/config.yaml", "devices": [{"host": "192.168.1.20"}]},
        "host": {
            "hostname": "pi",
            "container": None,
            "bridge_network": False,
            "interfaces": [],
            "lan_addresses": ["192.168.1.10"],
        },
        "listener": {
            "interface": "0.0.0.0",
            "port": 1400,
            "advertise": None,
            "notify": {"accepted": 10, "refused": {}},
            "reader": "compiled",
        },
        "speakers": list(speakers),
        "sinks": {"clients": {"websocket": 0, "sse": 0}},
    }
    body.update(sections)
    return body
