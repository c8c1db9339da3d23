// hatchery's web dashboard: talks to the same HTTP API as every other client. The org
// tree is loaded once and then kept current by the admin event stream (`/events/stream`,
// read with fetch() because EventSource cannot send the admin bearer); nothing polls. The
// chat talks to the selected workspace's agent through the A2A proxy, its answer streamed.
// Everything shown is put into the DOM with textContent / createElement, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'hatchery.adminToken';

  /** Event types that say what a workspace's status now is. */
  const EVENT_STATUS = {
    WORKSPACE_PROVISIONING: 'provisioning',
    WORKSPACE_ONLINE: 'online',
    WORKSPACE_OFFLINE: 'offline',
    WORKSPACE_DEGRADED: 'degraded',
    WORKSPACE_PROVISION_FAILED: 'failed',
    WORKSPACE_PAUSED: 'paused',
    WORKSPACE_HIBERNATED: 'hibernated',
    WORKSPACE_AWAITING_AGENT: 'awaiting_agent',
    WORKSPACE_REMOVED: 'removed',
  };

  /** The order statuses are summarised in, and their plain-language meaning. */
  const STATUS_ORDER = ['online', 'provisioning', 'awaiting_agent', 'degraded', 'failed',
    'offline', 'paused', 'hibernating', 'hibernated'];
  const STATUS_HELP = {
    provisioning: 'being started; waiting for its agent to register',
    online: 'its agent is registered and heartbeating',
    degraded: 'online, but reporting errors or a wedged runtime',
    failed: 'did not come up; see the reason below',
    offline: 'its agent stopped heartbeating',
    paused: 'paused; resume to start it again',
    hibernating: 'going to sleep',
    hibernated: 'asleep; wakes on its next message',
    awaiting_agent: 'external: waiting for an agent to register',
    removed: 'removed',
  };

  /** Runtimes of the built-in catalog: suggestions for the create form only. */
  const RUNTIME_SUGGESTIONS = ['claude-code', 'hermes', 'codex', 'openclaw', 'langgraph',
    'crewai', 'google-adk'];

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    devMode: false,
    /** id → workspace record (merged from the list, single reads and events). */
    workspaces: new Map(),
    /** id → its row element, reused across re-renders so rows update in place. */
    rows: new Map(),
    selected: null,
    tab: 'events',
    lastEventId: null,
    streamAbort: null,
    streamGeneration: 0,
    fetches: new Map(),
    listInFlight: null,
    touchedDuringList: null,
    detailTimer: null,
    /** id → that workspace's conversation as this page knows it (see the chat section). */
    chats: new Map(),
    /** JSON-RPC ids of this page's own calls: their `A2A_RESPONSE` is no news. */
    chatOwnIds: new Set(),
    chatSeq: 0,
  };

  // ---------------------------------------------------------------- small DOM helpers

  const $ = (id) => document.getElementById(id);

  /** createElement with attributes and children; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'testid') node.dataset.testid = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
    return node;
  }

  /** Inline code. */
  const code = (text) => h('code', {}, text);

  /** "a, b and c" of code spans. */
  function codeList(items) {
    const out = [];
    items.forEach((item, i) => {
      if (i > 0) out.push(i === items.length - 1 ? ' and ' : ', ');
      out.push(code(item));
    });
    return out;
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (n) => String(n).padStart(2, '0');
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== 'number' || seconds < 0) return '—';
    if (seconds < 60) return `${seconds}s`;
    const m = Math.floor(seconds / 60);
    if (m < 60) return `${m}m ${seconds % 60}s`;
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return `${hrs}h ${m % 60}m`;
    return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
  }

  const shortHash = (hash) => (hash ? hash.replace(/^sha256:/, '').slice(0, 12) : '—');

  const statusLabel = (s) => (s || 'unknown').replace(/_/g, ' ');

  /** A status badge; given a workspace id, it follows that workspace's status live. */
  function statusPill(status, testid, liveId) {
    return h('span', { class: `pill st-${status || 'unknown'}`, testid, title: STATUS_HELP[status] || '', 'data-live-ws': liveId },
      h('span', { class: 'dot' }), h('span', { class: 'pill-text' }, statusLabel(status)));
  }

  function patchPills(id, status) {
    for (const pill of document.querySelectorAll('[data-live-ws]')) {
      if (pill.dataset.liveWs !== id) continue;
      pill.className = `pill st-${status}`;
      pill.title = STATUS_HELP[status] || '';
      pill.querySelector('.pill-text').textContent = statusLabel(status);
    }
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  function authHeaders() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  /** One API call: parsed JSON (or text), ApiError on a non-2xx answer. */
  async function api(method, path, body, { text = false } = {}) {
    const headers = authHeaders();
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, { error: `the server cannot be reached (${err.message})`, code: 'network' });
    }
    const raw = await response.text();
    let parsed = raw;
    if (!text) {
      try { parsed = raw ? JSON.parse(raw) : null; } catch { parsed = { error: raw }; }
    }
    if (!response.ok) {
      const errBody = typeof parsed === 'object' && parsed ? parsed : { error: String(parsed) };
      if (response.status === 401 && !state.devMode && isAdminAuthFailure(errBody)) {
        signOut('The admin token was refused: ' + (errBody.error || 'unauthorized'));
      }
      throw new ApiError(response.status, errBody);
    }
    return { status: response.status, body: parsed };
  }

  const isAdminAuthFailure = (body) =>
    body.code === 'admin_auth_required' || body.code === 'invalid_admin_token'
    || body.code === 'missing_workspace_token' || body.code === 'invalid_workspace_token'
    || /auth/.test(body.error || '');

  // ---------------------------------------------------------------- sign-in

  async function boot() {
    wireStaticHandlers();
    try {
      const { body } = await api('GET', '/health');
      state.devMode = Boolean(body && body.dev_mode);
    } catch (err) {
      setConn('down', 'server unreachable');
    }
    $('dev-badge').hidden = !state.devMode;
    if (state.devMode || state.token) {
      await start();
    } else {
      showLogin('');
    }
  }

  function showLogin(message) {
    $('layout').hidden = true;
    $('actions').hidden = true;
    $('login').hidden = false;
    const error = $('token-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('token-input').focus();
  }

  function signOut(message) {
    stopStream();
    state.token = '';
    state.chats.clear();
    sessionStorage.removeItem(TOKEN_KEY);
    setConn('idle', 'not connected');
    if (state.devMode) return;
    showLogin(message || '');
  }

  async function onLogin(event) {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) {
      showLogin('Enter the admin token.');
      return;
    }
    state.token = token;
    try {
      await api('GET', '/workspaces');
    } catch (err) {
      state.token = '';
      showLogin(err.status === 401
        ? 'That token was refused by the server (401). Check HATCHERY_ADMIN_TOKEN.'
        : `Could not check the token: ${err.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    await start();
  }

  async function start() {
    $('login').hidden = true;
    $('layout').hidden = false;
    $('actions').hidden = false;
    // The newest event's cursor, read before the list: the stream resumes after it, so
    // nothing that happens between the list and the stream's start is missed, and a
    // reconnect replays what was missed while away.
    try {
      const { body: events } = await api('GET', '/events');
      if (state.lastEventId === null && events.length && events[0].seq !== undefined) state.lastEventId = String(events[0].seq);
    } catch { /* the stream then starts from now */ }
    try {
      await refreshList();
    } catch (err) {
      if (err.status === 401) return;
      setConn('down', `cannot list workspaces: ${err.message}`);
    }
    loadRegistryInfo();
    openStream();
  }

  async function loadRegistryInfo() {
    try {
      const { body } = await api('GET', '/admin/registry');
      const info = $('registry-info');
      clear(info);
      if (body.hash) {
        append(info, ['registry ', h('code', { title: body.hash }, shortHash(body.hash)), ` · ${body.providers} providers · ${body.runtimes} runtimes`]);
      } else {
        append(info, [h('span', { class: 'warn' }, 'no provider registry loaded: creates will be refused')]);
      }
      if (body.last_reload_error) {
        append(info, [' · ', h('span', { class: 'warn', title: body.last_reload_error.error }, 'last reload failed')]);
      }
    } catch { /* informational only */ }
  }

  // ---------------------------------------------------------------- workspaces state

  /** Merge a server record in; `fromSingle` records lack the list-only fields. */
  function upsert(record) {
    const old = state.workspaces.get(record.id);
    const merged = Object.assign({}, old || {}, record);
    state.workspaces.set(record.id, merged);
    noteStatus(merged);
    return { merged, structural: !old || old.parent_id !== merged.parent_id || old.name !== merged.name || (old.status === 'removed') !== (merged.status === 'removed') };
  }

  /** Keep the statuses a row went through (for the eye: the trail is a data attribute). */
  function noteStatus(ws) {
    const trail = ws._trail || [];
    if (trail[trail.length - 1] !== ws.status) trail.push(ws.status);
    ws._trail = trail.slice(-8);
  }

  async function refreshList() {
    if (state.listInFlight) return state.listInFlight;
    state.touchedDuringList = new Set();
    state.listInFlight = (async () => {
      try {
        const { body } = await api('GET', '/workspaces');
        const seen = new Set();
        for (const ws of body) {
          seen.add(ws.id);
          upsert(ws);
        }
        // The list leaves out removed workspaces: whatever is missing now is gone.
        for (const [id, ws] of state.workspaces) {
          if (!seen.has(id) && ws.status !== 'removed' && !state.touchedDuringList.has(id)) {
            ws.status = 'removed';
            noteStatus(ws);
          }
        }
        renderTree();
        // Events that arrived while the list was on its way may be newer than it.
        for (const id of state.touchedDuringList) fetchWorkspace(id);
      } finally {
        state.listInFlight = null;
        state.touchedDuringList = null;
      }
    })();
    return state.listInFlight;
  }

  /**
   * Re-read one workspace. If another event about it comes in while the read is on its
   * way, that answer may predate the event: it is dropped and the read is done again.
   */
  function fetchWorkspace(id) {
    const entry = state.fetches.get(id);
    if (entry) {
      entry.dirty = true;
      return;
    }
    const mine = { dirty: false };
    state.fetches.set(id, mine);
    (async () => {
      try {
        const { body } = await api('GET', `/workspaces/${encodeURIComponent(id)}`);
        if (!mine.dirty) applyWorkspace(body);
      } catch (err) {
        if (err.status === 404) forget(id);
      } finally {
        state.fetches.delete(id);
        if (mine.dirty) fetchWorkspace(id);
      }
    })();
  }

  function applyWorkspace(record) {
    const { structural } = upsert(record);
    if (structural) renderTree(); else patchRow(record.id);
    if (state.selected === record.id) renderDetailHeader();
  }

  function forget(id) {
    state.workspaces.delete(id);
    const row = state.rows.get(id);
    if (row) row.remove();
    state.rows.delete(id);
    renderTree();
  }

  const visible = (ws) => ws.status !== 'removed';

  // ---------------------------------------------------------------- the tree

  /** Roots (no parent, or a parent that is not shown) then each one's subtree, depth-first. */
  function treeOrder() {
    const shown = [...state.workspaces.values()].filter(visible);
    const byId = new Map(shown.map((w) => [w.id, w]));
    const children = new Map();
    const roots = [];
    // Oldest first; rows created together (an org import) have one timestamp, so by name.
    const byCreated = (a, b) => String(a.created_at || '').localeCompare(String(b.created_at || ''))
      || String(a.name || '').localeCompare(String(b.name || ''));
    for (const ws of shown) {
      if (ws.parent_id && byId.has(ws.parent_id)) {
        if (!children.has(ws.parent_id)) children.set(ws.parent_id, []);
        children.get(ws.parent_id).push(ws);
      } else {
        roots.push(ws);
      }
    }
    const out = [];
    const walk = (ws, depth, guard) => {
      if (guard.has(ws.id)) return;
      guard.add(ws.id);
      const kids = (children.get(ws.id) || []).sort(byCreated);
      out.push({ ws, depth, hasChildren: kids.length > 0 });
      for (const kid of kids) walk(kid, depth + 1, guard);
    };
    const guard = new Set();
    for (const root of roots.sort(byCreated)) walk(root, 0, guard);
    return out;
  }

  function renderTree() {
    const tree = $('tree');
    const order = treeOrder();
    const wanted = new Set(order.map((o) => o.ws.id));
    for (const [id, row] of state.rows) {
      if (!wanted.has(id)) {
        row.remove();
        state.rows.delete(id);
      }
    }
    // Re-append in order: existing rows are moved, not rebuilt.
    order.forEach(({ ws, depth, hasChildren }) => {
      let row = state.rows.get(ws.id);
      if (!row) {
        row = buildRow(ws.id);
        state.rows.set(ws.id, row);
      }
      row.dataset.depth = String(Math.min(depth, 8));
      row.classList.toggle('has-children', hasChildren);
      tree.append(row);
      patchRow(ws.id);
    });
    $('tree-empty').hidden = order.length > 0;
    tree.hidden = order.length === 0;
    renderSummary();
    refreshParentOptions();
    refreshSuggestions();
    if (state.selected && !wanted.has(state.selected) && !$('detail').hidden) renderDetailHeader();
  }

  function buildRow(id) {
    const row = h('div', {
      class: 'ws-row', role: 'treeitem', tabindex: '0', testid: 'ws-row', 'data-ws-id': id,
      onclick: () => select(id),
      onkeydown: (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(id); }
        if (e.key === 'ArrowDown' && row.nextElementSibling) row.nextElementSibling.focus();
        if (e.key === 'ArrowUp' && row.previousElementSibling) row.previousElementSibling.focus();
      },
    },
    h('span', { class: 'c-name' },
      h('span', { class: 'name-line' },
        h('span', { class: 'guide', 'aria-hidden': 'true' }),
        h('span', { class: 'dot' }),
        h('span', { class: 'ws-name', testid: 'ws-name' })),
      h('span', { class: 'ws-task', testid: 'ws-task' })),
    h('span', { class: 'c-rt ws-runtime' }),
    h('span', { class: 'c-model ws-model' }),
    h('span', { class: 'c-prov' },
      h('span', { class: 'ws-provider' }), h('span', { class: 'ws-billing' })),
    h('span', { class: 'c-status' }, h('span', { class: 'ws-status', testid: 'ws-status' })));
    return row;
  }

  /** Update one row's cells from its record, in place. */
  function patchRow(id) {
    const row = state.rows.get(id);
    const ws = state.workspaces.get(id);
    if (ws) patchPills(id, ws.status || 'unknown');
    if (!row || !ws) return;
    const status = ws.status || 'unknown';
    for (const cls of [...row.classList]) if (cls.startsWith('st-')) row.classList.remove(cls);
    row.classList.add(`st-${status}`);
    row.classList.toggle('selected', state.selected === id);
    row.setAttribute('aria-selected', state.selected === id ? 'true' : 'false');
    row.dataset.status = status;
    row.dataset.statusTrail = (ws._trail || []).join(' ');
    const set = (sel, text, title) => {
      const el = row.querySelector(sel);
      el.textContent = text;
      if (title !== undefined) el.title = title;
    };
    set('.ws-name', ws.name || id, ws.role || '');
    set('.ws-task', ws.current_task ? ws.current_task : '', ws.current_task || '');
    set('.ws-runtime', ws.runtime || '—', ws.runtime || '');
    set('.ws-model', ws.model || 'no model', ws.model || '');
    set('.ws-provider', providerLabel(ws), ws.provider_source ? `provider source: ${ws.provider_source}` : '');
    const billing = row.querySelector('.ws-billing');
    billing.textContent = ws.llm_billing_mode || '';
    billing.className = `ws-billing ${ws.llm_billing_mode ? `bill bill-${ws.llm_billing_mode}` : ''}`;
    const statusEl = row.querySelector('.ws-status');
    statusEl.textContent = statusLabel(status);
    statusEl.title = status === 'failed' && ws.failure_reason ? ws.failure_reason : (STATUS_HELP[status] || '');
    renderSummary();
  }

  /** The provider cell: the provider, or why there is none. */
  function providerLabel(ws) {
    if (ws.provider) return ws.provider;
    const source = ws.provider_source || '';
    if (source.startsWith('passthrough')) return 'pass-through';
    if (ws.status === 'failed') return 'none (refused)';
    return '—';
  }

  function renderSummary() {
    const counts = {};
    for (const ws of state.workspaces.values()) {
      if (!visible(ws)) continue;
      counts[ws.status] = (counts[ws.status] || 0) + 1;
    }
    const summary = clear($('summary'));
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    append(summary, [h('span', { class: 'count-total' }, `${total} total`)]);
    const known = STATUS_ORDER.filter((s) => counts[s]);
    const others = Object.keys(counts).filter((s) => !STATUS_ORDER.includes(s));
    for (const s of [...known, ...others]) {
      append(summary, [h('span', { class: `chip st-${s}`, testid: `count-${s}` }, h('span', { class: 'dot' }), `${counts[s]} ${statusLabel(s)}`)]);
    }
  }

  // ---------------------------------------------------------------- live events

  function setConn(kind, text) {
    const el = $('conn');
    el.dataset.state = kind;
    $('conn-text').textContent = text;
  }

  function stopStream() {
    state.streamGeneration += 1;
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
  }

  /** Read `/events/stream` for as long as the page is open, reconnecting with backoff. */
  async function openStream() {
    stopStream();
    const generation = state.streamGeneration;
    let backoff = 1000;
    let first = true;
    while (generation === state.streamGeneration) {
      const abort = new AbortController();
      state.streamAbort = abort;
      try {
        const headers = authHeaders();
        const resumed = state.lastEventId !== null;
        if (resumed) headers['Last-Event-ID'] = state.lastEventId;
        setConn('connecting', first ? 'connecting…' : 'reconnecting…');
        const response = await fetch('/events/stream', { headers, signal: abort.signal, cache: 'no-store' });
        if (response.status === 401) {
          signOut('The admin token was refused by the event stream (401).');
          return;
        }
        if (response.status === 410) {
          // Retention deleted events after our cursor: start from now, re-read the list.
          state.lastEventId = null;
          refreshList().catch(() => {});
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setConn('live', 'live');
        backoff = 1000;
        // Whatever happened while we were away without a cursor is picked up by one
        // re-read of the list; with one, the replay brings it, in order (a re-read racing
        // the replay would show a later status before an earlier one).
        if (!first && !resumed) refreshList().catch(() => {});
        first = false;
        await readFrames(response.body, generation);
      } catch (err) {
        if (generation !== state.streamGeneration) return;
        setConn('down', `event stream lost (${err.message || err}); retrying`);
      }
      if (generation !== state.streamGeneration) return;
      setConn('down', `event stream closed; retrying in ${Math.round(backoff / 1000)}s`);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  /** The event stream's frames, dispatched while this stream is the current one. */
  function readFrames(body, generation) {
    return readSse(body, dispatchFrame, () => generation === state.streamGeneration);
  }

  /**
   * Split a Server-Sent Events body into frames (blank-line separated) and hand each to
   * `onFrame`, until the body ends or `going()` says to stop. Shared by the event stream
   * and the chat's streamed answers.
   */
  async function readSse(body, onFrame, going) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !going()) return;
      buffer += decoder.decode(value, { stream: true });
      // Normalise CR LF / CR, keeping a trailing CR that may be half of a CR LF.
      buffer = buffer.replace(/\r\n|\r(?!$)/g, '\n');
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        onFrame(frame);
      }
    }
  }

  /** One SSE frame's fields: its event name, its data lines joined, its id. */
  function parseFrame(frame) {
    let event = 'message';
    const data = [];
    let id = null;
    for (const line of frame.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
    return { event, data: data.length ? data.join('\n') : null, id };
  }

  function dispatchFrame(frame) {
    const { event, data, id } = parseFrame(frame);
    if (id !== null) state.lastEventId = id;
    if (data === null) return;
    let payload;
    try { payload = JSON.parse(data); } catch { return; }
    if (event === 'expired') {
      // Retention overtook our cursor (the stream ends): resume from now, re-read the list.
      state.lastEventId = null;
      refreshList().catch(() => {});
      return;
    }
    if (event === 'lagged') {
      // The server dropped events for us: resume after what it says and re-read the list.
      if (payload && payload.resume_after !== undefined) state.lastEventId = String(payload.resume_after);
      refreshList().catch(() => {});
      return;
    }
    onEvent(payload);
  }

  function onEvent(ev) {
    const id = ev.workspace_id;
    const type = ev.type || ev.event || ev.event_type;
    const data = ev.data || ev.payload || {};
    if (!id) return;
    if (state.touchedDuringList) state.touchedDuringList.add(id);
    const known = state.workspaces.get(id);
    const status = EVENT_STATUS[type];
    if (type === 'AGENT_MESSAGE' || type === 'A2A_RESPONSE') chatEvent(id, type, data, ev);
    if (type === 'WORKSPACE_HEARTBEAT' || type === 'TASK_UPDATED') {
      if (!known) { fetchWorkspace(id); return; }
      if (typeof data.active_tasks === 'number') known.active_tasks = data.active_tasks;
      if (typeof data.uptime_seconds === 'number') known.uptime_seconds = data.uptime_seconds;
      if (typeof data.current_task === 'string') known.current_task = data.current_task;
      patchRow(id);
      if (state.selected === id) renderDetailHeader();
      return;
    }
    if (status) {
      // Show the new status at once; the re-read below fills in the rest.
      const record = known ? { id, status } : {
        id, status, name: data.name || id.slice(0, 8), runtime: data.runtime || '',
        parent_id: data.parent_id || null, created_at: new Date(ev.timestamp || Date.now()).toISOString(),
      };
      // The spec names the reason `error`; this server sends `reason`.
      if (status === 'failed' && (data.error || data.reason)) record.failure_reason = data.error || data.reason;
      applyWorkspace(record);
    }
    if (status !== 'removed' || known) fetchWorkspace(id);
    if (state.selected === id) scheduleDetailRefresh(type);
  }

  // ---------------------------------------------------------------- the detail panel

  function showSide(which) {
    for (const id of ['welcome', 'detail', 'create-form', 'import-form']) $(id).hidden = id !== which;
  }

  function select(id) {
    state.selected = id;
    for (const [rid] of state.rows) patchRow(rid);
    showSide('detail');
    renderDetail();
  }

  /** The whole panel: header and facts now, then the derivation and the active tab. */
  function renderDetail() {
    const detail = clear($('detail'));
    append(detail, [
      h('div', { id: 'detail-header' }),
      h('section', { class: 'block' },
        h('h3', {}, 'How the provider was chosen'),
        h('div', { id: 'derivation', testid: 'derivation' }, h('p', { class: 'muted' }, 'Loading…'))),
      h('section', { class: 'block tabs-block' },
        h('div', { class: 'tabs', role: 'tablist' },
          tabButton('chat', 'Chat'), tabButton('events', 'Events'), tabButton('activity', 'Activity'), tabButton('logs', 'Logs')),
        h('div', { class: 'tab-body', id: 'tab-body', testid: 'tab-body' })),
    ]);
    renderDetailHeader();
    loadDerivation();
    loadTab();
  }

  function tabButton(name, label) {
    return h('button', {
      type: 'button', class: `tab${state.tab === name ? ' active' : ''}`, role: 'tab',
      'aria-selected': state.tab === name ? 'true' : 'false', testid: `tab-${name}`, 'data-tab': name,
      onclick: () => {
        state.tab = name;
        for (const b of document.querySelectorAll('.tab')) {
          const on = b.dataset.tab === name;
          b.classList.toggle('active', on);
          b.setAttribute('aria-selected', on ? 'true' : 'false');
        }
        loadTab();
        if (name === 'chat') {
          // The chat sits below the facts: bring it into view and put the cursor in it.
          $('tab-body').closest('.tabs-block').scrollIntoView({ block: 'start', behavior: 'instant' });
          const input = $('chat-input');
          if (input) input.focus();
        }
      },
    }, label);
  }

  function renderDetailHeader() {
    const host = $('detail-header');
    if (!host || !state.selected) return;
    const ws = state.workspaces.get(state.selected);
    clear(host);
    if (!ws) {
      append(host, [h('p', { class: 'muted' }, 'This workspace is gone.')]);
      return;
    }
    const fact = (label, value, testid, extraClass) =>
      h('div', { class: `fact ${extraClass || ''}` }, h('dt', {}, label), h('dd', { testid }, value));
    const provider = ws.provider
      ? ws.provider
      : h('span', { class: 'muted' }, (ws.provider_source || '').startsWith('passthrough')
        ? 'none: passed through to the runtime' : ws.status === 'failed' ? 'none (refused)' : '—');
    const billing = ws.llm_billing_mode
      ? h('span', { class: `bill bill-${ws.llm_billing_mode}` }, ws.llm_billing_mode === 'byok' ? 'byok (your own key)' : ws.llm_billing_mode)
      : h('span', { class: 'muted' }, '—');
    append(host, [
      h('div', { class: 'detail-title' },
        h('h2', { testid: 'detail-name' }, ws.name || ws.id),
        h('span', { testid: 'detail-status', 'data-status': ws.status }, statusPill(ws.status)),
        h('button', { type: 'button', class: 'btn btn-quiet btn-small', onclick: () => { state.selected = null; for (const [rid] of state.rows) patchRow(rid); showSide('welcome'); } }, 'Close')),
      h('p', { class: 'detail-sub' },
        ws.role ? h('span', {}, ws.role) : null,
        h('code', { class: 'muted', title: 'workspace id' }, ws.id)),
      ws.status === 'failed'
        ? h('div', { class: 'callout callout-error', testid: 'failure-reason' },
          h('strong', {}, 'Why it failed: '), ws.failure_reason || 'no reason was recorded')
        : null,
      h('dl', { class: 'facts' },
        fact('Runtime', ws.runtime || '—', 'fact-runtime'),
        fact('Model', ws.model ? code(ws.model) : h('span', { class: 'muted' }, 'none'), 'fact-model'),
        fact('Provider', provider, 'fact-provider'),
        fact('Billing', billing, 'fact-billing'),
        fact('Provider source', describeSource(ws.provider_source), 'fact-source', 'span2'),
        fact('Current task', ws.current_task ? ws.current_task : h('span', { class: 'muted' }, ws.current_task === '' ? 'idle' : '—'), 'fact-task', 'wide'),
        fact('Active tasks', `${ws.active_tasks ?? '—'} of ${ws.max_concurrent_tasks ?? '—'}`, 'fact-active'),
        fact('Uptime', fmtDuration(ws.uptime_seconds), 'fact-uptime'),
        fact('Last seen', fmtTime(ws.last_seen_at), 'fact-seen'),
        fact('Created', fmtTime(ws.created_at), 'fact-created'),
        fact('Tier', ws.tier ?? '—', 'fact-tier'),
        fact('Agent URL', ws.url ? code(ws.url) : h('span', { class: 'muted' }, 'none'), 'fact-url'),
        fact('Parent', parentName(ws), 'fact-parent'),
        fact('Registry', ws.registry_hash ? h('code', { title: ws.registry_hash }, shortHash(ws.registry_hash)) : h('span', { class: 'muted' }, '—'), 'fact-registry')),
    ]);
  }

  function parentName(ws) {
    if (!ws.parent_id) return h('span', { class: 'muted' }, 'none (root)');
    const parent = state.workspaces.get(ws.parent_id);
    return parent ? parent.name : code(ws.parent_id.slice(0, 8));
  }

  /** `derived:exact_model` → words. */
  function describeSource(source) {
    if (!source) return h('span', { class: 'muted' }, '—');
    const [kind, how] = source.split(':');
    const hows = {
      exact_model: 'the model id is listed by exactly one provider',
      prefix: 'the model id matched one provider\'s pattern',
      prefix_match: 'the model id matched one provider\'s pattern',
      no_match: 'no provider of this runtime knows the model',
      unknown_runtime: 'the registry does not know this runtime',
      empty_model: 'no model was given',
    };
    const kinds = { derived: 'derived', explicit: 'set explicitly', passthrough: 'pass-through', unresolved: 'not resolved' };
    return h('span', { title: source }, `${kinds[kind] || kind}${how ? `: ${hows[how] || how.replace(/_/g, ' ')}` : ''}`);
  }

  async function loadDerivation() {
    const id = state.selected;
    try {
      const { body } = await api('GET', `/workspaces/${encodeURIComponent(id)}/derivation`);
      if (state.selected !== id) return;
      renderDerivation(body);
    } catch (err) {
      if (state.selected !== id || !$('derivation')) return;
      clear($('derivation')).append(errorBox(err, 'reading the derivation'));
    }
  }

  function renderDerivation(d) {
    const host = clear($('derivation'));
    const explain = d.explain || {};
    const steps = Array.isArray(explain.steps) ? explain.steps : Array.isArray(d.explain) ? d.explain : [];
    const outcome = explain.outcome || {};
    const list = h('ol', { class: 'trace', testid: 'derivation-trace' });
    if (d.explicit_provider) {
      list.append(h('li', { class: 'step hit' }, h('span', { class: 'mark' }, '✓'),
        h('span', {}, 'Provider set explicitly by the caller: ', code(d.explicit_provider))));
    }
    // Patterns that did not match are folded into one line (open it to see them).
    let misses = null;
    for (const step of steps) {
      const line = renderStep(step, explain.model || d.model);
      if (step.step === 'prefix_tried' && !step.matched) {
        if (!misses) {
          misses = { names: [], inner: h('ol', { class: 'trace-inner' }) };
          misses.summary = h('summary', {});
          list.append(h('li', { class: 'step miss' }, h('span', { class: 'mark' }, '✗'),
            h('details', { class: 'misses' }, misses.summary, misses.inner)));
        }
        misses.names.push(step.provider);
        clear(misses.summary);
        append(misses.summary, [misses.names.length === 1 ? 'No match: ' : `No match (${misses.names.length} patterns): `, codeList(misses.names)]);
        misses.inner.append(line);
      } else {
        misses = null;
        list.append(line);
      }
    }
    if (!steps.length && !d.explicit_provider) {
      const ws = state.workspaces.get(d.workspace_id);
      list.append(h('li', { class: 'step' }, h('span', { class: 'mark' }, '·'), h('span', { class: 'muted' },
        ws && ws.status === 'failed' ? 'No provider decision was recorded: it was refused (see why it failed above).' : 'No trace was recorded.')));
    }
    append(host, [
      h('p', { class: 'outcome', testid: 'derivation-outcome' }, describeOutcome(outcome, d)),
      list,
    ]);
  }

  function renderStep(step, model) {
    const li = (hit, ...body) => h('li', { class: `step ${hit === true ? 'hit' : hit === false ? 'miss' : ''}`, testid: 'trace-step', 'data-step': step.step },
      h('span', { class: 'mark' }, hit === true ? '✓' : hit === false ? '✗' : '·'), h('span', {}, ...body));
    switch (step.step) {
      case 'runtime_found':
        return li(undefined, 'Runtime ', code(step.runtime), ' is in the registry; its native providers: ',
          codeList(step.native_providers || []), '.');
      case 'runtime_unknown':
      case 'runtime_not_found':
        return li(false, 'Runtime ', code(step.runtime || '?'), ' is not in the registry: nothing to derive.');
      case 'exact_ids': {
        const by = step.listed_by || [];
        if (by.length === 0) return li(false, 'No provider lists ', code(model || 'the model'), ' as an exact model id.');
        if (by.length === 1) return li(true, code(model || 'The model'), ' is listed as an exact id by ', code(by[0]), '.');
        return li(true, code(model || 'The model'), ' is listed as an exact id by ', codeList(by), ' (the first-declared wins).');
      }
      case 'prefix_tried':
        return li(Boolean(step.matched), code(step.provider), step.matched ? ' matches ' : ' does not match ',
          'the pattern ', code(step.pattern), '.');
      default: {
        const rest = Object.entries(step).filter(([k]) => k !== 'step')
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
        return li(undefined, code(step.step || 'step'), rest ? ` ${rest}` : '');
      }
    }
  }

  function describeOutcome(o, d) {
    const kind = o.outcome;
    if (kind === 'derived' || (!kind && d.provider)) {
      return [h('strong', {}, 'Derived provider '), code(o.provider || d.provider),
        o.via ? ` (via ${String(o.via).replace(/_/g, ' ')})` : '',
        ', billed to ', h('strong', {}, (o.billing || d.llm_billing_mode) === 'byok' ? 'your own key (byok)' : (o.billing || d.llm_billing_mode || '—')), '.'];
    }
    if (kind === 'passthrough') {
      return [h('strong', {}, 'Pass-through: '), 'no provider stamped; the runtime uses its own configuration',
        o.reason ? ` (${String(o.reason).replace(/_/g, ' ')})` : '', '.'];
    }
    if (kind === 'explicit' || d.explicit_provider) {
      return [h('strong', {}, 'Explicit provider '), code(d.provider || d.explicit_provider), ', billed ', d.llm_billing_mode || '—', '.'];
    }
    if (!kind) return [h('strong', {}, 'No provider was derived'), ' for this workspace.'];
    return [h('strong', {}, 'Outcome: '), kind, o.message ? ` — ${o.message}` : ''];
  }

  function scheduleDetailRefresh(type) {
    clearTimeout(state.detailTimer);
    state.detailTimer = setTimeout(() => {
      if (!state.selected || $('detail').hidden) return;
      if (state.tab === 'events' || state.tab === 'logs' || (state.tab === 'activity' && type === 'ACTIVITY_LOGGED')) loadTab();
    }, 150);
  }

  async function loadTab() {
    const id = state.selected;
    const body = $('tab-body');
    if (!body || !id) return;
    const tab = state.tab;
    if (tab === 'chat') {
      renderChat(id);
      return;
    }
    try {
      if (tab === 'events') {
        const { body: events } = await api('GET', `/events/${encodeURIComponent(id)}`);
        if (state.selected === id && state.tab === tab) renderEvents(events);
      } else if (tab === 'activity') {
        const { body: rows } = await api('GET', `/workspaces/${encodeURIComponent(id)}/activity?limit=100`);
        if (state.selected === id && state.tab === tab) renderActivity(rows);
      } else {
        const { body: text } = await api('GET', `/workspaces/${encodeURIComponent(id)}/logs?tail=300`, undefined, { text: true });
        if (state.selected === id && state.tab === tab) renderLogs(text);
      }
    } catch (err) {
      if (state.selected === id && state.tab === tab) clear(body).append(errorBox(err, `reading ${tab}`));
    }
  }

  function summarisePayload(payload) {
    if (!payload || typeof payload !== 'object') return '';
    const parts = [];
    for (const [k, v] of Object.entries(payload)) {
      if (k === 'agent_card') { parts.push('agent card updated'); continue; }
      parts.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    }
    return parts.join(' · ');
  }

  function renderEvents(events) {
    const body = clear($('tab-body'));
    if (!events.length) {
      body.append(h('p', { class: 'muted pad' }, 'No events yet.'));
      return;
    }
    const list = h('ul', { class: 'log-list', testid: 'events-list' });
    for (const ev of events) {
      const status = EVENT_STATUS[ev.event_type];
      list.append(h('li', { class: 'log-item', testid: 'event-item' },
        h('time', { datetime: ev.created_at, title: ev.created_at }, fmtTime(ev.created_at)),
        h('span', { class: `ev-type ${status ? `st-${status}` : ''}` }, status ? h('span', { class: 'dot' }) : null, ev.event_type),
        h('span', { class: 'ev-payload', title: JSON.stringify(ev.payload) }, summarisePayload(ev.payload))));
    }
    body.append(list);
  }

  function renderActivity(rows) {
    const body = clear($('tab-body'));
    if (!rows.length) {
      body.append(h('p', { class: 'muted pad', testid: 'activity-empty' }, 'No activity reported yet. Agents report A2A calls, task updates, logs and errors here.'));
      return;
    }
    const list = h('ul', { class: 'log-list', testid: 'activity-list' });
    for (const a of rows) {
      list.append(h('li', { class: `log-item act-${a.status || 'ok'}`, testid: 'activity-item' },
        h('time', { datetime: a.created_at, title: a.created_at }, fmtTime(a.created_at)),
        h('span', { class: 'ev-type' }, a.activity_type, a.method ? ` · ${a.method}` : ''),
        h('span', { class: 'ev-payload' },
          a.summary || '', a.status && a.status !== 'ok' ? h('span', { class: 'act-status' }, ` [${a.status}]`) : null,
          a.error_detail ? h('span', { class: 'act-error' }, ` ${a.error_detail}`) : null,
          typeof a.duration_ms === 'number' ? h('span', { class: 'muted' }, ` ${a.duration_ms} ms`) : null)));
    }
    body.append(list);
  }

  function renderLogs(text) {
    const body = clear($('tab-body'));
    const bar = h('div', { class: 'logs-bar' },
      h('span', { class: 'muted' }, 'Last 300 lines of the agent\'s output'),
      h('button', { type: 'button', class: 'btn btn-small', testid: 'logs-refresh', onclick: loadTab }, 'Refresh'));
    const pre = h('pre', { class: 'logs', testid: 'logs-text' }, text && text.length ? text : '(no output yet)');
    body.append(bar, pre);
    pre.scrollTop = pre.scrollHeight;
  }

  // ---------------------------------------------------------------- chat

  // The operator's conversation with the selected workspace's agent, through the A2A proxy
  // (`POST /workspaces/:id/a2a`, `message/stream`, read with fetch() because EventSource
  // cannot POST). What the agent's activity log recorded is the history; what this page
  // knows better (a message being answered, a refusal that never reached the agent, a
  // notification pushed a moment ago) is kept beside it until the log has it too.

  /** How many recorded exchanges the chat shows. */
  const CHAT_HISTORY = 50;

  /**
   * The conversation with workspace `id`. `history`: items read from its activity;
   * `local`: items this page made that the history does not hold (yet); `pending`: the
   * exchange under way; `contextId`: the agent's conversation, carried while the page is
   * open. An item is `{ who: 'user' | 'agent' | 'system', text, at, … }`.
   */
  function chatOf(id) {
    let chat = state.chats.get(id);
    if (!chat) {
      chat = {
        contextId: null, history: [], local: [], pending: null, draft: '',
        loaded: false, loading: false, reload: false, full: false, historyError: null,
      };
      state.chats.set(id, chat);
    }
    return chat;
  }

  const wsName = (id) => (state.workspaces.get(id) || {}).name || 'the workspace';

  /** The text parts of an A2A message (or artifact), one paragraph each; files by name. */
  function partsText(parts) {
    if (!Array.isArray(parts)) return '';
    return parts.map((p) => {
      if (!p || typeof p !== 'object') return '';
      if (typeof p.text === 'string') return p.text;
      if (p.kind === 'file' && p.file) return `[file: ${p.file.name || p.file.uri || 'unnamed'}]`;
      return '';
    }).filter((t) => t !== '').join('\n');
  }

  /** What an A2A result says: a message's parts, a task's artifacts or status message. */
  function resultText(result) {
    if (typeof result === 'string') return result;
    if (!result || typeof result !== 'object') return '';
    const own = partsText(result.parts);
    if (own) return own;
    if (result.artifact) return partsText(result.artifact.parts);
    const artifacts = Array.isArray(result.artifacts) ? result.artifacts.map((a) => partsText(a && a.parts)).filter(Boolean) : [];
    if (artifacts.length) return artifacts.join('\n\n');
    return result.status && result.status.message ? partsText(result.status.message.parts) : '';
  }

  const contextOf = (result) => (result && typeof result === 'object' ? result.contextId || result.context_id || null : null);

  /** A JSON-RPC error of the agent (or of the proxy, for a stream gone silent), in words. */
  function rpcErrorWords(error, name) {
    const message = String((error && error.message) || 'an error');
    const silent = /did not answer within (.+)$/.exec(message);
    if (silent) return `${name}'s agent went silent: it sent nothing for ${silent[1]}, so the answer stops here.`;
    return `${name}'s agent could not answer: ${message}${error && error.code !== undefined ? ` (JSON-RPC error ${error.code})` : ''}.`;
  }

  /** A refusal of `POST /workspaces/:id/a2a` (or no answer at all), in words. */
  function chatRefusalWords(status, body, name, retryAfter) {
    const b = body || {};
    const who = b.workspace || name;
    const again = retryAfter ? ` The server suggests trying again in ${retryAfter}s.` : '';
    switch (b.code) {
      case 'workspace_not_available':
        switch (b.status) {
          case 'paused': return `${who} is paused: resume it to talk to it.`;
          case 'offline': return `${who} is offline: its agent stopped heartbeating, so nothing can take the message. hatchery starts a lost agent again; send once ${who} is back online.${again}`;
          case 'provisioning': return `${who} is still starting: send again once it is online.${again}`;
          case 'failed': return `${who} failed to start, so it has no agent to answer. Its details say why.`;
          case 'hibernating':
          case 'hibernated': return `${who} is asleep (hibernated): resume it to talk to it.`;
          case 'awaiting_agent': return `${who} is waiting for its external agent to register: nothing can take the message yet.`;
          default: return `${who} is ${statusLabel(b.status)}: its agent cannot take messages now.${again}`;
        }
      case 'not_reachable':
        return `${b.caller || 'This caller'} may not talk to ${who}: the org tree does not connect them.`;
      case 'agent_unreachable':
        return `${who}'s agent cannot be reached, so the message was not delivered.`;
      case 'agent_bad_answer':
        return `${who}'s agent answered with something that is not an A2A answer.`;
      case 'agent_timeout': {
        const within = /within (.+)$/.exec(b.error || '');
        return `${who}'s agent did not answer within ${within ? within[1] : 'the time allowed'}; it may still be working.`;
      }
      case 'network':
        return `The server cannot be reached, so the message was not sent. ${b.error || ''}`.trim();
      default:
        if (status === 404) return `${who} no longer exists: it was removed.`;
        if (status === 413) return 'The message is too large to send.';
        if (status === 429) return `${who} is taking as many messages as it can at once: try again shortly.${again}`;
        return `The message was not delivered: ${b.error || 'the server refused it'} (HTTP ${status}).`;
    }
  }

  /** Activity rows (newest first) → chat items (oldest first). */
  function historyItems(rows, name) {
    const items = [];
    for (const row of [...rows].reverse()) {
      const at = row.created_at;
      const request = row.request_body && typeof row.request_body === 'object' ? row.request_body : null;
      const response = row.response_body && typeof row.response_body === 'object' ? row.response_body : null;
      const rpcId = request && request.id !== undefined ? String(request.id) : null;
      if (row.method === 'notify') {
        items.push({ who: 'agent', name, notify: true, text: resultText(response && response.result), at, origin: 'history' });
        continue;
      }
      if (request) {
        const message = request.params && request.params.message;
        const text = request.truncated ? `(a message of ${request.bytes} bytes, too large for the activity log)` : partsText(message && message.parts);
        items.push({ who: 'user', text, at, rpcId, origin: 'history' });
      }
      if (row.status && row.status !== 'ok') {
        const detail = row.error_detail || row.status;
        items.push({
          who: 'system', tone: 'error', at, rpcId, origin: 'history', code: row.status,
          text: row.status === 'timeout' ? `${name}'s agent did not answer in time (${detail}).` : `No complete answer: ${detail}.`,
        });
      } else if (response && response.error) {
        items.push({ who: 'system', tone: 'error', at, rpcId, origin: 'history', code: 'rpc_error', text: rpcErrorWords(response.error, name) });
      } else if (response && response.truncated) {
        items.push({ who: 'system', at, rpcId, origin: 'history', text: `(an answer of ${response.bytes} bytes, too large for the activity log)` });
      } else if (response) {
        items.push({ who: 'agent', name, text: resultText(response.result), at, rpcId, origin: 'history' });
      }
    }
    return items;
  }

  const whenOf = (item) => Date.parse(item.at || '') || 0;

  /** History and this page's own items, in time order (ties keep their order). */
  function chatItems(chat) {
    const all = chat.history.map((item, i) => ({ item, key: whenOf(item), i }));
    chat.local.forEach((item, i) => all.push({ item, key: whenOf(item), i: chat.history.length + i }));
    all.sort((a, b) => a.key - b.key || a.i - b.i);
    const items = all.map((x) => x.item);
    if (chat.pending) items.push(chat.pending.user, chat.pending.agent);
    return items;
  }

  /** Read the recorded conversation again; drop this page's copies of what it now holds. */
  async function loadChatHistory(id) {
    const chat = chatOf(id);
    if (chat.loading) {
      chat.reload = true;
      return;
    }
    chat.loading = true;
    try {
      const { body } = await api('GET', `/workspaces/${encodeURIComponent(id)}/activity?type=a2a_receive&source=canvas&limit=${CHAT_HISTORY}`);
      const rows = Array.isArray(body) ? body : [];
      chat.history = historyItems(rows, wsName(id));
      chat.full = rows.length >= CHAT_HISTORY;
      chat.loaded = true;
      chat.historyError = null;
      const recorded = new Set(chat.history.map((i) => i.rpcId).filter(Boolean));
      const notices = new Set(chat.history.filter((i) => i.notify).map((i) => i.text));
      // With a full page of history, what is older than its first item is off the page.
      const oldest = chat.full && chat.history.length ? whenOf(chat.history[0]) : 0;
      chat.local = chat.local.filter((item) => !(item.rpcId && recorded.has(item.rpcId))
        && !(item.notify && notices.has(item.text)) && whenOf(item) >= oldest);
    } catch (err) {
      chat.historyError = err;
    } finally {
      chat.loading = false;
    }
    renderChatLog(id);
    if (chat.reload) {
      chat.reload = false;
      loadChatHistory(id);
    }
  }

  /** The chat tab: the conversation, then the box to write in. */
  function renderChat(id) {
    const body = $('tab-body');
    if (!body) return;
    const chat = chatOf(id);
    const name = wsName(id);
    const input = h('textarea', {
      id: 'chat-input', testid: 'chat-input', rows: '2', placeholder: `Message ${name}…  (Enter sends, Shift+Enter for a new line)`,
      'aria-label': `Message to ${name}`, spellcheck: 'true',
      oninput: () => { chat.draft = input.value; },
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          chatSend(id);
        }
      },
    });
    input.value = chat.draft;
    clear(body).append(h('section', { class: 'chat', testid: 'chat', 'data-ws-id': id },
      h('div', { class: 'chat-head' },
        h('span', { class: 'muted', id: 'chat-context', testid: 'chat-context' }),
        h('button', {
          type: 'button', class: 'btn btn-quiet btn-small', testid: 'chat-new', title: 'The next message starts a new conversation (a new contextId)',
          onclick: () => {
            chat.contextId = null;
            chat.local.push({ who: 'system', text: 'A new conversation starts with the next message.', at: new Date().toISOString(), origin: 'page' });
            renderChatLog(id);
          },
        }, 'New conversation')),
      h('ol', { class: 'chat-log', id: 'chat-log', testid: 'chat-log', 'data-ws-id': id, 'aria-live': 'polite' }),
      h('form', {
        class: 'chat-form', testid: 'chat-form', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); chatSend(id); },
      }, input, h('button', { type: 'submit', class: 'btn btn-primary', id: 'chat-send', testid: 'chat-send' }, 'Send'))));
    // Started first: it marks the history as being read before the log is drawn.
    loadChatHistory(id);
    renderChatLog(id);
  }

  /** The chat's messages, if workspace `id`'s chat is the one on screen. */
  function renderChatLog(id) {
    const log = $('chat-log');
    if (!log || log.dataset.wsId !== id) return;
    const chat = chatOf(id);
    const pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    clear(log);
    // `loaded`: the history shown is the one just read (a test waits for it).
    log.dataset.loaded = String(chat.loaded && !chat.loading);
    if (chat.full) log.append(h('li', { class: 'msg msg-system' }, h('span', { class: 'muted' }, `Only the last ${CHAT_HISTORY} exchanges are shown; the Activity tab has the rest.`)));
    if (chat.historyError) {
      log.append(h('li', { class: 'msg msg-system tone-error', testid: 'chat-history-error' }, `The earlier conversation cannot be read: ${chat.historyError.message}`));
    }
    const items = chatItems(chat);
    if (!items.length && chat.loaded) {
      log.append(h('li', { class: 'msg msg-system', testid: 'chat-empty' },
        h('span', { class: 'muted' }, `No messages with ${wsName(id)} yet. What you send here goes to its agent; the answer appears as it is written.`)));
    }
    for (const item of items) {
      const el = chatItemEl(item);
      if (chat.pending && item === chat.pending.agent) chat.pending.el = el;
      log.append(el);
    }
    const send = $('chat-send');
    if (send) send.disabled = Boolean(chat.pending);
    const context = $('chat-context');
    if (context) {
      context.textContent = chat.contextId ? 'Continuing this conversation' : 'The next message starts a new conversation';
      context.title = chat.contextId ? `contextId ${chat.contextId}` : '';
    }
    if (pinned || chat.pending) log.scrollTop = log.scrollHeight;
  }

  function chatItemEl(item) {
    const time = item.at ? h('time', { datetime: item.at, title: item.at }, fmtTime(item.at)) : null;
    if (item.who === 'system') {
      return h('li', {
        class: `msg msg-system${item.tone ? ` tone-${item.tone}` : ''}`, testid: item.tone === 'error' ? 'chat-error' : 'chat-note',
        'data-code': item.code || null, 'data-origin': item.origin || null,
      }, h('span', { class: 'msg-text' }, item.text), item.detail ? h('span', { class: 'msg-detail' }, item.detail) : null, time);
    }
    const label = item.who === 'user' ? 'You' : item.notify ? `${item.name || 'Agent'} · notification` : (item.name || 'Agent');
    const el = h('li', {
      class: `msg msg-${item.who}${item.notify ? ' msg-notify' : ''}${item.undelivered ? ' msg-undelivered' : ''}`,
      testid: 'chat-msg', 'data-role': item.who, 'data-origin': item.origin || null,
    },
    h('div', { class: 'msg-meta' }, h('span', {}, label), time, item.undelivered ? h('span', { class: 'msg-flag' }, 'not delivered') : null),
    h('div', { class: 'msg-text', testid: 'chat-text' }));
    patchChatItem(el, item);
    return el;
  }

  /** A bubble's text and state, in place (called for each chunk of a streamed answer). */
  function patchChatItem(el, item) {
    const phase = item.state || 'done';
    el.dataset.state = phase;
    el.querySelector('.msg-text').textContent = item.text || (phase === 'thinking' ? 'thinking…' : phase === 'streaming' ? '' : '(no text)');
  }

  /** Send the box's text to workspace `id`'s agent and show the answer as it is written. */
  async function chatSend(id) {
    const chat = chatOf(id);
    const input = $('chat-input');
    if (input && $('chat-log') && $('chat-log').dataset.wsId === id) chat.draft = input.value;
    const text = chat.draft.trim();
    if (!text || chat.pending) return;
    const name = wsName(id);
    const rpcId = `dashboard-${Date.now().toString(36)}-${(state.chatSeq += 1)}`;
    state.chatOwnIds.add(rpcId);
    const message = { role: 'user', parts: [{ kind: 'text', text }] };
    if (chat.contextId) message.contextId = chat.contextId;
    const at = new Date().toISOString();
    const pending = {
      user: { who: 'user', text, at, rpcId, origin: 'page' },
      agent: { who: 'agent', name, text: '', at, rpcId, origin: 'page', state: 'thinking' },
      el: null,
    };
    chat.pending = pending;
    chat.draft = '';
    if (input) input.value = '';
    renderChatLog(id);
    const notes = [];
    // A note the activity log will also hold (the agent was asked) carries the call's id,
    // so the history's copy replaces it; one it will not (refused before delivery) stays.
    const note = (words, { code, traced = false, detail } = {}) =>
      notes.push({ who: 'system', tone: 'error', text: words, detail, code, at: new Date().toISOString(), rpcId: traced ? rpcId : null, origin: 'page' });
    const show = () => {
      if (pending.el && pending.el.isConnected) {
        const log = $('chat-log');
        const pinned = log && log.scrollHeight - log.scrollTop - log.clientHeight < 60;
        patchChatItem(pending.el, pending.agent);
        if (log && pinned) log.scrollTop = log.scrollHeight;
      }
    };
    const take = (answer) => {
      if (!answer || typeof answer !== 'object') return;
      if (answer.error) {
        note(rpcErrorWords(answer.error, name), { code: 'rpc_error', traced: true });
        return;
      }
      const result = answer.result;
      const context = contextOf(result);
      if (context) chat.contextId = context;
      if (!result || typeof result !== 'object') return;
      const agent = pending.agent;
      if (result.kind === 'artifact-update') {
        agent.text += partsText(result.artifact && result.artifact.parts);
        agent.state = 'streaming';
      } else if (result.kind === 'status-update') {
        const said = result.status && result.status.message ? partsText(result.status.message.parts) : '';
        const st = result.status && result.status.state;
        if ((st === 'failed' || st === 'rejected') && said) note(`${name}'s agent gave up: ${said}`, { traced: true, code: st });
        else if (said && !agent.text) agent.text = said;
      } else {
        // The final message (or task): what it says is the answer, whatever the chunks said.
        const said = resultText(result);
        if (said) agent.text = said;
        agent.state = 'done';
      }
      show();
    };
    try {
      let response;
      try {
        response = await fetch(`/workspaces/${encodeURIComponent(id)}/a2a`, {
          method: 'POST', cache: 'no-store',
          headers: { ...authHeaders(), 'Content-Type': 'application/json', Accept: 'text/event-stream, application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: rpcId, method: 'message/stream', params: { message } }),
        });
      } catch (err) {
        pending.user.undelivered = true;
        note(chatRefusalWords(0, { code: 'network', error: err.message }, name));
        return;
      }
      if (!response.ok) {
        const raw = await response.text().catch(() => '');
        let body;
        try { body = JSON.parse(raw); } catch { body = { error: raw.trim().slice(0, 200) }; }
        if (!body || typeof body !== 'object') body = {};
        if (response.status === 401 && !state.devMode && isAdminAuthFailure(body)) {
          signOut(`The admin token was refused: ${body.error || 'unauthorized'}`);
          return;
        }
        const traced = ['agent_unreachable', 'agent_bad_answer', 'agent_timeout'].includes(body.code);
        pending.user.undelivered = !traced || body.code === 'agent_unreachable';
        note(chatRefusalWords(response.status, body, name, response.headers.get('Retry-After')),
          { code: body.code || `http_${response.status}`, traced, detail: traced ? body.detail : undefined });
        return;
      }
      const type = response.headers.get('Content-Type') || '';
      if (type.startsWith('text/event-stream') && response.body) {
        await readSse(response.body, (frame) => {
          const { data } = parseFrame(frame);
          if (data === null) return;
          try { take(JSON.parse(data)); } catch { /* a frame that is not JSON says nothing */ }
        }, () => true);
      } else {
        const raw = await response.text();
        try { take(JSON.parse(raw)); } catch { note(`${name}'s agent answered with something that is not JSON-RPC.`, { traced: true }); }
      }
      if (!pending.agent.text && !notes.length) note(`${name}'s agent ended its answer without saying anything.`, { traced: true });
    } catch (err) {
      note(`The answer broke off: ${err.message || err}.`, { traced: true });
    } finally {
      pending.agent.state = 'done';
      const keep = [pending.user];
      if (pending.agent.text) keep.push(pending.agent);
      chat.local.push(...keep, ...notes);
      chat.pending = null;
      renderChatLog(id);
      if (chat.reload) {
        chat.reload = false;
        loadChatHistory(id);
      }
    }
  }

  /** An agent's notification (live), or someone else's call answered (re-read the history). */
  function chatEvent(id, type, data, ev) {
    const chat = state.chats.get(id);
    if (!chat || !chat.loaded) return;
    if (type === 'AGENT_MESSAGE') {
      if (typeof data.message !== 'string' || !data.message) return;
      const at = new Date(typeof ev.timestamp === 'number' ? ev.timestamp : Date.now()).toISOString();
      chat.local.push({ who: 'agent', notify: true, name: data.name || wsName(id), text: data.message, at, origin: 'live' });
      renderChatLog(id);
      return;
    }
    const response = data.response_body;
    const own = response && typeof response === 'object' && response.id !== undefined && state.chatOwnIds.has(String(response.id));
    if (own) return;
    // A call made elsewhere (the CLI, another tab): its question is only in the log.
    if (chat.pending) chat.reload = true;
    else loadChatHistory(id);
  }

  // ---------------------------------------------------------------- readable errors

  /**
   * A refusal, explained: what was refused, why, and what to do next. `onPick` lets a
   * candidate provider be chosen straight from the explanation.
   */
  function errorBox(err, doing, onPick) {
    const b = err.body || {};
    const box = h('div', { class: 'callout callout-error', testid: 'error', 'data-code': b.code || '', 'data-http': String(err.status || '') });
    const title = (text) => h('p', { class: 'callout-title', testid: 'error-title' }, text);
    const para = (...c) => h('p', {}, ...c);
    const hint = (...c) => h('p', { class: 'hint', testid: 'error-hint' }, h('strong', {}, 'What to do: '), ...c);
    switch (b.code) {
      case 'provider_derivation_failed': {
        const candidates = Array.isArray(b.candidates) ? b.candidates : [];
        append(box, [title(candidates.length > 1
          ? `Refused: more than one provider fits model “${b.model}” on runtime “${b.runtime}”`
          : `Refused: no provider can be derived for model “${b.model}” on runtime “${b.runtime}”`),
        para('hatchery fails closed rather than guess a provider (a wrong guess bills the wrong account or breaks the agent). Nothing was created.'),
        para(h('span', { class: 'muted' }, 'The server said: ', b.error || ''))]);
        if (candidates.length) {
          append(box, [h('p', {}, 'Candidates:'),
            h('ul', { class: 'candidates', testid: 'error-candidates' }, candidates.map((c) => h('li', { testid: 'candidate', 'data-provider': c },
              code(c), onPick ? h('button', { type: 'button', class: 'btn btn-small', testid: 'pick-candidate', onclick: () => onPick(c) }, `Use ${c}`) : null)))]);
          append(box, [hint('pick one and pass it as ', code('provider'), onPick ? ' (the Provider field above; the buttons fill it in), then create again.' : ' in the request.',
            ' Or fix the provider registry so only one provider matches this model.')]);
        } else {
          append(box, [hint('check the runtime and model spelling, pass an explicit ', code('provider'), ', or add the model to the registry.')]);
        }
        break;
      }
      case 'provider_not_allowed':
        append(box, [title(`Refused: provider “${b.provider}” is not allowed for runtime “${b.runtime}”`),
          para('Allowed providers: ', codeList(b.allowed || []), '.'),
          hint('choose one of the allowed providers, or leave Provider empty to derive it.')]);
        break;
      case 'byok_key_missing': {
        const vars = b.variables || [];
        append(box, [title(`Refused: provider “${b.provider}” needs your own API key`),
          para('This provider bills your own account (bring your own key), and ',
            vars.length === 1 ? [code(vars[0]), ' is not'] : ['none of ', codeList(vars), ' is'],
            ' set. hatchery never falls back to the platform key. Nothing was created.'),
          hint('store the key as a global secret (', code(`hatchery secrets set ${vars[0] || 'NAME'}`), ' or ',
            code('PUT /settings/secrets'), '), or pass it in the workspace\'s ', code('secrets'), ', or choose a platform-billed model.')]);
        break;
      }
      case 'platform_key_missing':
        append(box, [title('Refused: this model is billed to the platform, but the server has no platform key'),
          para(b.error || ''),
          hint('set ', code('HATCHERY_PLATFORM_KEY'), ' on the server, or use a provider with your own key.')]);
        break;
      case 'billing_mode_conflict':
        append(box, [title(`Refused: billing “${b.requested}” contradicts provider “${b.provider}”`),
          para(b.error || ''), hint('drop the billing mode, or pick a provider billed that way.')]);
        break;
      case 'registry_unavailable':
        append(box, [title('Refused: the provider registry is not available (503)'),
          para('No provider decision can be made without it, so nothing that needs one is created. ', h('span', { class: 'muted' }, b.error || '')),
          hint('check the server log for the manifest error, fix it and reload the registry (', code('POST /admin/registry/reload'), '), then retry.')]);
        break;
      case 'missing_required_env':
        append(box, [title(`Refused: template “${b.template}” needs environment variables that are not set`),
          para('Missing (as global secrets): ', codeList(b.missing_env || []), '.'),
          hint('set them as global secrets, or tick “Import even if required environment variables are missing” to import anyway.')]);
        break;
      case 'org_already_imported':
        append(box, [title('Refused: this org has been imported already'), para(b.error || ''),
          hint('choose “replace the earlier import” or “import a second copy” above.')]);
        break;
      case 'org_import_refused':
        append(box, [title('Refused: the template cannot be imported; nothing was written'),
          para('The plan below shows each node\'s problems.')]);
        if (b.plan) box.append(renderPlan(b.plan, false));
        break;
      case 'invalid_org_template':
        append(box, [title('The template is not valid'), h('pre', { class: 'detail-pre' }, b.detail || b.error || '')]);
        break;
      case 'admin_auth_required':
      case 'invalid_admin_token':
        append(box, [title('Not signed in: the admin token was refused'), hint('sign in again with the right token.')]);
        break;
      default: {
        const what = b.detail ? `${b.error}: ${b.detail}` : (b.error || err.message);
        append(box, [title(`${doing ? `${doing[0].toUpperCase()}${doing.slice(1)} failed` : 'Failed'}${err.status ? ` (HTTP ${err.status})` : ''}`),
          para(what), b.field ? para('Field: ', code(b.field)) : null]);
      }
    }
    return box;
  }

  // ---------------------------------------------------------------- create

  function openCreate() {
    showSide('create-form');
    refreshParentOptions();
    clear($('create-result'));
    $('create-name').focus();
  }

  function refreshParentOptions() {
    const select = $('create-parent');
    const keep = select.value;
    clear(select);
    select.append(h('option', { value: '' }, '— none (a root workspace) —'));
    for (const { ws, depth } of treeOrder()) {
      // Non-breaking spaces: an option's ordinary leading spaces are collapsed.
      select.append(h('option', { value: ws.id }, `${'\u00a0\u00a0\u00a0'.repeat(depth)}${depth ? '└ ' : ''}${ws.name}`));
    }
    select.value = [...select.options].some((o) => o.value === keep) ? keep : '';
  }

  function refreshSuggestions() {
    const runtimes = new Set(RUNTIME_SUGGESTIONS);
    const models = new Set();
    for (const ws of state.workspaces.values()) {
      if (ws.runtime) runtimes.add(ws.runtime);
      if (ws.model) models.add(ws.model);
    }
    const fill = (id, values) => {
      const list = clear($(id));
      for (const v of [...values].sort()) list.append(h('option', { value: v }));
    };
    fill('runtime-options', runtimes);
    fill('model-options', models);
  }

  let previewTimer = null;
  /** What the registry would derive for the form's runtime and model, before creating. */
  function schedulePreview() {
    clearTimeout(previewTimer);
    $('create-preview').hidden = true;
    previewTimer = setTimeout(async () => {
      const runtime = $('create-runtime').value.trim();
      const model = $('create-model').value.trim();
      const line = $('create-preview');
      if (!runtime || !model || $('create-provider').value.trim()) { line.hidden = true; return; }
      try {
        const { body } = await api('GET', `/admin/registry/explain?runtime=${encodeURIComponent(runtime)}&model=${encodeURIComponent(model)}`);
        if ($('create-runtime').value.trim() !== runtime || $('create-model').value.trim() !== model) return;
        clear(line);
        line.className = 'preview-line';
        if (body.outcome === 'derived') {
          append(line, ['Will use provider ', code(body.provider), ', billed ', h('strong', {}, body.billing === 'byok' ? 'to your own key (byok)' : body.billing), '.']);
        } else if (body.outcome === 'passthrough') {
          append(line, ['No provider will be stamped (pass-through: ', String(body.reason || 'no match').replace(/_/g, ' '), ').']);
        } else {
          line.classList.add('preview-warn');
          const candidates = Array.isArray(body.candidates) ? body.candidates : [];
          if (candidates.length > 1) {
            append(line, ['Will be refused: more than one provider fits (', codeList(candidates), '). Pick one as Provider.']);
          } else {
            append(line, ['Will be refused: ', body.message || body.kind || 'the provider cannot be derived', '.']);
          }
        }
        line.hidden = false;
      } catch {
        line.hidden = true;
      }
    }, 250);
  }

  async function onCreate(event) {
    event.preventDefault();
    const result = clear($('create-result'));
    const name = $('create-name').value.trim();
    if (!name) {
      result.append(h('div', { class: 'callout callout-error', testid: 'error' }, h('p', { class: 'callout-title' }, 'A name is required.')));
      $('create-name').focus();
      return;
    }
    const request = { name };
    const fields = { runtime: 'create-runtime', model: 'create-model', provider: 'create-provider', role: 'create-role', parent_id: 'create-parent' };
    for (const [key, id] of Object.entries(fields)) {
      const value = $(id).value.trim();
      if (value) request[key] = value;
    }
    const button = $('create-submit');
    button.disabled = true;
    try {
      const { body } = await api('POST', '/workspaces', request);
      // Show the row at once; the event stream moves it on from here.
      if (!state.workspaces.has(body.id)) {
        applyWorkspace({
          id: body.id, name, status: body.status, runtime: request.runtime || '', model: request.model || '',
          role: request.role || null, parent_id: request.parent_id || null, provider: body.provider,
          provider_source: body.provider_source, llm_billing_mode: body.llm_billing_mode,
          registry_hash: body.registry_hash, created_at: new Date().toISOString(), current_task: '',
        });
      }
      fetchWorkspace(body.id);
      append(result, [h('div', { class: 'callout callout-ok', testid: 'create-ok', 'data-ws-id': body.id },
        h('p', { class: 'callout-title' }, `Created “${name}”`),
        h('p', {}, 'Provider ', body.provider ? code(body.provider) : h('em', {}, 'none (pass-through)'),
          body.llm_billing_mode ? [', billed ', h('strong', {}, body.llm_billing_mode)] : '', '. Status: ', statusLabel(body.status), ' — watch it in the tree.'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => select(body.id) }, 'Open it'))]);
      $('create-name').value = '';
    } catch (err) {
      result.append(errorBox(err, 'creating the workspace', (provider) => {
        $('create-provider').value = provider;
        $('create-provider').focus();
      }));
      result.scrollIntoView({ block: 'nearest', behavior: 'instant' });
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- org import

  async function openImport() {
    showSide('import-form');
    clear($('import-result'));
    const select = $('import-dir');
    try {
      const { body } = await api('GET', '/org/templates');
      const keep = select.value;
      clear(select);
      if (!body.length) select.append(h('option', { value: '' }, '(the server has no org templates)'));
      for (const t of body) {
        const env = (t.required_env || []).length ? ` · needs ${t.required_env.join(', ')}` : '';
        select.append(h('option', { value: t.dir }, `${t.name} — ${t.workspaces} workspaces${env}${t.description ? ` · ${t.description}` : ''}`));
      }
      if (keep) select.value = keep;
    } catch (err) {
      clear(select).append(h('option', { value: '' }, `(cannot list templates: ${err.message})`));
    }
  }

  function importRequest(dryRun) {
    const source = document.querySelector('input[name="import-source"]:checked').value;
    const body = {};
    if (source === 'yaml') body.template = $('import-yaml').value;
    else body.dir = $('import-dir').value;
    if ($('import-force').checked) body.force = true;
    const query = new URLSearchParams();
    if (dryRun) query.set('dry_run', 'true');
    const earlier = $('import-earlier').value;
    if (!dryRun && earlier) query.set(earlier, 'true');
    const qs = query.toString();
    return { path: `/org/import${qs ? `?${qs}` : ''}`, body, source };
  }

  async function onImport(dryRun) {
    const result = clear($('import-result'));
    const { path, body, source } = importRequest(dryRun);
    if (source === 'yaml' && !body.template.trim()) {
      result.append(h('div', { class: 'callout callout-error', testid: 'error' }, h('p', { class: 'callout-title' }, 'Paste an org template (YAML) first.')));
      return;
    }
    if (source === 'dir' && !body.dir) {
      result.append(h('div', { class: 'callout callout-error', testid: 'error' }, h('p', { class: 'callout-title' }, 'Choose a template.')));
      return;
    }
    for (const b of [$('import-preview'), $('import-submit')]) b.disabled = true;
    try {
      const { status, body: answer } = await api('POST', path, body);
      if (dryRun) {
        result.append(renderPlan(answer, true));
        result.scrollIntoView({ block: 'start', behavior: 'instant' });
      } else {
        result.append(renderImported(status, answer));
        result.scrollIntoView({ block: 'start', behavior: 'instant' });
        refreshList().catch(() => {});
      }
    } catch (err) {
      result.append(errorBox(err, dryRun ? 'previewing the import' : 'importing'));
      result.scrollIntoView({ block: 'nearest', behavior: 'instant' });
    } finally {
      for (const b of [$('import-preview'), $('import-submit')]) b.disabled = false;
    }
  }

  /** A dry run's plan (or the plan inside a 422): one row per node, indented by depth. */
  function renderPlan(plan, isPreview) {
    const nodes = plan.nodes || [];
    const missing = plan.missing_env || [];
    const problems = plan.problems || [];
    const bad = nodes.filter((n) => (n.problems || []).length).length;
    const wrap = h('div', { class: 'plan', testid: 'import-plan', 'data-ok': String(Boolean(plan.ok)) });
    if (isPreview) {
      const clean = plan.ok && !missing.length;
      wrap.append(h('div', { class: `callout ${clean ? 'callout-ok' : 'callout-warn'}`, testid: 'plan-verdict' },
        h('p', { class: 'callout-title' }, clean
          ? `Preview of “${plan.org}”: ${nodes.length} workspaces, all fine. Nothing has been created yet.`
          : `Preview of “${plan.org}”: ${nodes.length} workspaces, ${bad} with problems${missing.length ? ', required environment missing' : ''}. Nothing has been created yet.`),
        bad ? h('p', {}, 'Importing now creates the fine nodes and records each node with a problem as failed, with its reason.') : null,
        missing.length ? h('p', {}, 'Missing environment variables (as global secrets): ', codeList(missing),
          '. A real import is refused (412) unless you tick “Import even if…”.') : null));
    }
    if (problems.length) {
      wrap.append(h('ul', { class: 'plan-problems' }, problems.map((p) => h('li', {}, typeof p === 'string' ? p : JSON.stringify(p)))));
    }
    const depthOf = (path) => (String(path).match(/children\[/g) || []).length;
    const table = h('table', { class: 'plan-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Workspace'), h('th', {}, 'Runtime'), h('th', {}, 'Model'), h('th', {}, 'Provider'), h('th', {}, 'Billing'))),
      h('tbody', {}, nodes.map((n) => {
        const probs = n.problems || [];
        return [h('tr', { class: probs.length ? 'has-problem' : '', testid: 'plan-node', 'data-name': n.name },
          h('td', { class: 'plan-name', 'data-depth': String(Math.min(depthOf(n.path), 8)) }, h('span', { class: 'mark' }, probs.length ? '✗' : '✓'), ' ', n.name, n.external ? h('span', { class: 'muted' }, ' (external)') : null),
          h('td', {}, n.runtime || '—'),
          h('td', {}, n.model ? code(n.model) : h('span', { class: 'muted' }, '—')),
          h('td', {}, n.provider || h('span', { class: 'muted' }, probs.length ? '—' : 'pass-through')),
          h('td', {}, n.billing || '—')),
        probs.length ? h('tr', { class: 'problem-row' }, h('td', { colspan: '5' }, probs.map((p) => h('div', { class: 'problem' }, p)))) : null];
      })));
    wrap.append(table);
    return wrap;
  }

  function renderImported(status, answer) {
    const list = answer.workspaces || [];
    const failed = list.filter((w) => w.error);
    const box = h('div', { class: `callout ${failed.length ? 'callout-warn' : 'callout-ok'}`, testid: 'import-done', 'data-http': String(status) },
      h('p', { class: 'callout-title' }, failed.length === 0
        ? `Imported “${answer.org}”: ${list.length} workspaces are starting`
        : failed.length === list.length
          ? `Imported “${answer.org}”, but every node was refused: ${failed.length} recorded as failed, none started`
          : `Imported “${answer.org}” partly: ${list.length - failed.length} of ${list.length} workspaces started, ${failed.length} failed`),
      h('ul', { class: 'imported' }, list.map((w) => h('li', { testid: 'imported-node' },
        statusPill((state.workspaces.get(w.id) || w).status, 'imported-status', w.id), ' ', h('button', { type: 'button', class: 'link', onclick: () => select(w.id) }, w.name),
        w.error ? h('div', { class: 'problem' }, w.error) : null))));
    return box;
  }

  // ---------------------------------------------------------------- wiring

  function wireStaticHandlers() {
    $('login-form').addEventListener('submit', onLogin);
    $('btn-signout').addEventListener('click', () => signOut(''));
    $('btn-new').addEventListener('click', openCreate);
    $('btn-import').addEventListener('click', openImport);
    $('create-form').addEventListener('submit', onCreate);
    $('import-form').addEventListener('submit', (e) => { e.preventDefault(); onImport(false); });
    $('import-preview').addEventListener('click', () => onImport(true));
    for (const id of ['create-runtime', 'create-model', 'create-provider']) $(id).addEventListener('input', schedulePreview);
    for (const btn of document.querySelectorAll('[data-close]')) {
      btn.addEventListener('click', () => showSide(state.selected ? 'detail' : 'welcome'));
    }
    $('import-yaml').addEventListener('input', () => { $('import-source-yaml').checked = true; });
    $('import-dir').addEventListener('change', () => { $('import-source-dir').checked = true; });
  }

  document.addEventListener('DOMContentLoaded', boot);
})();
