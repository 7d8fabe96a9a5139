// The dashboard's pages: a small hash router over sections, the JSON API under /api, the
// live overview and the live tail (both server-sent events). Text is always set with
// textContent, never parsed as HTML.
"use strict";

const state = { me: null, page: null, overview: null, tail: null, events: { first: null, last: null } };
const $ = (id) => document.getElementById(id);

// ---- API -------------------------------------------------------------------------------
async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = state.me ? state.me.csrf : "";
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    window.location.assign("/login");
    throw new Error("signed out");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || ("HTTP " + res.status));
  return data;
}

let toastTimer = null;
function toast(message, isError) {
  const t = $("toast");
  t.textContent = message;
  t.classList.toggle("error", !!isError);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

async function run(action, success) {
  try {
    await action();
    if (success) toast(success, false);
  } catch (e) {
    if (e.message !== "signed out") toast(e.message, true);
  }
}

// ---- helpers ---------------------------------------------------------------------------
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
const pos = (p) => (p && p.commit >= 0 ? p.commit + ":" + p.prepare : "–");
const when = (iso) => iso.replace("T", " ").slice(0, 19);
function summary(data) {
  const text = typeof data === "string" ? data : JSON.stringify(data);
  return text.length > 120 ? text.slice(0, 117) + "…" : text;
}
function fillBody(table, rows) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...rows);
}

// ---- router ----------------------------------------------------------------------------
const loaders = {
  overview: () => {},
  events: () => loadBoundarySelects(),
  tail: () => loadBoundarySelects(),
  subscribers: () => loadSubscribers(),
  boundaries: () => Promise.all([loadBoundaries(), loadIndexes()]),
  users: () => loadUsers(),
};

function show() {
  const page = (location.hash || "#overview").slice(1);
  const name = loaders[page] ? page : "overview";
  state.page = name;
  for (const section of document.querySelectorAll(".page")) {
    section.hidden = section.id !== "page-" + name;
  }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  run(loaders[name]);
}

// ---- overview --------------------------------------------------------------------------
function renderOverview(o) {
  $("ov-rate").textContent = o.rates.events_per_sec.toFixed(1);
  $("ov-conflicts").textContent = o.rates.conflicts_per_sec.toFixed(2);
  $("ov-users").textContent = o.users;
  $("ov-backend").textContent = o.backend;
  $("ov-totals").textContent = o.rates.saves + " saves, " + o.rates.events + " events, " + o.rates.conflicts + " conflicts";
  fillBody("ov-boundaries", o.boundaries.map((b) => {
    const tr = document.createElement("tr");
    cell(tr, b.name + (b.name === o.admin_boundary ? " (admin)" : ""));
    cell(tr, b.events.toLocaleString(), "num");
    cell(tr, pos(b.head));
    return tr;
  }));
  fillBody("ov-nodes", o.nodes.map((n) => {
    const tr = document.createElement("tr");
    cell(tr, n.id);
    cell(tr, n.this ? "this node" : "peer");
    cell(tr, n.this ? String(o.node.subscribers) : "–", "num");
    return tr;
  }));
}

function startOverview() {
  const source = new EventSource("/api/overview/stream");
  source.addEventListener("overview", (e) => {
    state.overview = JSON.parse(e.data);
    renderOverview(state.overview);
    $("live-dot").classList.add("on");
  });
  source.addEventListener("failure", (e) => toast(JSON.parse(e.data).error, true));
  source.addEventListener("error", () => $("live-dot").classList.remove("on"));
}

// ---- boundaries for the selects -------------------------------------------------------
async function loadBoundarySelects() {
  const data = await api("GET", "/api/boundaries");
  const names = data.boundaries.map((b) => b.name);
  for (const select of document.querySelectorAll(".boundary-select")) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = n;
      return o;
    }));
    if (names.includes(keep)) select.value = keep;
  }
  return data;
}

// ---- event browser --------------------------------------------------------------------
async function loadEvents(dir, from) {
  const boundary = $("ev-boundary").value;
  if (!boundary) return;
  const q = new URLSearchParams({ dir, limit: "50" });
  if (from) q.set("from", from);
  if ($("ev-criteria").value.trim()) q.set("criteria", $("ev-criteria").value.trim());
  if ($("ev-type").value.trim()) q.set("type", $("ev-type").value.trim());
  const data = await api("GET", "/api/events/" + encodeURIComponent(boundary) + "?" + q);
  if (data.events.length === 0 && from) {
    toast(dir === "older" ? "no older events" : "no newer events", false);
    return;
  }
  const events = data.events;
  state.events.first = events.length ? pos(events[0].position) : null;
  state.events.last = events.length ? pos(events[events.length - 1].position) : null;
  $("ev-range").textContent = events.length ? events.length + " events, " + state.events.first + " … " + state.events.last : "no events";
  fillBody("ev-table", events.map((ev) => {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = pos(ev.position);
    b.addEventListener("click", () => run(() => openEvent(boundary, ev.position)));
    td.appendChild(b);
    tr.appendChild(td);
    cell(tr, ev.event_type);
    cell(tr, when(ev.date_created));
    cell(tr, summary(ev.data), "mono");
    return tr;
  }));
}

async function openEvent(boundary, p) {
  const ev = await api("GET", "/api/events/" + encodeURIComponent(boundary) + "/" + p.commit + "/" + p.prepare);
  $("ev-detail-title").textContent = ev.event_type + " @ " + pos(ev.position);
  const meta = $("ev-detail-meta");
  meta.replaceChildren();
  for (const [k, v] of [["Boundary", boundary], ["Event id", ev.event_id], ["Created", ev.date_created]]) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    meta.append(dt, dd);
  }
  $("ev-detail-data").textContent = JSON.stringify(ev.data, null, 2);
  $("ev-detail-metadata").textContent = JSON.stringify(ev.metadata, null, 2);
  $("ev-detail").hidden = false;
  $("ev-detail-close").focus();
}

// ---- live tail ------------------------------------------------------------------------
// Events arrive in batches (at most ten a second); rows are added once per animation frame,
// at most WINDOW of them, and the table keeps the newest WINDOW rows.
const WINDOW = 200;

function startTail() {
  stopTail();
  const boundary = $("tail-boundary").value;
  if (!boundary) return;
  const q = new URLSearchParams();
  if ($("tail-criteria").value.trim()) q.set("criteria", $("tail-criteria").value.trim());
  if ($("tail-type").value.trim()) q.set("type", $("tail-type").value.trim());
  const tail = { source: null, pending: [], received: 0, skipped: 0, frame: 0, times: [] };
  fillBody("tail-table", []);
  tail.source = new EventSource("/api/tail/" + encodeURIComponent(boundary) + "?" + q);
  tail.source.addEventListener("open", () => { $("tail-state").textContent = "live"; });
  tail.source.addEventListener("events", (e) => {
    const batch = JSON.parse(e.data);
    tail.received += batch.events.length + batch.skipped;
    tail.skipped += batch.skipped;
    const now = performance.now();
    tail.times.push([now, batch.events.length + batch.skipped]);
    for (const ev of batch.events) tail.pending.push(ev);
    if (tail.pending.length > WINDOW) {
      tail.skipped += tail.pending.length - WINDOW;
      tail.pending.splice(0, tail.pending.length - WINDOW);
    }
    if (!tail.frame) tail.frame = requestAnimationFrame(() => flushTail(tail));
  });
  tail.source.addEventListener("failure", (e) => toast(JSON.parse(e.data).error, true));
  tail.source.addEventListener("error", () => { $("tail-state").textContent = "reconnecting"; });
  state.tail = tail;
  $("tail-stop").disabled = false;
  $("tail-state").textContent = "connecting";
}

function flushTail(tail) {
  tail.frame = 0;
  if (state.tail !== tail) return;
  const body = $("tail-table").tBodies[0];
  const fragment = document.createDocumentFragment();
  for (let i = tail.pending.length - 1; i >= 0; i--) {
    const ev = tail.pending[i];
    const tr = document.createElement("tr");
    cell(tr, pos(ev.position));
    cell(tr, ev.event_type);
    cell(tr, ev.date_created.slice(11, 23));
    cell(tr, summary(ev.data), "mono");
    fragment.appendChild(tr);
  }
  tail.pending = [];
  body.insertBefore(fragment, body.firstChild);
  while (body.rows.length > WINDOW) body.deleteRow(-1);
  const now = performance.now();
  tail.times = tail.times.filter(([t]) => now - t < 2000);
  const recent = tail.times.reduce((n, [, c]) => n + c, 0);
  $("tail-received").textContent = tail.received;
  $("tail-skipped").textContent = tail.skipped;
  $("tail-window").textContent = body.rows.length;
  $("tail-rate").textContent = Math.round(recent / 2);
}

function stopTail() {
  if (state.tail) {
    state.tail.source.close();
    if (state.tail.frame) cancelAnimationFrame(state.tail.frame);
    state.tail = null;
  }
  $("tail-stop").disabled = true;
  $("tail-state").textContent = "stopped";
}

// ---- subscribers ----------------------------------------------------------------------
async function loadSubscribers() {
  const data = await api("GET", "/api/subscribers");
  const lag = (s) => String(s.lag);
  fillBody("sub-table", data.subscribers.map((s) => {
    const tr = document.createElement("tr");
    cell(tr, s.boundary);
    cell(tr, s.name);
    cell(tr, s.node);
    cell(tr, pos(s.position));
    cell(tr, lag(s), "num");
    return tr;
  }));
  $("pub-none").hidden = data.nats;
  fillBody("pub-table", data.publishers.map((p) => {
    const tr = document.createElement("tr");
    cell(tr, p.boundary);
    cell(tr, pos(p.checkpoint));
    cell(tr, lag(p), "num");
    return tr;
  }));
  $("rs-none").hidden = data.replica_sets.length > 0;
  fillBody("rs-table", data.replica_sets.flatMap((set) => set.claims.map((c) => {
    const tr = document.createElement("tr");
    cell(tr, set.name + " (" + set.members.length + " live)");
    cell(tr, String(set.generation), "num");
    cell(tr, c.boundary + "/" + c.projection);
    cell(tr, c.partition + "/" + set.partitions, "num");
    cell(tr, c.holder || "(handing over)");
    cell(tr, String(c.epoch), "num");
    cell(tr, c.checkpoint ? pos(c.checkpoint) : "–");
    cell(tr, c.lag === null ? "–" : String(c.lag), "num");
    return tr;
  })));
}

// ---- boundaries and indexes -------------------------------------------------------------
async function loadBoundaries() {
  const data = await loadBoundarySelects();
  fillBody("bd-table", data.boundaries.map((b) => {
    const tr = document.createElement("tr");
    cell(tr, b.name);
    cell(tr, b.description);
    cell(tr, b.status + (b.last_error ? ": " + b.last_error : ""));
    cell(tr, b.backend + "/" + b.namespace);
    return tr;
  }));
}

async function loadIndexes() {
  const data = await api("GET", "/api/indexes");
  fillBody("ix-table", data.indexes.map((ix) => {
    const tr = document.createElement("tr");
    cell(tr, ix.boundary);
    cell(tr, ix.name);
    cell(tr, JSON.stringify(ix.definition), "mono");
    const td = cell(tr, "", "admin-only");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "danger small";
    b.textContent = "Drop";
    b.setAttribute("aria-label", "Drop index " + ix.name);
    b.addEventListener("click", () => {
      if (!confirm("Drop index " + ix.name + " of " + ix.boundary + "?")) return;
      run(async () => {
        await api("DELETE", "/api/indexes/" + encodeURIComponent(ix.boundary) + "/" + encodeURIComponent(ix.name));
        await loadIndexes();
      }, "index dropped");
    });
    td.appendChild(b);
    return tr;
  }));
}

// ---- users ------------------------------------------------------------------------------
async function loadUsers() {
  const data = await api("GET", "/api/users");
  fillBody("users-table", data.users.map((u) => {
    const tr = document.createElement("tr");
    tr.dataset.username = u.username;
    cell(tr, u.username);
    cell(tr, u.name);
    cell(tr, u.roles.join(", "));
    cell(tr, when(u.created_at));
    const td = cell(tr, "", "admin-only");
    if (u.user_id !== state.me.user_id) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "danger small";
      b.textContent = "Delete";
      b.setAttribute("aria-label", "Delete user " + u.username);
      b.addEventListener("click", () => {
        if (!confirm("Delete user " + u.username + "? Their sessions end at once.")) return;
        run(async () => {
          await api("DELETE", "/api/users/" + encodeURIComponent(u.user_id));
          await loadUsers();
        }, "user deleted");
      });
      td.appendChild(b);
    }
    return tr;
  }));
}

// ---- wiring -----------------------------------------------------------------------------
function wire() {
  $("logout").addEventListener("click", () => run(async () => {
    stopTail();
    await api("POST", "/api/logout");
    window.location.assign("/login");
  }));
  $("ev-form").addEventListener("submit", (e) => {
    e.preventDefault();
    $("ev-detail").hidden = true;
    run(() => loadEvents("older", null));
  });
  $("ev-older").addEventListener("click", () => run(() => loadEvents("older", state.events.last)));
  $("ev-newer").addEventListener("click", () => run(() => loadEvents("newer", state.events.first)));
  $("ev-detail-close").addEventListener("click", () => { $("ev-detail").hidden = true; });
  $("tail-form").addEventListener("submit", (e) => { e.preventDefault(); startTail(); });
  $("tail-stop").addEventListener("click", stopTail);
  $("sub-refresh").addEventListener("click", () => run(loadSubscribers));
  $("user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const roles = [$("user-role-admin"), $("user-role-ops")].filter((c) => c.checked).map((c) => c.value);
    run(async () => {
      await api("POST", "/api/users", {
        name: $("user-name").value,
        username: $("user-username").value,
        password: $("user-password").value,
        roles,
      });
      e.target.reset();
      await loadUsers();
    }, "user created");
  });
  $("pw-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run(async () => {
      await api("POST", "/api/password", {
        current_password: $("pw-current").value,
        new_password: $("pw-new").value,
      });
      window.location.assign("/login");
    });
  });
  $("bd-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run(async () => {
      await api("POST", "/api/boundaries", {
        name: $("bd-name").value,
        description: $("bd-description").value,
        namespace: $("bd-namespace").value,
      });
      e.target.reset();
      await loadBoundaries();
    }, "boundary created");
  });
  $("ix-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const fields = $("ix-fields").value.split(",").map((s) => s.trim()).filter(Boolean).map((f) => {
      const [key, type] = f.split(":");
      return { key: key.trim(), value_type: (type || "TEXT").trim().toUpperCase() };
    });
    run(async () => {
      await api("POST", "/api/indexes", {
        boundary: $("ix-boundary").value,
        name: $("ix-name").value,
        fields,
        combinator: $("ix-combinator").value,
      });
      await loadIndexes();
    }, "index created");
  });
  window.addEventListener("hashchange", show);
}

async function start() {
  state.me = await api("GET", "/api/me");
  $("whoami").textContent = state.me.username + " (" + state.me.roles.join(", ") + ")";
  document.body.classList.toggle("readonly", !state.me.admin);
  wire();
  startOverview();
  show();
}

start().catch((e) => {
  if (e.message !== "signed out") toast(e.message, true);
});
