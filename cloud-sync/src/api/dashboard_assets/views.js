// The dashboard's pages below the banner: the schools overview, a school, an alert, the audit
// log. Each `render*` fills `root` from the API; app.js calls them on navigation and again
// when a live event concerns what they show. Elements are built with `h` (text nodes, never
// innerHTML), so nothing from the API is ever parsed as markup.

import { api } from "./session.js";

export const OPEN_STATES = ["triggered", "escalated", "acknowledged"];
const STATES = ["triggered", "escalated", "acknowledged", "resolved", "cancelled"];
const KINDS = ["panic", "medical", "fire", "lockdown", "intruder"];

/// An element with attributes (`on*` functions become listeners) and children.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

/// "3 min ago" in a <time> whose tooltip is the full date.
export function ago(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const at = new Date(iso);
  const seconds = Math.round((Date.now() - at.getTime()) / 1000);
  let text;
  if (seconds < 45) text = "just now";
  else if (seconds < 3600) text = `${Math.round(seconds / 60)} min ago`;
  else if (seconds < 86400) text = `${Math.round(seconds / 3600)} h ago`;
  else text = timeFormat.format(at);
  return h("time", { datetime: iso, title: timeFormat.format(at) }, text);
}

export function when(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "—";
}

function stat(label, value, tone) {
  return h("div", { class: "stat" + (tone ? " " + tone : "") },
    h("dt", {}, label), h("dd", {}, value));
}

function num(value) {
  return value === null || value === undefined ? "—" : String(value);
}

/// Every page of a list route (bounded: a dashboard shows at most `max` items).
export async function all(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(path + sep + "limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// === Overview ===

/// One school's live tile.
export function tile(school) {
  const latest = school.latest;
  const gatewayDown = school.gateways_offline > 0 || school.gateways_online === 0;
  const classes = ["tile"];
  if (school.open_alerts > 0) classes.push("alarm");
  if (gatewayDown) classes.push("down");
  return h("article", { class: classes.join(" "), dataset: { schoolId: school.school_id } },
    h("h2", {}, h("a", { href: "#/school/" + encodeURIComponent(school.school_id) }, school.name)),
    h("dl", { class: "stats" },
      stat("Present", num(latest && latest.students_present)),
      stat("Absent", num(latest && latest.students_absent)),
      stat("Teachers", num(latest && latest.teachers_present)),
      stat("Open alerts", String(school.open_alerts), school.open_alerts > 0 ? "bad" : ""),
      stat("Gateway", gatewayDown
        ? (school.gateways_online + school.gateways_offline === 0 ? "none" : "offline")
        : "online", gatewayDown ? "bad" : "good"),
      stat("Devices offline", String(school.devices_offline), school.devices_offline > 0 ? "warn" : ""),
    ),
    h("p", { class: "muted small" }, "Last sync ", ago(school.last_sync_at)));
}

export function renderOverview(root, schools) {
  const list = [...schools.values()].sort((a, b) =>
    (b.open_alerts - a.open_alerts) || a.name.localeCompare(b.name));
  root.replaceChildren(
    h("h1", {}, "Schools ", h("span", { class: "count" }, String(list.length))),
    list.length === 0
      ? h("p", { class: "calm" }, "No school is in your scope yet.")
      : h("div", { class: "tiles", id: "tiles" }, list.map(tile)));
}

// === One school ===

/// `filters` come from the page's address (`#/school/ID?state=…&kind=…`), so a live redraw,
/// a reload and the back button all keep them.
export async function renderSchool(root, id, ctx, filters = {}) {
  const enc = encodeURIComponent(id);
  const query = new URLSearchParams({ school_id: id });
  // From the address bar: only values the API knows are passed on.
  if (STATES.includes(filters.state)) query.set("state", filters.state);
  if (KINDS.includes(filters.kind)) query.set("kind", filters.kind);
  const [school, buildings, devices, alerts] = await Promise.all([
    api(`/api/v1/schools/${enc}`),
    api(`/api/v1/schools/${enc}/rooms`),
    all(`/api/v1/schools/${enc}/devices`, 2000),
    api(`/api/v1/alerts?${query}&limit=100`),
  ]);
  const latest = school.latest;
  const refilter = (change) => {
    const next = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...filters, ...change })) {
      if (value && (key === "state" || key === "kind")) next.set(key, value);
    }
    const search = next.toString();
    location.hash = `#/school/${enc}` + (search ? "?" + search : "");
  };
  const filter = (label, name, options) => h("label", { class: "filter" }, label + " ",
    h("select", { name, onchange: (e) => refilter({ [name]: e.target.value }) },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: filters[name] === o }, o))));

  root.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All schools")),
    h("h1", {}, school.name),
    h("section", { class: "panel" },
      h("h2", {}, "Now"),
      h("dl", { class: "stats wide" },
        stat("Students expected", num(latest && latest.students_total)),
        stat("Present", num(latest && latest.students_present)),
        stat("Absent", num(latest && latest.students_absent)),
        stat("Teachers", num(latest && latest.teachers_present)),
        stat("Open alerts", String(school.open_alerts), school.open_alerts > 0 ? "bad" : ""),
        stat("Devices online", num(latest && latest.devices_online)),
        stat("Devices offline", String(school.devices_offline), school.devices_offline > 0 ? "warn" : "")),
      h("p", { class: "muted small" }, "Numbers from ", latest ? ago(latest.taken_at) : "no snapshot yet")),
    h("section", { class: "panel" },
      h("h2", {}, "Gateways"),
      school.gateways.length === 0 ? h("p", { class: "muted" }, "No gateway enrolled.") :
        h("ul", { class: "plain" }, school.gateways.map((g) => h("li", {},
          h("strong", {}, g.gateway_id), " — ",
          g.revoked_at ? "revoked" : g.offline_since ? h("span", { class: "bad" }, "offline since " + when(g.offline_since)) : h("span", { class: "good" }, "online"),
          ", last sync ", ago(g.last_sync_at))))),
    h("section", { class: "panel" },
      h("h2", {}, "Alert history"),
      h("div", { class: "filters" }, filter("State", "state", STATES), filter("Kind", "kind", KINDS)),
      alertTable(alerts.items)),
    h("section", { class: "panel" },
      h("h2", {}, "Devices ", h("span", { class: "count" }, String(devices.length))),
      devices.length === 0 ? h("p", { class: "muted" }, "No device has reported yet.") :
        h("div", { class: "scroll" }, h("table", {},
          h("thead", {}, h("tr", {}, ["Device", "Status", "Battery", "Signal", "Last seen"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, devices.map((d) => h("tr", { dataset: { deviceId: d.device_id } },
            h("td", {}, d.device_id),
            h("td", {}, h("span", { class: "pill " + d.status }, d.status.replace("_", " "))),
            h("td", {}, d.battery_mv === null ? "—" : (d.battery_mv / 1000).toFixed(2) + " V"),
            h("td", {}, d.rssi_dbm === null ? "—" : d.rssi_dbm + " dBm"),
            h("td", {}, ago(d.last_seen)))))))),
    h("section", { class: "panel" },
      h("h2", {}, "Rooms"),
      buildings.length === 0 ? h("p", { class: "muted" }, "No rooms recorded.") :
        h("ul", { class: "tree" }, buildings.map((b) => h("li", {}, h("strong", {}, b.name),
          h("ul", {}, b.floors.map((f) => h("li", {}, f.name || `Floor ${f.floor_number}`,
            h("ul", { class: "rooms" }, f.rooms.map((r) => h("li", {},
              r.room_number + (r.name ? " " + r.name : "") + (r.capacity ? ` (${r.capacity})` : ""))))))))))));
}

function alertTable(alerts) {
  if (alerts.length === 0) return h("p", { class: "muted" }, "No alerts.");
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Opened", "Kind", "Room", "State", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, alerts.map((a) => h("tr", { dataset: { alertId: a.alert_id } },
      h("td", {}, when(a.opened_at)),
      h("td", {}, a.kind),
      h("td", {}, a.room || "—"),
      h("td", {}, h("span", { class: "pill " + a.state }, a.state), a.requested ? h("span", { class: "requested" }, ` ${a.requested} requested`) : null),
      h("td", {}, h("a", { href: "#/alert/" + a.alert_id }, "Details")))))));
}

// === One alert ===

export async function renderAlert(root, id, ctx) {
  const alert = await api(`/api/v1/alerts/${encodeURIComponent(id)}`);
  const school = ctx.schools.get(alert.school_id);
  const noteForm = ctx.readOnly ? null : h("form", {
    class: "note-form",
    onsubmit: async (e) => {
      e.preventDefault();
      const input = e.target.elements.body;
      const text = input.value.trim();
      if (!text) return;
      try {
        await api(`/api/v1/alerts/${encodeURIComponent(id)}/notes`, { method: "POST", body: { body: text } });
        await renderAlert(root, id, ctx);
      } catch (error) {
        ctx.problem(error);
      }
    },
  },
  h("label", { for: "note-body" }, "Add a note"),
  h("textarea", { id: "note-body", name: "body", rows: 3, maxlength: 2000, required: true }),
  h("button", { type: "submit", class: "primary" }, "Add note"));

  root.replaceChildren(
    h("p", {}, h("a", { href: "#/school/" + encodeURIComponent(alert.school_id) }, "← " + (school ? school.name : alert.school_id))),
    h("h1", {}, `${alert.kind.toUpperCase()} alert`, " ", h("span", { class: "pill " + alert.state }, alert.state)),
    h("section", { class: "panel" },
      h("dl", { class: "facts" },
        h("dt", {}, "School"), h("dd", {}, school ? school.name : alert.school_id),
        h("dt", {}, "Room"), h("dd", {}, alert.room || "—"),
        h("dt", {}, "Device"), h("dd", {}, alert.device_id || "—"),
        h("dt", {}, "Severity"), h("dd", {}, alert.severity),
        h("dt", {}, "Presses"), h("dd", {}, String(alert.press_count)),
        h("dt", {}, "Opened"), h("dd", {}, when(alert.opened_at)),
        h("dt", {}, "Last change"), h("dd", {}, when(alert.updated_at))),
      ctx.actions(alert)),
    h("section", { class: "panel" },
      h("h2", {}, "History"),
      h("ol", { class: "history" }, alert.events.map((e) => h("li", {},
        h("strong", {}, e.event), ` (${e.state}) `, when(e.at),
        e.actor_name || e.actor_source ? ` — ${e.actor_name || ""}${e.actor_source ? " via " + e.actor_source : ""}` : "")))),
    alert.requests.length === 0 ? null : h("section", { class: "panel" },
      h("h2", {}, "Requested from the cloud"),
      h("ol", { class: "history" }, alert.requests.map((r) => h("li", {},
        h("strong", {}, r.kind), " by ", h("span", { title: r.requested_by }, r.requested_by_email || r.requested_by), ", ", when(r.created_at), ": ",
        r.confirmed_at ? `${r.outcome} ${when(r.confirmed_at)}${r.reason ? " (" + r.reason + ")" : ""}` : h("span", { class: "requested" }, "waiting for the school"))))),
    h("section", { class: "panel" },
      h("h2", {}, "Notes"),
      alert.notes.length === 0 ? h("p", { class: "muted" }, "No notes.") :
        h("ol", { class: "notes" }, alert.notes.map((n) => h("li", {},
          h("p", {}, n.body), h("p", { class: "muted small" }, h("span", { title: n.author }, n.author_email || n.author), ", ", when(n.created_at))))),
      noteForm));
}

// === Audit ===

export async function renderAudit(root, ctx, action = "") {
  const rows = [];
  let cursor = null;
  const body = h("tbody");
  const more = h("button", { type: "button", class: "quiet", onclick: () => load().catch(ctx.problem) }, "Load more");
  async function load() {
    const query = new URLSearchParams({ limit: "100" });
    if (action) query.set("action", action);
    if (cursor) query.set("cursor", cursor);
    const page = await api("/api/v1/audit?" + query);
    cursor = page.next_cursor;
    rows.push(...page.items);
    body.append(...page.items.map((r) => h("tr", {},
      h("td", {}, when(r.at)), h("td", { title: r.actor }, r.actor_email || r.actor), h("td", {}, r.action),
      h("td", {}, h("span", { class: "pill " + r.outcome }, r.outcome)),
      h("td", {}, r.school_id || "—"),
      h("td", { class: "detail" }, JSON.stringify(r.detail)))));
    more.hidden = !cursor;
  }
  await load();
  root.replaceChildren(
    h("h1", {}, "Audit log"),
    h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      renderAudit(root, ctx, e.target.elements.action.value.trim()).catch(ctx.problem);
    } },
    h("label", { for: "audit-action" }, "Action "),
    h("input", { id: "audit-action", name: "action", value: action, maxlength: 64, placeholder: "e.g. login" }),
    h("button", { type: "submit", class: "quiet" }, "Filter")),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Outcome", "School", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
      body)),
    more);
}

// === Two-factor sign-in ===

/// The signed-in person's second factor: set it up (the secret in groups of four and the
/// `otpauth://` link as text, then a code to confirm), or turn it off (password and code).
export async function renderAccount(root, ctx) {
  const me = await api("/api/v1/me");
  const status = h("p", { id: "totp-status", class: "totp-status", role: "status" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const fail = (e) => {
    error.textContent = e.code === "wrong_code"
      ? "That code is wrong or was used already. Check the phone's clock and enter the next code."
      : e.code === "wrong_password" ? "The password is wrong." : e.message;
    error.hidden = false;
  };
  const codeInput = (id) => h("input", {
    id, name: "code", type: "text", inputmode: "numeric", autocomplete: "one-time-code",
    pattern: "[0-9 ]*", maxlength: 7, required: true, spellcheck: "false",
  });
  const panel = h("section", { class: "panel totp", "aria-labelledby": "totp-heading" },
    h("h1", { id: "totp-heading" }, "Two-factor sign-in"));
  const body = h("div");
  panel.append(body, error);
  root.replaceChildren(panel);

  const again = () => renderAccount(root, ctx).catch(ctx.problem);

  async function begin() {
    error.hidden = true;
    let enrolment;
    try {
      enrolment = await api("/api/v1/me/totp", { method: "POST" });
    } catch (e) {
      fail(e);
      return;
    }
    status.textContent = "Not active yet: confirm with a code to turn it on.";
    const code = codeInput("totp-confirm-code");
    body.replaceChildren(status,
      h("ol", { class: "steps" },
        h("li", {}, "In an authenticator app (Aegis, FreeOTP, Google Authenticator, 1Password…) add an account with this key:",
          h("p", {}, h("code", { id: "totp-secret", class: "secret", dataset: { secret: enrolment.secret } }, enrolment.secret_grouped))),
        h("li", {}, "or open this link on the phone:",
          h("p", {}, h("code", { id: "totp-uri", class: "uri" }, enrolment.otpauth_uri))),
        h("li", {}, "Enter the 6-digit code the app shows.")),
      h("form", { id: "totp-confirm", onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        try {
          await api("/api/v1/me/totp/confirm", { method: "POST", body: { code: e.target.elements.code.value } });
          await again();
        } catch (err) {
          fail(err);
        }
      } },
      h("label", { for: "totp-confirm-code" }, "Code"),
      code,
      h("button", { type: "submit", class: "primary" }, "Turn on")));
    code.focus();
  }

  if (me.totp === "active") {
    status.textContent = "On: signing in asks for a code from your authenticator app.";
    body.replaceChildren(status,
      h("form", { id: "totp-disable", onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        const f = e.target.elements;
        try {
          await api("/api/v1/me/totp/disable", { method: "POST", body: { password: f.password.value, code: f.code.value } });
          await again();
        } catch (err) {
          fail(err);
        }
      } },
      h("p", {}, "To turn it off, enter your password and a current code. Lost the phone? Ask the platform operator to reset it."),
      h("label", { for: "totp-password" }, "Password"),
      h("input", { id: "totp-password", name: "password", type: "password", autocomplete: "current-password", required: true, maxlength: 1024 }),
      h("label", { for: "totp-disable-code" }, "Code"),
      codeInput("totp-disable-code"),
      h("button", { type: "submit", class: "quiet" }, "Turn off")));
  } else {
    status.textContent = me.totp === "pending"
      ? "Off: a setup was started and not confirmed. Start again to see a new key."
      : "Off: signing in needs only your password.";
    body.replaceChildren(status,
      h("p", {}, "With two-factor sign-in, your password alone is not enough: you also enter a code from an app on your phone."),
      h("button", { type: "button", class: "primary", id: "totp-start", onclick: begin }, "Set up two-factor sign-in"));
  }
}
