// The dashboard's session: tokens, API calls and the live event stream.
//
// The access token lives only in this module's memory: a script injected into the page could
// read it while the page is open, but nothing keeps it after the tab closes. The refresh token
// is in sessionStorage, so a reload of the tab does not ask for the password again, while a new
// tab, a closed browser or "Sign out" does: it never reaches localStorage or a cookie (so no
// cross-site request can use it), and it is good for one refresh only (a stolen, spent copy
// revokes the whole session when it is used).

const REFRESH_KEY = "hallwatch.refresh";
/// Refresh this long before the access token expires.
const REFRESH_MARGIN_S = 60;

let access = null;
let refreshTimer = null;
let refreshing = null;
let onSignedOut = () => {};

/// An error the API answered, with its status and `{"error": {"code", "message"}}`.
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/// Called when the session ends on its own (refresh refused): show the login again.
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export function signedIn() {
  return access !== null;
}

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const retry = Number(response.headers.get("retry-after")) || null;
  return new ApiError(response.status, code, message, retry);
}

function keep(pair) {
  access = pair.access_token;
  sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
  clearTimeout(refreshTimer);
  const inSeconds = Math.max(5, Number(pair.expires_in) - REFRESH_MARGIN_S);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), inSeconds * 1000);
}

function forget() {
  access = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(REFRESH_KEY);
}

async function postJson(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/// Exchanges an address and password (and, when the account has two-factor sign-in, the
/// authenticator app's code) for tokens; throws ApiError (401 `invalid_credentials`,
/// `totp_required` or `wrong_code`; 400 `invalid_code`; 429 with retryAfter).
export async function login(email, password, code) {
  const body = { email, password };
  if (code) body.totp_code = code;
  const response = await postJson("/api/v1/auth/login", body);
  if (!response.ok) throw await errorOf(response);
  keep(await response.json());
}

/// Resumes the tab's session from its refresh token; false when there is none or it is spent.
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return false;
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

/// A new token pair for the stored refresh token. Concurrent callers share one request: a
/// refresh token is good once, and a second use would revoke the session.
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = sessionStorage.getItem(REFRESH_KEY);
      if (!token) throw new ApiError(401, "signed_out", "signed out");
      const response = await postJson("/api/v1/auth/refresh", { refresh_token: token });
      if (!response.ok) {
        const error = await errorOf(response);
        // Only a refusal ends the session; a network error or a 5xx may pass.
        if (response.status === 401 || response.status === 400) {
          forget();
          onSignedOut(error);
        }
        throw error;
      }
      keep(await response.json());
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/// Ends the session here and on the server.
export async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    try {
      await postJson("/api/v1/auth/logout", { refresh_token: token });
    } catch {
      // The tokens are gone from this tab either way; the refresh token expires on its own.
    }
  }
}

/// Calls the API with the access token: the parsed JSON (null for 204), or throws ApiError.
/// A 401 gets one refresh and one retry.
export async function api(path, { method = "GET", body } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { authorization: "Bearer " + access };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0) {
      await refresh();
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }
}

/// Reads `/api/v1/realtime/events` for as long as `signal` is not aborted, reconnecting after
/// failures. EventSource cannot send an Authorization header, so this is `fetch` with a stream
/// reader and a small SSE parser. `handlers.event(name, data)` gets each event;
/// `handlers.reload()` is called when the server says we are too far behind (reload the data);
/// `handlers.state("live" | "connecting" | "offline")` follows the connection.
export async function stream(signal, handlers) {
  let lastId = null;
  let backoff = 500;
  while (!signal.aborted) {
    handlers.state("connecting");
    let outcome;
    try {
      outcome = await readOnce(signal, lastId, (name, id, data) => {
        if (id !== null) lastId = id;
        if (name === "ready") {
          backoff = 500;
          handlers.state("live");
          if (lastId === null) lastId = String(data.after);
        } else {
          handlers.event(name, data);
        }
      });
    } catch (error) {
      if (signal.aborted) return;
      outcome = error instanceof ApiError && error.status === 401 ? "token_expired" : "failed";
    }
    if (signal.aborted) return;
    if (outcome === "token_expired") {
      try {
        await refresh();
        continue;
      } catch (error) {
        if (!signedIn()) return;
      }
    } else if (outcome === "reload") {
      lastId = null;
      handlers.reload();
      continue;
    }
    handlers.state("offline");
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 15000);
  }
}

/// One connection: resolves with "token_expired", "reload" or "ended"; throws on failure.
async function readOnce(signal, lastId, deliver) {
  const headers = { authorization: "Bearer " + access, accept: "text/event-stream" };
  if (lastId !== null) headers["last-event-id"] = lastId;
  const response = await fetch("/api/v1/realtime/events", { headers, signal, cache: "no-store" });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "message";
  let id = null;
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "ended";
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) {
          let parsed = null;
          try {
            parsed = JSON.parse(data.join("\n"));
          } catch {
            parsed = null;
          }
          if (name === "token_expired" || name === "reload") {
            reader.cancel().catch(() => {});
            return name;
          }
          deliver(name, id, parsed);
        }
        name = "message";
        id = null;
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
