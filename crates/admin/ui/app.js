// Deja operator dashboard. The admin token lives in sessionStorage (this tab
// only) and leaves the page only as an `Authorization: Bearer` header on
// calls to the admin API. Data is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "deja-admin-token";
const REFRESH_MS = 5000;
const PAGE = 100;

const $ = (id) => document.getElementById(id);
let timer = null;
let entries = [];
let cursor = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

async function api(path) {
  const t = token();
  if (!t) throw new Unauthorized("no token");
  const r = await fetch(path, {
    headers: { Authorization: "Bearer " + t, Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  if (r.status === 401) throw new Unauthorized("the token was refused");
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const message = body && body.error && body.error.message ? body.error.message : "HTTP " + r.status;
    throw new Error(message);
  }
  return body;
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  $("dashboard").hidden = true;
  $("logout").hidden = true;
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
  refreshStats();
  loadEntries(true);
  if (timer) clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden) refreshStats();
  }, REFRESH_MS);
}

const int = new Intl.NumberFormat();
const pct = (x) => (100 * x).toFixed(1) + "%";
const usd = (x) => "$" + Number(x || 0).toFixed(x >= 100 ? 2 : 4);

async function refreshStats() {
  try {
    const s = await api("/admin/stats");
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
    $("status").textContent = "updated " + new Date().toLocaleTimeString() + " · every " + REFRESH_MS / 1000 + " s";
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The admin token was refused.");
    $("status").textContent = "could not refresh: " + e.message;
  }
}

async function loadEntries(reset) {
  if (reset) {
    entries = [];
    cursor = null;
  }
  const q = new URLSearchParams({ limit: String(PAGE) });
  const model = $("model").value.trim();
  if (model) q.set("model", model);
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("/admin/cache?" + q.toString());
    entries = entries.concat(page.entries || []);
    cursor = page.next_cursor || null;
    $("more").hidden = !cursor;
    renderEntries();
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The admin token was refused.");
    $("entries-note").textContent = "could not list entries: " + e.message;
  }
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
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
    cell(row, new Date(e.created_ms).toLocaleString());
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
  $("entry-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadEntries(true);
  });
  $("search").addEventListener("input", renderEntries);
  $("more").addEventListener("click", () => loadEntries(false));
  if (token()) showDashboard();
  else showLogin("");
});
