// hatchery's web dashboard: talks to the same HTTP API as every other client. The org
// tree is loaded once and then kept current by the admin event stream (`/events/stream`,
// read with fetch() because EventSource cannot send the admin bearer); nothing polls.
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

  /** Split the byte stream into SSE frames (blank-line separated) and dispatch each. */
  async function readFrames(body, generation) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== state.streamGeneration) return;
      buffer += decoder.decode(value, { stream: true });
      // Normalise CR LF / CR, keeping a trailing CR that may be half of a CR LF.
      buffer = buffer.replace(/\r\n|\r(?!$)/g, '\n');
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        dispatchFrame(frame);
      }
    }
  }

  function dispatchFrame(frame) {
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
    if (id !== null) state.lastEventId = id;
    if (data.length === 0) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch { return; }
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
          tabButton('events', 'Events'), tabButton('activity', 'Activity'), tabButton('logs', 'Logs')),
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
