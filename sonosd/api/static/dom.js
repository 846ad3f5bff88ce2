// Small DOM helpers: elements, icons (SVG built in the DOM: no inline markup, CSP-safe),
// time formatting and a notice area.

const SVG = "http://www.w3.org/2000/svg";

/** An element with properties/attributes and children (strings become text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && !key.startsWith("aria") && key !== "role") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const PATHS = {
  play: "M8 5v14l11-7z",
  pause: "M6 5h4v14H6zM14 5h4v14h-4z",
  next: "M6 6l8.5 6L6 18zM16 6h2v12h-2z",
  previous: "M6 6h2v12H6zM9.5 12L18 6v12z",
  shuffle:
    "M10.6 9.2L5.4 4 4 5.4l5.2 5.2 1.4-1.4zM14.5 4l2 2L4 18.6 5.4 20 18 7.5l2 2V4h-5.5zm.3 9.4l-1.4 1.4 3.1 3.1L14.5 20H20v-5.5l-2 2-3.2-3.1z",
  repeat: "M7 7h10v3l4-4-4-4v3H5v6h2V7zm10 10H7v-3l-4 4 4 4v-3h12v-6h-2v4z",
  crossfade: "M3 17l6-10h2L5 17H3zm8 0l6-10h2l-6 10h-2zM3 7h4v2H3zm14 8h4v2h-4z",
  volume: "M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0014 8v8a4.5 4.5 0 002.5-4z",
  muted: "M3 9v6h4l5 5V4L7 9H3zm13.6 3l2.7-2.7-1.4-1.4-2.7 2.7-2.7-2.7-1.4 1.4 2.7 2.7-2.7 2.7 1.4 1.4 2.7-2.7 2.7 2.7 1.4-1.4z",
  group: "M4 5h7v6H4zM13 5h7v6h-7zM4 13h7v6H4zM13 13h7v6h-7z",
  music: "M12 3v10.6A4 4 0 1014 17V7h4V3h-6z",
};

/** A 24x24 icon, hidden from assistive technology (its button carries the label). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}

/** Replace an icon inside `button`. */
export function setIcon(button, name) {
  if (button.dataset.icon === name) return;
  button.dataset.icon = name;
  button.replaceChildren(icon(name));
}

/** "1:05" / "1:02:03" for seconds (null: "–:––"). */
export function clock(total) {
  if (total === null || total === undefined || !Number.isFinite(total)) return "–:––";
  const s = Math.floor(total);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** "12:40:35" local time of an ISO timestamp (empty for none). */
export function timeOf(iso, withMs = false) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const text = date.toLocaleTimeString([], { hour12: false });
  return withMs ? `${text}.${String(date.getMilliseconds()).padStart(3, "0")}` : text;
}

/** "3 s ago", "5 min ago"... for an ISO timestamp or an age in seconds. */
export function ago(value) {
  let secondsAgo = value;
  if (typeof value === "string") secondsAgo = (Date.now() - Date.parse(value)) / 1000;
  if (secondsAgo === null || secondsAgo === undefined || !Number.isFinite(secondsAgo)) return "";
  secondsAgo = Math.max(0, Math.round(secondsAgo));
  if (secondsAgo < 60) return `${secondsAgo} s ago`;
  if (secondsAgo < 3600) return `${Math.round(secondsAgo / 60)} min ago`;
  if (secondsAgo < 86400) return `${Math.round(secondsAgo / 3600)} h ago`;
  return `${Math.round(secondsAgo / 86400)} d ago`;
}

/** Show a message in the page's alert area (replaces the previous one). */
export function notify(text, kind = "error") {
  const area = document.getElementById("toast");
  area.textContent = text;
  area.dataset.kind = kind;
  area.hidden = !text;
  clearTimeout(notify.timer);
  if (text) notify.timer = setTimeout(() => (area.hidden = true), 8000);
}

/**
 * Make `parent`'s children exactly `nodes`, in order, moving only what is out of place (a
 * node moved in the DOM loses focus and any pointer capture, so nodes in place stay put).
 */
export function syncChildren(parent, nodes) {
  nodes.forEach((node, index) => {
    const current = parent.children[index];
    if (current !== node) parent.insertBefore(node, current || null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}
