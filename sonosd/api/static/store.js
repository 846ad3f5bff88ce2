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
  subscribed: "Subscribed",
  subscribing: "Subscribing",
  idle: "Waiting",
  stopped: "Stopped",
  ok: "OK",
  degraded: "Degraded",
  starting: "Starting",
  failing: "Failing",
  connected: "Connected",
  disconnected: "Disconnected",
  stalled: "Stalled",
};

export function statusLabel(status) {
  // Its own labels only: "constructor" is a name, not the object's inherited function.
  if (Object.hasOwn(STATUS_LABELS, status)) return STATUS_LABELS[status];
  return String(status).replace(/_/g, " ");
}

const PLAYING = new Set(["PLAYING", "TRANSITIONING"]);

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
    // Per uid, the daemon's own view of a speaker (`/api/v1/diagnostics`), when it has one.
    this.diagnosed = new Map();
    this.unidentified = [];
    // How far the browser's clock is ahead of the daemon's, in ms (the smallest lag seen).
    this.skew = null;
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
    this.skew = null;
    this.observeClock(snapshot.time);
    for (const speaker of this.speakers.values()) this.trackPosition(speaker, {}, null, true);
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

  /**
   * The daemon's diagnostics (`/api/v1/diagnostics`): per speaker its availability and
   * the state of each subscription (subscribed, polling, lost, backing off), which the event
   * stream alone cannot always tell (a poll that finds nothing new sends nothing).
   */
  setDiagnostics(diagnostics) {
    this.diagnosed = new Map();
    this.unidentified = [];
    for (const speaker of diagnostics?.speakers || []) {
      if (speaker?.uid) this.diagnosed.set(speaker.uid, speaker);
      else if (speaker) this.unidentified.push(speaker);
    }
    this.changed();
  }

  /**
   * Whether the daemon's art proxy serves album art at `uri` (see docs/api.md): a path on
   * the speaker, or an `http` URL on port 1400 of a followed speaker. Art that a music
   * service serves from its own host is not proxied: the card shows a placeholder rather
   * than ask for it and be refused.
   */
  proxiesArt(uri) {
    if (uri.startsWith("/")) return true;
    let url;
    try {
      url = new URL(uri);
    } catch {
      return false;
    }
    if (url.protocol !== "http:" || url.port !== "1400" || url.username || url.password) {
      return false;
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    return [...this.speakers.values()].some((speaker) => speaker.host === host);
  }

  /** Learn the clocks' offset from a daemon timestamp received now. */
  observeClock(time) {
    const at = time ? Date.parse(time) : NaN;
    if (Number.isNaN(at)) return;
    const lag = this.now() - at;
    // Replayed messages are older than they look: the smallest lag is the truest.
    if (this.skew === null || lag < this.skew) this.skew = lag;
  }

  /** A daemon timestamp on the browser's clock (ms), or null. */
  local(time) {
    const at = time ? Date.parse(time) : NaN;
    if (Number.isNaN(at)) return null;
    return at + (this.skew ?? 0);
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
    if (remember) this.observeClock(message.time);
    const type = message.type || "";
    const speaker = message.speaker && message.speaker.uid ? this.ensure(message.speaker) : null;
    if (type === "event" && speaker && message.service) {
      const service = (speaker.services[message.service] ||= { variables: {} });
      const before = { ...service.variables };
      mergeVariables(service.variables, message.variables);
      if (message.source !== "position") {
        // A position read is not an update of the service (the daemon's snapshot agrees).
        service.seq = message.seq ?? null;
        service.time = message.time;
        service.source = message.source || null;
      }
      if (message.service === "AVTransport") {
        this.trackPosition(speaker, before, message.variables || {}, false);
      }
    } else if (type === "topology.changed") {
      const { id, run, time, type: _type, ...topology } = message;
      this.topology = mergeTopology(this.topology, topology);
    } else if (type === "speaker.removed" && speaker) {
      this.speakers.delete(speaker.uid);
      this.positions.delete(speaker.uid);
    } else if (type.startsWith("speaker.") && speaker) {
      const availability = message.availability || {};
      speaker.availability = {
        status: availability.status || type.slice("speaker.".length),
        reason: availability.reason ?? message.reason ?? null,
        since: availability.since || message.time,
      };
    } else if (type === "subscription.lost" && speaker) {
      this.lost.set(`${speaker.uid} ${message.service}`, message.reason || "");
    } else if (type === "subscription.restored" && speaker) {
      this.lost.delete(`${speaker.uid} ${message.service}`);
    }
    if (remember) this.changed();
  }

  /**
   * Where the track is. The daemon reads a playing group's position (`position`, read at
   * `position_time`) at every change of track or transport state and now and then while it
   * plays; between reads the page extrapolates while playing. A new track starts at 0 until
   * its position is read; a pause freezes the position where it got to.
   */
  trackPosition(speaker, before, update, fromSnapshot) {
    const variables = speaker.services.AVTransport?.variables;
    if (!variables) return;
    const playing = PLAYING.has(variables.transport_state);
    const uid = speaker.uid;
    const read = fromSnapshot || "position_time" in update ? reportedPosition(variables) : null;
    if (read) {
      const at = this.local(read.time) ?? this.now();
      this.positions.set(uid, { seconds: read.seconds, at, playing });
      return;
    }
    if (fromSnapshot) return;
    const now = this.now();
    const old = this.positions.get(uid);
    const trackChanged = ["current_track_uri", "current_track", "av_transport_uri"].some(
      (name) => name in update && before[name] !== variables[name],
    );
    if (trackChanged || variables.transport_state === "STOPPED") {
      this.positions.set(uid, { seconds: 0, at: now, playing });
    } else if (old && old.playing !== playing) {
      this.positions.set(uid, { seconds: this.position(uid), at: now, playing });
    }
  }

  /** Seconds into the current track of a coordinator, or null when unknown. */
  position(uid) {
    const known = this.positions.get(uid);
    if (!known) return null;
    const elapsed = known.playing ? (this.now() - known.at) / 1000 : 0;
    return Math.max(0, known.seconds + elapsed);
  }

  /** Groups of rooms per household (ordered by household id), from the topology (speakers
   * outside it alone; a home theatre's satellites, nested in their room's member, belong to
   * that room and get no card of their own). */
  households() {
    const households = new Map();
    const placed = new Set();
    const place = (member) => {
      placed.add(member.uid);
      for (const satellite of member.satellites || []) place(satellite);
    };
    const add = (household, group) => {
      if (!households.has(household)) households.set(household, []);
      households.get(household).push(group);
    };
    for (const group of this.topology?.groups || []) {
      const members = [];
      for (const member of group.members || []) {
        place(member);
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
    // A stable order: households keep their place (and their number) as messages arrive.
    // By the id as written (not the browser's collation), so every browser numbers alike.
    const order = ([a], [b]) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0);
    return new Map([...households].sort(order));
  }

  /**
   * How a speaker's events arrive: the services whose events were lost, whose subscription
   * is backing off (or subscribing again after it failed), and those polled because no
   * NOTIFY arrives. The daemon's diagnostics decide when the page has them for the speaker:
   * a `subscription.lost` is followed by a subscription that backs off and retries while the
   * speaker is online, and diagnostics say `lost` only while it is offline. Without them the
   * stream is the only source (`subscription.lost` until `subscription.restored`, updates
   * from polls).
   */
  eventing(speaker) {
    const lost = new Set();
    const retrying = new Set();
    const polled = new Set();
    const diag = this.diagnosed.get(speaker.uid);
    if (diag?.services) {
      for (const [service, state] of Object.entries(diag.services)) {
        const phase = state?.state;
        if (phase === "lost") lost.add(service);
        else if (phase === "backing_off") retrying.add(service);
        // Subscribing again after a loss (the daemon keeps its reason until restored).
        else if (phase === "subscribing" && state.reason) retrying.add(service);
        else if (phase === "polling") polled.add(service);
      }
    } else {
      const prefix = `${speaker.uid} `;
      for (const key of this.lost.keys()) {
        if (key.startsWith(prefix)) lost.add(key.slice(prefix.length));
      }
      for (const [service, state] of Object.entries(speaker.services || {})) {
        if (!lost.has(service) && state.source === "poll") polled.add(service);
      }
    }
    const sorted = (set) => [...set].sort();
    const total = Object.keys(diag?.services || speaker.services || {}).length;
    return { lost: sorted(lost), retrying: sorted(retrying), polled: sorted(polled), total };
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

/** The position the daemon read (`position`, "H:MM:SS") and when (`position_time`). */
function reportedPosition(variables) {
  const secondsIn = seconds(variables.position);
  if (secondsIn === null) return null;
  return { seconds: secondsIn, time: variables.position_time || null };
}
