/*
 * sessionraft — demo app (served at "/").
 *
 * Talks to the same-origin JSON API:
 *   GET  /api/whoami   -> {user, counter, served_by}
 *   GET  /api/counter  -> {counter, served_by}
 *   POST /api/counter  -> {counter, served_by}
 *   POST /api/login    -> {user, counter, served_by}   (body {"user": "..."})
 *   POST /api/logout   -> {signed_out, served_by}
 *   GET  /api/nodes    -> {self, nodes: [{id, url}], lb_url}
 *
 * Everything lives inside one IIFE: nothing leaks onto window.
 */
(function () {
  'use strict';

  /** How many entries the activity log keeps. */
  const MAX_LOG_ENTRIES = 8;

  /** Messages for well-known failure statuses (anything else uses the body's `error`). */
  const STATUS_MESSAGES = {
    0: 'Could not reach this node — it may be down. Try another node from the list.',
    409: 'Someone changed your session at the same time — try again.',
    503: 'The cluster has no quorum right now — retrying is safe.',
  };

  /** Client-side view of the page. */
  const state = {
    user: null,
    counter: null,
    servedBy: null,
    nodes: [],
    self: null,
    lbUrl: null,
    nodesLoaded: false,
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

  /** "HH:MM:SS" in local time. */
  function clock(date) {
    return pad2(date.getHours()) + ':' + pad2(date.getMinutes()) + ':' + pad2(date.getSeconds());
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

  function originOf(raw) {
    try {
      return new URL(raw, window.location.href).origin;
    } catch (_) {
      return null;
    }
  }

  /** Re-trigger a one-shot CSS animation class on an element. */
  function replayAnimation(node, cls) {
    node.classList.remove(cls);
    void node.offsetWidth; // force reflow so the animation restarts
    node.classList.add(cls);
  }

  // ---------------------------------------------------------------------------
  // API
  // ---------------------------------------------------------------------------

  /**
   * Performs a same-origin request and never throws.
   * Resolves to {ok, status, data} where data is the parsed JSON body or null.
   * status is 0 on network failure.
   */
  async function api(method, path, body) {
    const opts = {
      method: method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { accept: 'application/json' },
    };
    if (body !== undefined) {
      opts.headers['content-type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }

    let res;
    try {
      res = await fetch(path, opts);
    } catch (_) {
      return { ok: false, status: 0, data: null };
    }

    let data = null;
    try {
      const text = await res.text();
      if (text) data = JSON.parse(text);
    } catch (_) {
      data = null; // non-JSON body (e.g. a proxy error page) — handled by callers
    }
    if (data !== null && typeof data !== 'object') data = null;
    return { ok: res.ok, status: res.status, data: data };
  }

  /** Human message for a failed response. */
  function errorMessage(res) {
    if (Object.prototype.hasOwnProperty.call(STATUS_MESSAGES, res.status)) {
      return STATUS_MESSAGES[res.status];
    }
    if (res.data && typeof res.data.error === 'string' && res.data.error.trim() !== '') {
      return res.data.error;
    }
    if (res.ok) return 'The server sent an unexpected response.';
    return 'Request failed (HTTP ' + res.status + ').';
  }

  /** Short status tag for the activity log. */
  function statusTag(res) {
    return res.status === 0 ? 'network error' : 'HTTP ' + res.status;
  }

  // ---------------------------------------------------------------------------
  // Error banner
  // ---------------------------------------------------------------------------

  function showError(message) {
    el.errorText.textContent = message;
    el.errorBanner.hidden = false;
  }

  function hideError() {
    el.errorBanner.hidden = true;
    el.errorText.textContent = '';
  }

  // ---------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------

  function setServedBy(id) {
    if (!isNum(id)) return;
    const changed = state.servedBy !== id;
    state.servedBy = id;
    el.servedById.textContent = String(id);
    el.servedBy.dataset.node = String(id);
    replayAnimation(el.servedBy, 'pulse');
    if (changed) renderNodeLinks();
  }

  function setCounter(value) {
    if (!isNum(value)) return;
    const changed = state.counter !== value;
    state.counter = value;
    el.counter.textContent = String(value);
    if (changed) replayAnimation(el.counter, 'bump');
  }

  /** Shows either the sign-in form or the "Signed in as" block. */
  function renderAuth() {
    el.authLoading.hidden = true;
    const signedIn = typeof state.user === 'string' && state.user !== '';
    el.loginForm.hidden = signedIn;
    el.signedIn.hidden = !signedIn;
    if (signedIn) {
      el.whoamiUser.textContent = state.user;
      el.avatar.textContent = Array.from(state.user.trim())[0] || '?';
    } else {
      el.whoamiUser.textContent = '';
      el.avatar.textContent = '';
    }
  }

  /** Which node (if any) serves the page the user is looking at. */
  function currentNodeId() {
    const here = window.location.origin;
    for (const n of state.nodes) {
      if (originOf(n.url) === here) return n.id;
    }
    if (state.lbUrl && originOf(state.lbUrl) === here) return null; // on the load balancer
    return isNum(state.self) ? state.self : null;
  }

  function renderNodeLinks() {
    if (!state.nodesLoaded) return;
    const list = el.nodeLinks;
    list.textContent = '';

    if (state.nodes.length === 0) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = 'Node list unavailable.';
      list.appendChild(li);
    }

    const current = currentNodeId();
    for (const n of state.nodes) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.className = 'node-link';
      a.dataset.nodeId = String(n.id);
      a.href = n.url + '/';

      const dot = document.createElement('span');
      dot.className = 'nl-dot';
      dot.setAttribute('aria-hidden', 'true');

      const name = document.createElement('span');
      name.className = 'nl-name';
      name.textContent = 'Node ' + n.id;

      const host = document.createElement('span');
      host.className = 'nl-host';
      try {
        host.textContent = new URL(n.url).host;
      } catch (_) {
        host.textContent = n.url;
      }

      a.append(dot, name, host);

      if (n.id === current) {
        a.classList.add('is-current');
        a.setAttribute('aria-current', 'page');
        const tag = document.createElement('span');
        tag.className = 'nl-tag';
        tag.textContent = 'current';
        a.appendChild(tag);
      }
      if (n.id === state.servedBy) {
        a.classList.add('is-serving');
        a.title = 'Served your last request';
      }

      li.appendChild(a);
      list.appendChild(li);
    }

    // Optional load balancer link.
    if (state.lbUrl) {
      el.lbLink.href = state.lbUrl + '/';
      const onLb = originOf(state.lbUrl) === window.location.origin;
      el.lbLink.classList.toggle('is-current', onLb);
      if (onLb) el.lbLink.setAttribute('aria-current', 'page');
      else el.lbLink.removeAttribute('aria-current');
      el.lbWrap.hidden = false;
    } else {
      el.lbWrap.hidden = true;
    }
  }

  /** Adds one line to the activity log (newest first, capped). */
  function logEvent(text, isError) {
    const li = document.createElement('li');
    if (isError) li.classList.add('is-error');
    const now = new Date();
    const time = document.createElement('time');
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    const msg = document.createElement('span');
    msg.textContent = text;
    li.append(time, ' ', msg);

    el.eventLog.insertBefore(li, el.eventLog.firstChild);
    while (el.eventLog.children.length > MAX_LOG_ENTRIES) {
      el.eventLog.lastElementChild.remove();
    }
    el.eventLogEmpty.hidden = true;
  }

  function nodeSuffix(data) {
    return data && isNum(data.served_by) ? ' (node ' + data.served_by + ')' : '';
  }

  /** Applies {user?, counter?, served_by?} from any successful response. */
  function applyResponse(data, opts) {
    if (!data) return;
    if (isNum(data.served_by)) setServedBy(data.served_by);
    if (isNum(data.counter)) setCounter(data.counter);
    if (opts && opts.user) {
      state.user = typeof data.user === 'string' ? data.user : null;
      renderAuth();
    }
  }

  /** Disables a button while `work` runs. */
  async function withBusy(button, work) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  /** Reports a failed call in the banner and the log. */
  function reportFailure(label, res) {
    showError(errorMessage(res));
    logEvent(label + ' failed: ' + statusTag(res), true);
  }

  // ---------------------------------------------------------------------------
  // Actions
  // ---------------------------------------------------------------------------

  async function loadWhoami(logLabel) {
    const res = await api('GET', '/api/whoami');
    if (res.ok && res.data) {
      applyResponse(res.data, { user: true });
      if (logLabel) {
        const who = state.user ? 'signed in as ' + state.user : 'signed out';
        logEvent(logLabel + ': ' + who + ', counter ' + state.counter + nodeSuffix(res.data));
      }
      return true;
    }
    // Could not tell: let the user try to sign in rather than show a spinner forever.
    if (el.loginForm.hidden && el.signedIn.hidden) renderAuth();
    reportFailure('Session check', res);
    return false;
  }

  async function loadNodes() {
    const res = await api('GET', '/api/nodes');
    const data = res.ok ? res.data : null;
    if (!data || !Array.isArray(data.nodes)) {
      state.nodesLoaded = true;
      state.nodes = [];
      renderNodeLinks();
      return false;
    }
    state.self = isNum(data.self) ? data.self : null;
    state.lbUrl = safeBaseUrl(data.lb_url);
    state.nodes = data.nodes
      .filter(function (n) { return n && isNum(n.id) && safeBaseUrl(n.url); })
      .map(function (n) { return { id: n.id, url: safeBaseUrl(n.url) }; })
      .sort(function (a, b) { return a.id - b.id; });
    state.nodesLoaded = true;
    renderNodeLinks();
    return true;
  }

  async function onLogin(event) {
    event.preventDefault();
    const name = el.loginName.value.trim();
    await withBusy(el.loginBtn, async function () {
      const res = await api('POST', '/api/login', { user: name });
      if (res.ok && res.data) {
        hideError();
        applyResponse(res.data, { user: true });
        logEvent('signed in as ' + (state.user || name) + ', counter ' + state.counter + nodeSuffix(res.data));
        el.loginName.value = '';
        el.logoutBtn.focus();
      } else {
        reportFailure('Sign in', res);
        el.loginName.focus();
      }
    });
  }

  async function onLogout() {
    await withBusy(el.logoutBtn, async function () {
      const res = await api('POST', '/api/logout');
      if (res.ok && res.data) {
        hideError();
        applyResponse(res.data);
        state.user = null;
        renderAuth();
        logEvent('signed out' + nodeSuffix(res.data));
        el.loginName.focus();
        await loadWhoami();
      } else {
        reportFailure('Sign out', res);
      }
    });
  }

  async function onIncrement() {
    await withBusy(el.incBtn, async function () {
      const res = await api('POST', '/api/counter');
      if (res.ok && res.data && isNum(res.data.counter)) {
        hideError();
        applyResponse(res.data);
        logEvent('+1 → ' + res.data.counter + nodeSuffix(res.data));
      } else {
        reportFailure('+1', res);
      }
    });
  }

  async function onRefresh() {
    await withBusy(el.refreshBtn, async function () {
      if (!state.nodes.length) loadNodes(); // retry a failed node list in the background
      const res = await api('GET', '/api/counter');
      if (res.ok && res.data && isNum(res.data.counter)) {
        hideError();
        applyResponse(res.data);
        logEvent('refresh → ' + res.data.counter + nodeSuffix(res.data));
      } else {
        reportFailure('Refresh', res);
      }
    });
  }

  // ---------------------------------------------------------------------------
  // Boot
  // ---------------------------------------------------------------------------

  function init() {
    el = {
      errorBanner: byId('error-banner'),
      errorText: byId('error-text'),
      errorDismiss: byId('error-dismiss'),
      servedBy: byId('served-by'),
      servedById: byId('served-by-id'),
      authLoading: byId('auth-loading'),
      loginForm: byId('login-form'),
      loginName: byId('login-name'),
      loginBtn: byId('login-btn'),
      signedIn: byId('signed-in'),
      whoamiUser: byId('whoami-user'),
      avatar: byId('avatar'),
      logoutBtn: byId('logout-btn'),
      counter: byId('counter'),
      incBtn: byId('inc-btn'),
      refreshBtn: byId('refresh-btn'),
      nodeLinks: byId('node-links'),
      lbWrap: byId('lb-wrap'),
      lbLink: byId('lb-link'),
      eventLog: byId('event-log'),
      eventLogEmpty: byId('event-log-empty'),
    };

    el.errorDismiss.addEventListener('click', hideError);
    el.errorBanner.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') hideError();
    });
    el.loginForm.addEventListener('submit', onLogin);
    el.logoutBtn.addEventListener('click', onLogout);
    el.incBtn.addEventListener('click', onIncrement);
    el.refreshBtn.addEventListener('click', onRefresh);

    loadNodes();
    loadWhoami('page loaded');
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
