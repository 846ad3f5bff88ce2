// The dashboard: follows the daemon's event stream, renders the rooms, runs commands.

import { EventStream, access, command, getToken, setToken } from "./api.js";
import { el, notify, syncChildren } from "./dom.js";
import { HealthPanel, MessagesPanel } from "./panels.js";
import { GroupCard } from "./rooms.js";
import { Household } from "./store.js";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Not connected",
  auth: "Token needed",
};

/** Commands that list favourites, in the order tried. */
const FAVOURITE_LISTS = ["favorites", "list_favorites"];

class App {
  constructor() {
    this.household = new Household();
    this.cards = new Map();
    this.control = { control: true, reason: "" };
    this.favourites = null; // null: not known; [] none; [{title}...]
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
      if (healthPanel.open) this.health.refresh();
    });
    const messagesPanel = document.getElementById("messages-panel");
    messagesPanel.addEventListener("toggle", () => {
      if (messagesPanel.open) this.messages.open();
      else this.messages.close();
    });
    setInterval(() => this.tick(), 1000);
    setInterval(() => {
      if (healthPanel.open) this.health.refresh();
    }, 5000);
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
    this.loadFavourites();
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
      if (document.getElementById("health-panel").open) this.health.refresh();
    } else {
      this.household.apply(body);
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
        section = {
          title: el("h2"),
          list: el("div", { class: "groups" }),
        };
        section.node = el("section", { class: "household-section" }, section.title, section.list);
        this.sections.set(id, section);
      }
      section.title.textContent = several ? `Household ${index}` : "Rooms";
      section.title.className = several ? "household" : "visually-hidden";
      if (several) section.title.title = id;
      const cards = [];
      for (const group of groups) {
        const uid = group.coordinator.uid;
        seen.add(uid);
        let card = this.cards.get(uid);
        if (!card) {
          card = new GroupCard(this, uid);
          this.cards.set(uid, card);
        }
        card.update(group, this.household);
        cards.push(card.node);
      }
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
    const empty = document.getElementById("empty");
    empty.hidden = households.size > 0 || !this.household.loaded;
  }

  /** Favourites to play, when the daemon has a command that lists them. */
  async loadFavourites() {
    const name = FAVOURITE_LISTS.find((candidate) => this.control.commands?.includes(candidate));
    if (!this.control.control || !name) return;
    const first = this.household.speakers.values().next().value;
    if (!first) {
      setTimeout(() => this.loadFavourites(), 1000);
      return;
    }
    try {
      const result = await command(first.uid, name, {});
      this.favourites = Array.isArray(result) ? result : result?.favorites || result?.items || [];
    } catch {
      this.favourites = null;
    }
    this.render();
  }

  renderFavourites(card, disabled, reason) {
    const items = this.favourites;
    card.favourites.hidden = !items || !items.length;
    if (!items || !items.length) return;
    if (!card.favouriteSelect) {
      const id = `favourite-${card.uid}`;
      card.favouriteSelect = el("select", { id });
      card.favouritePlay = el("button", { type: "button", class: "text-button",
        onclick: () => this.playFavourite(card) }, "Play");
      card.favourites.append(el("label", { for: id, text: "Favourite" }), card.favouriteSelect,
        card.favouritePlay);
    }
    const titles = items.map((item) => item.title || item.name || String(item));
    const current = [...card.favouriteSelect.options].map((option) => option.value);
    if (current.join("\n") !== titles.join("\n")) {
      card.favouriteSelect.replaceChildren(
        ...titles.map((title) => el("option", { value: title, text: title })));
    }
    card.favouriteSelect.disabled = disabled;
    card.favouritePlay.disabled = disabled;
    card.favouritePlay.setAttribute("aria-label", `Play favourite in ${card.title.textContent}`);
    if (reason) card.favouritePlay.title = reason;
  }

  playFavourite(card) {
    const name = card.favouriteSelect.value;
    if (name) this.run(card.uid, "play_favorite", { name });
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
      this.loadFavourites();
    });
    document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
    document.getElementById("token-button").addEventListener("click", () => this.askToken(null));
    document.getElementById("token-forget").addEventListener("click", () => {
      setToken(null);
      location.reload();
    });
  }

  askToken(error) {
    this.stream.stop();
    this.setConnection("auth");
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
    const groups = [...this.household.households().values()].flat();
    const mine = groups.find((group) => group.coordinator.uid === coordinator);
    if (!mine) return;
    const household = mine.coordinator.services?.ZoneGroupTopology?.variables?.muse_household_id;
    const members = mine.members.map((member) => member.uid);
    dialog.dataset.coordinator = coordinator;
    dialog.dataset.members = JSON.stringify(members);
    document.getElementById("group-title").textContent = `Group with ${mine.coordinator.name}`;
    const boxes = [];
    for (const group of groups) {
      for (const member of group.members) {
        if (member.uid === coordinator) continue;
        const other = member.services?.ZoneGroupTopology?.variables?.muse_household_id;
        if (household && other && other !== household) continue;
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

const app = new App();
app.start();
