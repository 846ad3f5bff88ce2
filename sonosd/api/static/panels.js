// The health and diagnostics panel, and the recent messages with the API's filters.

import { EventStream, request } from "./api.js";
import { ago, el, timeOf } from "./dom.js";
import { statusLabel } from "./store.js";

function badge(status) {
  return el("span", { class: `badge status-${status}`, text: statusLabel(status) });
}

function table(caption, head, rows) {
  // Wide tables scroll inside their box on narrow screens.
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      {},
      el("caption", { text: caption }),
      el("thead", {}, el("tr", {}, head.map((name) => el("th", { scope: "col", text: name })))),
      el("tbody", {}, rows),
    ),
  );
}

/** Health (`/health`), and `/diagnostics` when the daemon has it; else the snapshot. */
export class HealthPanel {
  constructor(app, node) {
    this.app = app;
    this.node = node;
    this.diagnostics = null;
    this.health = null;
  }

  async refresh() {
    try {
      this.health = await request("health");
    } catch (error) {
      this.health = { status: "unreachable", error: error.message };
    }
    // Daemons without /diagnostics: the household state stands in for them.
    if (this.app.control.endpoints?.includes("diagnostics")) {
      try {
        this.diagnostics = await request("diagnostics");
      } catch {
        // Keep what was shown; the next refresh tries again.
      }
    }
    this.render();
  }

  render() {
    const household = this.app.household;
    const health = this.health || {};
    const counts = health.speakers || {};
    const summary = el(
      "dl",
      { class: "summary" },
      el("dt", { text: "Status" }),
      el("dd", {}, badge(health.status || "unknown")),
      el("dt", { text: "Version" }),
      el("dd", { text: health.version || "" }),
      el("dt", { text: "Up for" }),
      el("dd", { text: health.uptime ? ago(health.uptime).replace(" ago", "") : "" }),
      el("dt", { text: "Speakers" }),
      el("dd", {
        text: Object.entries(counts).map(([key, value]) => `${value} ${key}`).join(", "),
      }),
      el("dt", { text: "Last message" }),
      el("dd", { text: household.lastId === null ? "" : `#${household.lastId}` }),
    );
    const diagnostics = this.diagnostics;
    const perSpeaker = diagnosticSpeakers(diagnostics);
    const rows = [...household.speakers.values()]
      .sort((a, b) => String(a.name).localeCompare(String(b.name)))
      .map((speaker) => {
        const status = speaker.availability?.status || "unknown";
        const diag = perSpeaker.get(speaker.uid) || {};
        const services = serviceStates(speaker, diag, household);
        return el(
          "tr",
          {},
          el("th", { scope: "row", text: speaker.name }),
          el("td", { text: speaker.host || "" }),
          el(
            "td",
            {},
            badge(status),
            " ",
            el("span", { class: "reason", text: speaker.availability?.reason || "" }),
            speaker.availability?.since
              ? el("span", { class: "muted", text: ` since ${timeOf(speaker.availability.since)}` })
              : null,
          ),
          el("td", { text: diag.callback_url || diag.callback || "" }),
          el("td", {}, el("ul", { class: "services" }, services)),
        );
      });
    const parts = [
      summary,
      table(
        diagnostics ? "Speakers (from diagnostics)" : "Speakers (from the household state)",
        ["Room", "Address", "Availability", "Callback URL", "Services"],
        rows,
      ),
    ];
    const vanished = household.topology?.vanished || [];
    if (vanished.length) {
      parts.push(
        table(
          "Gone from the household",
          ["Room", "Reason"],
          vanished.map((item) =>
            el("tr", {}, el("th", { scope: "row", text: item.name || item.uid }),
              el("td", { text: item.reason || "" }))),
        ),
      );
    }
    if (diagnostics) {
      parts.push(
        el("details", { class: "raw" }, el("summary", { text: "Raw diagnostics" }),
          el("pre", { text: JSON.stringify(diagnostics, null, 2) })),
      );
    }
    this.node.replaceChildren(...parts);
  }
}

/** Diagnostics per speaker uid, whatever shape (a list or a mapping) they come in. */
function diagnosticSpeakers(diagnostics) {
  const found = new Map();
  let speakers = diagnostics?.speakers;
  if (speakers && !Array.isArray(speakers) && typeof speakers === "object") {
    speakers = Object.entries(speakers).map(([uid, value]) => ({ uid, ...value }));
  }
  for (const speaker of speakers || []) {
    if (speaker && speaker.uid) found.set(speaker.uid, speaker);
  }
  return found;
}

function serviceStates(speaker, diag, household) {
  let services = diag.services;
  if (Array.isArray(services)) {
    services = Object.fromEntries(services.map((item) => [item.service || item.name, item]));
  }
  const names = new Set([...Object.keys(speaker.services || {}), ...Object.keys(services || {})]);
  return [...names].sort().map((name) => {
    const known = speaker.services?.[name] || {};
    const detail = (services && services[name]) || {};
    let state = detail.state;
    if (!state) {
      if (household.lost.has(`${speaker.uid} ${name}`)) state = "lost";
      else if (known.source === "poll") state = "polling";
    }
    const age = detail.last_notify_age ?? detail.last_notify ?? null;
    const bits = [];
    if (known.time) bits.push(`${known.source || "update"} ${timeOf(known.time)}`);
    if (age !== null && age !== undefined) {
      bits.push(`last NOTIFY ${typeof age === "number" ? ago(age) : ago(age)}`);
    }
    if (detail.sid) bits.push(detail.sid);
    return el("li", {}, el("span", { class: "service", text: name }), " ",
      state ? badge(state) : null, " ", el("span", { class: "muted", text: bits.join(" · ") }));
  });
}

const LIMIT = 200;
const BACKLOG = 500;

/** The latest messages, through a second event stream carrying the chosen filter. */
export class MessagesPanel {
  constructor(app, form, list, status) {
    this.app = app;
    this.form = form;
    this.list = list;
    this.status = status;
    this.stream = null;
    this.paused = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.open();
    });
    form.elements.pause.addEventListener("click", () => {
      this.paused = !this.paused;
      form.elements.pause.setAttribute("aria-pressed", String(this.paused));
      form.elements.pause.textContent = this.paused ? "Resume" : "Pause";
    });
  }

  query() {
    const query = {};
    for (const key of ["rooms", "speakers", "services", "types"]) {
      const value = this.form.elements[key].value.trim();
      if (value) query[key] = value;
    }
    return query;
  }

  open() {
    this.close();
    this.list.replaceChildren();
    const from = Math.max(0, (this.app.household.lastId || 0) - BACKLOG);
    this.stream = new EventStream(
      {
        message: (type, body) => this.add(type, body),
        status: (state) => {
          this.status.textContent = state === "live" ? "Following" : "Connecting…";
        },
        unauthorized: (error) => {
          this.status.textContent = error.message;
        },
        failed: (error) => {
          this.status.textContent = `Filter refused: ${error.message}`;
        },
      },
      { query: this.query() },
    );
    this.stream.start(from, this.app.household.run);
  }

  close() {
    if (this.stream) this.stream.stop();
    this.stream = null;
  }

  add(type, body) {
    if (type === "snapshot" || type === "reset" || this.paused) return;
    const speaker = body.speaker?.name || "";
    const row = el(
      "li",
      { class: "message" },
      el("time", { datetime: body.time || "", text: timeOf(body.time, true) }),
      el("span", { class: "id", text: Number.isInteger(body.id) ? `#${body.id}` : "" }),
      el("span", { class: "type", text: body.type || type }),
      el("span", { class: "room", text: speaker }),
      el("span", { class: "svc", text: body.service || "" }),
      el("code", { text: summary(body) }),
    );
    this.list.prepend(row);
    while (this.list.children.length > LIMIT) this.list.lastElementChild.remove();
  }
}

function short(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value !== "object") return String(value).slice(0, 60);
  if ("Master" in value) return String(value.Master);
  if ("title" in value) return value.title ? `"${String(value.title).slice(0, 40)}"` : "{}";
  return "{…}";
}

/** A one-line summary of a message's content. */
function summary(body) {
  if (body.variables) {
    return Object.entries(body.variables)
      .slice(0, 6)
      .map(([key, value]) => `${key}=${short(value)}`)
      .join(" ");
  }
  if (body.type === "topology.changed") {
    return (body.groups || []).map((group) => (group.members || [])
      .filter((member) => !member.invisible).map((member) => member.name).join("+")).join(" | ");
  }
  if (body.reason) return body.reason;
  return Object.entries(body)
    .filter(([key]) => !["id", "time", "type", "speaker", "service"].includes(key))
    .map(([key, value]) => `${key}=${short(value)}`)
    .join(" ");
}
