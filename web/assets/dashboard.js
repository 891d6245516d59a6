/*
 * sessionraft — cluster dashboard (served at "/cluster").
 *
 * Live data: Server-Sent Events from /cluster/events, one JSON snapshot per message:
 *   {ts_ms, observer, leader, term, nodes: [{id, addr, url, role, term, last_log_index,
 *    applied_index, lag, healthy, reads, version, actors: [{name, restarts}]}], sessions, keys, resp_ops_per_sec, writes_per_sec, reads_per_sec,
 *    local_reads_per_sec, avg_batch_size, cluster_version}
 *
 * Admin actions: same-origin fetches with "Authorization: Bearer <token>".
 *
 * Everything lives inside one IIFE: nothing leaks onto window.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------------------
  // Constants & state
  // ---------------------------------------------------------------------------

  const EVENTS_URL = '/cluster/events';
  const SPARK_POINTS = 60;            // samples kept per sparkline
  const SPARK_W = 120;                // sparkline viewBox width
  const SPARK_H = 36;                 // sparkline viewBox height
  const SPARK_PAD = 3;                // vertical breathing room inside the viewBox
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 15000;
  const LAG_FAR = 1000;               // lag (entries) shown in red beyond this
  const TOKEN_KEY = 'sessionraft.adminToken';
  const KNOWN_ROLES = ['leader', 'follower', 'candidate', 'learner', 'unreachable', 'unresolved', 'shutdown'];

  /** node id -> {el, title, role, fields, link} */
  const cards = new Map();
  const history = { writes: [], reads: [] };

  const live = {
    source: null,
    reconnectTimer: null,
    reconnectDelay: RECONNECT_MIN_MS,
    connState: null,
    leader: undefined,     // undefined = no snapshot seen yet
    sessionsUser: null,    // user whose sessions the table currently shows
  };

  /** DOM references, filled in by init(). */
  let el = {};

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------

  function byId(id) {
    return document.getElementById(id);
  }

  function isNum(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  function clock(date) {
    return pad2(date.getHours()) + ':' + pad2(date.getMinutes()) + ':' + pad2(date.getSeconds());
  }

  const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const rateFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

  function fmtInt(v) {
    return isNum(v) ? intFmt.format(v) : '—';
  }

  function fmtDec(v) {
    return isNum(v) ? rateFmt.format(v) : '—';
  }

  /** Sets textContent only when it changed (keeps the DOM quiet between events). */
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  /** Returns a normalised http(s) base URL without trailing slash, or null if unsafe. */
  function safeBaseUrl(raw) {
    if (typeof raw !== 'string' || raw === '') return null;
    try {
      const u = new URL(raw, window.location.href);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      return u.href.replace(/\/+$/, '');
    } catch (_) {
      return null;
    }
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function replayAnimation(node, cls) {
    node.classList.remove(cls);
    void node.offsetWidth; // force reflow so the animation restarts
    node.classList.add(cls);
  }

  // ---------------------------------------------------------------------------
  // Connection indicator
  // ---------------------------------------------------------------------------

  function setConn(state, text) {
    if (live.connState === state) return;
    live.connState = state;
    el.connStatus.dataset.state = state;
    setText(el.connText, text);
  }

  // ---------------------------------------------------------------------------
  // Summary strip & sparklines
  // ---------------------------------------------------------------------------

  function pushSample(series, value) {
    series.push(isNum(value) && value > 0 ? value : 0);
    if (series.length > SPARK_POINTS) series.splice(0, series.length - SPARK_POINTS);
  }

  /** Draws `values` (newest last, right-aligned) into an SVG with a polyline + area polygon. */
  function drawSpark(svg, values, label) {
    const line = svg.querySelector('.spark-line');
    const area = svg.querySelector('.spark-area');
    if (!line || !area) return;
    if (values.length === 0) {
      line.setAttribute('points', '');
      area.setAttribute('points', '');
      return;
    }
    const max = Math.max.apply(null, values.concat([1e-9]));
    const step = SPARK_W / (SPARK_POINTS - 1);
    const n = values.length;
    const pts = values.map(function (v, i) {
      const x = SPARK_W - (n - 1 - i) * step;
      const y = SPARK_H - SPARK_PAD - (v / max) * (SPARK_H - 2 * SPARK_PAD);
      return x.toFixed(2) + ',' + y.toFixed(2);
    });
    if (n === 1) pts.unshift((SPARK_W - step).toFixed(2) + pts[0].slice(pts[0].indexOf(',')));
    const firstX = pts[0].split(',')[0];
    line.setAttribute('points', pts.join(' '));
    area.setAttribute('points', pts.join(' ') + ' ' + SPARK_W + ',' + SPARK_H + ' ' + firstX + ',' + SPARK_H);
    svg.setAttribute('aria-label', label + ', last ' + n + ' samples, peak ' + fmtDec(max < 1e-6 ? 0 : max) + ' per second');
  }

  function renderSummary(snap) {
    setText(el.sessions, fmtInt(snap.sessions));
    setText(el.keys, fmtInt(snap.keys));
    setText(el.respOps, fmtDec(snap.resp_ops_per_sec));
    setText(el.writes, fmtDec(snap.writes_per_sec));
    setText(el.reads, fmtDec(snap.reads_per_sec));
    setText(el.localReads, fmtDec(snap.local_reads_per_sec));
    setText(el.batch, fmtDec(snap.avg_batch_size));
    setText(el.term, fmtInt(snap.term));
    setText(el.clusterVersion, typeof snap.cluster_version === 'string' && snap.cluster_version ? snap.cluster_version : '–');

    const hasLeader = isNum(snap.leader);
    setText(el.leaderId, hasLeader ? String(snap.leader) : 'none');
    el.leaderUnit.hidden = !hasLeader;

    setText(el.observer, isNum(snap.observer) ? String(snap.observer) : '–');
    const when = isNum(snap.ts_ms) ? new Date(snap.ts_ms) : new Date();
    setText(el.lastUpdate, 'Updated ' + clock(when));

    pushSample(history.writes, snap.writes_per_sec);
    pushSample(history.reads, snap.reads_per_sec);
    drawSpark(el.sparkWrites, history.writes, 'Writes per second');
    drawSpark(el.sparkReads, history.reads, 'Reads per second');
  }

  // ---------------------------------------------------------------------------
  // Node cards
  // ---------------------------------------------------------------------------

  /** One <div><dt/><dd/></div> row of the card's definition list. */
  function statRow(dl, label, extraClass) {
    const row = make('div', extraClass || '');
    const dd = make('dd', '', '—');
    row.append(make('dt', '', label), dd);
    dl.appendChild(row);
    return dd;
  }

  /** Builds the (empty) card for a node id; filled by updateCard(). */
  function buildCard(id) {
    const card = make('article', 'card node-card');
    card.dataset.nodeId = String(id);
    card.setAttribute('aria-labelledby', 'node-' + id + '-title');

    const head = make('header', 'node-card-head');
    const title = make('h3', 'node-card-title', 'Node ' + id);
    title.id = 'node-' + id + '-title';
    // The role pill is the one place a card says its role; the leader's reads "★ leader".
    const role = make('span', 'role');
    head.append(title, role);

    const dl = make('dl', 'node-stats');
    const fields = {
      term: statRow(dl, 'Term'),
      lag: statRow(dl, 'Lag behind leader'),
      last: statRow(dl, 'Last log index'),
      applied: statRow(dl, 'Applied index'),
      health: statRow(dl, 'Health'),
      reads: statRow(dl, 'Reads'),
      actors: statRow(dl, 'Actors'),
      addr: statRow(dl, 'Address'),
    };
    fields.addr.classList.add('mono');

    const foot = make('div', 'node-card-foot');
    const link = make('a', '', 'Open demo on node ' + id + ' →');
    foot.appendChild(link);

    card.append(head, dl, foot);
    return { el: card, role: role, fields: fields, link: link, foot: foot };
  }

  function renderLag(dd, lag) {
    let text = '—';
    let cls = '';
    if (isNum(lag)) {
      if (lag <= 0) {
        text = '0 · in sync';
      } else {
        text = fmtInt(lag) + (lag === 1 ? ' entry' : ' entries');
        cls = lag > LAG_FAR ? 'lag-far' : 'lag-behind';
      }
    }
    setText(dd, text);
    setAttr(dd, 'class', cls);
  }

  /** "6 supervised · no restarts", or the restarted ones ("purger ×1") in warning colour. */
  function renderActors(dd, actors) {
    let text = '—';
    let cls = '';
    if (Array.isArray(actors) && actors.length > 0) {
      const restarted = actors.filter(function (a) { return a && isNum(a.restarts) && a.restarts > 0; });
      if (restarted.length === 0) {
        text = actors.length + ' supervised · no restarts';
      } else {
        text = 'restarted after a panic: ' + restarted.map(function (a) {
          return String(a.name) + ' ×' + fmtInt(a.restarts);
        }).join(', ');
        cls = 'lag-behind';
      }
    }
    setText(dd, text);
    setAttr(dd, 'class', cls);
  }

  function renderHealth(dd, healthy) {
    let text = 'Unknown';
    let cls = 'health';
    if (healthy === true) {
      text = 'Healthy';
      cls = 'health health-ok';
    } else if (healthy === false) {
      text = 'Unhealthy';
      cls = 'health health-bad';
    }
    setText(dd, text);
    setAttr(dd, 'class', cls);
  }

  /** Updates one card in place from a node entry of the snapshot. */
  function updateCard(card, node, leaderId) {
    const role = typeof node.role === 'string' && node.role !== '' ? node.role : 'unknown';
    const roleClass = KNOWN_ROLES.indexOf(role) >= 0 ? role : 'unknown';
    const isLeader = node.id === leaderId || role === 'leader';

    setAttr(card.el, 'data-role', role);
    card.el.classList.toggle('is-leader', isLeader);
    setText(card.role, isLeader ? '★ leader' : role);
    setAttr(card.role, 'class', 'role role-' + (isLeader ? 'leader' : roleClass));

    const f = card.fields;
    setText(f.term, fmtInt(node.term));
    setText(f.last, fmtInt(node.last_log_index));
    setText(f.applied, fmtInt(node.applied_index));
    renderLag(f.lag, node.lag);
    renderHealth(f.health, node.healthy);
    setText(f.reads, typeof node.reads === 'string' && node.reads ? node.reads : '—');
    renderActors(f.actors, node.actors);
    const addr = (typeof node.addr === 'string' && node.addr ? node.addr : '—') +
      (typeof node.version === 'string' && node.version ? ' · v' + node.version : '');
    // A member whose name does not resolve from the observer says so, with the resolver's answer.
    setText(f.addr, typeof node.unresolved === 'string' && node.unresolved
      ? addr + ' — name does not resolve: ' + node.unresolved
      : addr);

    const base = safeBaseUrl(node.url);
    card.foot.hidden = !base;
    if (base) setAttr(card.link, 'href', base + '/');
  }

  /** Reconciles the card grid with the snapshot: add/update/remove, sorted by id. */
  function renderNodes(snap) {
    const nodes = Array.isArray(snap.nodes)
      ? snap.nodes.filter(function (n) { return n && isNum(n.id); })
      : [];
    nodes.sort(function (a, b) { return a.id - b.id; });

    if (el.placeholder && el.placeholder.parentNode && nodes.length > 0) {
      el.placeholder.remove();
    }

    const seen = new Set();
    const leaderId = isNum(snap.leader) ? snap.leader : null;
    nodes.forEach(function (node, index) {
      seen.add(node.id);
      let card = cards.get(node.id);
      if (!card) {
        card = buildCard(node.id);
        cards.set(node.id, card);
      }
      updateCard(card, node, leaderId);
      // Keep DOM order == id order without touching cards that are already in place.
      const slot = el.nodes.children[index] || null;
      if (slot !== card.el) el.nodes.insertBefore(card.el, slot);
    });

    cards.forEach(function (card, id) {
      if (!seen.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    });

    if (nodes.length === 0 && el.placeholder && !el.placeholder.parentNode) {
      el.placeholder.textContent = 'The observer reports no cluster members.';
      el.nodes.appendChild(el.placeholder);
    }
  }

  /** Flashes the new leader's card and announces leader changes to screen readers. */
  function noteLeaderChange(snap) {
    const leader = isNum(snap.leader) ? snap.leader : null;
    const first = live.leader === undefined;
    if (leader === live.leader) return;
    live.leader = leader;
    if (first) return;
    if (leader === null) {
      el.announcer.textContent = 'No leader: an election is in progress.';
      return;
    }
    el.announcer.textContent = 'Node ' + leader + ' is now the leader' +
      (isNum(snap.term) ? ' (term ' + snap.term + ').' : '.');
    const card = cards.get(leader);
    if (card) replayAnimation(card.el, 'flash');
  }

  function render(snap) {
    renderSummary(snap);
    renderNodes(snap);
    noteLeaderChange(snap);
  }

  // ---------------------------------------------------------------------------
  // Server-Sent Events
  // ---------------------------------------------------------------------------

  function onMessage(event) {
    let snap;
    try {
      snap = JSON.parse(event.data);
    } catch (_) {
      return; // ignore a malformed frame; the next one will do
    }
    if (!snap || typeof snap !== 'object') return;
    live.reconnectDelay = RECONNECT_MIN_MS;
    setConn('live', 'Live');
    render(snap);
  }

  /** Only needed when the browser gave up (readyState CLOSED); normally it retries itself. */
  function scheduleReconnect() {
    if (live.reconnectTimer !== null) return;
    const delay = live.reconnectDelay;
    live.reconnectDelay = Math.min(live.reconnectDelay * 2, RECONNECT_MAX_MS);
    live.reconnectTimer = window.setTimeout(function () {
      live.reconnectTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (typeof window.EventSource !== 'function') {
      setConn('error', 'Live updates unsupported');
      return;
    }
    if (live.source) live.source.close();

    let source;
    try {
      source = new EventSource(EVENTS_URL);
    } catch (_) {
      setConn('reconnecting', 'Reconnecting…');
      scheduleReconnect();
      return;
    }
    live.source = source;

    source.addEventListener('open', function () {
      setConn('live', 'Live');
    });
    source.addEventListener('message', onMessage);
    source.addEventListener('error', function () {
      setConn('reconnecting', 'Reconnecting…');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        if (live.source === source) live.source = null;
        scheduleReconnect();
      }
    });
  }

  // ---------------------------------------------------------------------------
  // Admin
  // ---------------------------------------------------------------------------

  function loadToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function saveToken(value) {
    try {
      if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      /* storage unavailable (privacy mode): keep the token in the input only */
    }
  }

  /**
   * Admin request; never throws. Resolves to {ok, status, data, text}.
   * status is 0 on network failure.
   */
  async function adminCall(method, path, body) {
    const headers = { accept: 'application/json' };
    const token = el.token.value.trim();
    if (token) headers.authorization = 'Bearer ' + token;
    const opts = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }

    let res;
    try {
      res = await fetch(path, opts);
    } catch (_) {
      return { ok: false, status: 0, data: null, text: '' };
    }
    let text = '';
    let data = null;
    try {
      text = await res.text();
      if (text) data = JSON.parse(text);
    } catch (_) {
      data = null;
    }
    if (data !== null && typeof data !== 'object') data = null;
    const ok = res.ok && !(data && data.ok === false);
    return { ok: ok, status: res.status, data: data, text: text };
  }

  /** Text for a failed admin call. */
  function failureText(res) {
    if (res.status === 401) return 'Admin token required or wrong (401)';
    if (res.status === 0) return 'Network error — could not reach this node.';
    let detail = '';
    if (res.data && typeof res.data.error === 'string' && res.data.error) {
      detail = res.data.error;
    } else if (!res.data && res.text) {
      detail = res.text.trim().slice(0, 200);
    }
    return 'Error ' + res.status + (detail ? ': ' + detail : '');
  }

  /**
   * Shows a message in the admin result area.
   * kind: "ok" | "error" | "busy" | "" ; payload (optional) is pretty-printed below.
   */
  function showResult(kind, message, payload) {
    el.result.dataset.kind = kind;
    el.result.textContent = '';
    el.result.appendChild(make('span', 'result-text', message));
    if (payload && typeof payload === 'object') {
      el.result.appendChild(make('pre', '', JSON.stringify(payload, null, 2)));
    }
  }

  /** Disables `button` while `work` runs; reports "Working…" first. */
  async function withBusy(button, work) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    showResult('busy', 'Working…');
    try {
      await work();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  /** Parses a node id field; shows an error and focuses the field when invalid. */
  function readNodeId(input) {
    const raw = input.value.trim();
    if (/^\d{1,15}$/.test(raw)) return Number(raw);
    showResult('error', 'Enter a node id (a whole number, e.g. 4).');
    input.focus();
    return null;
  }

  function readUser() {
    const user = el.userName.value.trim();
    if (user) return user;
    showResult('error', 'Enter a user name.');
    el.userName.focus();
    return null;
  }

  async function onSnapshot() {
    await withBusy(el.snapshotBtn, async function () {
      const res = await adminCall('POST', '/admin/snapshot');
      if (res.ok) showResult('ok', 'Snapshot triggered (HTTP ' + res.status + ').', res.data);
      else showResult('error', failureText(res));
    });
  }

  async function onAddLearner(event) {
    event.preventDefault();
    const id = readNodeId(el.learnerId);
    if (id === null) return;
    const addr = el.learnerAddr.value.trim();
    if (!addr) {
      showResult('error', 'Enter the new node\u2019s address (host:port).');
      el.learnerAddr.focus();
      return;
    }
    await withBusy(el.learnerBtn, async function () {
      const res = await adminCall('POST', '/admin/nodes', { id: id, addr: addr });
      if (res.ok) showResult('ok', 'Node ' + id + ' (' + addr + ') added as a learner (HTTP ' + res.status + ').', res.data);
      else showResult('error', failureText(res));
    });
  }

  async function onPromote(event) {
    event.preventDefault();
    const id = readNodeId(el.promoteId);
    if (id === null) return;
    await withBusy(el.promoteBtn, async function () {
      const res = await adminCall('POST', '/admin/nodes/' + id + '/promote');
      if (res.ok) showResult('ok', 'Node ' + id + ' promoted to voter (HTTP ' + res.status + ').', res.data);
      else showResult('error', failureText(res));
    });
  }

  async function onRemove(event) {
    event.preventDefault();
    const id = readNodeId(el.removeId);
    if (id === null) return;
    await withBusy(el.removeBtn, async function () {
      const res = await adminCall('POST', '/admin/nodes/' + id + '/remove');
      if (res.ok) showResult('ok', 'Node ' + id + ' removed from the cluster (HTTP ' + res.status + ').', res.data);
      else showResult('error', failureText(res));
    });
  }

  function fmtTime(ms) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    return isNaN(d.getTime()) ? '—' : d.toLocaleString();
  }

  /** Fills the sessions table for `user`. */
  function renderSessions(user, sessions) {
    live.sessionsUser = user;
    el.sessionsCaption.textContent = 'Sessions of ' + user;
    el.sessionsBody.textContent = '';

    if (sessions.length === 0) {
      const tr = make('tr');
      const td = make('td', 'empty', 'No active sessions.');
      td.colSpan = 4;
      tr.appendChild(td);
      el.sessionsBody.appendChild(tr);
    }
    sessions.forEach(function (s) {
      const tr = make('tr');
      const sid = make('td');
      sid.appendChild(make('code', '', s && typeof s.sid_hash === 'string' ? s.sid_hash : '—'));
      tr.append(
        sid,
        make('td', '', fmtTime(s && s.created_at_ms)),
        make('td', '', fmtTime(s && s.expires_at_ms)),
        make('td', 'num', fmtInt(s && s.version))
      );
      el.sessionsBody.appendChild(tr);
    });
    el.sessionsWrap.hidden = false;
  }

  /** GETs a user's sessions. With quiet=true only the table is updated (used after revoke). */
  async function fetchSessions(user, quiet) {
    const res = await adminCall('GET', '/admin/users/' + encodeURIComponent(user) + '/sessions');
    if (res.ok && res.data && Array.isArray(res.data.sessions)) {
      const who = typeof res.data.user === 'string' ? res.data.user : user;
      renderSessions(who, res.data.sessions);
      if (!quiet) {
        const n = res.data.sessions.length;
        showResult('ok', who + ' has ' + n + ' active session' + (n === 1 ? '' : 's') + ' (HTTP ' + res.status + ').');
      }
    } else if (!quiet) {
      showResult('error', res.ok ? 'Unexpected response from the server (HTTP ' + res.status + ').' : failureText(res));
    }
  }

  async function onListSessions(event) {
    event.preventDefault();
    const user = readUser();
    if (user === null) return;
    await withBusy(el.listBtn, function () {
      return fetchSessions(user, false);
    });
  }

  async function onRevoke() {
    const user = readUser();
    if (user === null) return;
    await withBusy(el.revokeBtn, async function () {
      const res = await adminCall('POST', '/admin/users/' + encodeURIComponent(user) + '/revoke');
      if (!res.ok) {
        showResult('error', failureText(res));
        return;
      }
      const who = res.data && typeof res.data.user === 'string' ? res.data.user : user;
      const n = res.data && isNum(res.data.revoked) ? res.data.revoked : null;
      showResult('ok', 'Logged out ' + who + ' everywhere' +
        (n === null ? '' : ' — ' + n + ' session' + (n === 1 ? '' : 's') + ' revoked') +
        ' (HTTP ' + res.status + ').');
      if (live.sessionsUser === who) await fetchSessions(who, true);
    });
  }

  // ---------------------------------------------------------------------------
  // Boot
  // ---------------------------------------------------------------------------

  function init() {
    el = {
      connStatus: byId('conn-status'),
      connText: byId('conn-status').querySelector('.conn-text') || byId('conn-status'),
      lastUpdate: byId('last-update'),
      observer: byId('observer'),
      sessions: byId('stat-sessions'),
      keys: byId('stat-keys'),
      respOps: byId('stat-resp-ops'),
      writes: byId('stat-writes'),
      reads: byId('stat-reads'),
      localReads: byId('stat-local-reads'),
      batch: byId('stat-batch'),
      term: byId('stat-term'),
      clusterVersion: byId('stat-cluster-version'),
      leaderId: byId('leader-id'),
      leaderUnit: byId('leader-unit'),
      sparkWrites: byId('spark-writes'),
      sparkReads: byId('spark-reads'),
      nodes: byId('nodes'),
      placeholder: byId('nodes').querySelector('.placeholder'),
      announcer: byId('dash-announcer'),
      token: byId('admin-token'),
      result: byId('admin-result'),
      snapshotBtn: byId('snapshot-btn'),
      learnerForm: byId('learner-form'),
      learnerId: byId('learner-id'),
      learnerAddr: byId('learner-addr'),
      learnerBtn: byId('learner-btn'),
      promoteForm: byId('promote-form'),
      promoteId: byId('promote-id'),
      promoteBtn: byId('promote-btn'),
      removeForm: byId('remove-form'),
      removeId: byId('remove-id'),
      removeBtn: byId('remove-btn'),
      sessionsForm: byId('sessions-form'),
      userName: byId('user-name'),
      listBtn: byId('list-sessions-btn'),
      revokeBtn: byId('revoke-btn'),
      sessionsWrap: byId('sessions-wrap'),
      sessionsCaption: byId('sessions-caption'),
      sessionsBody: byId('sessions-body'),
    };

    // Admin token lives in sessionStorage (this tab only).
    el.token.value = loadToken();
    el.token.addEventListener('input', function () {
      saveToken(el.token.value.trim());
    });

    // Enter in the token field must not reload the page.
    byId('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      saveToken(el.token.value.trim());
    });

    el.snapshotBtn.addEventListener('click', onSnapshot);
    el.learnerForm.addEventListener('submit', onAddLearner);
    el.promoteForm.addEventListener('submit', onPromote);
    el.removeForm.addEventListener('submit', onRemove);
    el.sessionsForm.addEventListener('submit', onListSessions);
    el.revokeBtn.addEventListener('click', onRevoke);

    // Don't leave a dangling connection when the page goes away.
    window.addEventListener('pagehide', function () {
      if (live.source) live.source.close();
    });
    window.addEventListener('pageshow', function (e) {
      if (e.persisted) connect(); // restored from the back/forward cache
    });

    connect();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
