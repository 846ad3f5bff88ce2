"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright) against a real ``twistd sonosd`` with a simulated household.

Every wait has a deadline; nothing asserts how long something took. Each page must end its
test without a console error or an uncaught exception. With ``SONOSD_SCREENSHOTS=<folder>``
the screenshots taken along the way are also written there (``make screenshots`` refreshes
``docs/dashboard.png`` and ``docs/dashboard-dark.png``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from sonosd.config import DEFAULT_SERVICES
from tests.daemon_helpers import ROOMS, daemon_yaml, free_tcp_port
from tests.paths import ROOT
from tests.test_daemon_process import Processes, get_json, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_TOKEN = "dashboard-admin-token-0123"
#: A webhook target where nothing listens (a port free when the tests start).
NOWHERE_HOOK = f"http://127.0.0.1:{free_tcp_port()}/sonos"
READ_TOKEN = "dashboard-read-token-4567"

#: The deadline of every wait in the page, in milliseconds.
DEADLINE = 15_000
expect.set_options(timeout=DEADLINE)


class Daemon:
    """A running daemon: its page URL, the simulator's admin API, the speakers' uids."""

    def __init__(self, url: str, admin: str, restart: Callable[[], None]) -> None:
        self.url = url
        self.admin = admin
        #: Stop the daemon (SIGTERM) and start it again with the same configuration.
        self.restart = restart
        speakers = get_json(f"{admin}/speakers")
        self.uids = {speaker["name"]: speaker["uid"] for speaker in speakers}
        #: A configured address where no speaker answers, if any.
        self.nowhere: str | None = None
        #: What the running daemon wrote so far (its log).
        self.output: Callable[[], str] = str

    def speaker(self, room: str) -> dict[str, Any]:
        """The simulator's view of ``room``."""
        return get_json(f"{self.admin}/speakers/{self.uids[room]}")  # type: ignore[no-any-return]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """An admin API request."""
        data = json.dumps(body or {}).encode() if method != "GET" else None
        request = urllib.request.Request(self.admin + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def run_daemon(
    directory: Path,
    speakers: int,
    configure: Callable[[dict[str, Any]], None],
    spare: int = 0,
    document: dict[str, Any] | None = None,
) -> Iterator[Daemon]:
    """``twistd sonosd`` with ``speakers`` simulated speakers and the simulator's admin API,
    its configuration changed by ``configure``; killed when the generator ends.

    @param spare: Addresses after the speakers' that are free too (for the configuration).
    @param document: A configuration to run (its API, simulator addresses and admin API
        moved to free ones) instead of the tests' own.
    """
    from sonosd.sim.addresses import free_loopback_base

    processes = Processes(directory)
    api_port, admin_port = free_tcp_port(), free_tcp_port()
    api = f"tcp:{api_port}:interface=127.0.0.1"
    base = free_loopback_base(count=speakers + spare)
    if document is None:
        config = json.loads(daemon_yaml(base, api=api, speakers=speakers))
        # A silent speaker is pinged after 2 s, so that one taken offline is noticed soon.
        config["subscription"]["silence_timeout"] = 2.0
    else:
        config = document
        config["api"]["listen"] = api
        config["simulate"]["base_address"] = base
    config["simulate"]["admin"] = f"tcp:{admin_port}:interface=127.0.0.1"
    configure(config)
    path = directory / "sonosd.yaml"
    path.write_text(json.dumps(config))
    url = f"http://127.0.0.1:{api_port}"
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        for old in started:
            if old.poll() is None:
                old.terminate()
                old.wait(timeout=60)
        process = processes.start(f"daemon-{len(started)}", "sonosd", "-c", str(path))
        started.append(process)

        def ready() -> bool:
            assert process.poll() is None, processes.output(process)
            health = get_json(f"{url}/api/v1/health")
            return bool(health) and health["speakers"]["online"] == speakers

        wait_for(ready, "every simulated speaker online")

    try:
        start()
        daemon = Daemon(url, f"http://127.0.0.1:{admin_port}", start)
        daemon.output = lambda: processes.output(started[-1])
        yield daemon
    finally:
        processes.kill_all()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``twistd sonosd`` with three simulated rooms, a read and an admin token, an admin API,
    a Python callback and a webhook whose target refuses every connection."""

    def configure(config: dict[str, Any]) -> None:
        # Small, so that a client away for a burst of changes must reset.
        config["api"]["replay_buffer"] = 200
        config["sinks"] = {
            "callbacks": ["tests.daemon_helpers:record_callback"],
            "webhooks": [{"url": NOWHERE_HOOK, "retries": 0, "filter": {"types": ["speaker.*"]}}],
        }
        config["api"]["tokens"] = [
            {"name": "admin", "token_env": "DASHBOARD_ADMIN", "scopes": ["read", "control"]},
            {"name": "reader", "token_env": "DASHBOARD_READ", "scopes": ["read"]},
        ]

    os.environ["DASHBOARD_ADMIN"] = ADMIN_TOKEN
    os.environ["DASHBOARD_READ"] = READ_TOKEN
    try:
        yield from run_daemon(tmp_path_factory.mktemp("dashboard"), len(ROOMS), configure)
    finally:
        del os.environ["DASHBOARD_ADMIN"], os.environ["DASHBOARD_READ"]


#: The rooms of the two simulated households, in speaker order (the first three are the
#: first household; Garden is a Roam, a portable that sleeps).
HOUSEHOLDS = (("Study", "Hall", "Garden"), ("Loft", "Porch"))


@pytest.fixture(scope="module")
def households(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``twistd sonosd`` following two simulated households (open API on loopback), and a
    configured address where no speaker answers (``Daemon.nowhere``)."""
    rooms = [room for household in HOUSEHOLDS for room in household]
    nowhere = []

    def configure(config: dict[str, Any]) -> None:
        config["simulate"].update(
            rooms=rooms, households=2, models=["S18", "S18", "S27", "S18", "S18"]
        )
        # Asleep and UPnP-off speakers are checked every 2 s, so that they come back soon.
        config["subscription"]["asleep_interval"] = 2.0
        # A speaker whose NOTIFYs are dropped is polled 1 s after subscribing (the tests'
        # 3 s otherwise): a late first NOTIFY ends the polling anyway.
        config["subscription"]["no_event_grace"] = 1.0
        # The simulated speakers, and the next address of their block, where nothing answers.
        block = config["simulate"]["base_address"].rsplit(".", 1)[0]
        hosts = [f"{block}.{last}" for last in range(2, len(rooms) + 3)]
        config["devices"] = [{"host": host} for host in hosts]
        nowhere.append(hosts[-1])

    directory = tmp_path_factory.mktemp("households")
    for daemon in run_daemon(directory, len(rooms), configure, spare=1):
        daemon.nowhere = nowhere[0]
        yield daemon


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system's package."""
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    assert Path(CHROMIUM).exists(), "chromium is missing: `make sysdeps` installs it"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")


def open_page(
    browser: Browser,
    daemon: Daemon,
    before: Callable[[BrowserContext], None] | None = None,
    **options: Any,
) -> tuple[Page, Console]:
    """A fresh browser context (nothing stored) on the dashboard.

    @param before: Called with the context before the page loads (to route its requests).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 860}, **options)
    if before is not None:
        before(context)
    page = context.new_page()
    console = Console(page)
    page.goto(daemon.url + "/")
    return page, console


def pause_clock(page: Page) -> None:
    """Stop the clock of ``page`` (installed) a second on from its time now: its timers fire
    only as the test moves the clock on."""
    now = page.evaluate("Date.now()") / 1000
    page.clock.pause_at(datetime.datetime.fromtimestamp(now + 1, datetime.UTC))


def log_in(page: Page, token: str) -> None:
    """Answer the token prompt."""
    dialog = page.get_by_role("dialog", name="This daemon needs a token")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Token").fill(token)
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("Live")


def card(page: Page | Locator, title: str) -> Any:
    """The card of the group titled ``title`` (in the page, or a part of it)."""
    return page.get_by_role("article", name=title, exact=True)


def screenshot(page: Page, name: str) -> None:
    """Take a screenshot; keep it under ``$SONOSD_SCREENSHOTS`` when that is set."""
    image = page.screenshot()
    assert image.startswith(b"\x89PNG")
    folder = os.environ.get("SONOSD_SCREENSHOTS")
    if folder:
        Path(folder, name).write_bytes(image)


def finish(page: Page, console: Console, allowed: tuple[str, ...] = ()) -> None:
    """Close the page's context; fail on any console error not expected."""
    page.context.close()
    errors = [error for error in console.errors if not any(a in error for a in allowed)]
    assert errors == [], errors


def test_token_prompt_then_every_room_live(browser: Browser, daemon: Daemon) -> None:
    """The page asks for a token (``/api/v1/access`` tells it, without a refused request),
    refuses a wrong one (checked the same way), then shows every room with labelled controls;
    the token is kept for the tab's session only."""
    refused: list[str] = []

    def watch(context: BrowserContext) -> None:
        context.on("response", lambda answer: answer.status == 401 and refused.append(answer.url))

    page, console = open_page(browser, daemon, watch)
    dialog = page.get_by_role("dialog", name="This daemon needs a token")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Token").fill("not-the-token")
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog.get_by_role("alert")).to_have_text("This token is not valid for this daemon.")
    dialog.get_by_label("Token").fill(ADMIN_TOKEN)
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_hidden()
    for room in ROOMS:
        group = card(page, room)
        expect(group).to_be_visible()
        expect(group.get_by_role("slider", name=f"Volume of {room}")).to_be_enabled()
        expect(group.get_by_role("button", name=f"Play {room}")).to_be_visible()
        expect(group.get_by_role("button", name=f"Next track in {room}")).to_be_visible()
        expect(group.get_by_label("Sleep timer")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('sonosd.token')") == ADMIN_TOKEN
    assert page.evaluate("localStorage.length") == 0
    tree = page.locator("main").aria_snapshot()
    for room in ROOMS:
        assert f'slider "Volume of {room}"' in tree, tree
    office, kitchen = daemon.uids["Office"], daemon.uids["Kitchen"]
    # Grouped, so that the group's own controls are walked through too.
    daemon.call("POST", f"/speakers/{office}/join", {"coordinator": kitchen})
    try:
        tab_through_the_rooms(page, daemon, ("Kitchen + Office", "Living Room"))
    finally:
        daemon.call("POST", f"/speakers/{office}/unjoin")
    expect(card(page, "Office")).to_be_visible()
    page.reload()
    expect(card(page, "Kitchen")).to_be_visible()
    expect(page.get_by_role("dialog", name="This daemon needs a token")).to_be_hidden()
    assert refused == [], refused
    finish(page, console)


#: The elements a keyboard reaches natively (no ``tabindex``, no ARIA widget role).
NATIVE = ("A", "BUTTON", "INPUT", "SELECT", "SUMMARY", "TEXTAREA")

#: Every control of the rooms the Tab key can reach (enabled and shown), kept as
#: ``window.controls``; fails on an element made a control by a role or a ``tabindex``.
ROOM_CONTROLS = """() => {
    const rooms = document.getElementById("households");
    const made = rooms.querySelectorAll("[tabindex], [role=button], [role=slider], " +
        "[role=checkbox], [role=switch], [role=link], [role=combobox], [role=menuitem]");
    window.controls = [...rooms.querySelectorAll("*")].filter((node) =>
        node.tabIndex >= 0 && !node.disabled && node.getClientRects().length > 0);
    return { made: [...made].map((node) => node.outerHTML.slice(0, 80)),
        controls: window.controls.length };
}"""

#: The focused element: its place in ``window.controls``, tag, label and room (its member's
#: name in a member's row, else its card's title; null outside the rooms).
FOCUSED = """() => {
    const node = document.activeElement;
    const member = node.closest(".member");
    const group = node.closest("article.group");
    const room = member ? member.querySelector(".member-name").textContent
        : group ? group.querySelector("h3").textContent : null;
    return { index: window.controls.indexOf(node), tag: node.tagName, room,
        label: node.getAttribute("aria-label") };
}"""


def tab_through_the_rooms(tab: Page, daemon: Daemon, titles: tuple[str, ...]) -> None:
    """Tab through the whole page: every element reached is a native control; every enabled
    control of the rooms is reached, and has an accessible name naming its room (its
    member's in a member's row, else its card's); Living Room's mute, reached so, works with
    Enter and Space."""
    # The cards settled (no other card left, each complete, its favourites read with
    # commands included), so that none is replaced under the walk.
    expect(tab.get_by_role("article")).to_have_count(len(titles))
    for title in titles:
        expect(card(tab, title).get_by_label("Favourites and playlists")).to_be_visible()
        for room in title.split(" + "):
            slider = card(tab, title).get_by_role("slider", name=f"Volume of {room}", exact=True)
            expect(slider).to_be_enabled()
    found = tab.evaluate(ROOM_CONTROLS)
    assert found["made"] == [], found
    controls = found["controls"]
    # Each card has its transport, its volumes and mutes, the sleep timer and the Group button.
    assert controls >= 8 * len(titles), found
    reached: list[int] = []
    muted = daemon.speaker("Living Room")["mute"]
    tab.evaluate("document.activeElement.blur()")
    # The whole page, header and panels too, and around to the start again.
    for _ in range(controls + 20):
        tab.keyboard.press("Tab")
        focused = tab.evaluate(FOCUSED)
        # Outside the rooms too (the header, the panels), or nothing (focus out of the page).
        assert focused["tag"] in (*NATIVE, "BODY"), focused
        if focused["room"] is None:
            continue
        assert focused["index"] >= 0, focused
        if focused["index"] in reached:
            break
        reached.append(focused["index"])
        expect(tab.locator(":focus")).to_have_accessible_name(
            re.compile(rf"\b{re.escape(focused['room'])}\b")
        )
        if focused["label"] == "Mute Living Room":
            for key in ("Enter", "Space"):
                tab.keyboard.press(key)
                muted = not muted
                wait_for(
                    lambda m=muted: daemon.speaker("Living Room")["mute"] is m,
                    f"Living Room's mute {muted} from the keyboard",
                )
                expect(tab.locator(":focus")).to_have_attribute("aria-pressed", str(muted).lower())
    assert sorted(reached) == list(range(controls)), (reached, controls)


@pytest.fixture
def page(browser: Browser, daemon: Daemon) -> Iterator[tuple[Page, Console]]:
    """The dashboard, logged in with the admin token."""
    page, console = open_page(browser, daemon)
    log_in(page, ADMIN_TOKEN)
    yield page, console


def test_volume_slider_moves_the_speaker(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Moving a volume slider with the keyboard sets the simulated speaker's volume."""
    tab, console = page
    slider = card(tab, "Kitchen").get_by_role("slider", name="Volume of Kitchen")
    slider.focus()
    tab.keyboard.press("Home")
    for _ in range(7):
        tab.keyboard.press("ArrowRight")
    expect(slider).to_have_value("7")
    wait_for(lambda: daemon.speaker("Kitchen")["volume"] == 7, "the kitchen at volume 7")
    slider.fill("42")
    wait_for(lambda: daemon.speaker("Kitchen")["volume"] == 42, "the kitchen at volume 42")
    finish(tab, console)


def test_changes_elsewhere_show_live(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Changes made through the simulator's admin API appear on the page."""
    tab, console = page
    office = card(tab, "Office")
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"volume": 37, "mute": True})
    expect(office.get_by_role("slider", name="Volume of Office")).to_have_value("37")
    expect(office.get_by_role("button", name="Mute Office")).to_have_attribute(
        "aria-pressed", "true"
    )
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"transport": "PLAYING"})
    expect(office.get_by_role("button", name="Pause Office")).to_be_visible()
    title = daemon.speaker("Office")["current"]["title"]
    expect(office.get_by_text(title, exact=True)).to_be_visible()
    daemon.call("POST", f"/speakers/{daemon.uids['Office']}/next")
    current = daemon.speaker("Office")["current"]
    expect(office.get_by_text(current["title"], exact=True)).to_be_visible()
    # The artist, the album and the track's duration ("H:MM:SS" at the speaker, "M:SS" here).
    expect(office.locator(".track .artist")).to_have_text(current["artist"])
    expect(office.locator(".track .album")).to_have_text(current["album"])
    hours, minutes, seconds = current["duration"].split(":")
    assert hours == "0", current
    expect(office.locator(".progress .time").last).to_have_text(f"{int(minutes)}:{seconds}")
    art = office.get_by_role("img", name="Album art", exact=False)
    expect(art).to_be_visible()
    assert tab.evaluate("(img) => img.naturalWidth > 0", art.element_handle())
    # Through the daemon's proxy (with the token), never from the speaker directly.
    source = tab.evaluate("(img) => img.src", art.element_handle())
    assert source.startswith(f"{daemon.url}/api/v1/art?"), source
    assert "access_token=" in source, source
    # Known from the track change on: the position runs while playing.
    elapsed = office.locator(".progress .time").first
    # Two seconds in or more (a page its machine slows may skip "0:02" on its way).
    expect(elapsed).to_have_text(
        re.compile(r"^(0:0[2-9]|0:[1-5]\d|[1-9]\d*:\d\d)$"), timeout=DEADLINE
    )
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"transport": "STOPPED"})
    expect(office.get_by_role("button", name="Play Office")).to_be_visible()
    finish(tab, console)


def test_controls_drive_the_household(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Transport, play mode, mute and the sleep timer act on the simulated speakers."""
    tab, console = page
    kitchen = card(tab, "Kitchen")
    kitchen.get_by_role("button", name="Play Kitchen").click()
    wait_for(lambda: daemon.speaker("Kitchen")["transport"] == "PLAYING", "the kitchen playing")
    expect(kitchen.get_by_role("button", name="Pause Kitchen")).to_be_visible()
    kitchen.get_by_role("button", name="Shuffle in Kitchen").press("Enter")
    wait_for(lambda: "SHUFFLE" in daemon.speaker("Kitchen")["play_mode"], "shuffle on")
    expect(kitchen.get_by_role("button", name="Shuffle in Kitchen")).to_have_attribute(
        "aria-pressed", "true"
    )
    kitchen.get_by_role("button", name="Mute Kitchen").click()
    wait_for(lambda: daemon.speaker("Kitchen")["mute"] is True, "the kitchen muted")
    kitchen.get_by_label("Sleep timer").select_option("30")
    wait_for(lambda: (daemon.speaker("Kitchen")["sleep_timer"] or 0) > 1700, "a sleep timer")
    expect(kitchen.get_by_text("30 min left")).to_be_visible()
    kitchen.get_by_label("Sleep timer").select_option("")
    wait_for(lambda: daemon.speaker("Kitchen")["sleep_timer"] is None, "no sleep timer")
    kitchen.get_by_role("button", name="Pause Kitchen").click()
    wait_for(lambda: daemon.speaker("Kitchen")["transport"] != "PLAYING", "the kitchen paused")
    screenshot(tab, "dashboard-controls.png")
    finish(tab, console)


def test_track_repeat_and_crossfade(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Next and previous move through the queue; repeat goes off, all, one track and off
    again; crossfade switches on and off: each at the simulated speaker."""
    tab, console = page
    uid = daemon.uids["Living Room"]
    daemon.call("PATCH", f"/speakers/{uid}/state", {"play_mode": "NORMAL", "crossfade": False})
    living = card(tab, "Living Room")
    track = daemon.speaker("Living Room")["track"]
    assert daemon.speaker("Living Room")["queue_length"] > track
    living.get_by_role("button", name="Next track in Living Room").click()
    wait_for(lambda: daemon.speaker("Living Room")["track"] == track + 1, "the next track")
    title = daemon.speaker("Living Room")["current"]["title"]
    expect(living.get_by_text(title, exact=True)).to_be_visible()
    living.get_by_role("button", name="Previous track in Living Room").click()
    wait_for(lambda: daemon.speaker("Living Room")["track"] == track, "the previous track")
    for mode, said in (("REPEAT_ALL", "all"), ("REPEAT_ONE", "one track"), ("NORMAL", "off")):
        living.get_by_role("button", name=re.compile("^Repeat in Living Room")).click()
        wait_for(lambda m=mode: daemon.speaker("Living Room")["play_mode"] == m, mode)
        expect(living.get_by_role("button", name=f"Repeat in Living Room: {said}")).to_be_visible()
    crossfade = living.get_by_role("button", name="Crossfade in Living Room")
    crossfade.click()
    wait_for(lambda: daemon.speaker("Living Room")["crossfade"] is True, "crossfade on")
    expect(crossfade).to_have_attribute("aria-pressed", "true")
    crossfade.click()
    wait_for(lambda: daemon.speaker("Living Room")["crossfade"] is False, "crossfade off")
    expect(crossfade).to_have_attribute("aria-pressed", "false")
    finish(tab, console)


def test_grouping_from_the_page(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Joining a room to another in the page groups them at the simulator, and back."""
    tab, console = page
    card(tab, "Kitchen").get_by_role("button", name="Group").click()
    dialog = tab.get_by_role("dialog", name="Group with Kitchen")
    expect(dialog).to_be_visible()
    dialog.get_by_role("checkbox", name="Office").check()
    dialog.get_by_role("button", name="Apply").click()
    kitchen = daemon.uids["Kitchen"]
    wait_for(lambda: daemon.speaker("Office")["coordinator"] == kitchen, "office in the kitchen")
    group = card(tab, "Kitchen + Office")
    expect(group).to_be_visible()
    expect(card(tab, "Office")).to_have_count(0)
    play = group.get_by_role("button", name=re.compile(r"^(Play|Pause) Kitchen \+ Office$"))
    expect(play).to_be_visible()
    expect(group.get_by_role("slider", name="Group volume of Kitchen + Office")).to_be_enabled()
    group.get_by_role("slider", name="Group volume of Kitchen + Office").fill("30")
    wait_for(lambda: daemon.speaker("Kitchen")["group_volume"] == 30, "group volume 30")
    # Each member keeps its own volume and mute in the group's card.
    group.get_by_role("slider", name="Volume of Office").fill("12")
    wait_for(lambda: daemon.speaker("Office")["volume"] == 12, "the office at volume 12")
    kitchen_muted = daemon.speaker("Kitchen")["mute"]
    office_mute = group.get_by_role("button", name="Mute Office", exact=True)
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"mute": False})
    expect(office_mute).to_have_attribute("aria-pressed", "false")
    office_mute.click()
    wait_for(lambda: daemon.speaker("Office")["mute"] is True, "the office muted")
    assert daemon.speaker("Kitchen")["mute"] is kitchen_muted
    expect(office_mute).to_have_attribute("aria-pressed", "true")
    office_mute.click()
    wait_for(lambda: daemon.speaker("Office")["mute"] is False, "the office unmuted")
    group_mute = group.get_by_role("button", name="Mute Kitchen + Office")
    expect(group_mute).to_have_attribute("aria-pressed", "false")
    group_mute.click()
    wait_for(lambda: daemon.speaker("Kitchen")["group_mute"] is True, "the group muted")
    expect(group_mute).to_have_attribute("aria-pressed", "true")
    group_mute.click()
    wait_for(lambda: daemon.speaker("Kitchen")["group_mute"] is False, "the group unmuted")
    daemon.call("PATCH", f"/speakers/{kitchen}/state", {"transport": "PLAYING"})
    daemon.call("POST", f"/speakers/{kitchen}/next")
    expect(group.get_by_text("Playing", exact=True)).to_be_visible()
    expect(group.locator(".progress progress")).to_be_visible()
    screenshot(tab, "dashboard.png")
    background = "getComputedStyle(document.body).backgroundColor"
    assert tab.evaluate(background) == "rgb(244, 245, 247)"
    tab.emulate_media(color_scheme="dark")
    # Dark follows the system's preference, with nothing to switch in the page.
    expect(tab.locator("body")).to_have_css("background-color", "rgb(15, 17, 21)")
    screenshot(tab, "dashboard-dark.png")
    tab.emulate_media(color_scheme="light")
    expect(tab.locator("body")).to_have_css("background-color", "rgb(244, 245, 247)")
    daemon.call("PATCH", f"/speakers/{kitchen}/state", {"transport": "PAUSED_PLAYBACK"})
    group.get_by_role("button", name="Group").click()
    dialog = tab.get_by_role("dialog", name="Group with Kitchen")
    dialog.get_by_role("checkbox", name="Office").uncheck()
    dialog.get_by_role("button", name="Apply").click()
    wait_for(lambda: daemon.speaker("Office")["coordinator"] != kitchen, "office on its own")
    expect(card(tab, "Office")).to_be_visible()
    finish(tab, console)


def test_read_only_token_disables_controls(browser: Browser, daemon: Daemon) -> None:
    """With a read-only token the state shows, the controls are disabled and say why; the
    favourites and playlists (read with commands) are neither asked for nor shown."""
    posted: list[str] = []

    def watch(context: BrowserContext) -> None:
        context.on("request", lambda sent: sent.method == "POST" and posted.append(sent.url))

    tab, console = open_page(browser, daemon, watch)
    log_in(tab, READ_TOKEN)
    reason = "This token can only read: controls need a token with the control scope."
    expect(tab.get_by_role("note")).to_have_text(reason)
    kitchen = card(tab, "Kitchen")
    slider = kitchen.get_by_role("slider", name="Volume of Kitchen")
    expect(slider).to_be_disabled()
    expect(slider).to_have_attribute("title", reason)
    for name in ("Play Kitchen", "Next track in Kitchen", "Mute Kitchen", "Shuffle in Kitchen"):
        expect(kitchen.get_by_role("button", name=name)).to_be_disabled()
    expect(kitchen.get_by_role("button", name="Group")).to_be_disabled()
    expect(kitchen.get_by_label("Sleep timer")).to_be_disabled()
    daemon.call("PATCH", f"/speakers/{daemon.uids['Kitchen']}/state", {"volume": 12})
    expect(slider).to_have_value("12")
    expect(kitchen.get_by_label("Favourites and playlists")).to_have_count(0)
    assert posted == [], posted
    tab.get_by_role("button", name="Forget token").click()
    expect(tab.get_by_role("dialog", name="This daemon needs a token")).to_be_visible()
    assert tab.evaluate("sessionStorage.getItem('sonosd.token')") is None
    finish(tab, console)


def test_reconnect_resumes_and_resets(browser: Browser, daemon: Daemon) -> None:
    """After a network outage the page resumes and shows what changed meanwhile; after one
    longer than the replay ring it resets and reloads the snapshot; nothing stale remains.
    A token the daemon refuses when the stream reconnects (401) brings the token prompt back,
    saying so, and the refused token is dropped."""
    forwarder = Forwarder(int(daemon.url.rsplit(":", 1)[1]))
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    console = Console(tab)
    try:
        tab.goto(f"http://127.0.0.1:{forwarder.port}/")
        log_in(tab, ADMIN_TOKEN)
        status = tab.locator("#connection")
        slider = card(tab, "Living Room").get_by_role("slider", name="Volume of Living Room")
        uid = daemon.uids["Living Room"]
        forwarder.cut()
        expect(status).to_have_text("Reconnecting…")
        daemon.call("PATCH", f"/speakers/{uid}/state", {"volume": 21})
        wait_for(lambda: _volume_at_daemon(daemon, uid) == 21, "the daemon at volume 21")
        forwarder.restore()
        expect(status).to_have_text("Live")
        expect(slider).to_have_value("21")
        forwarder.cut()
        expect(status).to_have_text("Reconnecting…")
        # Far more messages than the ring keeps: the resume must reset.
        daemon.call("POST", f"/speakers/{uid}/burst", {"count": 300, "service": "RenderingControl"})
        daemon.call("PATCH", f"/speakers/{uid}/state", {"volume": 64})
        wait_for(lambda: _volume_at_daemon(daemon, uid) == 64, "the daemon at volume 64")
        forwarder.restore()
        expect(status).to_have_text("Live")
        expect(slider).to_have_value("64")
        # The token no longer valid (as after a reload that removed it): the reconnect is
        # refused, and the page asks for another one.
        tab.evaluate("sessionStorage.setItem('sonosd.token', 'a-token-the-daemon-refuses')")
        forwarder.cut()
        expect(status).to_have_text("Reconnecting…")
        forwarder.restore()
        prompt = tab.get_by_role("dialog", name="This daemon needs a token")
        expect(prompt).to_be_visible()
        expect(prompt.get_by_role("alert")).to_have_text("This token was refused.")
        expect(status).to_have_text("Token needed")
        assert tab.evaluate("sessionStorage.getItem('sonosd.token')") is None
    finally:
        forwarder.close()
    finish(tab, console, allowed=("net::ERR_", "401 (Unauthorized)"))


#: Records in ``window.reconnects`` every request for the event stream (``attempt``: its time
#: and URL) and every number ``Math.random`` draws (``draw``: its time and value), drawn from a
#: seeded generator (Park and Miller's) so that a run draws the same.
RECONNECTS = """(() => {
    window.reconnects = [];
    let seed = 20261207;
    Math.random = () => {
        seed = (seed * 16807) % 2147483647;
        const value = seed / 2147483647;
        window.reconnects.push({ what: "draw", at: Date.now(), value });
        return value;
    };
    const fetch = window.fetch;
    window.fetch = function (input, ...rest) {
        const url = new URL(String(input), location.href);
        if (url.pathname.endsWith("/api/v1/events")) {
            window.reconnects.push({ what: "attempt", at: Date.now(), url: url.href });
        }
        return fetch.call(this, input, ...rest);
    };
})();"""


def _last_id(daemon: Daemon) -> tuple[str, int]:
    """The daemon's run and the id of its last message."""
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/snapshot", headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        snapshot = json.load(response)
    return snapshot["run"], snapshot["last_id"]


def check_reconnect_schedule(tab: Page, run: str, after: int, upto: int) -> None:
    """With the page's clock paused on a dropped stream and the daemon unreachable, move the
    clock on attempt by attempt: each wait follows the last attempt (or the drop) by half its
    base plus a random part of the other half, the base 0.5 s, then doubling, at most 10 s (so
    that pages dropped together do not come back in lock step), and every attempt asks to
    resume with ``last_id``, that of the last message the page had (after ``after``, at most
    ``upto``), and ``run``."""
    # From the drop's draw on.
    start = tab.evaluate("window.reconnects.findLastIndex((e) => e.what === 'draw')")
    log = f"window.reconnects.slice({start})"
    # Synchronised: every attempt so far has failed and drawn its wait (the drop drew first).
    settled = f"{log}.filter((e) => e.what === 'draw').length === " + (
        f"{log}.filter((e) => e.what === 'attempt').length + 1"
    )
    bases = [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]
    for _ in range(2 * len(bases)):
        wait_for(lambda: tab.evaluate(settled), "the page waiting to reconnect")
        events = tab.evaluate(log)
        if sum(event["what"] == "attempt" for event in events) >= len(bases):
            break
        tab.clock.run_for(10_001)
    # (A step of the clock may have run one attempt more.)
    draws = [event for event in events if event["what"] == "draw"][: len(bases)]
    attempts = [event for event in events if event["what"] == "attempt"][: len(bases)]
    waits = [attempt["at"] - draw["at"] for draw, attempt in zip(draws, attempts, strict=False)]
    expected = [
        base / 2 + draw["value"] * base / 2 for base, draw in zip(bases, draws, strict=False)
    ]
    assert len(waits) == len(bases), events
    # To the precision of the clock's timestamps (fractions of a millisecond).
    assert all(abs(wait - want) < 1 for wait, want in zip(waits, expected, strict=True)), (
        waits,
        expected,
    )
    # Jittered: the waits at the cap differ, and none is a bare base.
    assert len({round(wait) for wait in waits[-3:]}) == 3, waits
    assert not set(waits) & set(bases), waits
    resumes = {
        tuple(urllib.parse.parse_qsl(urllib.parse.urlsplit(attempt["url"]).query))
        for attempt in attempts
    }
    assert len(resumes) == 1, resumes
    query = dict(resumes.pop())
    assert query["run"] == run, query
    assert after < int(query["last_id"]) <= upto, (query, after, upto)


def test_silent_stream_is_dropped_and_reopened(browser: Browser, daemon: Daemon) -> None:
    """An event stream that stays open but goes silent (no heartbeat) for 60 s is dropped:
    the page says Reconnecting… and dims the rooms, reconnects backing off with jitter and
    with ``last_id`` while the daemon is away, then reopens the stream and resumes with what
    changed meanwhile."""
    forwarder = Forwarder(int(daemon.url.rsplit(":", 1)[1]))
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(RECONNECTS)
    tab = context.new_page()
    console = Console(tab)
    # The page's clock is the browser's, so that a minute of silence passes at once; it runs
    # on by itself meanwhile, but for the reconnection schedule.
    tab.clock.install()
    try:
        tab.goto(f"http://127.0.0.1:{forwarder.port}/")
        log_in(tab, ADMIN_TOKEN)
        status = tab.locator("#connection")
        rooms = tab.locator("#households")
        expect(rooms).to_have_css("opacity", "1")
        slider = card(tab, "Office").get_by_role("slider", name="Volume of Office")
        uid = daemon.uids["Office"]
        # A change the page shows: the stream is resumed from it or a later message.
        _, before = _last_id(daemon)
        shown = 25 if daemon.speaker("Office")["volume"] != 25 else 26
        daemon.call("PATCH", f"/speakers/{uid}/state", {"volume": shown})
        expect(slider).to_have_value(str(shown))
        volume = 23 if shown != 23 else 24
        forwarder.silence()
        run, upto = _last_id(daemon)
        daemon.call("PATCH", f"/speakers/{uid}/state", {"volume": volume})
        wait_for(lambda: _volume_at_daemon(daemon, uid) == volume, "the daemon's new volume")
        # Held open and silent, the stream has handed nothing on.
        assert slider.input_value() != str(volume)
        assert status.text_content() == "Live"
        pause_clock(tab)
        tab.clock.fast_forward("01:01")
        expect(status).to_have_text("Reconnecting…")
        check_reconnect_schedule(tab, run, before, upto)
        expect(rooms).to_have_css("opacity", "0.55")
        forwarder.restore()
        # The next attempt, at most 10 s on, now rather than in up to 10 s.
        tab.clock.run_for(10_001)
        tab.clock.resume()
        expect(status).to_have_text("Live")
        expect(slider).to_have_value(str(volume))
        expect(rooms).to_have_css("opacity", "1")
    finally:
        forwarder.close()
    finish(tab, console, allowed=("net::ERR_",))


def test_daemon_restart_replaces_the_page(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """When the daemon restarts, the page reconnects and the fresh snapshot replaces all it
    held: a group and a volume from before the restart are gone."""
    running = run_daemon(tmp_path_factory.mktemp("restart"), len(ROOMS), lambda config: None)
    restarting = next(running)
    try:
        tab, console = open_page(browser, restarting)
        status = tab.locator("#connection")
        expect(status).to_have_text("Live")
        card(tab, "Kitchen").get_by_role("button", name="Group").click()
        dialog = tab.get_by_role("dialog", name="Group with Kitchen")
        dialog.get_by_role("checkbox", name="Office").check()
        dialog.get_by_role("button", name="Apply").click()
        expect(card(tab, "Kitchen + Office")).to_be_visible()
        uid = restarting.uids["Living Room"]
        restarting.call("PATCH", f"/speakers/{uid}/state", {"volume": 77})
        slider = card(tab, "Living Room").get_by_role("slider", name="Volume of Living Room")
        expect(slider).to_have_value("77")
        # A fresh daemon and simulated household: ungrouped, at their first volumes.
        restarting.restart()
        volume = restarting.speaker("Living Room")["volume"]
        assert volume != 77
        assert restarting.speaker("Office")["coordinator"] == restarting.uids["Office"]
        expect(status).to_have_text("Live")
        expect(slider).to_have_value(str(volume))
        expect(card(tab, "Office")).to_be_visible()
        expect(card(tab, "Kitchen + Office")).to_have_count(0)
        finish(tab, console, allowed=("net::ERR_",))
    finally:
        running.close()


class Forwarder:
    """A TCP forwarder to the daemon that the test can cut, as a network outage would, or
    silence, as a stalled network path would."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        #: The browser's side of each connection that carries an event stream.
        self.streams: set[socket.socket] = set()
        #: Connections whose answers are no longer passed on.
        self.silenced: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, client: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if source is client and b"GET /api/v1/events" in data:
                    self.streams.add(client)
                if target is client and client in self.silenced:
                    continue
                target.sendall(data)
        except OSError:
            pass
        finally:
            for each in (source, target):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)

    def silence(self) -> None:
        """Refuse new connections; keep the event streams open but pass nothing more on;
        drop the other connections."""
        self.open = False
        with self.lock:
            pairs = list(zip(self.sockets[::2], self.sockets[1::2], strict=True))
            kept = [pair for pair in pairs if pair[0] in self.streams]
            self.silenced = {client for client, _ in kept}
            self.sockets = [each for pair in kept for each in pair]
        for pair in pairs:
            if pair[0] in self.silenced:
                continue
            for each in pair:
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                each.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.open = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def restore(self) -> None:
        """Forward again."""
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _volume_at_daemon(daemon: Daemon, uid: str) -> object:
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/speakers/{uid}", headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        speaker = json.load(response)
    return speaker["services"]["RenderingControl"]["variables"]["volume"]["Master"]


def test_phone_layout_and_health_panels(browser: Browser, daemon: Daemon) -> None:
    """On a phone-sized screen nothing scrolls sideways; the health panel (with the sinks) and
    the filtered recent messages open and show the household."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    console = Console(tab)
    tab.goto(daemon.url + "/dashboard/")
    log_in(tab, ADMIN_TOKEN)
    expect(card(tab, "Kitchen")).to_be_visible()
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # One column: the cards one above the other, each as wide as the others.
    boxes = [box for box in (c.bounding_box() for c in tab.get_by_role("article").all()) if box]
    assert len(boxes) == len(ROOMS), boxes
    assert len({(round(box["x"]), round(box["width"])) for box in boxes}) == 1, boxes
    assert len({round(box["y"]) for box in boxes}) == len(ROOMS), boxes
    tab.get_by_text("Health and diagnostics").click()
    table = tab.get_by_role("table", name="Speakers", exact=False)
    for room in ROOMS:
        expect(table.get_by_role("rowheader", name=room)).to_be_visible()

    # The sinks: the callback's counters, the failing webhook's with its last error.
    def hook() -> Any:
        request = urllib.request.Request(
            f"{daemon.url}/api/v1/diagnostics", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            [webhook] = json.load(answer)["sinks"]["webhooks"]
        return webhook if webhook["last_error"] else None

    sinks = tab.get_by_role("table", name="Sinks")
    row = sinks.get_by_role("row").filter(has=tab.get_by_role("rowheader", name="Webhook"))
    expect(row).to_contain_text(NOWHERE_HOOK)
    expect(row.locator(".badge")).to_have_text("Failing")
    expect(row).to_contain_text(wait_for(hook, "the webhook failing")["last_error"])
    row = sinks.get_by_role("row").filter(has=tab.get_by_role("rowheader", name="Callback"))
    expect(row).to_contain_text("tests.daemon_helpers:record_callback")
    expect(row).to_contain_text(re.compile(r"[1-9]\d* delivered · 0 failed"))
    health = get_json(f"{daemon.url}/api/v1/health")
    summary = tab.locator("#health .summary")
    expect(summary.locator(f"dt:text-is('Status') + dd .status-{health['status']}")).to_be_visible()
    for term, said in (
        ("Version", health["version"]),
        ("Up for", re.compile(r"\d")),
        ("Speakers", f"{health['speakers']['online']} online"),
    ):
        expect(summary.locator(f"dt:text-is('{term}') + dd")).to_contain_text(said)
    tab.get_by_text("Recent messages").click()
    tab.get_by_role("textbox", name="Rooms").fill("Office")
    tab.get_by_role("textbox", name="Types").fill("event")
    tab.get_by_role("button", name="Apply").click()
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"volume": 44})
    log = tab.get_by_role("log", name="Recent messages")
    expect(log.get_by_text("volume=44").first).to_be_visible()
    rooms = log.locator(".room").all_text_contents()
    assert rooms and set(rooms) == {"Office"}, rooms
    # Pause freezes the list; Resume follows again.
    tab.get_by_role("button", name="Pause").click()
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"volume": 45})
    wait_for(lambda: _volume_at_daemon(daemon, daemon.uids["Office"]) == 45, "volume 45")
    expect(log.get_by_text("volume=45")).to_have_count(0)
    tab.get_by_role("button", name="Resume").click()
    daemon.call("PATCH", f"/speakers/{daemon.uids['Office']}/state", {"volume": 46})
    expect(log.get_by_text("volume=46").first).to_be_visible()
    finish(tab, console)


def test_offline_speaker_shows_offline(page: tuple[Page, Console], daemon: Daemon) -> None:
    """A speaker taken offline at the simulator shows as offline, with the reason."""
    tab, console = page
    uid = daemon.uids["Living Room"]
    daemon.call("POST", f"/speakers/{uid}/offline", {"mode": "refuse"})
    try:
        living = card(tab, "Living Room")
        expect(living.locator(".badge.status-offline")).to_have_text("Offline")
        expect(living.get_by_role("slider", name="Volume of Living Room")).to_be_disabled()
        expect(living.locator(".reason")).not_to_have_text("")
    finally:
        daemon.call("POST", f"/speakers/{uid}/online")
    expect(card(tab, "Living Room").locator(".badge.status-offline")).to_have_count(0)
    # What the page asked the speaker while it was away was refused: the browser reports those
    # answers (502, 503) as failed loads; no script error is allowed.
    finish(tab, console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))


def test_favourites_and_playlists_play(page: tuple[Page, Console], daemon: Daemon) -> None:
    """A room lists its household's favourites (with their kind) and Sonos playlists; a
    favourite playlist, a radio station and a Sonos playlist chosen there play at the
    simulator (playlists through the queue, stations as streams)."""
    tab, console = page
    kitchen = card(tab, "Kitchen")
    choice = kitchen.get_by_label("Favourites and playlists")
    expect(choice).to_be_enabled()
    content = daemon.call("GET", "/content")
    kinds = {"sonos_playlist": "Sonos playlist", "station": "radio", "track": "track"}
    kinds.update(album="album", service_playlist="music service")
    for favourite in content["favorites"]:
        label = f"{favourite['title']} ({kinds[favourite['kind']]})"
        expect(choice.locator("option", has_text=label)).to_have_count(1)
    playlists = {playlist["title"]: playlist["tracks"] for playlist in content["playlists"]}
    for title, tracks in playlists.items():
        expect(choice.locator("option", has_text=f"{title} ({len(tracks)} tracks)")).to_have_count(
            1
        )
    play = kitchen.get_by_role("button", name="Play the choice in Kitchen")

    def playing(title: str, queued: int | None) -> Callable[[], bool]:
        def check() -> bool:
            state = daemon.speaker("Kitchen")
            return bool(
                state["transport"] == "PLAYING"
                and (state["current"] or {}).get("title") == title
                and (queued is None or state["queue_length"] == queued)
            )

        return check

    choice.select_option(label="Morning Mix (Sonos playlist)")
    play.click()
    morning = playlists["Morning Mix"]
    wait_for(playing(morning[0], len(morning)), "the Morning Mix favourite in the queue, playing")
    expect(kitchen.get_by_text(morning[0], exact=True)).to_be_visible()
    station = next(f for f in content["favorites"] if f["title"] == "Coastal FM")
    choice.select_option(label="Coastal FM (radio)")
    play.click()
    wait_for(
        lambda: (
            daemon.speaker("Kitchen")["uri"] == station["uri"]
            and daemon.speaker("Kitchen")["transport"] == "PLAYING"
        ),
        "the station streaming",
    )
    choice.select_option(label=f"Dinner Party ({len(playlists['Dinner Party'])} tracks)")
    play.click()
    dinner = playlists["Dinner Party"]
    wait_for(playing(dinner[0], len(dinner)), "the Dinner Party playlist in the queue, playing")
    daemon.call("PATCH", f"/speakers/{daemon.uids['Kitchen']}/state", {"transport": "STOPPED"})
    finish(tab, console)


def _command(daemon: Daemon, uid: str, name: str, body: dict[str, Any]) -> Any:
    """A speaker command sent to the daemon's API by another client, with the admin token."""
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/speakers/{uid}/{name}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_playlist_saved_elsewhere_appears(page: tuple[Page, Console], daemon: Daemon) -> None:
    """A Sonos playlist saved by another client appears in an open page's list, and goes
    when it is deleted, from the household's ContentDirectory events alone."""
    tab, console = page
    choice = card(tab, "Kitchen").get_by_label("Favourites and playlists")
    expect(choice).to_be_enabled()
    uid = daemon.uids["Kitchen"]
    queued = daemon.speaker("Kitchen")["queue_length"]
    assert queued > 0
    option = choice.locator("option", has_text=f"Saved Elsewhere ({queued} tracks)")
    expect(option).to_have_count(0)
    _command(daemon, uid, "playlists", {"action": "save", "title": "Saved Elsewhere"})
    expect(option).to_have_count(1)
    _command(daemon, uid, "playlists", {"action": "delete", "name": "Saved Elsewhere"})
    expect(option).to_have_count(0)
    finish(tab, console)


def _seconds(text: str | None) -> int:
    """Seconds of a "M:SS" position shown on the page."""
    minutes, seconds = (text or "").split(":")
    return int(minutes) * 60 + int(seconds)


def test_position_advances(page: tuple[Page, Console], browser: Browser, daemon: Daemon) -> None:
    """The position the daemon reads advances on the page while the group plays, shows on a
    page opened mid-track (in a browser whose clock runs an hour ahead of the daemon's), and
    stops where the speaker paused; a new track shows 0:00 until its position is read."""
    tab, console = page
    uid = daemon.uids["Office"]
    elapsed = card(tab, "Office").locator(".progress .time").first
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "PLAYING", "position": "0:01:40"})
    expect(elapsed).to_have_text(re.compile(r"^1:4\d$"))
    first = _seconds(elapsed.text_content())
    wait_for(lambda: _seconds(elapsed.text_content()) >= first + 2, "the position advancing")
    ahead = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    late, late_console = open_page(
        browser, daemon, lambda context: context.clock.install(time=ahead)
    )
    log_in(late, ADMIN_TOKEN)
    late_elapsed = card(late, "Office").locator(".progress .time").first
    expect(late_elapsed).to_have_text(re.compile(r"^1:[45]\d$"))
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "PAUSED_PLAYBACK"})
    paused = daemon.speaker("Office")["position"]
    expect(elapsed).to_have_text(f"{_seconds(paused[2:]) // 60}:{paused[-2:]}")
    # A new track starts at 0:00 until its position is read: with every read failing, the
    # next track (the group paused, so that nothing runs on) shows 0:00; then what is read.
    # Each page has read its favourites and playlists first (commands, to a room that may be
    # this one): a read failing in the fault window is a 502 in the page's console.
    for each in (tab, late):
        expect(card(each, "Office").get_by_label("Favourites and playlists")).to_be_visible()
    daemon.call("PATCH", f"/speakers/{uid}/soap/faults", {"error_code": "701"})
    try:
        daemon.call("POST", f"/speakers/{uid}/next")
        title = daemon.speaker("Office")["current"]["title"]
        expect(card(tab, "Office").get_by_text(title, exact=True)).to_be_visible()
        expect(elapsed).to_have_text("0:00")
    finally:
        daemon.call("DELETE", f"/speakers/{uid}/soap/faults")
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "PLAYING", "position": "0:02:30"})
    expect(elapsed).to_have_text(re.compile(r"^2:[3-5]\d$"))
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "PAUSED_PLAYBACK"})
    paused = daemon.speaker("Office")["position"]
    expect(elapsed).to_have_text(f"{_seconds(paused[2:]) // 60}:{paused[-2:]}")
    finish(late, late_console)
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "STOPPED"})
    finish(tab, console)


#: Album art that a music service serves from its own host (as its tracks carry it).
SERVICE_ART = "https://i.scdn.co/image/ab67616d0000b27300112233445566778899aabb"


def _didl(title: str, art: str) -> str:
    """The DIDL-Lite metadata of a music service's track with album art at ``art``."""
    return (
        '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
        'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/">'
        '<item id="-1" parentID="-1" restricted="true">'
        f"<dc:title>{title}</dc:title><dc:creator>Elsewhere</dc:creator>"
        "<upnp:album>Streamed</upnp:album>"
        f"<upnp:albumArtURI>{art}</upnp:albumArtURI>"
        "<upnp:class>object.item.audioItem.musicTrack</upnp:class>"
        '<res protocolInfo="http-get:*:audio/mpeg:*" duration="0:03:00">'
        "x-sonos-http:track%3a42.mp3?sid=9&amp;flags=8224&amp;sn=1</res>"
        "</item></DIDL-Lite>"
    )


def test_service_art_shows_a_placeholder(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Album art that a music service serves from its own host is not asked of the daemon's
    art proxy (which refuses it): the card shows its placeholder, and the speaker's own art
    again for a track from the queue."""
    tab, console = page
    asked: list[str] = []
    tab.on("request", lambda request: asked.append(request.url))
    uid = daemon.uids["Office"]
    office = card(tab, "Office")
    uri = "x-sonos-http:track%3a42.mp3?sid=9&flags=8224&sn=1"
    _command(
        daemon, uid, "play_uri", {"uri": uri, "meta": _didl("Streamed Elsewhere", SERVICE_ART)}
    )
    expect(office.get_by_text("Streamed Elsewhere", exact=True)).to_be_visible()
    expect(office.locator(".art.placeholder")).to_be_visible()
    expect(office.locator("img.art")).to_be_hidden()
    assert not [url for url in asked if "scdn" in url], asked
    _command(daemon, uid, "queue", {"action": "play", "track": 1})
    title = daemon.speaker("Office")["current"]["title"]
    expect(office.get_by_text(title, exact=True)).to_be_visible()
    art = office.locator("img.art")
    expect(art).to_be_visible()
    expect(office.locator(".art.placeholder")).to_be_hidden()
    wait_for(
        lambda: tab.evaluate("(img) => img.complete && img.naturalWidth > 0", art.element_handle()),
        "the speaker's art loaded",
    )
    daemon.call("PATCH", f"/speakers/{uid}/state", {"transport": "STOPPED"})
    finish(tab, console)


def test_every_sleep_timer_duration(page: tuple[Page, Console], daemon: Daemon) -> None:
    """Every duration the sleep timer offers (15 to 120 minutes) sets that timer at the
    speaker and shows the time left; Off cancels it."""
    tab, console = page
    living = card(tab, "Living Room")
    choice = living.get_by_label("Sleep timer")
    values = choice.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert values[0] == "", values
    durations = [int(value) for value in values[1:]]
    assert durations[0] == 15 and durations[-1] == 120, durations
    assert durations == sorted(set(durations)), durations

    def timer() -> int:
        return int(daemon.speaker("Living Room")["sleep_timer"] or 0)

    for minutes in durations:
        choice.select_option(str(minutes))
        wait_for(lambda m=minutes: m * 60 - 60 < timer() <= m * 60, f"a {minutes} min timer")
        expect(living.locator(".sleep-left")).to_have_text(f"{minutes} min left")
    choice.select_option("")
    wait_for(lambda: daemon.speaker("Living Room")["sleep_timer"] is None, "no sleep timer")
    expect(living.locator(".sleep-left")).to_have_text("")
    finish(tab, console)


def test_dialogs_are_native_and_modal(page: tuple[Page, Console], daemon: Daemon) -> None:
    """The Group dialog and the token prompt are native ``<dialog>`` elements shown modal
    (the page behind them inert); Escape (or Cancel) closes them, and the page stays live;
    Token… then takes another token."""
    tab, console = page
    kitchen = card(tab, "Kitchen")
    modal = "(node) => [node.tagName, node.open, node.matches(':modal')]"
    # Whether a click at the middle of an element reaches it (nothing modal above it).
    reachable = """(node) => {
        const box = node.getBoundingClientRect();
        const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
        return node.contains(hit);
    }"""
    mute = kitchen.get_by_role("button", name="Mute Kitchen")
    assert mute.evaluate(reachable)
    kitchen.get_by_role("button", name="Group").click()
    dialog = tab.get_by_role("dialog", name="Group with Kitchen")
    expect(dialog).to_be_visible()
    assert dialog.evaluate(modal) == ["DIALOG", True, True]
    assert not mute.evaluate(reachable)
    tab.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    tab.get_by_role("button", name="Token…").click()
    prompt = tab.get_by_role("dialog", name="This daemon needs a token")
    expect(prompt).to_be_visible()
    assert prompt.evaluate(modal) == ["DIALOG", True, True]
    assert not mute.evaluate(reachable)
    expect(prompt.get_by_label("Token")).to_be_focused()
    tab.keyboard.press("Escape")
    expect(prompt).to_be_hidden()
    expect(tab.locator("#connection")).to_have_text("Live")
    # Cancel does the same; the token kept is still the one in use.
    tab.get_by_role("button", name="Token…").click()
    expect(prompt).to_be_visible()
    prompt.get_by_role("button", name="Cancel").click()
    expect(prompt).to_be_hidden()
    expect(tab.locator("#connection")).to_have_text("Live")
    assert tab.evaluate("sessionStorage.getItem('sonosd.token')") == ADMIN_TOKEN
    uid = daemon.uids["Kitchen"]
    volume = 18 if daemon.speaker("Kitchen")["volume"] != 18 else 19
    daemon.call("PATCH", f"/speakers/{uid}/state", {"volume": volume})
    expect(kitchen.get_by_role("slider", name="Volume of Kitchen")).to_have_value(str(volume))
    assert mute.evaluate(reachable)
    # Token… takes another token: a read-only one disables the controls from then on.
    tab.get_by_role("button", name="Token…").click()
    prompt.get_by_label("Token").fill(READ_TOKEN)
    prompt.get_by_role("button", name="Use token").click()
    expect(prompt).to_be_hidden()
    expect(tab.get_by_role("note")).to_contain_text("This token can only read")
    expect(kitchen.get_by_role("slider", name="Volume of Kitchen")).to_be_disabled()
    expect(tab.locator("#connection")).to_have_text("Live")
    assert tab.evaluate("sessionStorage.getItem('sonosd.token')") == READ_TOKEN
    finish(tab, console)


def households_page(
    browser: Browser, households: Daemon, before: Callable[[BrowserContext], None] | None = None
) -> tuple[Page, Console]:
    """The dashboard of the two households (no token needed), every room shown."""
    tab, console = open_page(browser, households, before)
    expect(tab.locator("#connection")).to_have_text("Live")
    for rooms in HOUSEHOLDS:
        for room in rooms:
            expect(card(tab, room)).to_be_visible()
    return tab, console


def _wait_ready(households: Daemon) -> None:
    """Wait until every simulated speaker is online and evented again."""

    def ready() -> bool:
        answer = get_json(f"{households.url}/api/v1/diagnostics")
        return bool(answer) and answer["ready"]["speakers"]["evented"] == sum(map(len, HOUSEHOLDS))

    wait_for(ready, "every speaker online and evented again")


def test_households_shown_apart(browser: Browser, households: Daemon) -> None:
    """Two households each get their own section with their own rooms, and grouping offers
    only the rooms of the same household. The page reads the diagnostics every 5 s (on its
    clock, moved by the test) while it is shown, and not while it is hidden."""

    def clocked(context: BrowserContext) -> None:
        context.clock.install()
        # Each read starts with a request for the health (then the diagnostics), made as the
        # page's timer fires: counted there, so that the count is known when the clock stops.
        context.add_init_script(
            """(() => {
                const fetch = window.fetch;
                window.healthReads = 0;
                window.fetch = function (input, ...rest) {
                    if (String(input).endsWith("/api/v1/health")) window.healthReads += 1;
                    return fetch.call(this, input, ...rest);
                };
            })();"""
        )

    tab, console = households_page(browser, households, clocked)
    pause_clock(tab)

    def reads_after(milliseconds: int) -> int:
        """How many reads start while the page's clock moves on by ``milliseconds``."""
        before = tab.evaluate("window.healthReads")
        tab.clock.run_for(milliseconds)
        return int(tab.evaluate("window.healthReads")) - int(before)

    reads_after(1000)
    assert (reads_after(5000), reads_after(5000)) == (1, 1)
    hidden = "Object.defineProperty(document, 'visibilityState', {value: %r, configurable: true})"
    tab.evaluate(hidden % "hidden")
    assert reads_after(15000) == 0
    tab.evaluate(hidden % "visible")
    assert reads_after(5000) == 1
    tab.clock.resume()
    regions = tab.get_by_role("region", name=re.compile(r"^Household \d$"))
    expect(regions).to_have_count(2)
    names = set()
    for rooms in HOUSEHOLDS:
        section = regions.filter(has=card(tab, rooms[0]))
        expect(section).to_have_count(1)
        names.add(section.get_by_role("heading", level=2).text_content())
        for room in rooms:
            expect(card(section, room)).to_be_visible()
        others = [room for each in HOUSEHOLDS if each is not rooms for room in each]
        for room in others:
            expect(card(section, room)).to_have_count(0)
    assert names == {"Household 1", "Household 2"}, names
    # Numbered in the order of the household ids, each shown under its title.
    ids = {households.speaker(rooms[0])["household_id"]: rooms for rooms in HOUSEHOLDS}
    for number, household_id in enumerate(sorted(ids), start=1):
        section = regions.nth(number - 1)
        expect(section.get_by_role("heading", level=2)).to_have_text(f"Household {number}")
        expect(section.locator(".household-id")).to_have_text(household_id)
        expect(card(section, ids[household_id][0])).to_be_visible()
    unidentified = tab.get_by_role("list", name="Speakers not identified")
    expect(unidentified.get_by_role("listitem")).to_have_count(1)
    expect(unidentified).to_contain_text(households.nowhere)
    expect(unidentified.locator(".badge")).to_have_text("Not identified")
    expect(unidentified.locator(".reason")).to_have_text("connection refused")
    card(tab, "Study").get_by_role("button", name="Group").click()
    dialog = tab.get_by_role("dialog", name="Group with Study")
    expect(dialog.get_by_role("checkbox")).to_have_count(2)
    for room in ("Hall", "Garden"):
        expect(dialog.get_by_role("checkbox", name=room)).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    # A group's card names its coordinator first (Study, though Hall comes first in order).
    households.call(
        "POST",
        f"/speakers/{households.uids['Hall']}/join",
        {"coordinator": households.uids["Study"]},
    )
    group = card(tab, "Study + Hall")
    try:
        expect(group).to_be_visible()
        sliders = group.get_by_role("slider", name=re.compile("^Volume of"))
        expect(sliders).to_have_count(2)
        assert sliders.first.get_attribute("aria-label") == "Volume of Study"
    finally:
        households.call("POST", f"/speakers/{households.uids['Hall']}/unjoin")
    expect(card(tab, "Hall")).to_be_visible()
    finish(tab, console)


def older_page(context: BrowserContext) -> None:
    """Serve the page as an older daemon did, before the ``asleep`` and ``upnp_disabled``
    statuses: its ``store.js`` has no label for them (as a page kept open, or cached, from
    before the daemon was upgraded)."""

    def store(route: Route) -> None:
        response = route.fetch()
        text = response.text()
        older = re.sub(r'^ *(asleep|upnp_disabled): "[^"]*",\n', "", text, flags=re.MULTILINE)
        assert len(older.splitlines()) == len(text.splitlines()) - 2, "labels not found"
        route.fulfill(response=response, body=older)

    context.route(re.compile(r"/store\.js(\?.*)?$"), store)


def test_asleep_portable_and_upnp_off_household(browser: Browser, households: Daemon) -> None:
    """A portable put to sleep shows Asleep with its reason; a household whose UPnP is
    switched off shows UPnP off on each room, with where to switch it on; both come back.
    A page older than the daemon, with no label for these statuses, shows them by their
    names, with their reasons."""
    tab, console = households_page(browser, households)
    garden = card(tab, "Garden")
    households.call("POST", f"/speakers/{households.uids['Garden']}/sleep")
    households.call("PATCH", "/households/1/modes", {"upnp": False})
    try:
        expect(garden.locator(".badge.status-asleep")).to_have_text("Asleep")
        expect(garden.locator(".member .reason")).to_have_text("sleeping")
        expect(garden.get_by_role("slider", name="Volume of Garden")).to_be_disabled()
        for room in HOUSEHOLDS[1]:
            room_card = card(tab, room)
            expect(room_card.locator(".badge.status-upnp_disabled")).to_have_text("UPnP off")
            expect(room_card.locator(".member .reason")).to_contain_text(
                "in the Sonos app", ignore_case=True
            )
        # The health panel lists the asleep portable among the devices gone from its household.
        tab.get_by_text("Health and diagnostics").click()
        gone = tab.get_by_role("table", name="Gone from the household")
        row = gone.get_by_role("row").filter(has=tab.get_by_role("rowheader", name="Garden"))
        expect(row.get_by_role("cell")).to_have_text("sleeping")
        screenshot(tab, "dashboard-availability.png")
        older, older_console = open_page(browser, households, older_page)
        garden = card(older, "Garden")
        expect(garden.locator(".badge.status-asleep")).to_have_text("asleep")
        expect(garden.locator(".member .reason")).to_have_text("sleeping")
        for room in HOUSEHOLDS[1]:
            room_card = card(older, room)
            expect(room_card.locator(".badge.status-upnp_disabled")).to_have_text("upnp disabled")
            expect(room_card.locator(".member .reason")).to_contain_text(
                "in the Sonos app", ignore_case=True
            )
        # Nor does a name the labels' object inherits read as one of them.
        label = "import('./store.js').then((store) => store.statusLabel('constructor'))"
        assert older.evaluate(label) == "constructor"
        finish(older, older_console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))
    finally:
        households.call("POST", f"/speakers/{households.uids['Garden']}/wake")
        households.call("PATCH", "/households/1/modes", {"upnp": True})
    _wait_ready(households)
    for room in ("Garden", *HOUSEHOLDS[1]):
        expect(card(tab, room).locator(".member .badge")).to_be_hidden()
    finish(tab, console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))


def rebooted_with_faults(
    browser: Browser, households: Daemon, room: str, faults: dict[str, Any]
) -> tuple[Page, Console, Any]:
    """The households' page, after ``room``'s speaker got the GENA ``faults`` and rebooted
    (so that it is subscribed again under them); its page, console and card."""
    tab, console = households_page(browser, households)
    uid = households.uids[room]
    households.call("PATCH", f"/speakers/{uid}/gena/faults", faults)
    households.call("POST", f"/speakers/{uid}/reboot", {"downtime": 1})
    return tab, console, card(tab, room)


def test_dropped_notifies_show_polling(browser: Browser, households: Daemon) -> None:
    """A speaker whose NOTIFYs are all dropped (resubscribed after a reboot) is polled: its
    room says Polling, and the diagnostics panel shows each of its subscriptions polling with
    its SID, beside the NOTIFYs accepted and refused and the sinks."""
    tab, console, room = rebooted_with_faults(browser, households, "Hall", {"drop_next": 1_000_000})
    hall = households.uids["Hall"]
    try:
        expect(room.locator(".badge.status-polling")).to_have_text("Polling")
        expect(room.locator(".member .reason")).to_contain_text("no NOTIFY arrives")
        tab.get_by_text("Health and diagnostics").click()
        speakers = tab.get_by_role("table", name="Speakers (from diagnostics)")
        row = speakers.get_by_role("row").filter(has=tab.get_by_role("rowheader", name="Hall"))
        expect(row.locator(".badge.status-online")).to_have_text("Online")
        expect(row.locator(".badge.status-polling")).to_have_text("Polling")
        expect(row.locator(".callback")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+/$"))
        subscriptions = tab.get_by_role("table", name="Subscriptions (from diagnostics)")
        hall_rows = subscriptions.get_by_role("row").filter(
            has=tab.get_by_role("rowheader", name="Hall")
        )
        expect(hall_rows).to_have_count(len(DEFAULT_SERVICES))
        expect(hall_rows.locator(".badge.status-polling")).to_have_count(len(DEFAULT_SERVICES))
        for sid in hall_rows.locator(".sid").all_text_contents():
            assert sid.startswith(f"uuid:{hall}_sub"), sid
        study = subscriptions.get_by_role("row").filter(
            has=tab.get_by_role("rowheader", name="Study")
        )
        expect(study.locator(".badge.status-subscribed")).to_have_count(len(DEFAULT_SERVICES))
        expect(study.locator(".age").first).to_have_text(re.compile(r"ago$"))
        expect(tab.locator(".notifies")).to_have_text(re.compile(r"^\d+ accepted, \d+ refused"))
        listener = get_json(f"{households.url}/api/v1/diagnostics")["listener"]
        expect(tab.locator("#health .summary dt:text-is('Listener') + dd")).to_have_text(
            f"{listener['interface']}:{listener['port']}"
        )
        sinks = tab.get_by_role("table", name="Sinks")
        expect(sinks.get_by_role("rowheader", name="Clients")).to_be_visible()
        # And the raw document.
        tab.get_by_text("Raw diagnostics").click()
        expect(tab.locator("#health .raw pre")).to_contain_text('"listener"')
        screenshot(tab, "dashboard-diagnostics.png")
    finally:
        households.call("DELETE", f"/speakers/{hall}/gena/faults")
        households.call("POST", f"/speakers/{hall}/reboot", {"downtime": 1})
    _wait_ready(households)
    expect(card(tab, "Hall").locator(".badge.status-polling")).to_have_count(0)
    finish(tab, console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))


#: A speaker that cannot accept a new subscription: SUBSCRIBEs answered 503 (the UPnP answer
#: for it, ../shared/reference/sonos-protocol.md §3.1). Renewals are answered as usual, so
#: that a renewal of a SID the reboot made it forget gets 412 (the daemon may probe one to
#: confirm a reboot it saw in the topology).
REFUSING = {"subscribe_status": 503}


def test_refused_subscriptions_show_retrying(browser: Browser, households: Daemon) -> None:
    """A speaker that stays online but refuses every SUBSCRIBE (after a reboot) says Retrying
    on its card, naming the services the diagnostics show backing off, not Events lost; the
    badge goes once the speaker accepts them again."""
    tab, console, room = rebooted_with_faults(browser, households, "Loft", REFUSING)
    loft = households.uids["Loft"]
    try:
        expect(room.locator(".member .badge.status-backing_off")).to_have_text("Retrying")
        reason = room.locator(".member .reason")
        expect(reason).to_contain_text("subscribing again to")
        for service in DEFAULT_SERVICES:
            expect(reason).to_contain_text(service)
        diagnostics = get_json(f"{households.url}/api/v1/diagnostics")
        speaker = next(each for each in diagnostics["speakers"] if each.get("uid") == loft)
        assert speaker["availability"] == "online", speaker
        assert {detail["state"] for detail in speaker["services"].values()} <= {
            "backing_off",
            "subscribing",
        }, speaker["services"]
        expect(room.locator(".badge.status-lost")).to_have_count(0)
        expect(room.get_by_role("slider", name="Volume of Loft")).to_be_enabled()
        screenshot(tab, "dashboard-retrying.png")
    finally:
        households.call("DELETE", f"/speakers/{loft}/gena/faults")
    _wait_ready(households)
    expect(card(tab, "Loft").locator(".member .badge")).to_be_hidden()
    finish(tab, console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))


def without_diagnostics(asked: list[str]) -> Callable[[BrowserContext], None]:
    """Routes that make the daemon look like one without ``/api/v1/diagnostics``: its
    ``/api/v1/access`` lists no such endpoint, and a request for it (kept in ``asked``) is
    answered 404 as by a daemon that has none."""

    def access(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["endpoints"] = [name for name in body["endpoints"] if name != "diagnostics"]
        route.fulfill(response=response, json=body)

    def diagnostics(route: Route) -> None:
        asked.append(route.request.url)
        error = {"code": "not_found", "message": "no such endpoint"}
        route.fulfill(status=404, json={"error": error})

    def install(context: BrowserContext) -> None:
        context.route(re.compile(r"/api/v1/access(\?.*)?$"), access)
        context.route(re.compile(r"/api/v1/diagnostics(\?.*)?$"), diagnostics)

    return install


def test_without_diagnostics_the_stream_tells(browser: Browser, households: Daemon) -> None:
    """Served by a daemon without ``/api/v1/diagnostics``, the page never asks for them: its
    health panel shows the household state, a speaker refusing every SUBSCRIBE says Events
    lost from ``subscription.lost`` until ``subscription.restored``, and one whose NOTIFYs are
    dropped says Polling once a poll brings an update."""
    _wait_ready(households)
    asked: list[str] = []
    tab, console = households_page(browser, households, without_diagnostics(asked))
    tab.get_by_text("Health and diagnostics").click()
    speakers = tab.get_by_role("table", name="Speakers (from the household state)")
    expect(speakers.get_by_role("rowheader", name="Loft")).to_be_visible()
    subscriptions = tab.get_by_role("table", name="Subscriptions (from the household state)")
    expect(subscriptions).to_be_visible()
    expect(tab.get_by_text("Raw diagnostics")).to_have_count(0)
    loft = households.uids["Loft"]
    households.call("PATCH", f"/speakers/{loft}/gena/faults", REFUSING)
    households.call("POST", f"/speakers/{loft}/reboot", {"downtime": 1})
    try:
        room = card(tab, "Loft")
        expect(room.locator(".member .badge.status-lost")).to_have_text("Events lost")
        reason = room.locator(".member .reason")
        expect(reason).to_contain_text("no events from")
        for service in DEFAULT_SERVICES:
            expect(reason).to_contain_text(service)
        expect(room.get_by_role("slider", name="Volume of Loft")).to_be_enabled()
    finally:
        households.call("DELETE", f"/speakers/{loft}/gena/faults")
    _wait_ready(households)
    expect(card(tab, "Loft").locator(".member .badge")).to_be_hidden()
    hall = households.uids["Hall"]
    households.call("PATCH", f"/speakers/{hall}/gena/faults", {"drop_next": 1_000_000})
    households.call("POST", f"/speakers/{hall}/reboot", {"downtime": 1})
    try:
        wait_for(lambda: _state_of(households, hall, "RenderingControl") == "polling", "polling")
        volume = 31 if households.speaker("Hall")["volume"] != 31 else 32
        households.call("PATCH", f"/speakers/{hall}/state", {"volume": volume})
        room = card(tab, "Hall")
        expect(room.get_by_role("slider", name="Volume of Hall")).to_have_value(str(volume))
        expect(room.locator(".member .badge.status-polling")).to_have_text("Polling")
        expect(room.locator(".member .reason")).to_contain_text("RenderingControl")
    finally:
        households.call("DELETE", f"/speakers/{hall}/gena/faults")
        households.call("POST", f"/speakers/{hall}/reboot", {"downtime": 1})
    _wait_ready(households)
    expect(card(tab, "Hall").locator(".member .badge")).to_be_hidden()
    assert asked == [], asked
    finish(tab, console, allowed=("503 (Service Unavailable)", "502 (Bad Gateway)"))


def _state_of(households: Daemon, uid: str, service: str) -> str | None:
    """A subscription's state in the daemon's diagnostics (read by the test, not the page)."""
    diagnostics = get_json(f"{households.url}/api/v1/diagnostics") or {}
    for speaker in diagnostics.get("speakers", []):
        if speaker.get("uid") == uid:
            return speaker["services"].get(service, {}).get("state")  # type: ignore[no-any-return]
    return None


def _group_volume(households: Daemon, uid: str) -> object:
    """A speaker's group volume in the daemon's state."""
    speaker = get_json(f"{households.url}/api/v1/speakers/{uid}") or {}
    services = speaker.get("services", {})
    return services.get("GroupRenderingControl", {}).get("variables", {}).get("group_volume")


def _burst(households: Daemon, room: str, count: int, marker: int) -> int:
    """``count`` group mute changes of ``room`` (each one NOTIFY, so one message), then its
    group volume set to ``marker``; once the daemon has it, the daemon's last message id."""
    uid = households.uids[room]
    households.call(
        "POST", f"/speakers/{uid}/burst", {"count": count, "service": "GroupRenderingControl"}
    )
    households.call("PATCH", f"/speakers/{uid}/state", {"group_volume": marker})
    wait_for(lambda: _group_volume(households, uid) == marker, f"{room}'s group volume {marker}")
    return int(get_json(f"{households.url}/api/v1/snapshot")["last_id"])


def test_recent_messages_limits(browser: Browser, households: Daemon) -> None:
    """The recent messages start 500 messages back in the replay ring (a matching message
    further back is not shown, one within it is) and keep the last 200 that match."""
    tab, console = households_page(browser, households)
    markers = iter(
        value for value in range(20, 40) if value != households.speaker("Study")["group_volume"]
    )
    older = _burst(households, "Study", 100, next(markers))
    newer = _burst(households, "Hall", 600, next(markers))
    assert newer - older >= 600
    marker = next(markers)
    _burst(households, "Study", 30, marker)
    tab.get_by_text("Recent messages").click()
    tab.get_by_role("textbox", name="Rooms").fill("Study")
    tab.get_by_role("button", name="Apply").click()
    log = tab.get_by_role("log", name="Recent messages")
    expect(log.get_by_text(re.compile(rf"group_volume={marker}\b"))).to_be_visible()
    ids = [int(text[1:]) for text in log.locator(".message .id").all_text_contents()]
    assert len(ids) >= 31, ids
    assert min(ids) > older, (older, ids)
    assert set(log.locator(".room").all_text_contents()) == {"Study"}
    marker = next(markers)
    _burst(households, "Study", 300, marker)
    expect(log.get_by_text(re.compile(rf"group_volume={marker}\b"))).to_be_visible()
    expect(log.locator(".message")).to_have_count(200)
    ids = [int(text[1:]) for text in log.locator(".message .id").all_text_contents()]
    assert ids == sorted(ids, reverse=True), ids
    finish(tab, console)


def test_the_demo_household_live_and_controlled(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``make demo``'s configuration (only its addresses moved to free ones): the page shows
    every room of the demo household (the home theatre as one room), follows the activity
    generator's changes live, and its volume slider controls the simulated speaker."""
    import yaml

    document = yaml.safe_load((ROOT / "etc" / "sonosd.demo.yaml").read_text())
    rooms = document["simulate"]["rooms"]
    running = run_daemon(
        tmp_path_factory.mktemp("demo"),
        document["simulate"]["speakers"],
        lambda config: None,
        document=document,
    )
    demo = next(running)
    try:
        tab, console = open_page(browser, demo)
        expect(tab.locator("#connection")).to_have_text("Live")
        for room in rooms:
            expect(card(tab, room)).to_be_visible()
        expect(tab.get_by_role("article")).to_have_count(len(rooms))
        tab.get_by_text("Recent messages").click()
        newest = tab.get_by_role("log", name="Recent messages").locator(".message .id").first
        expect(newest).to_have_text(re.compile(r"^#\d+$"))
        # The demo's changes come at random, one every 2 s on average: a gap of over 15 s
        # happens (a run drew 17.5 s). Ten times as many keep the wait below short.
        demo.call("PATCH", "/activity", {"rate": 5})
        first = newest.text_content()
        expect(newest).not_to_have_text(first or "")
        demo.call("PATCH", "/activity", {"rate": 0})
        # A stereo pair bonded at the speakers: its hidden half is part of its room.
        demo.call("POST", f"/speakers/{demo.uids['Kitchen']}/pair", {"right": demo.uids["Office"]})
        expect(card(tab, "Office")).to_have_count(0)
        expect(tab.get_by_role("article")).to_have_count(len(rooms) - 1)
        expect(card(tab, "Kitchen").get_by_role("slider", name="Volume of Kitchen")).to_have_count(
            1
        )
        slider = card(tab, "Kitchen").get_by_role("slider", name="Volume of Kitchen")
        volume = 41 if demo.speaker("Kitchen")["volume"] != 41 else 42
        slider.fill(str(volume))
        wait_for(lambda: demo.speaker("Kitchen")["volume"] == volume, "the kitchen's new volume")
        finish(tab, console)
    finally:
        running.close()
