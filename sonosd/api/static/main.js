// The dashboard: follows the daemon's event stream, renders the rooms, runs commands.

import { EventStream, access, command, getToken, setToken } from "./api.js";
import { el, notify, syncChildren } from "./dom.js";
import { HealthPanel, MessagesPanel } from "./panels.js";
import { GroupCard } from "./rooms.js";
import { Household, statusLabel } from "./store.js";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Not connected",
  auth: "Token needed",
};

/** How often the daemon's diagnostics are read while the page is shown (ms). */
const DIAGNOSTICS_EVERY = 5000;
/** ContentDirectory variables whose change means the favourites or playlists changed. */
const CONTENT_CHANGES = ["favorites_update_id", "saved_queues_update_id"];

class App {
  constructor() {
    this.household = new Household();
    this.cards = new Map();
    this.control = { control: true, reason: "" };
    // Per household id: {favorites: [...], playlists: [...]} once read (see loadContent).
    this.content = new Map();
    this.contentTimers = new Map();
    // Per "<uid> <id name>": the favourites' and playlists' update ids last evented.
    this.contentIds = new Map();
    this.diagnosticsTimer = null;
    this.connection = document.getElementById("connection");
    this.rooms = document.getElementById("households");
    this.readOnly = document.getElementById("read-only");
    this.stream = new EventStream({
      message: (type, body) => this.message(type, body),
      status: (state) => this.setConnection(state),
      unauthorized: (error) => this.askToken(error),
      failed: (error) => notify(error.message),
    });
    this.household.subscribe(() => this.render());
    this.health = new HealthPanel(this, document.getElementById("health"));
    this.messages = new MessagesPanel(
      this,
      document.getElementById("message-filter"),
      document.getElementById("messages"),
      document.getElementById("messages-status"),
    );
    this.setupTokenDialog();
    this.setupGroupDialog();
    const healthPanel = document.getElementById("health-panel");
    healthPanel.addEventListener("toggle", () => {
      if (healthPanel.open) {
        this.health.render();
        this.refreshDiagnostics();
      }
    });
    const messagesPanel = document.getElementById("messages-panel");
    messagesPanel.addEventListener("toggle", () => {
      if (messagesPanel.open) this.messages.open();
      else this.messages.close();
    });
    setInterval(() => this.tick(), 1000);
    setInterval(() => {
      if (document.visibilityState === "visible") this.refreshDiagnostics();
    }, DIAGNOSTICS_EVERY);
  }

  /**
   * Read the daemon's health and diagnostics again: the rooms show from them whether
   * each speaker's events arrive (subscribed, polling, lost, backing off), and the health
   * panel shows them in full.
   */
  async refreshDiagnostics() {
    if (!this.control.granted) return;
    await this.health.refresh();
    this.household.setDiagnostics(this.health.diagnostics);
  }

  /** Refresh the diagnostics soon (a burst of availability news makes one read). */
  diagnosticsSoon() {
    if (this.diagnosticsTimer !== null) return;
    this.diagnosticsTimer = setTimeout(() => {
      this.diagnosticsTimer = null;
      this.refreshDiagnostics();
    }, 300);
  }

  async start() {
    try {
      this.control = await access();
    } catch (error) {
      notify(`The daemon cannot be reached: ${error.message}`);
      this.setConnection("stopped");
      setTimeout(() => this.start(), 3000);
      return;
    }
    if (!this.control.granted) {
      this.askToken(null);
      return;
    }
    this.showAccess();
    this.stream.start(null);
    this.refreshDiagnostics();
  }

  showAccess() {
    this.readOnly.hidden = this.control.control;
    this.readOnly.textContent = this.control.reason || "";
    document.body.classList.toggle("read-only", !this.control.control);
    document.getElementById("token-forget").hidden = !getToken();
    this.render();
  }

  setConnection(state) {
    this.connection.textContent = CONNECTION_TEXT[state] || state;
    this.connection.dataset.state = state;
    // While the stream is down what is shown may be stale: say so.
    document.body.classList.toggle("stale", state !== "live");
  }

  message(type, body) {
    if (type === "reset") {
      this.household.reset();
    } else if (type === "snapshot") {
      this.household.load(body);
      this.contentIds = new Map();
      for (const speaker of body.speakers || []) {
        this.noteContent(speaker.uid, speaker.services?.ContentDirectory?.variables || {});
      }
      this.diagnosticsSoon();
    } else {
      this.household.apply(body);
      const kind = body.type || "";
      if (kind.startsWith("speaker.") || kind.startsWith("subscription.") ||
          (kind === "event" && body.source === "poll")) {
        this.diagnosticsSoon();
      }
      if (kind === "event" && body.service === "ContentDirectory" &&
          this.noteContent(body.speaker?.uid, body.variables || {})) {
        this.contentChanged(body.speaker?.uid);
      }
    }
  }

  /** Run a command; a failure is shown and resolves to null. */
  async run(speaker, name, args = {}) {
    try {
      return await command(speaker, name, args);
    } catch (error) {
      if (error.status === 401) {
        this.askToken(error);
      } else {
        const who = this.household.speakers.get(speaker)?.name || speaker;
        notify(`${who}: ${name.replace(/_/g, " ")} failed: ${error.message}`);
      }
      return null;
    }
  }

  /** Run a command whose failure is not news (a read). */
  quiet(speaker, name, args = {}) {
    return command(speaker, name, args);
  }

  tick() {
    for (const card of this.cards.values()) card.tick(this.household);
  }

  render() {
    const households = this.household.households();
    const seen = new Set();
    const sections = [];
    const several = households.size > 1;
    let index = 0;
    this.sections ||= new Map();
    for (const [id, groups] of households) {
      index += 1;
      let section = this.sections.get(id);
      if (!section) {
        const titleId = `household-${this.sections.size + 1}`;
        section = {
          title: el("h2", { id: titleId }),
          id: el("p", { class: "household-id muted" }),
          list: el("div", { class: "groups" }),
        };
        section.node = el("section", { class: "household-section", "aria-labelledby": titleId },
          section.title, section.id, section.list);
        this.sections.set(id, section);
      }
      section.title.textContent = several ? `Household ${index}` : "Rooms";
      section.title.className = several ? "household" : "visually-hidden";
      section.id.textContent = several && id ? id : "";
      section.id.hidden = !several || !id;
      const cards = [];
      for (const group of groups) {
        const uid = group.coordinator.uid;
        seen.add(uid);
        let card = this.cards.get(uid);
        if (!card) {
          card = new GroupCard(this, uid);
          this.cards.set(uid, card);
        }
        card.household = id;
        card.update(group, this.household);
        cards.push(card.node);
      }
      this.loadContent(id, groups);
      syncChildren(section.list, cards);
      sections.push(section.node);
    }
    for (const uid of [...this.cards.keys()]) {
      if (!seen.has(uid)) this.cards.delete(uid);
    }
    for (const id of [...this.sections.keys()]) {
      if (!households.has(id)) this.sections.delete(id);
    }
    syncChildren(this.rooms, sections);
    const unidentified = this.household.unidentified;
    const list = document.getElementById("unidentified");
    list.hidden = !unidentified.length;
    list.replaceChildren(...unidentified.map((speaker) => {
      const status = speaker.availability || "unknown";
      return el("li", {},
        el("span", { class: "member-name", text: speaker.name || speaker.host }), " ",
        el("span", { class: `badge status-${status}`,
          text: status === "unknown" ? "Not identified" : statusLabel(status) }), " ",
        el("span", { class: "reason", text: speaker.reason || "" }));
    }));
    const empty = document.getElementById("empty");
    empty.hidden = households.size > 0 || unidentified.length > 0 || !this.household.loaded;
  }

  /**
   * Read a household's favourites and Sonos playlists (the `favorites` and `playlists`
   * commands, from one of its online rooms), once, and again when its ContentDirectory says
   * they changed (what was read stays shown meanwhile). Needs the control scope (commands
   * are POSTs); without it none are shown.
   */
  async loadContent(household, groups) {
    if (!this.control.control || !this.control.commands?.includes("favorites")) return;
    const known = this.content.get(household);
    if (known && (known.loading || !known.stale || Date.now() < known.retryAt)) return;
    const speaker = groups.flatMap((group) => group.members)
      .find((member) => member.availability?.status === "online");
    if (!speaker) return;
    const entry = { favorites: known?.favorites || [], playlists: known?.playlists || [],
      loading: true, stale: false, retryAt: 0 };
    this.content.set(household, entry);
    try {
      const favorites = (await this.quiet(speaker.uid, "favorites"))?.favorites || [];
      let playlists = [];
      if (this.control.commands.includes("playlists")) {
        playlists = (await this.quiet(speaker.uid, "playlists", { action: "list" }))?.playlists || [];
      }
      Object.assign(entry, { favorites, playlists });
    } catch {
      // Tried again at a render a few seconds on.
      Object.assign(entry, { stale: true, retryAt: Date.now() + 5000 });
      setTimeout(() => this.render(), 5000);
    }
    entry.loading = false;
    this.render();
  }

  /** Remember `uid`'s content update ids; whether one changed since last seen. */
  noteContent(uid, variables) {
    let changed = false;
    for (const [name, value] of contentIds(variables)) {
      const key = `${uid} ${name}`;
      if (this.contentIds.has(key) && this.contentIds.get(key) !== value) changed = true;
      this.contentIds.set(key, value);
    }
    return changed;
  }

  /** The favourites or playlists of `uid`'s household changed: read them again soon. */
  contentChanged(uid) {
    const household = [...this.household.households()].find(([, groups]) =>
      groups.some((group) => group.members.some((member) => member.uid === uid)))?.[0];
    const entry = household === undefined ? null : this.content.get(household);
    if (!entry) return;
    clearTimeout(this.contentTimers.get(household));
    this.contentTimers.set(household, setTimeout(() => {
      this.contentTimers.delete(household);
      entry.stale = true;
      entry.retryAt = 0;
      this.render();
    }, 500));
  }

  /** A card's "Play" choice: its household's favourites (with their kind) and playlists. */
  renderPlayables(card, disabled, reason) {
    const content = this.content.get(card.household);
    const favorites = content?.favorites || [];
    const playlists = content?.playlists || [];
    card.favourites.hidden = !favorites.length && !playlists.length;
    if (card.favourites.hidden) return;
    if (!card.playableSelect) {
      const id = `playable-${card.uid}`;
      card.playableSelect = el("select", { id, onchange: () => {
        card.playablePlay.disabled = !card.playableSelect.value;
      } });
      card.playablePlay = el("button", { type: "button", class: "text-button",
        onclick: () => this.playChoice(card) }, "Play");
      card.playableLabel = el("label", { for: id, class: "visually-hidden" });
      card.favourites.append(card.playableLabel, card.playableSelect, card.playablePlay);
    }
    card.playableLabel.textContent = `Favourites and playlists to play in ${card.title.textContent}`;
    const options = [
      ...favorites.map((item) => ({ value: `favorite:${item.title}`,
        text: `${item.title} (${KIND_LABELS[item.kind] || item.kind || "favourite"})` })),
      ...playlists.map((item) => ({ value: `playlist:${item.id}`,
        text: `${item.title} (${item.tracks ?? "?"} tracks)` })),
    ];
    const key = JSON.stringify(options);
    if (card.playableKey !== key) {
      card.playableKey = key;
      const chosen = card.playableSelect.value;
      const group = (label, items) => (items.length ? el("optgroup", { label },
        items.map((item) => el("option", { value: item.value, text: item.text }))) : null);
      card.playableSelect.replaceChildren(
        el("option", { value: "", text: "Favourites and playlists…" }),
        ...[group("Favourites", options.slice(0, favorites.length)),
          group("Sonos playlists", options.slice(favorites.length))].filter(Boolean));
      card.playableSelect.value = options.some((item) => item.value === chosen) ? chosen : "";
    }
    card.playableSelect.disabled = disabled;
    card.playablePlay.disabled = disabled || !card.playableSelect.value;
    card.playablePlay.setAttribute("aria-label", `Play the choice in ${card.title.textContent}`);
    if (reason) card.playablePlay.title = reason;
    else card.playablePlay.removeAttribute("title");
  }

  /** Play the card's chosen favourite (`play_favorite`) or Sonos playlist (`playlists`). */
  playChoice(card) {
    const value = card.playableSelect.value;
    if (!value) return;
    const split = value.indexOf(":");
    const kind = value.slice(0, split);
    const name = value.slice(split + 1);
    if (kind === "favorite") this.run(card.uid, "play_favorite", { name });
    else if (kind === "playlist") this.run(card.uid, "playlists", { action: "play", id: name });
  }

  // -- the token -------------------------------------------------------------------------

  setupTokenDialog() {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const error = document.getElementById("token-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      setToken(value);
      try {
        this.control = await access();
      } catch (failure) {
        this.control = { granted: false, reason: failure.message };
      }
      if (!this.control.granted) {
        setToken(null);
        error.textContent = "This token is not valid for this daemon.";
        input.focus();
        return;
      }
      error.textContent = "";
      input.value = "";
      dialog.close();
      this.showAccess();
      this.stream.start(null);
      this.refreshDiagnostics();
    });
    document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
    document.getElementById("token-button").addEventListener("click", () => this.askToken(null));
    document.getElementById("token-forget").addEventListener("click", () => {
      setToken(null);
      location.reload();
    });
  }

  /**
   * Show the token prompt: after a refusal (or with no token granted), with the stream
   * stopped until a token is given; from the *Token…* button on a live page the stream goes
   * on, so that cancelling the prompt leaves the page as it was.
   */
  askToken(error) {
    if (error || !this.control.granted) {
      this.stream.stop();
      this.setConnection("auth");
    }
    const dialog = document.getElementById("token-dialog");
    const message = document.getElementById("token-error");
    message.textContent = error && getToken() ? "This token was refused." : "";
    if (error && getToken() && error.status === 401) setToken(null);
    if (!dialog.open) dialog.showModal();
    document.getElementById("token-input").focus();
  }

  // -- grouping ------------------------------------------------------------------------

  setupGroupDialog() {
    const dialog = document.getElementById("group-dialog");
    const form = document.getElementById("group-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const coordinator = dialog.dataset.coordinator;
      const wanted = new Set(
        [...form.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value),
      );
      const before = new Set(JSON.parse(dialog.dataset.members || "[]"));
      dialog.close();
      for (const uid of wanted) {
        if (!before.has(uid)) await this.run(uid, "join", { coordinator });
      }
      for (const uid of before) {
        if (uid !== coordinator && !wanted.has(uid)) await this.run(uid, "leave");
      }
    });
    document.getElementById("group-cancel").addEventListener("click", () => dialog.close());
  }

  openGroupDialog(coordinator) {
    const dialog = document.getElementById("group-dialog");
    const choices = document.getElementById("group-choices");
    // Only rooms of the same household can play together.
    const groups = [...this.household.households().values()].find((each) =>
      each.some((group) => group.coordinator.uid === coordinator)) || [];
    const mine = groups.find((group) => group.coordinator.uid === coordinator);
    if (!mine) return;
    const members = mine.members.map((member) => member.uid);
    dialog.dataset.coordinator = coordinator;
    dialog.dataset.members = JSON.stringify(members);
    document.getElementById("group-title").textContent = `Group with ${mine.coordinator.name}`;
    const boxes = [];
    for (const group of groups) {
      for (const member of group.members) {
        if (member.uid === coordinator) continue;
        const id = `group-choice-${member.uid}`;
        boxes.push(
          el("div", { class: "choice" },
            el("input", { type: "checkbox", id, value: member.uid,
              checked: members.includes(member.uid),
              disabled: member.availability?.status !== "online" }),
            el("label", { for: id, text: member.name })),
        );
      }
    }
    choices.replaceChildren(
      el("legend", { text: "Rooms playing together" }),
      ...(boxes.length ? boxes : [el("p", { text: "No other room." })]),
    );
    dialog.showModal();
    const first = choices.querySelector("input:not([disabled])");
    if (first) first.focus();
  }
}

/** How the favourites' kinds read on the page. */
const KIND_LABELS = {
  track: "track",
  station: "radio",
  playlist: "Sonos playlist",
  album: "album",
  container: "music service",
  item: "item",
};

/**
 * The update ids of the favourites and Sonos playlists in ContentDirectory variables:
 * `FavoritesUpdateID`, `SavedQueuesUpdateID`, and the `FV:` and `SQ:` containers of
 * `ContainerUpdateIDs` ("FV:2,12,SQ:,3": each container's update id follows its name).
 */
function contentIds(variables) {
  const ids = new Map();
  for (const name of CONTENT_CHANGES) {
    if (variables[name] !== undefined && variables[name] !== null) ids.set(name, variables[name]);
  }
  const parts = String(variables.container_update_ids || "").split(",");
  for (let index = 0; index + 1 < parts.length; index += 2) {
    if (/^(FV|SQ):/.test(parts[index])) ids.set(parts[index], parts[index + 1]);
  }
  return ids;
}

const app = new App();
app.start();
