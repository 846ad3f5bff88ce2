// The household as the dashboard knows it: a snapshot, then every message applied in order,
// with the same merge rules as the daemon's own state (sonosd/household/state.py).

const RECENT = 2000;

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isChannels(name, value) {
  if (name.endsWith("meta_data")) return false;
  return Object.values(value).every((item) => item === null || typeof item !== "object");
}

/** Merge `update` into `current` as the daemon does: channel objects key by key. */
export function mergeVariables(current, update) {
  for (const [name, value] of Object.entries(update || {})) {
    const old = current[name];
    if (isPlainObject(value) && isPlainObject(old) && isChannels(name, value)) {
      current[name] = { ...old, ...value };
    } else {
      current[name] = value;
    }
  }
}

/** Seconds of an "H:MM:SS" (or "M:SS") duration, or null. */
export function seconds(text) {
  if (typeof text !== "string" || !/^\d+(:\d{1,2}){1,2}$/.test(text)) return null;
  return text.split(":").reduce((total, part) => total * 60 + Number(part), 0);
}

/** Labels of availability statuses; an unknown status is shown by its name. */
export const STATUS_LABELS = {
  online: "Online",
  offline: "Offline",
  unknown: "Checking",
  asleep: "Asleep",
  upnp_disabled: "UPnP off",
  polling: "Polling",
  lost: "Events lost",
  backing_off: "Retrying",
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || String(status).replace(/_/g, " ");
}

export class Household {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.speakers = new Map();
    this.topology = null;
    this.lastId = null;
    this.run = null;
    this.recent = [];
    this.positions = new Map();
    this.lost = new Map();
    this.loaded = false;
    this.listeners = new Set();
    this.pending = false;
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  changed() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      for (const listener of this.listeners) listener(this);
    });
  }

  /** Start again from a snapshot; messages already seen after it are applied again. */
  load(snapshot) {
    this.speakers = new Map();
    for (const speaker of snapshot.speakers || []) {
      this.speakers.set(speaker.uid, speaker);
    }
    this.topology = snapshot.topology || null;
    this.lastId = Number.isInteger(snapshot.last_id) ? snapshot.last_id : null;
    this.run = snapshot.run || null;
    this.lost = new Map();
    this.positions = new Map();
    for (const speaker of this.speakers.values()) this.trackPosition(speaker, null, true);
    this.loaded = true;
    for (const message of this.recent) {
      if (this.lastId === null || message.id > this.lastId) this.apply(message, false);
    }
    this.changed();
  }

  /** A `reset` from the daemon: the state is rebuilt by the snapshot that follows. */
  reset() {
    this.recent = [];
    this.lastId = null;
    this.run = null;
  }

  ensure(ref) {
    let speaker = this.speakers.get(ref.uid);
    if (!speaker) {
      speaker = { uid: ref.uid, name: ref.name, host: ref.host, port: 1400, services: {},
        availability: { status: "unknown", reason: null, since: null } };
      this.speakers.set(ref.uid, speaker);
    } else if (ref.name) {
      speaker.name = ref.name;
    }
    return speaker;
  }

  /** Apply one message (ids at or below the last applied one are ignored). */
  apply(message, remember = true) {
    if (Number.isInteger(message.id)) {
      if (this.lastId !== null && message.id <= this.lastId) return;
      this.lastId = message.id;
      if (message.run) this.run = message.run;
      if (remember) {
        this.recent.push(message);
        if (this.recent.length > RECENT) this.recent.splice(0, this.recent.length - RECENT);
      }
    }
    const type = message.type || "";
    const speaker = message.speaker && message.speaker.uid ? this.ensure(message.speaker) : null;
    if (type === "event" && speaker && message.service) {
      const service = (speaker.services[message.service] ||= { variables: {} });
      const before = { ...service.variables };
      mergeVariables(service.variables, message.variables);
      service.seq = message.seq ?? null;
      service.time = message.time;
      service.source = message.source || null;
      if (message.service === "AVTransport") this.trackPosition(speaker, before, false);
    } else if (type === "topology.changed") {
      const { id, run, time, type: _type, ...topology } = message;
      this.topology = mergeTopology(this.topology, topology);
    } else if (type === "speaker.removed" && speaker) {
      this.speakers.delete(speaker.uid);
      this.positions.delete(speaker.uid);
    } else if (type.startsWith("speaker.") && speaker) {
      const status = message.availability?.status || type.slice("speaker.".length);
      speaker.availability = { status, reason: message.reason ?? null, since: message.time };
    } else if (type === "subscription.lost" && speaker) {
      this.lost.set(`${speaker.uid} ${message.service}`, message.reason || "");
    } else if (type === "subscription.restored" && speaker) {
      this.lost.delete(`${speaker.uid} ${message.service}`);
    }
    if (remember) this.changed();
  }

  /** Where the track is: known after a track change or from a reported position. */
  trackPosition(speaker, before, fromSnapshot) {
    const variables = speaker.services.AVTransport?.variables;
    if (!variables) return;
    const state = variables.transport_state;
    const playing = state === "PLAYING" || state === "TRANSITIONING";
    const reported = reportedPosition(speaker.services.AVTransport);
    const now = this.now();
    if (reported) {
      this.positions.set(speaker.uid, { seconds: reported.seconds, at: reported.at, playing });
      return;
    }
    if (fromSnapshot) return;
    const old = this.positions.get(speaker.uid);
    const trackChanged =
      before.current_track_uri !== variables.current_track_uri ||
      before.current_track !== variables.current_track;
    if (trackChanged || state === "STOPPED") {
      this.positions.set(speaker.uid, { seconds: 0, at: now, playing });
    } else if (old && old.playing !== playing) {
      this.positions.set(speaker.uid, { seconds: this.position(speaker.uid), at: now, playing });
    }
  }

  /** Seconds into the current track of a coordinator, or null when unknown. */
  position(uid) {
    const known = this.positions.get(uid);
    if (!known) return null;
    const elapsed = known.playing ? (this.now() - known.at) / 1000 : 0;
    return Math.max(0, known.seconds + elapsed);
  }

  /** Groups of rooms per household, from the topology (speakers outside it alone). */
  households() {
    const households = new Map();
    const placed = new Set();
    const add = (household, group) => {
      if (!households.has(household)) households.set(household, []);
      households.get(household).push(group);
    };
    for (const group of this.topology?.groups || []) {
      const members = [];
      for (const member of group.members || []) {
        placed.add(member.uid);
        if (member.invisible) continue;
        members.push(this.speakers.get(member.uid) || { ...member, services: {},
          availability: { status: "unknown", reason: "not followed", since: null } });
      }
      if (!members.length) continue;
      const coordinator = this.speakers.get(group.coordinator) || members[0];
      members.sort((a, b) => (a.uid === coordinator.uid ? -1 : b.uid === coordinator.uid ? 1 :
        String(a.name).localeCompare(String(b.name))));
      add(householdOf(group, coordinator), { id: group.id, coordinator, members });
    }
    for (const speaker of this.speakers.values()) {
      if (placed.has(speaker.uid)) continue;
      add(householdOf({}, speaker), { id: speaker.uid, coordinator: speaker, members: [speaker] });
    }
    for (const groups of households.values()) {
      groups.sort((a, b) => String(a.coordinator.name).localeCompare(String(b.coordinator.name)));
    }
    return households;
  }

  /** Whether any service of a speaker is polled, lost, per the stream. */
  eventing(speaker) {
    const lost = [];
    const polled = [];
    for (const [service, state] of Object.entries(speaker.services || {})) {
      if (this.lost.has(`${speaker.uid} ${service}`)) lost.push(service);
      else if (state.source === "poll") polled.push(service);
    }
    return { lost, polled };
  }
}

function householdOf(group, speaker) {
  return (
    group.household_id ||
    group.household ||
    speaker.household_id ||
    speaker.household ||
    speaker.services?.ZoneGroupTopology?.variables?.muse_household_id ||
    ""
  );
}

/** A position the daemon reported (a field several names may carry), with its time. */
/**
 * A topology after one household's `topology.changed`: that household's groups and vanished
 * devices replaced, the other households' kept.
 */
export function mergeTopology(old, changed) {
  if (!old) return changed;
  const household = changed.household ?? null;
  const others = (items) => (items || []).filter((item) => (item.household ?? null) !== household);
  return {
    household: (old.household ?? null) === household ? household : null,
    groups: [...others(old.groups), ...(changed.groups || [])],
    vanished: [...others(old.vanished), ...(changed.vanished || [])],
  };
}

function reportedPosition(service) {
  const variables = service.variables || {};
  const value = variables.position ?? variables.relative_time_position ?? variables.rel_time;
  let text = value;
  let time = variables.position_time ?? service.time;
  if (isPlainObject(value)) {
    text = value.position ?? value.seconds;
    time = value.time ?? value.read_at ?? time;
  }
  const secondsIn = typeof text === "number" ? text : seconds(text);
  if (secondsIn === null || secondsIn === undefined) return null;
  const at = time ? Date.parse(time) : NaN;
  return { seconds: secondsIn, at: Number.isNaN(at) ? Date.now() : at };
}
