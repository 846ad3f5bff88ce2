"""Benchmark 8: how fast availability tells the truth, against real processes.

A ``twistd sonos-sim`` household and a ``twistd sonosd`` daemon configured with one of its
speakers (the others are followed through the topology) and the default availability timers
(or those given). Each fault hits its own speaker, right after that speaker was heard (a
volume change evented to the daemon), which is the worst case for the silence check; the
figure is the time from the fault to the status the daemon's API shows:

- refused (nothing listens) -> ``offline``; answering again -> ``online``;
- hung (connections accepted, never answered) -> ``offline``; answering again -> ``online``;
- rebooted for ``reboot_downtime`` seconds: what the status shows meanwhile, and the time
  from the speaker being back to every subscription live again at the simulator;
- rebooted, with a command during the downtime: the command is refused and the status
  ``offline`` right after;
- moved to a new address: time to every subscription live at the new address;
- powered off (listed in ``VanishedDevices``) -> ``offline``;
- a portable that goes to sleep -> ``asleep``; woken -> ``online``.

Targets (issue 13): refused or hung -> offline within 30 s, back -> online within 10 s.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from benchmarks.scale import Admin, daemon_argv, daemon_config, free_port, process, sim_argv
from sonosd.config import DEFAULT_SERVICES, SubscriptionConfig
from sonosd.sim.addresses import free_loopback_base

#: Each scenario's speaker (index in the simulated household); the portable is a Roam (S27).
SPEAKERS = {
    "refused": 1,
    "hung": 2,
    "reboot": 3,
    "reboot_command": 4,
    "moved": 5,
    "vanished": 0,
    "portable": 6,
}

OFFLINE_TARGET = 30.0
ONLINE_TARGET = 10.0


def _call(method: str, url: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _until(check: Callable[[], Any], timeout: float, step: float = 0.05) -> float | None:
    """Seconds until ``check()`` is true, or ``None`` after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    return None


class Rig:
    """The simulator's admin API and the daemon's API, as the scenarios use them."""

    def __init__(self, admin_port: int, api_port: int) -> None:
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.api = f"http://127.0.0.1:{api_port}/api/v1"
        self.speakers: list[dict[str, Any]] = []

    def load(self) -> None:
        self.speakers = _call("GET", self.admin + "/speakers")[1]

    def uid(self, index: int) -> str:
        return str(self.speakers[index]["uid"])

    def status(self, index: int) -> str | None:
        code, body = _call("GET", f"{self.api}/speakers/{self.uid(index)}")
        return body["availability"]["status"] if code == 200 else None

    def subscriptions(self, index: int) -> int:
        return len(_call("GET", f"{self.admin}/speakers/{index}/gena")[1]["subscriptions"])

    def heard(self, index: int) -> None:
        """Change the speaker's volume and wait until the daemon has the event."""
        volume = 10 + int(time.monotonic() * 10) % 80
        _call("PATCH", f"{self.admin}/speakers/{index}/state", {"volume": volume})

        def seen() -> bool:
            body = _call("GET", f"{self.api}/speakers/{self.uid(index)}")[1]
            rendering = body.get("services", {}).get("RenderingControl", {})
            return rendering.get("variables", {}).get("volume", {}).get("Master") == volume

        _until(seen, 10.0)

    def fault(self, index: int, route: str, body: Mapping[str, Any] | None = None) -> float:
        """Inject a fault; return when (monotonic) it was injected."""
        _call("POST", f"{self.admin}/speakers/{index}/{route}", body or {})
        return time.monotonic()

    def became(self, index: int, status: str, since: float, timeout: float) -> float | None:
        """Seconds from ``since`` until the daemon shows ``status`` for the speaker."""
        waited = _until(lambda: self.status(index) == status, timeout)
        return None if waited is None else time.monotonic() - since


def availability(
    speakers: int = 7,
    subscription: Mapping[str, Any] | None = None,
    reboot_downtime: float = 10.0,
    outage: float = 5.0,
    deadline: float = 90.0,
) -> dict[str, Any]:
    """Run every scenario once; return the figures (seconds) and the settings used."""
    settings = {**json.loads(json.dumps(_defaults())), **(subscription or {})}
    base = free_loopback_base(count=speakers + 1)
    prefix, _, first = base.rpartition(".")
    hosts = [f"{prefix}.{int(first) + i}" for i in range(speakers)]
    spare = f"{prefix}.{int(first) + speakers}"
    admin_port, api_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="sonosd-availability-")
    config_path = os.path.join(workdir, "sonosd.yaml")
    with open(config_path, "w") as handle:
        handle.write(
            daemon_config(
                hosts[:1],
                api_port,
                settings.pop("timeout"),
                settings.pop("renew_fraction"),
                {"subscription": settings},
            )
        )
    rig = Rig(admin_port, api_port)
    result: dict[str, Any] = {"settings": {**_defaults(), **(subscription or {})}}
    models = ",".join("S27" if i == SPEAKERS["portable"] else "S18" for i in range(speakers))
    sim_command = sim_argv(speakers, base, admin_port, "--models", models)
    daemon_command = daemon_argv(config_path)
    cwd = os.getcwd()
    with (
        open(os.path.join(workdir, "sim.log"), "wb") as sim_log,
        open(os.path.join(workdir, "sonosd.log"), "wb") as daemon_log,
        process(sim_command, sim_log, cwd) as sim,
    ):
        if _until(Admin(admin_port).ready, 30.0) is None or sim.poll() is not None:
            raise RuntimeError(f"the simulator did not start; see {workdir}")
        rig.load()
        with process(daemon_command, daemon_log, cwd):
            everyone = range(speakers)
            followed = _until(
                lambda: (
                    all(rig.subscriptions(i) == len(DEFAULT_SERVICES) for i in everyone)
                    and all(rig.status(i) == "online" for i in everyone)
                ),
                deadline,
            )
            if followed is None:
                raise RuntimeError(f"the household was not followed; see {workdir}")
            result["household_followed_s"] = followed
            result.update(_scenarios(rig, reboot_downtime, outage, spare, deadline))
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _defaults() -> dict[str, Any]:
    defaults = SubscriptionConfig()
    return {
        "timeout": defaults.timeout,
        "renew_fraction": defaults.renew_fraction,
        "silence_timeout": defaults.silence_timeout,
        "ping_timeout": defaults.ping_timeout,
        "availability_interval": defaults.availability_interval,
    }


def _scenarios(
    rig: Rig, downtime: float, outage: float, spare: str, deadline: float
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for kind in ("refused", "hung"):
        index = SPEAKERS[kind]
        rig.heard(index)
        since = rig.fault(index, "offline", {"mode": "refuse" if kind == "refused" else "hang"})
        figures[f"{kind}_offline_s"] = rig.became(index, "offline", since, deadline)
        time.sleep(outage)
        since = rig.fault(index, "online")
        figures[f"{kind}_online_s"] = rig.became(index, "online", since, deadline)

    index = SPEAKERS["reboot"]
    rig.heard(index)
    since = rig.fault(index, "reboot", {"downtime": downtime})
    seen: set[str] = set()

    def back() -> bool:
        seen.add(str(rig.status(index)))
        return time.monotonic() - since > downtime and rig.subscriptions(index) == len(
            DEFAULT_SERVICES
        )

    waited = _until(back, deadline, step=0.2)
    figures["reboot_statuses"] = sorted(seen)
    figures["reboot_resubscribed_after_up_s"] = (
        None if waited is None else max(0.0, time.monotonic() - since - downtime)
    )

    index = SPEAKERS["reboot_command"]
    rig.heard(index)
    since = rig.fault(index, "reboot", {"downtime": downtime})
    code, body = _call("POST", f"{rig.api}/speakers/{rig.uid(index)}/volume", {"volume": 5})
    figures["reboot_command"] = f"{code} {body.get('error', {}).get('code')}"
    figures["reboot_command_offline_s"] = rig.became(index, "offline", since, deadline)
    figures["reboot_command_online_after_up_s"] = _minus(
        rig.became(index, "online", since, deadline), downtime
    )

    index = SPEAKERS["moved"]
    since = rig.fault(index, "address", {"address": spare})
    figures["moved_resubscribed_s"] = _until(
        lambda: (
            rig.subscriptions(index) == len(DEFAULT_SERVICES)
            and _call("GET", f"{rig.api}/speakers/{rig.uid(index)}")[1].get("host") == spare
        ),
        deadline,
    )

    index = SPEAKERS["vanished"]
    since = rig.fault(index, "offline", {"mode": "refuse", "vanish": True})
    figures["vanished_offline_s"] = rig.became(index, "offline", since, deadline)

    index = SPEAKERS["portable"]
    rig.heard(index)
    since = rig.fault(index, "sleep")
    figures["sleep_asleep_s"] = rig.became(index, "asleep", since, deadline)
    time.sleep(outage)
    since = rig.fault(index, "wake")
    figures["wake_online_s"] = rig.became(index, "online", since, deadline)
    return figures


def _minus(value: float | None, amount: float) -> float | None:
    return None if value is None else max(0.0, value - amount)


def rows(result: Mapping[str, Any]) -> list[str]:
    """The benchmark's rows of the summary table."""

    def shown(key: str) -> str:
        value = result.get(key)
        return "never" if value is None else f"{value:.1f} s"

    def met(key: str, target: float) -> bool:
        value = result.get(key)
        return value is not None and value <= target

    out = []
    for key, what, target in (
        ("refused_offline_s", "refused -> offline", OFFLINE_TARGET),
        ("hung_offline_s", "hung -> offline", OFFLINE_TARGET),
        ("refused_online_s", "refused, back -> online", ONLINE_TARGET),
        ("hung_online_s", "hung, back -> online", ONLINE_TARGET),
        ("reboot_command_online_after_up_s", "rebooted, back -> online", ONLINE_TARGET),
        ("reboot_resubscribed_after_up_s", "rebooted, back -> resubscribed", ONLINE_TARGET),
        ("wake_online_s", "asleep, woken -> online", ONLINE_TARGET),
    ):
        verdict = "met" if met(key, target) else "**NOT MET**"
        out.append(
            f"| 8 | real daemon: availability, {what} (worst case: just heard) | ≤ {target:g} s "
            f"| {shown(key)} | {verdict} |"
        )
    return out


#: What each figure of ``availability()`` is, in the report.
FIGURES = (
    ("household_followed_s", "one speaker configured: every speaker subscribed and online"),
    ("refused_offline_s", "refuses connections -> offline"),
    ("refused_online_s", "answers again -> online"),
    ("hung_offline_s", "accepts connections, never answers -> offline"),
    ("hung_online_s", "answers again -> online"),
    ("reboot_resubscribed_after_up_s", "rebooted, nothing talking to it: back up -> resubscribed"),
    ("reboot_command_offline_s", "rebooted, a command meanwhile (refused) -> offline"),
    ("reboot_command_online_after_up_s", "rebooted, back up -> online"),
    ("moved_resubscribed_s", "new address -> resubscribed there"),
    ("vanished_offline_s", "listed as vanished (powered off) -> offline"),
    ("sleep_asleep_s", "a portable goes to sleep -> asleep"),
    ("wake_online_s", "woken -> online"),
)


def section(result: Mapping[str, Any]) -> list[str]:
    """The report's table of every figure, with the settings used."""
    settings = ", ".join(f"`{key}` {value}" for key, value in result["settings"].items())
    lines = [f"Settings: {settings}.", "", "| case | seconds |", "|---|---|"]
    for key, what in FIGURES:
        value = result.get(key)
        lines.append(f"| {what} | {'never' if value is None else f'{value:.1f}'} |")
    lines.append(
        f"| rebooted, nothing talking to it: statuses seen | "
        f"{', '.join(result.get('reboot_statuses', [])) or '-'} |"
    )
    lines.append(f"| the command during the reboot | {result.get('reboot_command')} |")
    return lines
