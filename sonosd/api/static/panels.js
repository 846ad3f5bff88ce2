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

/**
 * Health (`/api/v1/health`) and, when the daemon serves it, `/api/v1/diagnostics`: per
 * speaker its availability and reason, callback URL and each subscription's state, SID and
 * last NOTIFY; NOTIFYs accepted and refused; the sinks. Without diagnostics the household
 * state stands in.
 */
export class HealthPanel {
  constructor(app, node) {
    this.app = app;
    this.node = node;
    this.diagnostics = null;
    this.health = null;
  }

  get shown() {
    return Boolean(this.node.closest("details")?.open);
  }

  async refresh() {
    try {
      this.health = await request("health");
    } catch (error) {
      this.health = { status: "unreachable", error: error.message };
    }
    if (this.app.control.endpoints?.includes("diagnostics")) {
      try {
        this.diagnostics = await request("diagnostics");
      } catch {
        // Keep what was shown; the next refresh tries again.
      }
    }
    if (this.shown) this.render();
  }

  render() {
    const household = this.app.household;
    const health = this.health || {};
    const diagnostics = this.diagnostics;
    const counts = health.speakers || {};
    const notify = diagnostics?.listener?.notify;
    const summary = el(
      "dl",
      { class: "summary" },
      el("dt", { text: "Status" }),
      el("dd", {}, badge(health.status || "unknown")),
      diagnostics?.ready ? [
        el("dt", { text: "Ready" }),
        el("dd", { text: diagnostics.ready.ready ? "yes: every speaker is evented" : "no" }),
      ] : null,
      el("dt", { text: "Version" }),
      el("dd", { text: health.version || "" }),
      el("dt", { text: "Up for" }),
      el("dd", { text: health.uptime ? ago(health.uptime).replace(" ago", "") : "" }),
      el("dt", { text: "Speakers" }),
      el("dd", {
        text: Object.entries(counts).map(([key, value]) => `${value} ${key}`).join(", "),
      }),
      notify ? [
        el("dt", { text: "NOTIFYs" }),
        el("dd", { class: "notifies", text: notifyText(notify) }),
      ] : null,
      diagnostics?.listener ? [
        el("dt", { text: "Listener" }),
        el("dd", { text: listenerText(diagnostics.listener) }),
      ] : null,
      el("dt", { text: "Last message" }),
      el("dd", { text: household.lastId === null ? "" : `#${household.lastId}` }),
    );
    const parts = [summary];
    const reasons = [...new Set([...(health.reasons || []),
      ...(diagnostics?.ready?.reasons || [])])];
    if (reasons.length) {
      parts.push(el("ul", { class: "reasons", "aria-label": "Why not ok" },
        reasons.map((text) => el("li", { text }))));
    }
    parts.push(...speakerTables(household, diagnostics));
    if (diagnostics?.sinks) parts.push(sinksTable(diagnostics.sinks));
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

function notifyText(notify) {
  const refused = Object.entries(notify.refused || {});
  const total = refused.reduce((sum, [, count]) => sum + count, 0);
  const detail = refused.map(([reason, count]) => `${count} ${reason.replace(/_/g, " ")}`);
  return `${notify.accepted ?? 0} accepted, ${total} refused` +
    (detail.length ? ` (${detail.join(", ")})` : "");
}

function listenerText(listener) {
  const address = `${listener.interface}:${listener.port}`;
  return listener.advertise ? `${address}, advertised as ${listener.advertise}` : address;
}

/**
 * Every speaker, with its subscriptions: from the diagnostics when the daemon has them,
 * else the household state. Two tables: the speakers (availability, callback URL, how many
 * subscriptions are in which state), then one row per subscription (state, SID, last NOTIFY).
 */
function speakerTables(household, diagnostics) {
  const speakers = [];
  if (diagnostics?.speakers) {
    const sorted = [...diagnostics.speakers].sort((a, b) =>
      String(a.household ?? "").localeCompare(String(b.household ?? "")) ||
      String(a.name ?? a.host).localeCompare(String(b.name ?? b.host)));
    for (const speaker of sorted) {
      const known = speaker.uid ? household.speakers.get(speaker.uid) : null;
      speakers.push({
        name: speaker.name || speaker.host || speaker.uid,
        host: speaker.host,
        status: speaker.availability || "unknown",
        reason: speaker.reason,
        since: known?.availability?.since,
        callback: speaker.callback_url,
        services: speaker.services || {},
      });
    }
  } else {
    const sorted = [...household.speakers.values()]
      .sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const speaker of sorted) {
      const services = {};
      for (const [name, known] of Object.entries(speaker.services || {})) {
        let state = null;
        if (household.lost.has(`${speaker.uid} ${name}`)) state = "lost";
        else if (known.source === "poll") state = "polling";
        services[name] = { state, known };
      }
      speakers.push({
        name: speaker.name,
        host: speaker.host,
        status: speaker.availability?.status || "unknown",
        reason: speaker.availability?.reason,
        since: speaker.availability?.since,
        callback: null,
        services,
      });
    }
  }
  const source = diagnostics ? "from diagnostics" : "from the household state";
  return [
    table(`Speakers (${source})`,
      ["Room", "Address", "Availability", "Callback URL", "Subscriptions"],
      speakers.map(speakerRow)),
    table(`Subscriptions (${source})`,
      ["Room", "Service", "State", "SID", "Last NOTIFY", "Detail"],
      speakers.flatMap((speaker) => subscriptionRows(speaker))),
  ];
}

function speakerRow(speaker) {
  const states = new Map();
  for (const detail of Object.values(speaker.services)) {
    const state = detail.state || "unknown";
    states.set(state, (states.get(state) || 0) + 1);
  }
  return el(
    "tr",
    { "data-status": speaker.status },
    el("th", { scope: "row", text: speaker.name || "" }),
    el("td", { text: speaker.host || "" }),
    el(
      "td",
      {},
      badge(speaker.status),
      " ",
      el("span", { class: "reason", text: speaker.reason || "" }),
      speaker.since ? el("span", { class: "muted", text: ` since ${timeOf(speaker.since)}` }) : null,
    ),
    el("td", { class: "callback", text: speaker.callback || "" }),
    el("td", { class: "states" }, [...states].sort().map(([state, count]) =>
      el("span", { class: "state-count" }, `${count} `, badge(state)))),
  );
}

/** One row per subscription: its state, SID, last NOTIFY and what it waits for. */
function subscriptionRows(speaker) {
  return Object.keys(speaker.services).sort().map((name) => {
    const detail = speaker.services[name] || {};
    const bits = [];
    if (detail.known?.time) {
      bits.push(`${detail.known.source || "update"} ${timeOf(detail.known.time)}`);
    }
    if (detail.retry_in !== null && detail.retry_in !== undefined) {
      bits.push(`retry in ${Math.ceil(detail.retry_in)} s`);
    }
    if (detail.reason) bits.push(detail.reason);
    if (detail.polls) bits.push(`${detail.polls} polls`);
    if (detail.gaps) bits.push(`${detail.gaps} gaps`);
    let age = "";
    if (detail.last_notify_age !== null && detail.last_notify_age !== undefined) {
      age = ago(detail.last_notify_age);
    } else if (detail.sid) {
      age = "none yet";
    }
    return el(
      "tr",
      { "data-service": name, "data-state": detail.state || "" },
      el("th", { scope: "row", text: speaker.name || "" }),
      el("td", { class: "service", text: name }),
      el("td", {}, detail.state ? badge(detail.state) : null),
      el("td", {}, detail.sid ? el("code", { class: "sid", text: detail.sid }) : null),
      el("td", { class: "age", text: age }),
      el("td", { class: "muted", text: bits.join(" · ") }),
    );
  });
}

/** The sinks' health: webhooks, MQTT, callbacks, and the connected clients. */
function sinksTable(sinks) {
  const rows = [];
  const row = (kind, target, status, detail) => rows.push(el(
    "tr",
    {},
    el("th", { scope: "row", text: kind }),
    el("td", { text: target || "" }),
    el("td", {}, badge(status)),
    el("td", { class: "muted", text: detail }),
  ));
  for (const hook of sinks.webhooks || []) {
    row("Webhook", hook.url, hook.failing ? "failing" : "ok",
      [`${hook.delivered ?? 0} delivered`, `${hook.queued ?? 0} queued`,
        `${hook.failed ?? 0} failed`, `${hook.dropped ?? 0} dropped`, hook.last_error || ""]
        .filter(Boolean).join(" · "));
  }
  if (sinks.mqtt) {
    const mqtt = sinks.mqtt;
    let state = mqtt.connected ? "connected" : "disconnected";
    if (mqtt.stalled) state = "stalled";
    row("MQTT", mqtt.broker, state,
      [`${mqtt.published ?? 0} published`, `${mqtt.queue ?? 0} queued`,
        `${mqtt.missed ?? 0} missed`, `${mqtt.failures ?? 0} failures`, mqtt.last_error || ""]
        .filter(Boolean).join(" · "));
  }
  for (const callback of sinks.callbacks || []) {
    row("Callback", callback.name, callback.failed ? "failing" : "ok",
      `${callback.delivered ?? 0} delivered · ${callback.failed ?? 0} failed · ` +
      `${callback.dropped ?? 0} dropped · ${callback.queued ?? 0} queued`);
  }
  const clients = Object.entries(sinks.clients || {})
    .map(([channel, count]) => `${count} ${channel}`).join(", ");
  row("Clients", "API and stream", "ok", clients);
  return table("Sinks", ["Sink", "Target", "State", "Counters"], rows);
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
