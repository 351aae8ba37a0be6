// The dashboard's shell: sign-in, the open-alert banner (with sound and actions), navigation
// between pages (hash routes: #/, #/school/ID, #/alert/ID, #/audit, #/account), and the live stream that
// keeps the tiles, the banner and the page in view current without a reload.

import * as session from "./session.js";
import { h, ago, all, tile, renderOverview, renderSchool, renderAlert, renderAudit, renderAccount, OPEN_STATES } from "./views.js";

const $ = (id) => document.getElementById(id);

/// What the page knows; reset at sign-out.
let me = null;
const schools = new Map();
const openAlerts = new Map();
let live = null;
let connection = "connecting";
let beeps = 0;
let audio = null;

const ctx = {
  schools,
  get readOnly() {
    return !me || me.scope.read_only;
  },
  problem,
  actions,
};

// === Sign-in and sign-out ===

function showLogin(message) {
  stopLive();
  // A tile refresh scheduled by the last live event must not go out without a session.
  clearTimeout(schoolTimer);
  pendingSchools.clear();
  pendingAlerts.clear();
  setConnection("connecting");
  me = null;
  schools.clear();
  openAlerts.clear();
  $("banner-list").replaceChildren();
  $("banner").hidden = true;
  $("nav").hidden = true;
  $("top-actions").hidden = true;
  $("view").hidden = true;
  $("problem").hidden = true;
  $("login").hidden = false;
  askForCode(false);
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("email").focus();
}

/// Shows (or hides and empties) the code field of the sign-in form.
function askForCode(ask) {
  $("totp-field").hidden = !ask;
  $("totp-code").required = ask;
  if (!ask) $("totp-code").value = "";
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  const code = $("totp-field").hidden ? "" : $("totp-code").value.trim();
  const error = $("login-error");
  if (!email || !password) {
    error.textContent = "Enter your email address and password.";
    error.hidden = false;
    return;
  }
  const submit = $("login-submit");
  submit.disabled = true;
  try {
    await session.login(email, password, code);
    $("password").value = "";
    askForCode(false);
    error.hidden = true;
    await start();
  } catch (e) {
    if (e.status === 429) {
      const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : " Try again in a minute.";
      error.textContent = "Too many sign-in attempts." + wait;
    } else if (e.code === "totp_required") {
      askForCode(true);
      error.textContent = "Enter the 6-digit code from your authenticator app.";
      $("totp-code").focus();
    } else if (e.code === "wrong_code") {
      $("totp-code").value = "";
      error.textContent = "That code is wrong or was used already; enter the next one the app shows.";
      $("totp-code").focus();
    } else if (e.code === "invalid_code") {
      error.textContent = "The code is the 6 digits your authenticator app shows.";
      $("totp-code").focus();
    } else if (e.status === 401) {
      askForCode(false);
      error.textContent = "Wrong email address or password.";
    } else {
      error.textContent = e.message || "Cannot reach the server; check the connection and try again.";
    }
    error.hidden = false;
  } finally {
    submit.disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  await session.logout();
  location.hash = "#/";
  showLogin();
});

session.whenSignedOut(() => showLogin("Your session ended; sign in again."));

/// After sign-in: who we are, the schools and open alerts, then the live stream.
async function start() {
  me = await session.api("/api/v1/me");
  $("who").textContent = me.email;
  const admin = me.roles.some((r) => r.role !== "viewer");
  $("nav-audit").hidden = !admin;
  await loadAll();
  startLive();
  await route();
  // The app appears once its first page is drawn: a click on the menu before would start a
  // draw that this first one, started later, then replaced.
  $("login").hidden = true;
  $("nav").hidden = false;
  $("top-actions").hidden = false;
  $("view").hidden = false;
}

async function loadAll() {
  const [list, ...byState] = await Promise.all([
    all("/api/v1/schools"),
    ...OPEN_STATES.map((s) => all("/api/v1/alerts?state=" + s, 500)),
  ]);
  schools.clear();
  for (const s of list) schools.set(s.school_id, s);
  openAlerts.clear();
  for (const a of byState.flat()) openAlerts.set(a.alert_id, a);
  renderBanner();
}

// === Pages ===

/// Where the hash points: `#/school/ID?state=…` → `{ page: "school", id: "ID", params }`.
function here() {
  const [path, query] = location.hash.slice(1).split("?");
  const [, page, id] = path.split("/").map(decodeURIComponent);
  return { page, id, params: new URLSearchParams(query || "") };
}

/// How many times `route` has started: a draw that finishes after a later one started is
/// thrown away.
let routes = 0;

/// Draws the page the hash names. `live` marks a redraw for news about what is in view: it
/// keeps keyboard focus and anything typed but not yet sent, so an operator writing a note
/// or tabbing to a button is not thrown out by a press elsewhere in the school.
///
/// Draws overlap: the first page after sign-in waits for the schools and alerts while the
/// person may already click elsewhere, and a live redraw waits for its data while the person
/// navigates. Each draw fills a page of its own, which goes into view only if no later draw
/// started meanwhile; otherwise an older draw would replace a newer page (and a form the
/// person was using) with the page of an old address.
async function route({ live = false } = {}) {
  if (!me) return;
  const draw = ++routes;
  const { page, id, params } = here();
  const view = $("view");
  $("problem").hidden = true;
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === "#/" + (page || "");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const next = document.createElement("div");
  try {
    if (page === "school" && id) await renderSchool(next, id, ctx, Object.fromEntries(params));
    else if (page === "alert" && id) await renderAlert(next, id, ctx);
    else if (page === "audit") await renderAudit(next, ctx);
    else if (page === "account") await renderAccount(next, ctx);
    else renderOverview(next, schools);
  } catch (error) {
    if (draw === routes) problem(error);
    return;
  }
  if (draw !== routes) return;
  // What the person was doing is read now, just before the swap, not when the draw began.
  const kept = live ? keep(view) : null;
  view.replaceChildren(next);
  view.dataset.page = page || "overview";
  if (kept) restore(view, kept);
}

/// A selector that finds the same control after a redraw, if it has a stable identity.
function identity(el) {
  if (el.id) return "#" + CSS.escape(el.id);
  const { action, alertId } = el.dataset;
  if (action && alertId) return `[data-action="${CSS.escape(action)}"][data-alert-id="${CSS.escape(alertId)}"]`;
  if (el.name && el.tagName === "SELECT") return `select[name="${CSS.escape(el.name)}"]`;
  const href = el.getAttribute("href");
  if (href) return `a[href="${CSS.escape(href)}"]`;
  return null;
}

/// What a redraw of `root` would lose: the focused control and the text of unsent fields.
function keep(root) {
  const active = document.activeElement;
  const focus = active && active !== document.body && root.contains(active) ? identity(active) : null;
  const drafts = [...root.querySelectorAll("textarea[id], input[id]")]
    .filter((el) => el.value !== "")
    .map((el) => ({ id: el.id, value: el.value, start: el.selectionStart, end: el.selectionEnd }));
  // A button that becomes disabled (an action now requested) cannot hold focus; its alert's
  // details link can.
  const alertId = active && active.dataset ? active.dataset.alertId : null;
  const fallback = alertId ? `a.details[href="#/alert/${CSS.escape(alertId)}"]` : null;
  return { focus, fallback, drafts };
}

function restore(root, kept) {
  for (const draft of kept.drafts) {
    const el = root.querySelector("#" + CSS.escape(draft.id));
    if (!el || el.value !== "") continue;
    el.value = draft.value;
    if (el.setSelectionRange && draft.start !== null) el.setSelectionRange(draft.start, draft.end);
  }
  for (const selector of [kept.focus, kept.fallback]) {
    const el = selector && root.querySelector(selector);
    if (el && !el.disabled) {
      el.focus({ preventScroll: true });
      break;
    }
  }
}

window.addEventListener("hashchange", () => route());

function problem(error) {
  const p = $("problem");
  if (error && error.status === 404) {
    p.textContent = "Not found: it does not exist or is outside your scope.";
  } else {
    p.textContent = (error && error.message) || String(error);
  }
  p.hidden = false;
}

// === The banner ===

const LABELS = { acknowledge: "Acknowledge", resolve: "Resolve" };

/// The action buttons for an alert (none for viewers): acknowledge while it is not yet,
/// resolve while it is open; "requested" until the school confirms.
function actions(alert) {
  if (ctx.readOnly || !OPEN_STATES.includes(alert.state)) return null;
  const wanted = alert.state === "acknowledged" ? ["resolve"] : ["acknowledge", "resolve"];
  return h("div", { class: "actions" },
    wanted.map((action) => {
      const pending = alert.requested === action;
      return h("button", {
        type: "button",
        class: action === "acknowledge" ? "primary" : "quiet",
        dataset: { action, alertId: alert.alert_id },
        disabled: alert.requested ? true : null,
        onclick: () => act(alert.alert_id, action),
      }, pending ? `${LABELS[action]}: requested` : LABELS[action]);
    }));
}

async function act(id, action) {
  const alert = openAlerts.get(id);
  try {
    await session.api(`/api/v1/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    if (alert) alert.requested = action;
    renderBanner();
    refreshPageFor(alert ? alert.school_id : null, id);
  } catch (error) {
    problem(error);
  }
}

function renderBanner() {
  const list = [...openAlerts.values()].sort((a, b) => new Date(b.opened_at) - new Date(a.opened_at));
  const kept = keep($("banner-list"));
  $("banner").hidden = list.length === 0;
  $("banner").classList.toggle("calm", list.every((a) => a.state === "acknowledged"));
  $("banner-list").replaceChildren(...list.map((alert) => {
    const school = schools.get(alert.school_id);
    return h("li", {
      class: "banner-alert " + alert.state,
      dataset: { alertId: alert.alert_id, state: alert.state, requested: alert.requested || "" },
    },
    h("div", { class: "banner-what" },
      h("strong", { class: "kind" }, alert.kind.toUpperCase()),
      " ", h("span", { class: "school" }, school ? school.name : alert.school_id),
      alert.room ? h("span", { class: "room" }, " · Room " + alert.room) : null,
      " · ", ago(alert.opened_at),
      " · ", h("span", { class: "state" }, alert.state),
      alert.requested ? h("span", { class: "requested" }, ` · ${alert.requested} requested, waiting for the school`) : null),
    h("div", { class: "banner-actions" },
      actions(alert),
      h("a", { href: "#/alert/" + alert.alert_id, class: "details" }, "Details")));
  }));
  restore($("banner-list"), kept);
}

// === Sound ===

$("sound").addEventListener("click", () => {
  const button = $("sound");
  if (audio) {
    audio.close();
    audio = null;
  } else {
    // Made in a click handler: browsers allow audio only after a user gesture.
    audio = new AudioContext();
    beep();
  }
  button.setAttribute("aria-pressed", String(audio !== null));
  button.textContent = audio ? "Sound on" : "Enable sound";
});

/// Three short high tones.
function beep() {
  beeps += 1;
  if (!audio) return;
  const start = audio.currentTime + 0.05;
  for (let i = 0; i < 3; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, start + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.4, start + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.3 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + i * 0.3);
    osc.stop(start + i * 0.3 + 0.22);
  }
}

// === Live events ===

function setConnection(state) {
  connection = state;
  const p = $("connection");
  p.dataset.state = state;
  p.textContent = { live: "Live", connecting: "Connecting…", offline: "Offline: retrying" }[state];
}

function startLive() {
  stopLive();
  live = new AbortController();
  session.stream(live.signal, {
    state: setConnection,
    event: onEvent,
    reload: () => loadAll().then(() => route({ live: true })).catch(problem),
  });
}

function stopLive() {
  if (live) live.abort();
  live = null;
}

const pendingSchools = new Set();
const pendingAlerts = new Set();
let schoolTimer = null;

function onEvent(name, event) {
  if (!event || !event.school_id) return;
  const school = event.school_id;
  const data = event.data || {};
  if (name === "alert") {
    const known = openAlerts.get(data.alert_id);
    if (OPEN_STATES.includes(data.state)) {
      const alert = { ...known, ...data, school_id: school, requested: known ? known.requested : null };
      if (known && known.state !== data.state && known.requested) alert.requested = null;
      openAlerts.set(data.alert_id, alert);
      if (!known || (data.state === "escalated" && known.state !== "escalated")) beep();
    } else {
      openAlerts.delete(data.alert_id);
    }
    renderBanner();
  } else if (name === "request") {
    const alert = openAlerts.get(data.alert_id);
    if (alert) {
      alert.requested = data.confirmed_at ? null : data.kind;
      if (data.confirmed_at && data.outcome === "rejected") {
        problem(new Error(`The school did not ${data.kind} the alert: ${data.reason || "rejected"}`));
      }
      renderBanner();
    }
  }
  refreshPageFor(school, data.alert_id);
}

/// Re-reads the tiles of schools with news (at most every 250 ms), and the page in view when
/// it shows that school or alert. News gathers until the timer fires: a press's alert event
/// followed within 250 ms by news of the same school without an alert (a device, a snapshot)
/// still redraws that alert's page.
function refreshPageFor(school, alertId) {
  if (school) pendingSchools.add(school);
  if (alertId) pendingAlerts.add(alertId);
  clearTimeout(schoolTimer);
  schoolTimer = setTimeout(async () => {
    const ids = [...pendingSchools];
    const alertIds = [...pendingAlerts];
    pendingSchools.clear();
    pendingAlerts.clear();
    const { page, id } = here();
    try {
      for (const fresh of await Promise.all(ids.map((s) => session.api("/api/v1/schools/" + encodeURIComponent(s))))) {
        schools.set(fresh.school_id, fresh);
        const old = document.querySelector(`.tile[data-school-id="${CSS.escape(fresh.school_id)}"]`);
        if (old) old.replaceWith(tile(fresh));
      }
      // The person may have gone elsewhere while the tiles were read: redraw only the page
      // this news is about, and only if it is still the one in view.
      const now = here();
      if (now.page !== page || now.id !== id) return;
      if ((page === "school" && ids.includes(id)) || (page === "alert" && alertIds.includes(id))) await route({ live: true });
      else if (!page && ids.some((s) => !document.querySelector(`.tile[data-school-id="${CSS.escape(s)}"]`))) await route({ live: true });
    } catch (error) {
      if (error.status !== 404) problem(error);
    }
  }, 250);
}

// === Start ===

// What tests and the curious can read without scraping the page.
window.hallwatch = {
  connection: () => connection,
  beeps: () => beeps,
  openAlerts: () => [...openAlerts.values()],
};

(async () => {
  if (await session.resume()) {
    try {
      await start();
      return;
    } catch (error) {
      problem(error);
    }
  }
  showLogin();
})();
