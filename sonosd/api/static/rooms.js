// The rooms: one card per group (coordinator first), updated in place as the state changes
// so that a slider being dragged or a focused button is never replaced under the user.

import { artUrl } from "./api.js";
import { clock, el, icon, setIcon, syncChildren } from "./dom.js";
import { seconds, statusLabel } from "./store.js";

const PLAY_MODES = {
  NORMAL: { shuffle: false, repeat: "none" },
  REPEAT_ALL: { shuffle: false, repeat: "all" },
  REPEAT_ONE: { shuffle: false, repeat: "one" },
  SHUFFLE_NOREPEAT: { shuffle: true, repeat: "none" },
  SHUFFLE: { shuffle: true, repeat: "all" },
  SHUFFLE_REPEAT_ONE: { shuffle: true, repeat: "one" },
};
const NEXT_REPEAT = { none: "all", all: "one", one: "none" };
const SLEEP_CHOICES = [15, 30, 45, 60, 90, 120];
const HOLD_MS = 1500;

let serial = 0;

function variables(speaker, service) {
  return speaker?.services?.[service]?.variables || {};
}

function volumeOf(speaker) {
  const volume = variables(speaker, "RenderingControl").volume;
  return volume && typeof volume === "object" ? volume.Master : volume;
}

function muteOf(speaker) {
  const mute = variables(speaker, "RenderingControl").mute;
  return Boolean(mute && typeof mute === "object" ? mute.Master : mute);
}

/**
 * What a room's badge says: its availability when it is not online (with the daemon's
 * reason), else how its events arrive when not as they should (events lost, a subscription
 * retrying, or polled because no NOTIFY arrives), naming the services concerned.
 */
export function availabilityOf(speaker, household) {
  const status = speaker.availability?.status || "unknown";
  if (status !== "online") return { shown: status, reason: speaker.availability?.reason || "" };
  const { lost, retrying, polled, total } = household.eventing(speaker);
  if (lost.length) return { shown: "lost", reason: `no events from ${lost.join(", ")}` };
  if (retrying.length) {
    return { shown: "backing_off", reason: `subscribing again to ${retrying.join(", ")}` };
  }
  if (polled.length) {
    const every = polled.length === total;
    const which = every ? "every service" : polled.join(", ");
    return { shown: "polling", reason: `no NOTIFY arrives: polling ${which}` };
  }
  return { shown: "online", reason: "" };
}

function available(speaker) {
  return speaker.availability?.status === "online";
}

/**
 * A volume slider that sends at most one command at a time (the latest value wins) and is
 * not moved by incoming state while the user is on it.
 */
class VolumeControl {
  constructor(app, label, send) {
    this.app = app;
    this.send = send;
    this.heldUntil = 0;
    this.inFlight = false;
    this.queued = null;
    const id = `volume-${++serial}`;
    this.input = el("input", {
      type: "range", min: 0, max: 100, step: 1, id, "aria-label": label,
      oninput: () => this.changed(), onchange: () => this.changed(),
      onpointerdown: () => (this.heldUntil = Infinity),
      onpointerup: () => (this.heldUntil = Date.now() + HOLD_MS),
    });
    // The slider announces its value itself: the number beside it is for the eyes.
    this.output = el("output", { for: id, class: "level", "aria-hidden": "true" });
    this.mute = el("button", { type: "button", class: "icon-button mute" });
  }

  changed() {
    this.heldUntil = Math.max(this.heldUntil, Date.now() + HOLD_MS);
    this.output.textContent = this.input.value;
    this.queued = Number(this.input.value);
    this.flush();
  }

  async flush() {
    if (this.inFlight || this.queued === null) return;
    const value = this.queued;
    this.queued = null;
    this.inFlight = true;
    try {
      await this.send(value);
    } finally {
      this.inFlight = false;
      this.heldUntil = Math.max(this.heldUntil, Date.now() + HOLD_MS);
      this.flush();
    }
  }

  update(value, muted, name, disabled, reason) {
    if (Date.now() > this.heldUntil && value !== undefined && value !== null) {
      this.input.value = String(value);
      this.output.textContent = String(value);
    }
    this.input.disabled = disabled;
    this.mute.disabled = disabled;
    this.mute.setAttribute("aria-pressed", String(muted));
    this.mute.setAttribute("aria-label", `Mute ${name}`);
    setIcon(this.mute, muted ? "muted" : "volume");
    for (const control of [this.input, this.mute]) {
      if (reason) control.title = reason;
      else control.removeAttribute("title");
    }
  }
}

class MemberRow {
  constructor(app, uid) {
    this.app = app;
    this.uid = uid;
    this.name = el("span", { class: "member-name" });
    this.badge = el("span", { class: "badge", hidden: true });
    this.reason = el("span", { class: "reason" });
    this.volume = new VolumeControl(app, "Volume", (value) =>
      app.run(this.uid, "volume", { volume: value }),
    );
    this.volume.mute.addEventListener("click", () => {
      app.run(this.uid, "mute", { mute: this.volume.mute.getAttribute("aria-pressed") !== "true" });
    });
    this.node = el(
      "li",
      { class: "member" },
      el("div", { class: "member-head" }, this.name, this.badge, this.reason),
      el("div", { class: "slider-row" }, this.volume.mute, this.volume.input, this.volume.output),
    );
  }

  update(speaker, household, alone) {
    this.name.textContent = speaker.name;
    this.volume.input.setAttribute("aria-label", `Volume of ${speaker.name}`);
    const { shown, reason } = availabilityOf(speaker, household);
    this.node.dataset.status = shown;
    this.badge.hidden = shown === "online";
    this.badge.className = `badge status-${shown}`;
    this.badge.textContent = statusLabel(shown);
    this.reason.textContent = reason;
    // A room on its own is named by its card's title already.
    this.node.classList.toggle("alone", alone && shown === "online");
    const blocked = !this.app.control.control;
    this.volume.update(
      volumeOf(speaker), muteOf(speaker), speaker.name,
      blocked || !available(speaker), blocked ? this.app.control.reason : "",
    );
  }
}

/** One group of rooms. */
export class GroupCard {
  constructor(app, coordinatorUid) {
    this.app = app;
    this.uid = coordinatorUid;
    this.members = new Map();
    const titleId = `group-${++serial}`;
    this.title = el("h3", { id: titleId });
    this.state = el("span", { class: "transport-state" });
    this.groupButton = el(
      "button",
      { type: "button", class: "text-button", onclick: () => app.openGroupDialog(this.uid) },
      icon("group"),
      el("span", { text: "Group" }),
    );
    this.art = el("img", { class: "art", alt: "", width: 96, height: 96, hidden: true,
      onerror: () => {
        this.art.hidden = true;
        this.placeholder.hidden = false;
      } });
    this.placeholder = el("div", { class: "art placeholder" }, icon("music"));
    this.trackTitle = el("p", { class: "title" });
    this.artist = el("p", { class: "artist" });
    this.album = el("p", { class: "album" });
    this.progress = el("progress", { max: 1, value: 0, "aria-label": "Position in the track" });
    this.elapsed = el("span", { class: "time" });
    this.duration = el("span", { class: "time" });
    this.previous = this.transportButton("previous", "Previous track", () =>
      app.run(this.uid, "previous"));
    this.playPause = this.transportButton("play", "Play", () =>
      app.run(this.uid, this.playing ? "pause" : "play"));
    this.playPause.classList.add("primary");
    this.next = this.transportButton("next", "Next track", () => app.run(this.uid, "next"));
    this.shuffle = this.transportButton("shuffle", "Shuffle", () =>
      app.run(this.uid, "play_mode", { shuffle: !this.mode.shuffle }));
    this.repeat = this.transportButton("repeat", "Repeat", () =>
      app.run(this.uid, "play_mode", { repeat: NEXT_REPEAT[this.mode.repeat] }));
    this.repeatOne = el("span", { class: "repeat-one", "aria-hidden": "true", text: "1" });
    this.repeat.append(this.repeatOne);
    this.crossfade = this.transportButton("crossfade", "Crossfade", () =>
      app.run(this.uid, "play_mode", { crossfade: !this.crossfading }));
    this.groupVolume = new VolumeControl(app, "Group volume", (value) =>
      app.run(this.uid, "group_volume", { volume: value }));
    this.groupVolume.mute.addEventListener("click", () => {
      const muted = this.groupVolume.mute.getAttribute("aria-pressed") === "true";
      app.run(this.uid, "group_mute", { mute: !muted });
    });
    this.groupRow = el("div", { class: "group-volume" },
      el("span", { class: "group-label", text: "Whole group", "aria-hidden": "true" }),
      el("div", { class: "slider-row" },
        this.groupVolume.mute, this.groupVolume.input, this.groupVolume.output));
    this.memberList = el("ul", { class: "members", role: "list" });
    this.sleepSelect = el("select", { onchange: () => this.setSleep() },
      el("option", { value: "", text: "Off" }),
      SLEEP_CHOICES.map((minutes) => el("option", { value: String(minutes), text: `${minutes} min` })));
    this.sleepLeft = el("span", { class: "sleep-left" });
    const sleepId = `sleep-${serial}`;
    this.sleepSelect.id = sleepId;
    // The household's favourites and Sonos playlists, to play (filled by the app).
    this.favourites = el("div", { class: "favourites", hidden: true });
    this.household = null;
    this.node = el(
      "article",
      { class: "group", "aria-labelledby": titleId },
      el("header", { class: "group-head" }, this.title, this.state, this.groupButton),
      el("div", { class: "now" }, this.art, this.placeholder,
        el("div", { class: "track" }, this.trackTitle, this.artist, this.album,
          el("div", { class: "progress" }, this.elapsed, this.progress, this.duration))),
      el("div", { class: "transport", role: "group", "aria-label": "Playback" },
        this.shuffle, this.previous, this.playPause, this.next, this.repeat, this.crossfade),
      this.groupRow,
      this.memberList,
      el("div", { class: "extras" },
        el("label", { for: sleepId, text: "Sleep timer" }), this.sleepSelect, this.sleepLeft),
      this.favourites,
    );
    this.mode = PLAY_MODES.NORMAL;
    this.playing = false;
    this.crossfading = false;
    this.sleepGeneration = undefined;
  }

  transportButton(iconName, label, action) {
    return el("button", { type: "button", class: "icon-button", "aria-label": label,
      onclick: action }, icon(iconName));
  }

  async setSleep() {
    const minutes = this.sleepSelect.value;
    const args = minutes ? { action: "set", minutes: Number(minutes) } : { action: "cancel" };
    const result = await this.app.run(this.uid, "sleep_timer", args);
    if (result) this.showSleep(result.remaining);
  }

  showSleep(remaining) {
    this.sleepRemaining = remaining;
    this.sleepAt = Date.now();
    this.sleepLeft.textContent = remaining ? `${Math.ceil(remaining / 60)} min left` : "";
    if (!remaining && document.activeElement !== this.sleepSelect) this.sleepSelect.value = "";
  }

  async readSleep() {
    if (!this.app.control.control) return;
    try {
      const result = await this.app.quiet(this.uid, "sleep_timer", { action: "get" });
      if (result) this.showSleep(result.remaining);
    } catch {
      // Not every speaker answers: the timer is then simply not shown.
    }
  }

  update(group, household) {
    const coordinator = group.coordinator;
    const names = group.members.map((member) => member.name);
    this.title.textContent = names.join(" + ");
    const roomLabel = names.join(" + ");
    const av = variables(coordinator, "AVTransport");
    const state = av.transport_state || "";
    this.playing = state === "PLAYING" || state === "TRANSITIONING";
    this.mode = PLAY_MODES[av.current_play_mode] || PLAY_MODES.NORMAL;
    this.crossfading = Boolean(av.current_crossfade_mode);
    this.state.textContent = {
      PLAYING: "Playing", PAUSED_PLAYBACK: "Paused", STOPPED: "Stopped",
      TRANSITIONING: "Starting", NO_MEDIA_PRESENT: "Nothing to play",
    }[state] || "";

    const meta = av.current_track_meta_data && typeof av.current_track_meta_data === "object"
      ? av.current_track_meta_data : {};
    const title = meta.title || (state ? "Nothing playing" : "");
    this.trackTitle.textContent = meta.stream_content || title;
    this.artist.textContent = meta.stream_content ? meta.title || "" : meta.artist || "";
    this.album.textContent = meta.album || "";
    const artUri = typeof meta.album_art_uri === "string" ? meta.album_art_uri : "";
    const art = artUri && household.proxiesArt(artUri) ? artUrl(artUri, coordinator.uid) : null;
    if (art !== this.artSource) {
      this.artSource = art;
      if (art) {
        this.art.src = art;
        this.art.alt = `Album art of ${meta.album || meta.title || "the track"}`;
        this.art.hidden = false;
        this.placeholder.hidden = true;
      } else {
        this.art.removeAttribute("src");
        this.art.hidden = true;
        this.placeholder.hidden = false;
      }
    }
    this.duration.textContent = clock(seconds(av.current_track_duration || meta.duration));
    this.tick(household);

    const blocked = !this.app.control.control;
    const reason = blocked ? this.app.control.reason : "";
    const offline = !available(coordinator);
    const disabled = blocked || offline;
    setIcon(this.playPause, this.playing ? "pause" : "play");
    this.playPause.setAttribute("aria-label", `${this.playing ? "Pause" : "Play"} ${roomLabel}`);
    this.previous.setAttribute("aria-label", `Previous track in ${roomLabel}`);
    this.next.setAttribute("aria-label", `Next track in ${roomLabel}`);
    this.shuffle.setAttribute("aria-pressed", String(this.mode.shuffle));
    this.shuffle.setAttribute("aria-label", `Shuffle in ${roomLabel}`);
    this.repeat.setAttribute("aria-pressed", String(this.mode.repeat !== "none"));
    this.repeat.setAttribute("aria-label",
      `Repeat in ${roomLabel}: ${{ none: "off", all: "all", one: "one track" }[this.mode.repeat]}`);
    this.repeatOne.hidden = this.mode.repeat !== "one";
    this.crossfade.setAttribute("aria-pressed", String(this.crossfading));
    this.crossfade.setAttribute("aria-label", `Crossfade in ${roomLabel}`);
    // Every control names its room: the visible "Group" and "Sleep timer" alone do not.
    this.groupButton.setAttribute("aria-label", `Group ${roomLabel}`);
    this.sleepSelect.setAttribute("aria-label", `Sleep timer of ${roomLabel}`);
    const actions = String(av.current_transport_actions || "Play, Pause, Next, Previous");
    for (const [button, action] of [[this.previous, "Previous"], [this.next, "Next"]]) {
      button.disabled = disabled || !actions.includes(action);
    }
    for (const button of [this.playPause, this.shuffle, this.repeat, this.crossfade,
      this.sleepSelect, this.groupButton]) {
      button.disabled = disabled;
    }
    for (const control of [this.playPause, this.previous, this.next, this.shuffle, this.repeat,
      this.crossfade, this.sleepSelect, this.groupButton]) {
      if (reason) control.title = reason;
      else control.removeAttribute("title");
    }

    const grouped = group.members.length > 1;
    this.groupRow.hidden = !grouped;
    const grc = variables(coordinator, "GroupRenderingControl");
    this.groupVolume.update(grc.group_volume, Boolean(grc.group_mute), roomLabel, disabled, reason);
    this.groupVolume.input.setAttribute("aria-label", `Group volume of ${roomLabel}`);

    const seen = new Set();
    const rows = [];
    for (const member of group.members) {
      seen.add(member.uid);
      let row = this.members.get(member.uid);
      if (!row) {
        row = new MemberRow(this.app, member.uid);
        this.members.set(member.uid, row);
      }
      row.update(member, household, group.members.length === 1);
      rows.push(row.node);
    }
    for (const uid of [...this.members.keys()]) {
      if (!seen.has(uid)) this.members.delete(uid);
    }
    syncChildren(this.memberList, rows);

    const generation = av.sleep_timer_generation;
    if (generation !== this.sleepGeneration && this.app.control.control && !offline) {
      this.sleepGeneration = generation;
      this.readSleep();
    }
    this.app.renderPlayables(this, disabled, reason);
    this.node.dataset.status = offline ? "offline" : "online";
  }

  /** Move the position (and the sleep timer) on: called every second. */
  tick(household) {
    if (this.sleepRemaining) {
      const left = this.sleepRemaining - (Date.now() - this.sleepAt) / 1000;
      this.sleepLeft.textContent = left > 0 ? `${Math.ceil(left / 60)} min left` : "";
    }
    const total = seconds(
      variables(household.speakers.get(this.uid), "AVTransport").current_track_duration,
    );
    const position = household.position(this.uid);
    if (position === null) {
      // Not known until the daemon reads it (speakers do not event the position).
      this.elapsed.textContent = "";
      this.progress.value = 0;
      this.progress.hidden = true;
      return;
    }
    const shown = total ? Math.min(position, total) : position;
    this.elapsed.textContent = clock(shown);
    this.progress.hidden = !total;
    if (total) {
      this.progress.max = total;
      this.progress.value = shown;
    }
  }
}
