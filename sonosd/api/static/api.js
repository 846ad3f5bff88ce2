// The daemon's API as the dashboard uses it: the session token, JSON requests, commands,
// album art URLs and a resuming Server-Sent Events reader (fetch-based, so that the token
// travels in a header and HTTP errors such as 401 are seen).

const TOKEN_KEY = "sonosd.token";

/** The API root, relative to the page (works behind a reverse proxy's prefix too). */
export const apiBase = new URL("../api/v1/", document.baseURI);

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token lives as long as the page.
  }
  memoryToken = token || null;
}

let memoryToken = null;

function token() {
  return getToken() || memoryToken;
}

/** An error answered by the API: its HTTP status, `code` and `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const secret = token();
  if (secret) result.Authorization = "Bearer " + secret;
  return result;
}

/** A JSON request to the API; resolves with the decoded body, rejects with ApiError. */
export async function request(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers(), signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, apiBase), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", "the daemon cannot be reached");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText || "request failed",
    );
  }
  return data;
}

/** Run a speaker command (control scope); resolves with its `result`. */
export async function command(speaker, name, args = {}) {
  const path = `speakers/${encodeURIComponent(speaker)}/${encodeURIComponent(name)}`;
  const data = await request(path, { method: "POST", body: args });
  return data ? data.result : null;
}

/**
 * What the token (or none) may do: `GET /api/v1/access` always answers 200, so that the
 * page learns whether it needs a token without a refused request.
 * Resolves with { auth_required, granted, scopes, endpoints, commands, control, reason }.
 */
export async function access() {
  const body = await request("access");
  const scopes = body.scopes || [];
  const commands = body.commands || [];
  let reason = "";
  if (body.granted && !scopes.includes("control")) {
    reason = "This token can only read: controls need a token with the control scope.";
  } else if (body.granted && !commands.length) {
    reason = "This daemon runs without control: commands are not available.";
  }
  return { ...body, scopes, commands, endpoints: body.endpoints || [], control: !reason, reason };
}

/** The proxied URL of a speaker's album art (`uri` absolute, or relative to `speakerUid`). */
export function artUrl(uri, speakerUid) {
  if (!uri) return null;
  const url = new URL("art", apiBase);
  url.searchParams.set("url", uri);
  if (uri.startsWith("/")) url.searchParams.set("speaker", speakerUid);
  const secret = token();
  // An <img> cannot send a header: the API accepts the token in the query (and keeps it
  // out of its access log).
  if (secret) url.searchParams.set("access_token", secret);
  return url.href;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows `/api/v1/events` with resume: after a drop it reconnects with `last_id` and the
 * `run` that id belongs to, so the daemon replays what was missed (or sends `reset` and a
 * fresh snapshot, after a restart of the daemon too).
 *
 * handlers: message(type, body), status("connecting"|"live"|"reconnecting"|"stopped", detail),
 * unauthorized(error), failed(error) for a refusal that retrying cannot fix (bad filter).
 */
export class EventStream {
  constructor(handlers, { query = {}, idleMs = 60000 } = {}) {
    this.handlers = handlers;
    this.query = query;
    this.idleMs = idleMs;
    this.lastId = null;
    this.lastRun = null;
    this.running = false;
    this.controller = null;
  }

  start(lastId = null, run = null) {
    this.stop();
    this.lastId = lastId;
    this.lastRun = run;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  url() {
    const url = new URL("events", apiBase);
    for (const [key, value] of Object.entries(this.query)) {
      if (value) url.searchParams.set(key, value);
    }
    if (this.lastId !== null) {
      url.searchParams.set("last_id", String(this.lastId));
      if (this.lastRun) url.searchParams.set("run", this.lastRun);
    }
    return url;
  }

  async loop() {
    let attempt = 0;
    const me = (this.generation = (this.generation || 0) + 1);
    const current = () => this.running && this.generation === me;
    while (current()) {
      const controller = new AbortController();
      this.controller = controller;
      this.handlers.status(attempt ? "reconnecting" : "connecting");
      try {
        const response = await fetch(this.url(), {
          headers: headers({ Accept: "text/event-stream" }),
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          let error = {};
          try {
            error = (await response.json()).error || {};
          } catch {
            error = {};
          }
          const failure = new ApiError(response.status, error.code || "", error.message || "");
          if (response.status === 401 || response.status === 403) {
            this.running = false;
            this.handlers.unauthorized(failure);
            return;
          }
          if (response.status === 400) {
            this.running = false;
            this.handlers.failed(failure);
            return;
          }
          throw failure;
        }
        attempt = 0;
        this.handlers.status("live");
        await this.read(response.body, controller, current);
      } catch (error) {
        if (!current()) return;
      }
      if (!current()) return;
      attempt += 1;
      this.handlers.status("reconnecting");
      // 0.5 s, 1 s, 2 s ... at most 10 s, with jitter.
      const delay = Math.min(10000, 500 * 2 ** Math.min(attempt - 1, 5));
      await sleep(delay / 2 + Math.random() * (delay / 2));
    }
  }

  async read(body, controller, current) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let idle = setTimeout(() => controller.abort(), this.idleMs);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        // A stopped stream hands nothing more on, even what was already received.
        if (done || !current()) return;
        clearTimeout(idle);
        idle = setTimeout(() => controller.abort(), this.idleMs);
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!current()) return;
          this.block(block);
        }
      }
    } finally {
      clearTimeout(idle);
    }
  }

  block(text) {
    let event = "message";
    const data = [];
    for (const line of text.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let body;
    try {
      body = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (event === "snapshot" && Number.isInteger(body.last_id)) {
      this.lastId = body.last_id;
      this.lastRun = body.run || null;
    } else if (Number.isInteger(body.id)) {
      this.lastId = body.id;
      if (body.run) this.lastRun = body.run;
    }
    this.handlers.message(event, body);
  }
}
