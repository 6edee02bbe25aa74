// Deja operator dashboard. The admin token lives in sessionStorage (this tab
// only) and leaves the page only as an `Authorization: Bearer` header on
// calls to the admin API. Data is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "deja-admin-token";
const REFRESH_MS = 5000;
const PAGE = 100;
const SVG = "http://www.w3.org/2000/svg";
const PAGES = ["overview", "entries", "probe", "thresholds"];

const $ = (id) => document.getElementById(id);
let timer = null;
let page = "overview";
let entries = [];
let cursor = null;
let shownEntry = null;
let purgeFilter = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

async function api(path, method, body) {
  const t = token();
  if (!t) throw new Unauthorized("no token");
  const headers = { Authorization: "Bearer " + t, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method: method || "GET",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (r.status === 401) throw new Unauthorized("the token was refused");
  if (r.status === 204) return null;
  const json = await r.json().catch(() => null);
  if (!r.ok) {
    const message = json && json.error && json.error.message ? json.error.message : "HTTP " + r.status;
    throw new Error(message);
  }
  return json;
}

// Runs `work`; a refused token goes back to the login form, anything else
// is reported through `report`.
async function guarded(work, report) {
  try {
    return await work();
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The admin token was refused.");
    report(e.message);
  }
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("tabs").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

function showDashboard() {
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("tabs").hidden = false;
  show(page);
  if (timer) clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden && page === "overview") refreshOverview();
  }, REFRESH_MS);
}

function show(name) {
  page = name;
  for (const p of PAGES) {
    $("page-" + p).hidden = p !== name;
    $("tab-" + p).classList.toggle("active", p === name);
  }
  if (name === "overview") refreshOverview();
  if (name === "entries") loadEntries(true);
  if (name === "probe") loadModels();
  if (name === "thresholds") {
    loadModels();
    loadLookups();
  }
}

const int = new Intl.NumberFormat();
const pct = (x) => (100 * x).toFixed(1) + "%";
const usd = (x) => {
  const n = Number(x || 0);
  // Cache hits on cheap models save fractions of a cent: keep two significant digits.
  return "$" + (n > 0 && n < 0.01 ? n.toPrecision(2) : n.toFixed(n >= 100 ? 2 : 4));
};
const when = (ms) => new Date(ms).toLocaleString();

function status(text) {
  $("status").textContent = text;
}

// ---- Overview ----

async function refreshOverview() {
  await guarded(async () => {
    const [s, h, health, lk] = await Promise.all([
      api("/admin/stats"),
      api("/admin/history?window=" + encodeURIComponent($("window").value)),
      api("/admin/health"),
      api("/admin/lookups?limit=1"),
    ]);
    renderStats(s);
    renderHistory(h);
    renderHealth(health);
    renderNamespaces(lk.by_namespace || {});
    status("updated " + new Date().toLocaleTimeString() + " · every " + REFRESH_MS / 1000 + " s");
  }, (m) => status("could not refresh: " + m));
}

function renderStats(s) {
  const exact = s.hits.exact, semantic = s.hits.semantic, misses = s.misses;
  const lookups = exact + semantic + misses;
  const share = (n) => (lookups ? n / lookups : 0);
  $("requests").textContent = int.format(s.requests);
  $("hit-rate").textContent = pct(s.hit_rate);
  $("exact").textContent = int.format(exact) + " (" + pct(share(exact)) + ")";
  $("semantic").textContent = int.format(semantic) + " (" + pct(share(semantic)) + ")";
  $("misses").textContent = int.format(misses) + " (" + pct(share(misses)) + ")";
  $("saved").textContent = usd(s.usd_saved);
  $("spent").textContent = usd(s.usd_spent);
  $("entries-count").textContent = int.format(s.entries);
  $("bar-exact").style.width = pct(share(exact));
  $("bar-semantic").style.width = pct(share(semantic));
  $("bar-miss").style.width = pct(share(misses));
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const W = 600, H = 180, PADL = 48, PADB = 20, PADT = 8;

// Axes and labels shared by both charts; returns x and y scales.
function frame(svg, from, to, maxY, fmt) {
  svg.replaceChildren();
  const x = (t) => PADL + ((t - from) / Math.max(1, to - from)) * (W - PADL - 4);
  const y = (v) => H - PADB - (v / (maxY || 1)) * (H - PADB - PADT);
  svg.appendChild(svgEl("line", { x1: PADL, y1: H - PADB, x2: W - 4, y2: H - PADB, class: "axis" }));
  for (const frac of [0, 0.5, 1]) {
    const v = maxY * frac;
    svg.appendChild(svgEl("line", { x1: PADL, y1: y(v), x2: W - 4, y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: PADL - 4, y: y(v) + 4, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  const t = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  svg.appendChild(svgEl("text", { x: PADL, y: H - 4, class: "tick" }, t(from)));
  svg.appendChild(svgEl("text", { x: W - 4, y: H - 4, class: "tick", "text-anchor": "end" }, t(to)));
  return { x, y };
}

function renderHistory(h) {
  const points = h.points || [];
  const from = h.from_ms, to = Math.max(h.to_ms, h.from_ms + 1);
  const t = h.totals || {};
  const lookups = (t.exact || 0) + (t.semantic || 0) + (t.misses || 0);
  $("window-totals").textContent =
    int.format(t.requests || 0) + " requests, hit rate " +
    pct(lookups ? ((t.exact || 0) + (t.semantic || 0)) / lookups : 0) +
    ", saved " + usd(t.usd_saved) + ", spent " + usd(t.usd_spent);

  // Stacked bars: exact, semantic, miss per interval.
  const lk = $("chart-lookups");
  const maxL = Math.max(1, ...points.map((p) => p.exact + p.semantic + p.misses));
  const { x, y } = frame(lk, from, to, maxL, (v) => int.format(Math.round(v)));
  for (const p of points) {
    const x0 = x(p.from_ms), x1 = Math.max(x0 + 1, x(p.t_ms) - 0.5);
    let base = 0;
    for (const [kind, n] of [["exact", p.exact], ["semantic", p.semantic], ["miss", p.misses]]) {
      if (!n) continue;
      const rect = svgEl("rect", { x: x0, width: x1 - x0, y: y(base + n), height: y(base) - y(base + n), class: kind });
      rect.appendChild(svgEl("title", {}, kind + ": " + n + " at " + new Date(p.t_ms).toLocaleTimeString()));
      lk.appendChild(rect);
      base += n;
    }
  }
  $("chart-rate-note").textContent = "(" + points.length + (points.length === 1 ? " interval)" : " intervals)");

  // Cumulative dollars saved and spent.
  let saved = 0, spent = 0;
  const cum = [{ t: from, saved: 0, spent: 0 }];
  for (const p of points) {
    saved += p.usd_saved;
    spent += p.usd_spent;
    cum.push({ t: p.t_ms, saved, spent });
  }
  const us = $("chart-usd");
  const maxU = Math.max(1e-6, saved, spent);
  const scale = frame(us, from, to, maxU, (v) => usd(v));
  for (const key of ["saved", "spent"]) {
    const d = cum.map((c, i) => (i ? "L" : "M") + scale.x(c.t).toFixed(1) + " " + scale.y(c[key]).toFixed(1)).join(" ");
    us.appendChild(svgEl("path", { d, class: "line " + key }));
  }

  const body = $("by-model");
  body.replaceChildren();
  for (const [model, amount] of Object.entries(h.usd_spent_by_model || {})) {
    const row = document.createElement("tr");
    cell(row, model);
    cell(row, usd(amount), "num");
    body.appendChild(row);
  }
}

function renderHealth(health) {
  const body = $("health");
  body.replaceChildren();
  for (const m of health.models || []) {
    const row = document.createElement("tr");
    cell(row, m.model);
    cell(row, m.provider);
    cell(row, m.cooling ? "cooling down, " + Math.ceil(m.seconds_left) + " s left" : "ok", m.cooling ? "bad" : "good");
    const kinds = Object.entries(m.errors_by_kind || {}).map(([k, n]) => k + " " + n).join(", ");
    cell(row, m.errors ? m.errors + " (" + kinds + ")" : "0", "num");
    const f = m.figures || {};
    const ms = (v) => (v == null ? "–" : Math.round(v));
    cell(row, f.attempts ? (100 * f.error_rate).toFixed(1) + "%" : "–", "num");
    const ttfb = cell(row, ms(f.ttfb_ewma_ms) + "/" + ms(f.ttfb_p90_ms) + (f.ttfb_ewma_ms == null ? "" : " ms"), "num");
    ttfb.classList.add("ttfb");
    cell(row, f.tokens_per_s == null ? "–" : f.tokens_per_s.toFixed(0), "num");
    body.appendChild(row);
  }
  $("ladders").textContent = (health.ladders || []).map((l) => l.name + ": " + l.rungs.join(" → ")).join(" · ");
}

// ---- Entries ----

function entryFilter() {
  const f = {};
  const ns = $("namespace").value.trim();
  const model = $("model").value.trim();
  if (ns) f.namespace = ns;
  if (model) f.model = model;
  return f;
}

async function loadEntries(reset) {
  if (reset) {
    entries = [];
    cursor = null;
  }
  const q = new URLSearchParams({ limit: String(PAGE), ...entryFilter() });
  if (cursor) q.set("cursor", cursor);
  await guarded(async () => {
    const got = await api("/admin/cache?" + q.toString());
    entries = entries.concat(got.entries || []);
    cursor = got.next_cursor || null;
    $("more").hidden = !cursor;
    renderEntries();
  }, (m) => ($("entries-note").textContent = "could not list entries: " + m));
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderEntries() {
  const needle = $("search").value.trim().toLowerCase();
  const shown = entries.filter((e) =>
    !needle ||
    [e.preview, e.requested_model, e.answered_by, e.id, e.namespace]
      .some((f) => typeof f === "string" && f.toLowerCase().includes(needle))
  );
  const body = $("entries");
  body.replaceChildren();
  for (const e of shown) {
    const row = document.createElement("tr");
    row.title = e.id;
    row.dataset.id = e.id;
    row.className = "clickable";
    row.addEventListener("click", () => openEntry(e.id));
    cell(row, when(e.created_ms));
    cell(row, e.requested_model);
    cell(row, e.answered_by);
    cell(row, e.preview, "preview");
    cell(row, int.format(e.hits), "num");
    cell(row, usd(e.usd_saved), "num");
    body.appendChild(row);
  }
  $("entries-note").textContent =
    shown.length + " of " + entries.length + " loaded entries shown" + (cursor ? " (more on the server)" : "");
}

function flash(text) {
  $("entries-flash").hidden = !text;
  $("entries-flash").textContent = text || "";
}

async function openEntry(id) {
  await guarded(async () => {
    const e = await api("/admin/cache/" + encodeURIComponent(id));
    shownEntry = e.id;
    const facts = $("entry-facts");
    facts.replaceChildren();
    const fact = (k, v) => {
      facts.appendChild(Object.assign(document.createElement("dt"), { textContent: k }));
      facts.appendChild(Object.assign(document.createElement("dd"), { textContent: v }));
    };
    fact("id", e.id);
    fact("namespace", e.namespace);
    fact("model asked / answered by", e.requested_model + " / " + e.answered_by);
    fact("created / expires", when(e.created_ms) + " / " + when(e.expires_ms));
    fact("hits / saved", int.format(e.hits) + " / " + usd(e.usd_saved));
    fact("cost", usd(e.cost_usd));
    $("entry-request").textContent = JSON.stringify(e.request, null, 2);
    const choice = e.response && e.response.choices && e.response.choices[0];
    const answer = choice && choice.message && typeof choice.message.content === "string"
      ? choice.message.content + "\n\n" : "";
    $("entry-answer").textContent = answer + JSON.stringify(e.response, null, 2);
    $("entry-delete").hidden = false;
    $("entry-delete-confirm").hidden = true;
    $("entry-detail").hidden = false;
    $("entry-detail").scrollIntoView();
  }, (m) => flash("could not open the entry: " + m));
}

async function deleteShown() {
  const id = shownEntry;
  if (!id) return;
  await guarded(async () => {
    await api("/admin/cache/" + encodeURIComponent(id), "DELETE");
    $("entry-detail").hidden = true;
    shownEntry = null;
    flash("Deleted entry " + id + ".");
    await loadEntries(true);
  }, (m) => flash("could not delete: " + m));
}

async function previewPurge() {
  const filter = entryFilter();
  if (!Object.keys(filter).length) {
    flash("Set a namespace or a model first: an empty filter would purge everything.");
    return;
  }
  await guarded(async () => {
    const r = await api("/admin/cache/purge", "POST", { ...filter, dry_run: true });
    purgeFilter = filter;
    const what = Object.entries(filter).map(([k, v]) => k + " = " + v).join(", ");
    $("purge-message").textContent = r.would_remove + " entries will be removed (" + what + ").";
    $("purge-go").textContent = "Purge " + r.would_remove + " entries";
    $("purge-go").disabled = r.would_remove === 0;
    $("purge-confirm").hidden = false;
    flash("");
  }, (m) => flash("could not count: " + m));
}

async function purge() {
  if (!purgeFilter) return;
  const filter = purgeFilter;
  purgeFilter = null;
  $("purge-confirm").hidden = true;
  await guarded(async () => {
    const r = await api("/admin/cache/purge", "POST", filter);
    flash("Purged " + r.removed + " entries.");
    await loadEntries(true);
  }, (m) => flash("could not purge: " + m));
}

// ---- What would this hit? ----

async function loadModels() {
  await guarded(async () => {
    const health = await api("/admin/health");
    const names = (health.ladders || []).map((l) => l.name).concat((health.models || []).map((m) => m.model));
    const list = $("probe-models");
    list.replaceChildren(...names.map((n) => Object.assign(document.createElement("option"), { value: n })));
    if (!$("probe-model").value && names.length) $("probe-model").value = names[0];
  }, () => {});
}

async function probe() {
  const body = { prompt: $("probe-prompt").value, k: 10 };
  const ns = $("probe-namespace").value.trim();
  const model = $("probe-model").value.trim();
  if (ns) body.namespace = ns;
  if (model) body.model = model;
  await guarded(async () => {
    const r = await api("/admin/cache/search", "POST", body);
    const served = (r.results || []).find((x) => x.would_serve);
    $("probe-summary").textContent =
      "threshold " + r.threshold + " for " + r.model + " in " + r.namespace + ": " +
      (served ? "would be served by " + served.id.slice(0, 12) + "… (similarity " + served.similarity + ")"
        : (r.results || []).some((x) => x.refused_by === "would_be_verified")
          ? "would be verified (grey band from " + r.verify_from + ")" : "would miss");
    const tbody = $("probe-results");
    tbody.replaceChildren();
    for (const x of r.results || []) {
      const row = document.createElement("tr");
      row.className = x.would_serve ? "served" : "";
      cell(row, x.similarity.toFixed(4), "num");
      cell(row, x.would_serve ? "yes" : x.refused_by === "would_be_verified" ? "if verified" : "no");
      cell(row, (x.refused_by || "").replace(/_/g, " "));
      cell(row, x.text, "preview");
      cell(row, x.id.slice(0, 12) + "…").title = x.id;
      tbody.appendChild(row);
    }
  }, (m) => ($("probe-summary").textContent = "could not search: " + m));
}

// ---- Threshold explorer ----

let explored = null;
let exploredModel = "";

function renderNamespaces(byNs) {
  const body = $("by-namespace");
  body.replaceChildren();
  for (const [ns, c] of Object.entries(byNs)) {
    const row = document.createElement("tr");
    cell(row, ns);
    cell(row, int.format(c.exact_hits), "num");
    cell(row, int.format(c.semantic_hits), "num");
    cell(row, int.format(c.semantic_lookups), "num");
    body.appendChild(row);
  }
}

async function loadLookups() {
  const q = new URLSearchParams({ limit: "2000" });
  const model = $("thr-model").value.trim();
  const ns = $("thr-namespace").value.trim();
  if (model) q.set("model", model);
  if (ns) q.set("namespace", ns);
  await guarded(async () => {
    const r = await api("/admin/lookups?" + q.toString());
    if (explored === null || model !== exploredModel) $("thr-slider").value = inForce(r, model).toFixed(2);
    explored = r;
    exploredModel = model;
    $("thr-band").textContent = r.near_band;
    renderExplorer();
  }, (m) => ($("thr-summary").textContent = "could not load lookups: " + m));
}

// The configured threshold for `model` (a ladder override, else the default).
function inForce(r, model) {
  const ladder = r.ladder_thresholds || {};
  return model && ladder[model] !== undefined ? ladder[model] : r.threshold;
}

const isHit = (l) => l.verdict === "served" || l.verdict === "verified";

// Would this lookup have been served at threshold `t`? Guards still refuse,
// and the verifier's verdicts stand.
function servedAt(l, t) {
  if (l.verdict === "verified") return true;
  if (l.similarity === null || l.verdict === "refused_by_guard" || l.verdict === "no_candidate") return false;
  return l.similarity >= t;
}

function renderExplorer() {
  const r = explored;
  if (!r) return;
  const t = Number($("thr-slider").value);
  $("thr-value").textContent = t.toFixed(2);
  const lookups = r.lookups || [];
  const model = $("thr-model").value.trim();
  const now = lookups.filter(isHit).length;
  const at = lookups.filter((l) => servedAt(l, t)).length;
  $("thr-summary").textContent =
    r.count + " recent semantic lookups" + (model ? " for " + model : "") + ", " + now + " served now; threshold " +
    inForce(r, model) + (r.verifier ? ", verifier from " + r.verify_from : ", no verifier");
  const gained = lookups.filter((l) => !isHit(l) && servedAt(l, t));
  const lost = lookups.filter((l) => isHit(l) && !servedAt(l, t));
  $("thr-whatif").textContent =
    "At " + t.toFixed(2) + ": " + at + " of " + lookups.length + " recent lookups would have been served (" +
    (gained.length ? "+" + gained.length + " not served now" : "none gained") +
    (lost.length ? ", " + lost.length + " served now would miss" : "") + ").";

  // The config line for the slider's value.
  const ladder = r.ladder_thresholds || {};
  const line = model && ladder[model] !== undefined
    ? "[cache.semantic.ladder_thresholds]\n" + model + " = " + t.toFixed(2)
    : "[cache.semantic]\nthreshold = " + t.toFixed(2);
  $("thr-config").textContent =
    "# config/deja.toml\n" + line + "\n\n# then reload, no restart:\ndeja cache reload    # or: kill -HUP <deja pid>";

  drawHistogram(r, t, inForce(r, model));

  const body = $("near-misses");
  body.replaceChildren();
  for (const n of r.near_misses || []) {
    const row = document.createElement("tr");
    if (servedAt(n, t)) row.className = "gained";
    cell(row, n.similarity.toFixed(4), "num");
    cell(row, n.threshold.toFixed(2), "num");
    cell(row, n.verdict.replace(/_/g, " "));
    cell(row, n.question, "preview");
    cell(row, n.entry_text === null ? "(entry gone)" : n.entry_text, "preview").title = n.entry || "";
    cell(row, servedAt(n, t) ? "would be served" : "miss");
    body.appendChild(row);
  }
  const list = $("thr-gained");
  list.replaceChildren(...gained.slice(0, 20).map((l) =>
    Object.assign(document.createElement("li"), { textContent: l.similarity.toFixed(4) + " · " + l.question })));
}

function drawHistogram(r, t, current) {
  const svg = $("thr-histogram");
  svg.replaceChildren();
  const buckets = r.histogram || [];
  const maxC = Math.max(1, ...buckets.map((b) => b.count));
  const x = (v) => PADL + v * (W - PADL - 4);
  const y = (v) => H - PADB - (v / maxC) * (H - PADB - PADT);
  svg.appendChild(svgEl("line", { x1: PADL, y1: H - PADB, x2: W - 4, y2: H - PADB, class: "axis" }));
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(maxC * frac);
    svg.appendChild(svgEl("line", { x1: PADL, y1: y(v), x2: W - 4, y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: PADL - 4, y: y(v) + 4, class: "tick", "text-anchor": "end" }, int.format(v)));
  }
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.appendChild(svgEl("text", { x: x(v), y: H - 4, class: "tick", "text-anchor": "middle" }, v.toFixed(2)));
  }
  for (const b of buckets) {
    const x0 = x(b.from) + 1, w = Math.max(1, x(b.to) - x(b.from) - 2);
    const misses = b.count - b.hits;
    for (const [cls, n, base] of [["hit", b.hits, 0], ["nohit", misses, b.hits]]) {
      if (!n) continue;
      const rect = svgEl("rect", { x: x0, width: w, y: y(base + n), height: y(base) - y(base + n), class: cls });
      rect.appendChild(svgEl("title", {}, b.from.toFixed(2) + "–" + b.to.toFixed(2) + ": " + n + (cls === "hit" ? " served" : " not served")));
      svg.appendChild(rect);
    }
  }
  svg.appendChild(svgEl("line", { x1: x(current), y1: PADT, x2: x(current), y2: H - PADB, class: "current" }));
  svg.appendChild(svgEl("line", { x1: x(t), y1: PADT, x2: x(t), y2: H - PADB, class: "marker" }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    try {
      await api("/admin/stats");
      showDashboard();
    } catch (e) {
      showLogin(e instanceof Unauthorized ? "The admin token was refused." : "Deja did not answer: " + e.message);
    }
  });
  $("logout").addEventListener("click", () => showLogin(""));
  for (const p of PAGES) $("tab-" + p).addEventListener("click", () => show(p));
  $("window").addEventListener("change", refreshOverview);
  $("entry-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadEntries(true);
  });
  $("search").addEventListener("input", renderEntries);
  $("more").addEventListener("click", () => loadEntries(false));
  $("entry-close").addEventListener("click", () => ($("entry-detail").hidden = true));
  $("entry-delete").addEventListener("click", () => {
    $("entry-delete").hidden = true;
    $("entry-delete-confirm").hidden = false;
  });
  $("entry-delete-confirm").addEventListener("click", deleteShown);
  $("purge-preview").addEventListener("click", previewPurge);
  $("purge-go").addEventListener("click", purge);
  $("purge-cancel").addEventListener("click", () => {
    purgeFilter = null;
    $("purge-confirm").hidden = true;
  });
  $("thr-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadLookups();
  });
  $("thr-slider").addEventListener("input", renderExplorer);
  $("probe").addEventListener("submit", (ev) => {
    ev.preventDefault();
    probe();
  });
  if (token()) showDashboard();
  else showLogin("");
});
