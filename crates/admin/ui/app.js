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
// Settings read as f32: 0.1 arrives as 0.10000000149011612.
const num = (x) => String(Number(Number(x).toPrecision(4)));

function status(text) {
  $("status").textContent = text;
}

// ---- Overview ----

async function refreshOverview() {
  await guarded(async () => {
    const win = encodeURIComponent($("window").value);
    const [s, h, health, by, slo] = await Promise.all([
      api("/admin/stats"),
      api("/admin/history?window=" + win),
      api("/admin/health"),
      api("/admin/history/by-" + $("by-dim").value + "?window=" + win),
      api("/admin/slo"),
    ]);
    renderStats(s);
    renderHistory(h);
    renderHealth(health);
    renderBreakdown(by);
    renderSlo(slo, s.verifier || {});
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
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
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
  drawStacked($("chart-lookups"), from, to, points);
  $("chart-rate-note").textContent = "(" + points.length + (points.length === 1 ? " interval)" : " intervals)");
  drawCumulative($("chart-usd"), from, to, points);
}

// Stacked bars: exact, semantic, miss per interval (`from_ms` to `t_ms`).
function drawStacked(svg, from, to, points) {
  const maxL = Math.max(1, ...points.map((p) => p.exact + p.semantic + p.misses));
  const { x, y } = frame(svg, from, to, maxL, (v) => int.format(Math.round(v)));
  for (const p of points) {
    const x0 = x(p.from_ms), x1 = Math.max(x0 + 1, x(p.t_ms) - 0.5);
    let base = 0;
    for (const [kind, n] of [["exact", p.exact], ["semantic", p.semantic], ["miss", p.misses]]) {
      if (!n) continue;
      const rect = svgEl("rect", { x: x0, width: x1 - x0, y: y(base + n), height: y(base) - y(base + n), class: kind });
      rect.appendChild(svgEl("title", {}, kind + ": " + n + " at " + new Date(p.t_ms).toLocaleTimeString()));
      svg.appendChild(rect);
      base += n;
    }
  }
}

// Dollars saved and spent, cumulative over the window.
function drawCumulative(svg, from, to, points) {
  let saved = 0, spent = 0;
  const cum = [{ t: from, saved: 0, spent: 0 }];
  for (const p of points) {
    saved += p.usd_saved;
    spent += p.usd_spent;
    cum.push({ t: p.t_ms, saved, spent });
  }
  const maxU = Math.max(1e-6, saved, spent);
  const scale = frame(svg, from, to, maxU, (v) => usd(v));
  for (const key of ["saved", "spent"]) {
    const d = cum.map((c, i) => (i ? "L" : "M") + scale.x(c.t).toFixed(1) + " " + scale.y(c[key]).toFixed(1)).join(" ");
    svg.appendChild(svgEl("path", { d, class: "line " + key }));
  }
}

// ---- Per model and per namespace ----

let breakdown = null;
// Each model or namespace keeps its colour while the page is open.
const colours = { model: new Map(), namespace: new Map() };
const PALETTE = 10;

function colourOf(dim, s) {
  if (s.other) return "s-other";
  const seen = colours[dim];
  if (!seen.has(s.key)) seen.set(s.key, seen.size % PALETTE);
  return "s" + seen.get(s.key);
}

const hitRate = (t) => {
  const lookups = t.exact + t.semantic + t.misses;
  return lookups ? (t.exact + t.semantic) / lookups : 0;
};

function renderBreakdown(r) {
  const dim = r.by;
  // An answer for the dimension shown before the selector changed.
  if (dim !== $("by-dim").value) return;
  breakdown = r;
  const series = r.series || [];
  const sel = $("by-key");
  const chosen = sel.value;
  const keys = series.map((s) => s.key);
  if (chosen && !keys.includes(chosen)) keys.push(chosen);
  const option = (value, text) => Object.assign(document.createElement("option"), { value, textContent: text });
  sel.replaceChildren(option("", "all, compared"), ...keys.map((k) => option(k, k)));
  sel.value = chosen;

  const legend = $("by-legend");
  legend.replaceChildren();
  for (const s of series) {
    const t = s.totals;
    const li = document.createElement("li");
    li.dataset.key = s.key;
    li.classList.toggle("selected", s.key === chosen);
    li.title = "show only " + s.key;
    li.appendChild(Object.assign(document.createElement("span"), { className: "swatch " + colourOf(dim, s) }));
    li.appendChild(Object.assign(document.createElement("strong"), { textContent: s.key }));
    li.appendChild(document.createTextNode(
      " " + int.format(t.requests) + " requests · hit " + pct(hitRate(t)) + " · saved " + usd(t.usd_saved) +
      " · spent " + usd(t.usd_spent)));
    li.addEventListener("click", () => {
      $("by-key").value = $("by-key").value === s.key ? "" : s.key;
      renderBreakdown(breakdown);
    });
    legend.appendChild(li);
  }
  const why = dim === "model" ? "a hit counts for the model whose answer was served; " : "";
  $("by-note").textContent = series.length
    ? series.length + (series.length === 1 ? " " + dim : " " + dim + "s") + " active in the window (" + why +
      "the first " + r.tracked + " seen have their own series, later ones share \"(other)\")"
    : "nothing answered in the window yet";

  const from = r.from_ms, to = Math.max(r.to_ms, r.from_ms + 1);
  const pick = series.find((s) => s.key === chosen);
  if (pick) {
    // One model or namespace: its hits and misses, its dollars.
    const points = (r.t_ms || []).map((t, i) => ({
      from_ms: Math.max(from, t - r.bucket_ms), t_ms: t,
      exact: pick.exact[i], semantic: pick.semantic[i], misses: pick.misses[i],
      usd_saved: pick.usd_saved[i], usd_spent: pick.usd_spent[i],
    }));
    $("by-requests-caption").textContent = chosen + ": exact, semantic, miss per interval";
    drawStacked($("chart-by-requests"), from, to, points);
    $("by-usd-caption").textContent = chosen + ": USD saved and spent, cumulative over the window";
    drawCumulative($("chart-by-usd"), from, to, points);
    return;
  }
  $("by-requests-caption").textContent = "Requests per interval, one line per " + dim;
  drawSeries($("chart-by-requests"), r, series, from, to);
  $("by-usd-caption").textContent = "USD saved and spent in the window, per " + dim;
  drawSavedSpent($("chart-by-usd"), series, dim);
}

// One line of requests per interval for each series.
function drawSeries(svg, r, series, from, to) {
  const maxY = Math.max(1, ...series.flatMap((s) => s.requests));
  const { x, y } = frame(svg, from, to, maxY, (v) => int.format(Math.round(v)));
  const ts = r.t_ms || [];
  for (const s of series) {
    const d = ts.map((t, i) => (i ? "L" : "M") + x(t).toFixed(1) + " " + y(s.requests[i] || 0).toFixed(1)).join(" ");
    const path = svgEl("path", { d, class: "series " + colourOf(r.by, s), "data-key": s.key });
    path.appendChild(svgEl("title", {}, s.key + ": " + int.format(s.totals.requests) + " requests"));
    svg.appendChild(path);
  }
}

// Two bars per series: dollars saved and spent in the window.
function drawSavedSpent(svg, series, dim) {
  const ROW = 34;
  const h = Math.max(60, 8 + ROW * series.length);
  svg.setAttribute("viewBox", "0 0 " + W + " " + h);
  svg.replaceChildren();
  const maxU = Math.max(1e-9, ...series.flatMap((s) => [s.totals.usd_saved, s.totals.usd_spent]));
  const x = (v) => 4 + (v / maxU) * (W - 8);
  series.forEach((s, i) => {
    const top = 4 + i * ROW;
    const g = svgEl("g", { "data-key": s.key });
    g.appendChild(svgEl("rect", { x: 4, y: top + 2, width: 8, height: 8, class: "swatch " + colourOf(dim, s) }));
    g.appendChild(svgEl("text", { x: 16, y: top + 10, class: "label" },
      s.key + ": saved " + usd(s.totals.usd_saved) + ", spent " + usd(s.totals.usd_spent)));
    for (const [j, kind] of [[0, "saved"], [1, "spent"]]) {
      const v = s.totals["usd_" + kind];
      const rect = svgEl("rect", { x: 4, y: top + 14 + j * 8, width: Math.max(v > 0 ? 1 : 0, x(v) - 4), height: 6, class: "bar " + kind });
      rect.appendChild(svgEl("title", {}, s.key + " " + kind + " " + usd(v)));
      g.appendChild(rect);
    }
    svg.appendChild(g);
  });
}

// ---- Semantic quality ----

function renderSlo(slo, verifier) {
  const rows = Object.entries(slo.by_namespace || {});
  $("slo-summary").textContent = slo.enabled
    ? "sampling " + pct(slo.sample_rate) + " of semantic hits; target: at most " + pct(slo.max_false_hit_rate) +
      " false hits (threshold raised by " + num(slo.step) + " past " + slo.min_samples + " samples, up to " +
      num(slo.max_threshold) + ")"
    : "off: set sample_rate under [cache.semantic.slo] to check sampled semantic hits";
  $("slo-shadow-calls").textContent = int.format(slo.shadow_calls || 0) +
    (slo.shadow_in_flight ? " (+" + slo.shadow_in_flight + " running)" : "");
  $("slo-shadow-usd").textContent = usd(slo.shadow_usd);
  $("verifications").textContent = int.format(verifier.verifications || 0);
  $("verification-usd").textContent = usd(verifier.verification_usd);
  drawSlo($("chart-slo"), slo, rows);

  const seen = [];
  for (const [ns, v] of rows) for (const d of v.disagreements || []) seen.push({ ns, ...d });
  seen.sort((a, b) => b.at_ms - a.at_ms);
  const body = $("slo-disagreements");
  body.replaceChildren();
  for (const d of seen.slice(0, 20)) {
    const row = document.createElement("tr");
    cell(row, when(d.at_ms));
    cell(row, d.ns);
    cell(row, d.question, "preview");
    cell(row, d.cached_answer, "preview");
    cell(row, d.fresh_answer, "preview");
    cell(row, d.similarity == null ? "–" : d.similarity.toFixed(3), "num");
    cell(row, d.verifier_agreed == null ? "–" : d.verifier_agreed ? "same" : "different");
    body.appendChild(row);
  }
  if (!seen.length) {
    const row = document.createElement("tr");
    cell(row, "none recorded").colSpan = 7;
    body.appendChild(row);
  }
}

// One row per namespace: the interval as a bar, the estimate as a dot. The
// figure spans the page, so it is drawn wider than the others.
function drawSlo(svg, slo, rows) {
  const ROW = 36, TOP = 16, W = 1000;
  const h = TOP + 8 + ROW * Math.max(1, rows.length);
  svg.setAttribute("viewBox", "0 0 " + W + " " + h);
  svg.replaceChildren();
  const target = slo.max_false_hit_rate || 0;
  const maxX = Math.min(1, Math.max(0.05, 2 * target, ...rows.map(([, v]) => v.upper || 0)));
  const x = (v) => 8 + (v / maxX) * (W - 16);
  for (const v of [0, maxX / 2, maxX]) {
    svg.appendChild(svgEl("text", { x: x(v), y: 10, class: "tick", "text-anchor": v ? (v === maxX ? "end" : "middle") : "start" }, pct(v)));
  }
  if (!rows.length) {
    svg.appendChild(svgEl("text", { x: 8, y: TOP + 18, class: "label" },
      slo.enabled ? "no semantic hit sampled yet" : "sampling is off"));
  }
  rows.forEach(([ns, v], i) => {
    const top = TOP + i * ROW;
    const over = v.lower > target;
    const g = svgEl("g", { class: "slo-row" + (over ? " over" : ""), "data-namespace": ns });
    const raise = v.threshold_raise > 0 ? " (+" + v.threshold_raise.toFixed(2) + ")" : "";
    g.appendChild(svgEl("text", { x: 8, y: top + 12, class: "label" },
      ns + " · " + pct(v.estimate) + " false hits (95%: " + pct(v.lower) + "–" + pct(v.upper) + ") · " + v.false_hits +
      " of " + v.samples + " samples since the last change (" + v.false_hits_total + " of " + v.samples_total +
      " in all) · threshold " + v.threshold.toFixed(2) + raise));
    g.appendChild(svgEl("line", { x1: x(0), y1: top + 24, x2: W - 8, y2: top + 24, class: "grid" }));
    g.appendChild(svgEl("line", { x1: x(v.lower), y1: top + 24, x2: Math.max(x(v.upper), x(v.lower) + 1), y2: top + 24, class: "ci" }));
    const dot = svgEl("circle", { cx: x(v.estimate), cy: top + 24, r: 4, class: "estimate" });
    dot.appendChild(svgEl("title", {}, ns + ": estimated false-hit rate " + pct(v.estimate)));
    g.appendChild(dot);
    svg.appendChild(g);
  });
  svg.appendChild(svgEl("line", { x1: x(target), y1: TOP - 2, x2: x(target), y2: h - 4, class: "target" }));
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
  drawHealth($("chart-health"), health.models || []);
}

// One row per model: its TTFB as a bar (p90 as a tick), then its error
// rate and cooldown as text; a cooling model is drawn in red.
function drawHealth(svg, models) {
  const ROW = 22, W = 1000, LEFT = 120, RIGHT = 300;
  const h = 8 + ROW * Math.max(1, models.length);
  svg.setAttribute("viewBox", "0 0 " + W + " " + h);
  svg.replaceChildren();
  const ms = (m) => (m.figures || {});
  const maxMs = Math.max(1, ...models.flatMap((m) => [ms(m).ttfb_ewma_ms || 0, ms(m).ttfb_p90_ms || 0]));
  const x = (v) => LEFT + (v / maxMs) * (W - LEFT - RIGHT);
  models.forEach((m, i) => {
    const f = ms(m), top = 4 + i * ROW;
    const g = svgEl("g", { class: "health-row" + (m.cooling ? " cooling" : ""), "data-model": m.model });
    g.appendChild(svgEl("text", { x: 4, y: top + 14, class: "label" }, m.model));
    if (f.ttfb_ewma_ms != null) {
      const bar = svgEl("rect", { x: LEFT, y: top + 4, width: Math.max(1, x(f.ttfb_ewma_ms) - LEFT), height: 12, class: "ttfb" });
      bar.appendChild(svgEl("title", {}, m.model + ": " + Math.round(f.ttfb_ewma_ms) + " ms to first byte (weighted)"));
      g.appendChild(bar);
    }
    if (f.ttfb_p90_ms != null) {
      g.appendChild(svgEl("line", { x1: x(f.ttfb_p90_ms), y1: top + 1, x2: x(f.ttfb_p90_ms), y2: top + 19, class: "p90" }));
    }
    const ttfb = f.ttfb_ewma_ms == null ? "no attempt yet" : Math.round(f.ttfb_ewma_ms) + " / " + Math.round(f.ttfb_p90_ms) + " ms";
    const errs = f.attempts ? (100 * f.error_rate).toFixed(1) + "% failed" : "";
    const state = m.cooling ? "cooling down, " + Math.ceil(m.seconds_left) + " s left" : "ok";
    g.appendChild(svgEl("text", { x: W - RIGHT + 8, y: top + 14, class: "label" }, [ttfb, errs, state].filter(Boolean).join(" · ")));
    svg.appendChild(g);
  });
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

// Why a prompt cannot be compared by the embedding model (/admin/cache/search `cannot_match`).
const CANNOT_MATCH = {
  too_long: "longer than the embedding model reads",
  unknown_tokens: "too many characters the embedding model does not know",
};

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
          ? "would be verified (grey band from " + r.verify_from + ")"
          : r.cannot_match ? "cannot be matched semantically (" + CANNOT_MATCH[r.cannot_match] +
            "): only an identical request is served" : "would miss");
    const tbody = $("probe-results");
    tbody.replaceChildren();
    for (const x of r.results || []) {
      const row = document.createElement("tr");
      row.className = x.would_serve ? "served" : "";
      cell(row, x.similarity.toFixed(4), "num");
      cell(row, x.would_serve ? "yes" : x.refused_by === "would_be_verified" ? "if verified" : "no");
      cell(row, (x.refused_by || "").replace(/_/g, " "));
      // Texts sharing a template are compared on what differs: show that part.
      cell(row, x.compared ? "… " + x.compared.entry + " …" : x.text, "preview").title = x.text;
      cell(row, x.id.slice(0, 12) + "…").title = x.id;
      tbody.appendChild(row);
    }
  }, (m) => ($("probe-summary").textContent = "could not search: " + m));
}

// ---- Threshold explorer ----

let explored = null;
let exploredModel = "";

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
  if (l.similarity === null || l.verdict === "refused_by_guard" || l.verdict === "no_candidate" ||
      l.verdict === "cannot_match") return false;
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
    cell(row, n.verdict.replace(/_/g, " ") + (n.reason ? " (" + n.reason.replace(/_/g, " ") + ")" : ""));
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
  $("by-dim").addEventListener("change", () => {
    $("by-key").value = "";
    refreshOverview();
  });
  $("by-key").addEventListener("change", () => breakdown && renderBreakdown(breakdown));
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
