// Shared helpers of the dashboard: number formatting as the CLI does it, DOM building, the JSON
// API (relative URLs only: the app may be mounted under a prefix), and change-stamp polling.

/** A number as the CLI prints it: Python's `{:.4g}` (4 significant digits); NaN and null are "". */
export function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value !== "number") return String(value);
  if (Number.isNaN(value)) return "";
  if (Number.isInteger(value) && Math.abs(value) < 1e16 && !Object.is(value, -0)) {
    // ints print whole in the CLI (they come from JSON integers), floats such as 2.0 as "2"
    return String(value);
  }
  return fmtG(value, 4);
}

/** Python's `%.{p}g`: fixed or exponent notation, trailing zeros stripped. */
export function fmtG(value, p = 4) {
  if (!Number.isFinite(value)) return value > 0 ? "inf" : value < 0 ? "-inf" : "nan";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const [mant, expText] = value.toExponential(p - 1).split("e");
  const exp = Number(expText);
  if (exp < -4 || exp >= p) {
    const m = stripZeros(mant);
    return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return stripZeros(value.toFixed(Math.max(0, p - 1 - exp)));
}

function stripZeros(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

/** Seconds as the CLI's runtime column: m:ss or h:mm:ss. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? `${h}:` : "") + `${mm}:${String(r).padStart(2, "0")}`;
}

/** A Unix time (seconds) as local `YYYY-mm-dd HH:MM:SS`. */
export function fmtTime(epochS) {
  if (epochS === null || epochS === undefined) return "";
  const d = new Date(epochS * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "1 run", "2 runs". */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i ? `${fmtG(n, 3)} ${units[i]}` : `${n} B`;
}

/**
 * h("tag.class1.class2#id", {attr: value, onclick: fn}, ...children): a DOM element. Children are
 * nodes or text (never parsed as HTML: names and values come from users' configs).
 */
export function h(spec, attrs, ...children) {
  const [path, id] = spec.split("#");
  const [tag, ...classes] = path.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  if (id) node.id = id;
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  append(node, children);
  return node;
}

/** Replace the children of `node` (null/false skipped, arrays flattened, text as text). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Append children to `node`, as `fill` does. */
export function add(node, ...children) {
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An error from the API: `message` is the server's one line. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** GET api/PATH?params as JSON; params with null/undefined/"" values are left out. */
export async function api(path, params = {}, { signal } = {}) {
  return (await apiWithNote(path, params, { signal })).body;
}

/**
 * GET api/PATH?params: the JSON body, the `note` the command would print on stderr (the
 * `X-Hpctrack-Note` header, percent-encoded; null without one) and the answer's `headers`.
 */
export async function apiWithNote(path, params = {}, { signal } = {}) {
  const response = await fetch(apiUrl(path, params), { signal, headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    if (response.ok) throw new ApiError(`bad JSON from ${path}: ${err.message}`, response.status);
  }
  if (!response.ok) {
    throw new ApiError(pageWords((body && body.error) || `${response.status} ${response.statusText} (${path})`), response.status);
  }
  return { body, note: headerText(response.headers, "X-Hpctrack-Note"), headers: response.headers };
}

/** A percent-encoded header's text, or null without it. */
export function headerText(headers, name) {
  const raw = headers.get(name);
  if (!raw) return null;
  try { return decodeURIComponent(raw); } catch (err) { return raw; }
}

/**
 * The API's messages are the CLI's (`bad --filter ...`, `try hpctrack ls, or pass --root`): say
 * them in the page's terms, where there is a filter box and a list of sweeps, not options.
 */
export function pageWords(message) {
  return String(message)
    .replace(/ \(try `hpctrack ls`[^)]*\)/, " (see the list of all sweeps)")
    .replace(/ \((?:launch one, or )?pass --root[^)]*\)/, "")
    .replace(/\bbad --filter\b/, "bad filter")
    .replace(/\bbad --sort\b/, "bad sort");
}

/** The relative URL of api/PATH with query params (for links such as the CSV download). */
export function apiUrl(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "" && v !== false) q.set(k, v === true ? "1" : String(v));
  }
  const qs = q.toString();
  return `api/${path}${qs ? `?${qs}` : ""}`;
}

/** The sweep/run part of a URL path, escaped. */
export const enc = encodeURIComponent;

/**
 * Poll api/stamp (with `sweep`, and `job` for one run, when given) every `everyMs`; call onChange()
 * when the stamp moves. Returns a stop function. Polling rather than push: change notification is
 * blind on NFS, and a stat-only stamp is cheap.
 */
/** The header's badge: "live" while polls are answered, else what is wrong. */
function liveBadge(ok, why = "") {
  const badge = document.getElementById("live");
  if (!badge) return;
  badge.textContent = ok ? "live" : why;
  badge.classList.toggle("offline", !ok);
  badge.title = ok ? "the page polls for changes" : why;
}

export function pollStamp(sweep, onChange, everyMs = 2500, job = null) {
  let last = null;
  let stopped = false;
  let timer = null;
  async function tick() {
    if (stopped) return;
    try {
      const { stamp } = await api("stamp", { sweep, job });
      liveBadge(true);
      if (last !== null && stamp !== last && !stopped) await onChange();
      last = stamp;
    } catch (err) {
      // a transient failure (server restarting, sweep being written) is retried at the next tick; the
      // header says the page is no longer live meanwhile (a stopped server, a new token)
      const signedOut = err instanceof ApiError && err.status === 401;
      liveBadge(false, signedOut ? "signed out: open the URL hpctrack ui printed" : "not live: the server does not answer");
      if (signedOut) { stopped = true; return; }
    }
    if (!stopped) timer = setTimeout(tick, everyMs);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/**
 * The view's state kept in the hash's query (`#/sweep/<id>?group=...&m=...`), so that a reload or a
 * bookmark shows the same view. `hashState()` reads it; `setHashState(obj)` replaces it without a new
 * history entry or a re-route (empty values are left out; arrays are repeated keys).
 */
let pagePath = null;  // the hash path of the page shown (app.js sets it per route)

/** The page being shown is at this hash path: only it writes its state into the URL. */
export function setPagePath(path) {
  pagePath = path;
}

export function hashState() {
  const at = location.hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : location.hash.slice(at + 1));
}

/**
 * `setHashState` for the page being shown now: the function it returns does nothing once another
 * page is shown (a page still loading, or polling, when the user moved on must not rewrite its URL).
 */
export function viewWriter() {
  const mine = pagePath;
  return (obj) => {
    if (pagePath !== mine || (location.hash.split("?")[0] || "#/") !== mine) return;
    setHashState(obj);
  };
}

export function setHashState(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== null && one !== undefined && one !== "" && one !== false) q.append(k, one === true ? "1" : String(one));
    }
  }
  const path = location.hash.split("?")[0] || "#/";
  const qs = q.toString();
  const hash = qs ? `${path}?${qs}` : path;
  if (hash !== location.hash) history.replaceState(history.state, "", hash);
}

/** Job states in the CLI's colours (`hpctrack status`), as CSS classes `state-<NAME>`. */
export const STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED",
  "OUT_OF_MEMORY", "NODE_FAIL", "LOST", "PRUNED"];

export function stateBadge(state) {
  return h(`span.state.state-${STATES.includes(state) ? state : "other"}`, state || "");
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

/** A line of error text in `box` (or nothing when `message` is empty). */
export function showError(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

/** A distinct colour for series i of n (hue wheel), with alpha. */
export function colour(i, alpha = 1) {
  const hue = (i * 137.508) % 360;  // golden angle: neighbours stay apart however many series
  return `hsla(${hue.toFixed(1)}, 65%, 42%, ${alpha})`;
}

/** Sort comparator for table cells: numbers numerically, then text, null/NaN always last. */
export function compareCells(a, b) {
  const na = a === null || a === undefined || (typeof a === "number" && Number.isNaN(a));
  const nb = b === null || b === undefined || (typeof b === "number" && Number.isNaN(b));
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}
