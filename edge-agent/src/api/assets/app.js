// Hallwatch front-office dashboard: active alerts first, then the school's numbers and the
// health of its buttons and cameras, kept live from the gateway's /api/v1 (README.md beside
// this file has the contract). Plain ES2020, no framework and no build step.
//
// How it stays correct:
// - Lists load over REST, changes arrive as Server-Sent Events read with fetch() (EventSource
//   cannot send the Authorization header). After every (re)connect the lists load again, and
//   the stream resumes from Last-Event-ID, so nothing is lost while the connection was down.
// - A list response may be older than an event that arrived while it was in flight; such
//   items are kept as the event left them (see `touched`).
// - The DOM is updated in place, keyed by id, so a focused button keeps its focus while the
//   page updates every second.
// - The connection status says "Live" only while the stream is open and its heartbeats come.

(() => {
  'use strict';

  const API = '/api/v1';
  const TOKEN_KEY = 'hallwatch.operatorToken';
  const OPEN_STATES = new Set(['triggered', 'escalated', 'acknowledged']);
  const ALARM_STATES = new Set(['triggered', 'escalated']);
  const SEVERITY_ORDER = { critical: 0, high: 1, medium: 2, low: 3 };
  const ACTIONS = {
    acknowledge: { label: 'acknowledge', allowed: ALARM_STATES },
    resolve: { label: 'resolve', allowed: OPEN_STATES },
    cancel: { label: 'cancel', allowed: OPEN_STATES },
  };
  const KIND_LABELS = {
    panic: 'Panic',
    medical: 'Medical emergency',
    fire: 'Fire',
    lockdown: 'Lockdown',
    intruder: 'Intruder',
  };
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 15000;
  const STALLED_MS = 45000; // three missed 15 s heartbeats
  const BEEP_EVERY_MS = 1200;

  const $ = (id) => document.getElementById(id);
  const ui = {
    schoolName: $('school-name'),
    connection: $('connection'),
    cloudLink: $('cloud-link'),
    silence: $('silence'),
    signOut: $('sign-out'),
    announcer: $('announcer'),
    signin: $('signin'),
    tokenForm: $('token-form'),
    token: $('token'),
    tokenError: $('token-error'),
    dashboard: $('dashboard'),
    soundOff: $('sound-off'),
    enableSound: $('enable-sound'),
    problem: $('problem'),
    alertList: $('alert-list'),
    alertsHeading: $('alerts-heading'),
    alertCount: $('alert-count'),
    noAlerts: $('no-alerts'),
    snapshotAt: $('snapshot-at'),
    deviceList: $('device-list'),
    deviceSummary: $('device-summary'),
    noDevices: $('no-devices'),
  };

  // === State ===

  let token = null;
  let session = 0; // bumped on sign-in and sign-out: work of an older session is dropped
  let stream = null; // AbortController of the open event stream
  let connection = 'signed-out'; // signed-out | connecting | live | reconnecting
  let lastEventId = null;
  const alerts = new Map(); // id -> Alert, open ones only
  const devices = new Map(); // id -> Device
  let snapshot = null;
  let devicesLoaded = false;
  let changes = 0; // counts changes made by stream events
  const touched = new Map(); // 'alert:<id>' | 'device:<id>' -> `changes` when an event set it
  const pending = new Map(); // alert id -> action in flight
  const cardErrors = new Map(); // alert id -> message shown on its card
  const silenced = new Set(); // '<id>:<state>' the operator silenced
  const announced = new Set(); // '<id>:<state>' already announced
  const alertCards = new Map(); // id -> <li>

  let audio = null;
  let beepTimer = null;

  window.hallwatch = {
    alarmPlaying: () => beepTimer !== null,
    alarmActive,
    soundEnabled,
    connection: () => connection,
    alerts: () => sortedAlerts().map((a) => ({ ...a })),
  };

  // === Sign-in ===

  function readToken() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null; // storage disabled: ask every time
    }
  }

  function storeToken(value) {
    try {
      if (value === null) localStorage.removeItem(TOKEN_KEY);
      else localStorage.setItem(TOKEN_KEY, value);
    } catch {
      // storage disabled: the token lives as long as the page
    }
  }

  function signIn(value) {
    token = value;
    storeToken(value);
    session += 1;
    const mine = session;
    ui.signin.hidden = true;
    ui.dashboard.hidden = false;
    ui.signOut.hidden = false;
    ui.tokenError.hidden = true;
    setConnection('connecting');
    refreshAll(mine);
    runStream(mine);
    refreshCloudLink(mine);
    render();
  }

  function signOut(message) {
    session += 1;
    token = null;
    storeToken(null);
    if (stream) stream.abort();
    stream = null;
    lastEventId = null;
    for (const collection of [alerts, devices, touched, pending, cardErrors, silenced, announced]) {
      collection.clear();
    }
    snapshot = null;
    devicesLoaded = false;
    setConnection('signed-out');
    ui.cloudLink.hidden = true;
    ui.dashboard.hidden = true;
    ui.signOut.hidden = true;
    ui.signin.hidden = false;
    ui.tokenError.textContent = message || '';
    ui.tokenError.hidden = !message;
    render();
    ui.token.focus();
  }

  ui.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    unlockAudio(); // submitting is a user gesture: the alarm may sound from now on
    const value = ui.token.value.trim();
    let error = '';
    if (!value) error = 'Enter the operator token.';
    else if (!/^[\x21-\x7e]+$/.test(value)) {
      error = 'A token has only letters, digits and punctuation, no spaces.';
    }
    if (error) {
      ui.tokenError.textContent = error;
      ui.tokenError.hidden = false;
      ui.token.focus();
      return;
    }
    ui.token.value = '';
    signIn(value);
  });

  ui.signOut.addEventListener('click', () => signOut(''));

  // === API ===

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, method = 'GET') {
    const response = await fetch(API + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
    });
    if (response.status === 401) {
      unauthorized();
      throw new ApiError(401, 'not signed in');
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON; the status says enough
    }
    if (!response.ok) {
      const message = body && typeof body.error === 'string' ? body.error : null;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return body;
  }

  function unauthorized() {
    if (token !== null) signOut('The gateway did not accept the operator token. Enter it again.');
  }

  // Loads all three lists. Items an event changed after the request went out are left as the
  // event made them: the response may predate the event.
  async function refreshAll(mine) {
    const mark = changes;
    const [alertList, snap, deviceList] = await Promise.allSettled([
      api('/alerts?state=open'),
      api('/snapshot'),
      api('/devices'),
    ]);
    if (mine !== session) return;
    const problems = [];
    if (alertList.status === 'fulfilled') {
      replaceAll(alerts, 'alert', alertList.value.alerts, mark, putAlert);
    } else problems.push(`alerts (${alertList.reason.message})`);
    if (snap.status === 'fulfilled') putSnapshot(snap.value);
    else problems.push(`school numbers (${snap.reason.message})`);
    if (deviceList.status === 'fulfilled') {
      replaceAll(devices, 'device', deviceList.value.devices, mark, putDevice);
      devicesLoaded = true;
    } else problems.push(`devices (${deviceList.reason.message})`);
    ui.problem.textContent = problems.length
      ? `Could not load ${problems.join(', ')}. Trying again when the connection comes back.`
      : '';
    ui.problem.hidden = problems.length === 0;
    render();
  }

  // The link to the cloud, from GET /api/v1/sync, every 15 s while signed in. During an outage
  // the front office should know the cloud is unreachable and that nothing here depends on it.
  const CLOUD_LINK_EVERY_MS = 15000;
  async function refreshCloudLink(mine) {
    if (mine !== session) return;
    let text;
    let state;
    try {
      const sync = await api('/sync');
      const waiting = sync.lanes.reduce((sum, lane) => sum + lane.backlog, 0);
      state = sync.link;
      text = {
        up: 'Cloud: connected',
        connecting: 'Cloud: connecting…',
        down: `Cloud unreachable: everything keeps working here${
          waiting ? `; ${waiting} updates waiting to upload` : ''
        }`,
        refused: 'Cloud refuses this gateway: call support (everything keeps working here)',
        misconfigured: 'Cloud sync is misconfigured: call support (everything keeps working here)',
        not_enrolled: 'Not connected to a cloud (this gateway works on its own)',
      }[sync.link] || `Cloud: ${sync.link}`;
    } catch (error) {
      if (error.status === 401) return;
      state = 'unknown';
      text = 'Cloud link: unknown';
    }
    if (mine !== session) return;
    ui.cloudLink.textContent = text;
    ui.cloudLink.dataset.link = state;
    ui.cloudLink.hidden = false;
    setTimeout(() => refreshCloudLink(mine), CLOUD_LINK_EVERY_MS);
  }

  function replaceAll(map, kind, items, mark, put) {
    const fresh = (id) => (touched.get(`${kind}:${id}`) || 0) > mark;
    const listed = new Set();
    for (const item of items) {
      listed.add(item.id);
      if (!fresh(item.id)) put(item);
    }
    for (const id of [...map.keys()]) {
      if (!listed.has(id) && !fresh(id)) map.delete(id);
    }
  }

  function putAlert(alert) {
    const known = alerts.get(alert.id);
    if (known && alert.updated_at < known.updated_at) return; // older news
    if (known && known.state !== alert.state) cardErrors.delete(alert.id);
    if (OPEN_STATES.has(alert.state)) alerts.set(alert.id, alert);
    else alerts.delete(alert.id);
  }

  function putDevice(device) {
    devices.set(device.id, device);
  }

  function putSnapshot(snap) {
    if (!snapshot || snap.at >= snapshot.at) snapshot = snap;
  }

  async function act(id, action) {
    unlockAudio();
    const mine = session;
    pending.set(id, action);
    cardErrors.delete(id);
    render();
    try {
      putAlert(await api(`/alerts/${encodeURIComponent(id)}/${action}`, 'POST'));
    } catch (error) {
      if (mine !== session || error.status === 401) return;
      if (error.status === 404) {
        alerts.delete(id);
        announce('That alert no longer exists on the gateway.');
      } else {
        cardErrors.set(id, `Could not ${ACTIONS[action].label}: ${error.message}`);
        announce(cardErrors.get(id));
        if (error.status === 409) refreshAll(mine); // someone else changed it: show what it is now
      }
    } finally {
      if (mine === session) {
        pending.delete(id);
        render();
      }
    }
  }

  // === Event stream ===

  async function runStream(mine) {
    let delay = RECONNECT_FIRST_MS;
    while (mine === session) {
      const controller = new AbortController();
      stream = controller;
      try {
        await readStream(controller, () => {
          delay = RECONNECT_FIRST_MS;
          setConnection('live');
          // Also on the first open: whatever happened between the first load and now was
          // before the stream, and a first connection has no Last-Event-ID to resume from.
          refreshAll(mine);
        });
      } catch (error) {
        if (error.status === 401) return;
      }
      if (mine !== session) return;
      setConnection('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  // Reads the event stream until it ends, fails or stalls; `onOpen` runs once it is open.
  async function readStream(controller, onOpen) {
    const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
    if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
    const response = await fetch(`${API}/events`, {
      headers,
      cache: 'no-store',
      signal: controller.signal,
    });
    if (response.status === 401) {
      unauthorized();
      throw new ApiError(401, 'not signed in');
    }
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, `HTTP ${response.status}`);
    }
    onOpen();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parse = sseParser(onEvent);
    let lastByteAt = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastByteAt > STALLED_MS) controller.abort();
    }, 5000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        lastByteAt = Date.now();
        parse(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearInterval(watchdog);
    }
  }

  // A Server-Sent Events parser (the WHATWG rules): feed it text as it arrives; it calls
  // `dispatch(type, data)` per event and keeps `lastEventId`. Comment lines are heartbeats:
  // they only show the connection is alive.
  function sseParser(dispatch) {
    let buffer = '';
    let type = '';
    let data = [];
    let id = null;
    const line = (text) => {
      if (text === '') {
        if (id !== null) lastEventId = id;
        if (data.length) dispatch(type || 'message', data.join('\n'));
        type = '';
        data = [];
        return;
      }
      if (text[0] === ':') return;
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
    };
    return (chunk) => {
      buffer += chunk;
      const ends = /\r\n|\r(?!$)|\n/g; // a final \r may be the first half of \r\n
      let start = 0;
      let match;
      while ((match = ends.exec(buffer)) !== null) {
        line(buffer.slice(start, match.index));
        start = ends.lastIndex;
      }
      buffer = buffer.slice(start);
    };
  }

  function onEvent(type, data) {
    let item;
    try {
      item = JSON.parse(data);
    } catch {
      console.warn('Hallwatch: ignoring an event that is not JSON', type, data);
      return;
    }
    changes += 1;
    if (type === 'alert') {
      touched.set(`alert:${item.id}`, changes);
      putAlert(item);
    } else if (type === 'device') {
      touched.set(`device:${item.id}`, changes);
      putDevice(item);
    } else if (type === 'snapshot') {
      putSnapshot(item);
    } else {
      return;
    }
    render();
  }

  function setConnection(state) {
    connection = state;
    ui.connection.dataset.connection = state;
    ui.connection.textContent = {
      'signed-out': 'Not signed in',
      connecting: 'Connecting…',
      live: 'Live',
      reconnecting: 'Reconnecting…',
    }[state];
  }

  // === Rendering ===

  function render() {
    renderAlerts();
    renderSnapshot();
    renderDevices();
    announceNewAlerts();
    updateAlarm();
    tick();
  }

  function sortedAlerts() {
    // Alerts nobody answered come first, then by severity, then the newest.
    const waiting = (a) => (ALARM_STATES.has(a.state) ? 0 : 1);
    return [...alerts.values()].sort(
      (a, b) =>
        waiting(a) - waiting(b) ||
        (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9) ||
        b.created_at - a.created_at,
    );
  }

  function renderAlerts() {
    const focused = document.activeElement;
    let previous = null;
    for (const alert of sortedAlerts()) {
      let card = alertCards.get(alert.id);
      if (!card) {
        card = newAlertCard(alert.id);
        alertCards.set(alert.id, card);
      }
      fillAlertCard(card, alert);
      const slot = previous ? previous.nextSibling : ui.alertList.firstChild;
      if (slot !== card) ui.alertList.insertBefore(card, slot);
      previous = card;
    }
    let lostFocus = false;
    for (const [id, card] of alertCards) {
      if (!alerts.has(id)) {
        lostFocus ||= card.contains(focused);
        card.remove();
        alertCards.delete(id);
      }
    }
    // Moving an element drops its focus: give it back. When the focused card went away (the
    // operator just resolved it), the next alert's first button, or the heading, takes it.
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
    if (lostFocus) {
      const next = ui.alertList.querySelector('button:not(:disabled)');
      (next || ui.alertsHeading).focus();
    }
    const count = alerts.size;
    ui.alertCount.textContent = count ? `(${count})` : '';
    ui.noAlerts.hidden = count > 0;
  }

  function newAlertCard(id) {
    const card = document.createElement('li');
    card.className = 'alert';
    card.dataset.alertId = id;
    const titleId = `alert-${id}-title`;
    card.innerHTML = `
      <h3 class="alert-title"><span class="kind"></span> <span class="room"></span></h3>
      <p class="badges"><span class="badge severity"></span> <span class="badge state"></span></p>
      <p class="where"></p>
      <p class="meta">
        <span>raised <time class="age"></time></span>
        <span class="presses"></span>
        <span class="source"></span>
      </p>
      <div class="actions">
        <button type="button" data-action="acknowledge">Acknowledge</button>
        <button type="button" data-action="resolve">Resolve</button>
        <button type="button" data-action="cancel">Cancel alert</button>
      </div>
      <p class="error action-error" role="alert" hidden></p>`;
    card.querySelector('.alert-title').id = titleId;
    for (const button of card.querySelectorAll('button')) {
      button.setAttribute('aria-describedby', titleId);
    }
    return card;
  }

  function fillAlertCard(card, alert) {
    card.dataset.state = alert.state;
    card.dataset.severity = alert.severity;
    card.dataset.kind = alert.kind;
    const set = (selector, text) => {
      const element = card.querySelector(selector);
      if (element.textContent !== text) element.textContent = text;
      return element;
    };
    set('.kind', KIND_LABELS[alert.kind] || capitalise(alert.kind));
    set('.room', alert.room ? `— room ${alert.room}` : '— location unknown');
    set('.severity', `${capitalise(alert.severity)} severity`);
    set('.state', stateLabel(alert.state));
    const where = [
      alert.building ? `Building ${alert.building}` : '',
      alert.floor ? `floor ${alert.floor}` : '',
    ].filter(Boolean);
    set('.where', where.join(', ')).hidden = where.length === 0;
    const age = card.querySelector('.age');
    age.dataset.since = String(alert.created_at);
    age.dateTime = new Date(alert.created_at).toISOString();
    age.title = new Date(alert.created_at).toLocaleString();
    const presses = alert.press_count;
    set('.presses', presses > 1 ? `pressed ${presses} times` : '');
    set('.source', alert.device_id ? `by ${alert.device_id}` : '');
    const busy = pending.has(alert.id);
    card.setAttribute('aria-busy', String(busy));
    for (const button of card.querySelectorAll('button[data-action]')) {
      button.disabled = busy || !ACTIONS[button.dataset.action].allowed.has(alert.state);
    }
    const error = cardErrors.get(alert.id) || '';
    set('.action-error', error).hidden = !error;
  }

  function stateLabel(state) {
    return {
      triggered: 'Triggered: no response yet',
      escalated: 'Escalated: not acknowledged in time',
      acknowledged: 'Acknowledged: someone is responding',
    }[state] || capitalise(state);
  }

  ui.alertList.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    const card = button && button.closest('[data-alert-id]');
    if (card && !button.disabled) act(card.dataset.alertId, button.dataset.action);
  });

  function renderSnapshot() {
    const school = snapshot ? snapshot.school_id : '';
    if (ui.schoolName.textContent !== school) ui.schoolName.textContent = school;
    for (const tile of document.querySelectorAll('[data-tile]')) {
      const field = tile.dataset.tile;
      const value = snapshot ? snapshot[field] : undefined;
      let text = '–';
      let warn = false;
      if (field === 'stale_rooms') {
        const rooms = Array.isArray(value) ? value : [];
        text = snapshot ? (rooms.length ? rooms.join(', ') : 'None') : '–';
        warn = rooms.length > 0;
      } else if (typeof value === 'number') {
        text = String(value);
        warn = value > 0 && (field === 'devices_offline' || field === 'active_alerts');
      }
      const dd = tile.querySelector('dd');
      if (dd.textContent !== text) dd.textContent = text;
      tile.classList.toggle('warn', warn);
    }
  }

  function deviceRank(d) {
    if (d.state === 'revoked') return 4;
    if (d.status === 'offline') return 0;
    if (d.battery_low) return 1;
    if (d.status === 'never_seen') return 2;
    return 3;
  }

  function renderDevices() {
    const list = [...devices.values()].sort(
      (a, b) =>
        deviceRank(a) - deviceRank(b) ||
        String(a.room).localeCompare(String(b.room)) ||
        a.id.localeCompare(b.id),
    );
    const rows = list.map(deviceRow);
    ui.deviceList.replaceChildren(...rows);
    ui.noDevices.hidden = list.length > 0 || !devicesLoaded;
    const troubled = list.filter((d) => deviceRank(d) <= 1).length;
    ui.deviceSummary.textContent = list.length
      ? `(${list.length}${troubled ? `, ${troubled} need attention` : ', all well'})`
      : '';
  }

  function deviceRow(d) {
    const row = document.createElement('li');
    row.className = 'device';
    row.dataset.deviceId = d.id;
    row.dataset.status = d.status;
    row.dataset.state = d.state;
    row.dataset.batteryLow = String(Boolean(d.battery_low));
    const part = (tag, className, text) => {
      const element = document.createElement(tag);
      element.className = className;
      element.textContent = text;
      row.append(element, ' ');
      return element;
    };
    part('strong', 'device-id', d.id);
    const kind = d.kind === 'camera' ? 'Camera' : 'Button';
    part('span', 'device-kind', d.room ? `${kind}, room ${d.room}` : kind);
    const status = {
      online: 'Online',
      offline: 'Offline',
      never_seen: 'Never connected',
    }[d.status] || capitalise(d.status);
    part('span', `badge status status-${d.status}`, d.state === 'revoked' ? 'Revoked' : status);
    if (d.battery_low) part('span', 'badge battery-low', 'Battery low');
    const details = part('span', 'device-detail', '');
    if (d.last_seen_at !== null && d.last_seen_at !== undefined) {
      details.append('last seen ');
      const since = document.createElement('span');
      since.dataset.since = String(d.last_seen_at);
      details.append(since);
    }
    const extra = [];
    if (typeof d.battery_mv === 'number') {
      extra.push(`battery ${(d.battery_mv / 1000).toFixed(2)} V`);
    }
    if (typeof d.rssi_dbm === 'number') extra.push(`signal ${d.rssi_dbm} dBm`);
    if (extra.length) {
      details.append(`${details.childNodes.length ? ' · ' : ''}${extra.join(' · ')}`);
    }
    return row;
  }

  // Once a second: ages ("2 min ago") and the title flash.
  function tick() {
    const now = Date.now();
    for (const element of document.querySelectorAll('[data-since]')) {
      const text = ago(now - Number(element.dataset.since));
      if (element.textContent !== text) element.textContent = text;
    }
    ui.snapshotAt.textContent = snapshot ? `(as of ${ago(now - snapshot.at)})` : '';
    updateTitle();
  }
  setInterval(tick, 1000);

  function ago(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    const min = Math.floor(s / 60);
    if (min < 60) return `${min} min ago`;
    const h = Math.floor(min / 60);
    if (h < 24) return `${h} h ${min % 60} min ago`;
    return `${Math.floor(h / 24)} d ago`;
  }

  function capitalise(text) {
    const s = String(text ?? '').replace(/_/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  // === Announcements and the alarm ===

  const key = (alert) => `${alert.id}:${alert.state}`;

  function describe(alert) {
    const where = [
      alert.room && `room ${alert.room}`,
      alert.building && `building ${alert.building}`,
      alert.floor && `floor ${alert.floor}`,
    ].filter(Boolean);
    const kind = (KIND_LABELS[alert.kind] || alert.kind).toLowerCase();
    return `${alert.severity} ${kind}, ${where.join(', ') || 'location unknown'}`;
  }

  function announceNewAlerts() {
    const fresh = sortedAlerts().filter((a) => ALARM_STATES.has(a.state) && !announced.has(key(a)));
    if (!fresh.length) return;
    for (const alert of fresh) announced.add(key(alert));
    announce(
      fresh
        .map((a) => `${a.state === 'escalated' ? 'Escalated alert' : 'New alert'}: ${describe(a)}.`)
        .join(' '),
    );
  }

  function announce(text) {
    // Clearing first makes a repeated message count as a change.
    ui.announcer.textContent = '';
    setTimeout(() => {
      ui.announcer.textContent = text;
    }, 50);
  }

  function alarmActive() {
    if (token === null) return false;
    for (const alert of alerts.values()) {
      if (ALARM_STATES.has(alert.state) && !silenced.has(key(alert))) return true;
    }
    return false;
  }

  function soundEnabled() {
    return audio !== null && audio.state === 'running';
  }

  // Browsers keep audio off until the person interacts with the page; every interaction
  // tries to turn it on, and the "Enable sound" button exists to invite one.
  function unlockAudio() {
    try {
      if (!audio) {
        const Context = window.AudioContext || window.webkitAudioContext;
        if (!Context) return;
        audio = new Context();
        audio.addEventListener('statechange', updateAlarm);
      }
      if (audio.state === 'suspended') audio.resume().then(updateAlarm, () => {});
    } catch {
      // no audio output on this device; the title and the page still show the alarm
    }
    updateAlarm();
  }

  function beep() {
    if (!soundEnabled()) return;
    const start = audio.currentTime + 0.01;
    for (const [offset, hz] of [[0, 880], [0.3, 660]]) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.type = 'square';
      oscillator.frequency.value = hz;
      const t = start + offset;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
      gain.gain.setValueAtTime(0.25, t + 0.2);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(t);
      oscillator.stop(t + 0.26);
    }
  }

  function updateAlarm() {
    const active = alarmActive();
    const sounding = active && soundEnabled();
    if (sounding && beepTimer === null) {
      beep();
      beepTimer = setInterval(beep, BEEP_EVERY_MS);
    } else if (!sounding && beepTimer !== null) {
      clearInterval(beepTimer);
      beepTimer = null;
    }
    ui.silence.hidden = !active;
    ui.soundOff.hidden = token === null || soundEnabled();
    updateTitle();
  }

  // The title alternates with the alarm's reason every second (tick) while the alarm is on,
  // so a page in a background tab still draws the eye.
  function updateTitle() {
    const school = snapshot ? ` — ${snapshot.school_id}` : '';
    const count = alerts.size ? `(${alerts.size}) ` : '';
    let title = `${count}Hallwatch${school}`;
    if (alarmActive() && Math.floor(Date.now() / 1000) % 2 === 0) {
      const first = sortedAlerts()[0];
      title = `⚠ ALERT: ${first ? describe(first) : 'needs a response'}`;
    }
    if (document.title !== title) document.title = title;
  }

  // Silencing covers the alerts sounding now; a new alert, or one escalating, sounds again.
  ui.silence.addEventListener('click', () => {
    for (const alert of alerts.values()) {
      if (ALARM_STATES.has(alert.state)) silenced.add(key(alert));
    }
    updateAlarm();
  });

  ui.enableSound.addEventListener('click', unlockAudio);
  // Any interaction with the page counts, not only the button.
  document.addEventListener('pointerdown', unlockAudio);
  document.addEventListener('keydown', unlockAudio);

  // === Start ===

  // An AudioContext made before any interaction stays suspended where the browser requires
  // a gesture (the "Enable sound" button shows) and runs at once where it does not (a kiosk).
  unlockAudio();
  token = readToken();
  if (token) signIn(token);
  else signOut('');
})();
