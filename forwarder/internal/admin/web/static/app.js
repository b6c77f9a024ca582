// The delivery inspector page: plain JavaScript, no build step. Everything
// shown comes from the admin API of the listener that served the page, and
// every value is put in the page as text, never as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'zautic-forwarder-admin-token';
  const body = document.body;
  const tokenRequired = body.dataset.tokenRequired === 'true';
  const quarantineServed = body.dataset.quarantine === 'true';
  const refreshMs = 1000 * (Number(body.dataset.refreshSeconds) || 5);
  const pageSize = 50;

  const state = {
    type: '',
    endpoint: '',       // '' every endpoint; also scopes a lookup
    pages: [],          // before_seq of each older page visited; empty: newest
    next: 0,            // next_before_seq of the page shown
    searched: '',       // the id whose lookup is shown
    refreshing: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      node.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
    }
    return node;
  }

  // pathID escapes an id for one path segment; dots too, so that an id of
  // "." or ".." stays an id instead of moving up the path.
  function pathID(id) {
    return encodeURIComponent(id).replace(/\./g, '%2E');
  }

  // endpointQuery scopes a lookup to the endpoint the filter names: the same
  // event id may have been delivered through several endpoints.
  function endpointQuery() {
    return state.endpoint ? '?endpoint=' + encodeURIComponent(state.endpoint) : '';
  }


  // when shows a time in UTC with the zone named, the same in every
  // browser and in the logs: "2026-12-04 19:20:05 UTC".
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return isNaN(d) ? iso : utc(d);
  }

  function utc(d) {
    return d.toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }

  class NeedToken extends Error {}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  // api fetches a path of this listener with the tab's token; a 401 asks
  // for the token again.
  async function api(path, options) {
    if (tokenRequired && !token()) throw new NeedToken('token required');
    const opts = Object.assign({ cache: 'no-store' }, options || {});
    opts.headers = Object.assign({}, opts.headers || {});
    if (token()) opts.headers['Authorization'] = 'Bearer ' + token();
    const resp = await fetch(path, opts);
    if (resp.status === 401) {
      const answer = await resp.json().catch(() => ({}));
      sessionStorage.removeItem(TOKEN_KEY);
      askToken(answer.error || 'the admin token was refused');
      throw new NeedToken('token refused');
    }
    return resp;
  }

  async function json(resp) {
    const text = await resp.text();
    try { return JSON.parse(text); } catch (e) { return { error: text || resp.statusText }; }
  }

  // ---- token

  function askToken(message) {
    $('token-panel').hidden = false;
    $('token-error').textContent = message || '';
    showTokenNeeded(true);
    $('token-input').focus();
  }

  // ACTIONS are the controls that need the token; TOKEN_NEEDED is what the
  // tables say while it is missing, so that they do not look empty.
  const ACTIONS = ['replay-all', 'newest', 'newer', 'older', 'type-filter', 'search-submit', 'search-input'];
  const TOKEN_NEEDED = 'enter the admin token to see ';

  function showTokenNeeded(needed) {
    state.tokenNeeded = needed;
    for (const id of ACTIONS) $(id).disabled = needed;
    if (!needed) return;
    $('deliveries').tBodies[0].replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'empty token-needed' }, TOKEN_NEEDED + 'deliveries')));
    $('quarantine').tBodies[0].replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'empty token-needed' }, TOKEN_NEEDED + 'the quarantine')));
    $('page-info').textContent = '';
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('token-input').value.trim();
    if (!value) { $('token-error').textContent = 'enter the token'; return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    $('token-input').value = '';
    $('token-panel').hidden = true;
    showTokenNeeded(false);
    refresh();
  });

  // ---- overview

  async function loadOverview() {
    const o = await json(await fetch('/overview', { cache: 'no-store' }));
    const ready = $('ready');
    ready.textContent = o.ready ? 'ready' : 'not ready';
    ready.className = 'pill ' + (o.ready ? 'ok' : 'bad');
    ready.title = o.not_ready || '';
    const nats = o.nats || {};
    $('nats').textContent = 'NATS ' + (nats.status || 'unknown') + (nats.url ? ' · ' + nats.url : '') + (nats.server ? ' (' + nats.server + ')' : '');
    const dl = $('outcomes');
    dl.replaceChildren();
    const names = ['published', 'duplicate', 'ignored', 'rejected', 'unavailable', 'overloaded'];
    for (const name of Object.keys(o.outcomes || {})) if (!names.includes(name)) names.push(name);
    for (const name of names) {
      dl.append(el('div', { 'data-outcome': name }, el('dt', {}, name), el('dd', {}, (o.outcomes || {})[name] || 0)));
    }
    dl.append(replayedCount(o));
  }

  // replayedCount shows the quarantined entries published on replay: no
  // webhook request counts them, so without it a rotation's recovered
  // deliveries would show only as rejected.
  function replayedCount(o) {
    return el('div', { 'data-outcome': 'replayed', title: 'quarantined deliveries published on replay since start' },
      el('dt', {}, 'replayed'), el('dd', {}, o.replayed || 0));
  }

  // ---- recent deliveries

  function idLink(id) {
    if (!id) return el('span', { class: 'muted' }, '—');
    return el('a', { class: 'id', href: '#', title: 'find this delivery', onclick: (ev) => { ev.preventDefault(); search(id); } }, id);
  }

  async function loadDeliveries() {
    const params = new URLSearchParams({ limit: String(pageSize) });
    if (state.type) params.set('type', state.type);
    if (state.endpoint) params.set('endpoint', state.endpoint);
    const before = state.pages[state.pages.length - 1];
    if (before) params.set('before_seq', String(before));
    const resp = await api('/deliveries?' + params);
    const page = await json(resp);
    const tbody = $('deliveries').tBodies[0];
    if (!resp.ok) {
      tbody.replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'error' }, page.error)));
      return;
    }
    const rows = (page.deliveries || []).map((d) => el('tr', { 'data-seq': d.seq },
      el('td', {}, d.seq),
      el('td', { class: 'when' }, when(d.published_at)),
      el('td', {}, d.type),
      el('td', { class: 'id' }, idLink(d.delivery_id)),
      el('td', { class: 'id' }, idLink(d.event_id)),
      el('td', { class: 'num' }, d.size),
      el('td', { class: 'endpoint' }, d.endpoint || '')));
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'no deliveries' + (state.type ? ' of type ' + state.type : '') + (state.endpoint ? ' of endpoint ' + state.endpoint : '') + ' here')));
    tbody.replaceChildren(...rows);
    state.next = page.next_before_seq || 0;
    $('older').disabled = !state.next;
    $('newer').disabled = state.pages.length === 0;
    $('newest').disabled = state.pages.length === 0;
    $('page-info').textContent = (page.deliveries || []).length + ' shown' + (before ? ', before sequence ' + before : ', newest first');
  }

  $('type-filter').addEventListener('change', () => {
    state.type = $('type-filter').value;
    state.pages = [];
    loadDeliveries().catch(report);
  });
  if ($('endpoint-filter')) {
    $('endpoint-filter').addEventListener('change', () => {
      state.endpoint = $('endpoint-filter').value;
      state.pages = [];
      loadDeliveries().catch(report);
      if (state.searched) search(state.searched).catch(report);
    });
  }
  $('older').addEventListener('click', () => {
    if (!state.next) return;
    state.pages.push(state.next);
    loadDeliveries().catch(report);
  });
  $('newer').addEventListener('click', () => {
    state.pages.pop();
    loadDeliveries().catch(report);
  });
  $('newest').addEventListener('click', () => {
    state.pages = [];
    loadDeliveries().catch(report);
  });

  // ---- search

  const fieldOrder = ['status', 'endpoint', 'delivery_id', 'event_id', 'type', 'event_type', 'subject', 'stream', 'seq', 'published_at',
    'size', 'reason', 'received_at', 'signed_at', 'quarantine_seq', 'dedup_key', 'marked_at', 'detail'];

  function describe(answer) {
    const dl = el('dl');
    for (const key of fieldOrder) {
      if (answer[key] === undefined || answer[key] === '') continue;
      const value = key === 'status'
        ? el('span', { class: 'pill ' + (answer.status === 'published' ? 'ok' : answer.status === 'expired' ? 'warn' : 'bad') }, answer.status)
        : TIME_FIELDS.includes(key) ? when(answer[key]) : String(answer[key]);
      dl.append(fieldName(answer, key), el('dd', { 'data-field': key }, value));
    }
    return dl;
  }

  const TIME_FIELDS = ['published_at', 'received_at', 'marked_at'];

  // fieldName marks the fields the answer names as unsigned: they come from
  // an unverified request, and the page must not show them as facts.
  function fieldName(answer, key) {
    if (!(answer.unsigned || []).includes(key)) return el('dt', {}, key);
    return el('dt', { class: 'unsigned', title: 'from an unsigned header or the unverified body' }, key + ' (unsigned)');
  }

  async function search(id) {
    id = (id || '').trim();
    $('search-input').value = id;
    state.searched = id;
    const out = $('search-result');
    const payload = $('payload');
    payload.hidden = true;
    payload.textContent = '';
    if (!id) { out.replaceChildren(); return; }
    out.replaceChildren(el('p', { class: 'muted' }, 'looking up ' + id + '…'));
    const resp = await api('/deliveries/' + pathID(id) + endpointQuery());
    const answer = await json(resp);
    if (!resp.ok) {
      out.replaceChildren(el('p', { class: 'error', id: 'search-error' }, answer.error || resp.statusText));
      return;
    }
    const parts = [describe(answer)];
    const entries = answer.entries || answer.quarantine || [];
    if (entries.length > 1 || answer.quarantine) {
      parts.push(el('p', { class: 'muted' }, entries.length + ' quarantine entr' + (entries.length === 1 ? 'y' : 'ies') + ': ' +
        entries.map((q) => '#' + q.quarantine_seq + ' ' + q.reason).join(', ')));
    }
    if (answer.status === 'published') {
      parts.push(el('button', { id: 'show-payload', type: 'button', onclick: () => showPayload(id).catch(report) }, 'Show payload'));
    }
    out.replaceChildren(...parts);
  }

  async function showPayload(id) {
    const resp = await api('/deliveries/' + pathID(id) + '/body' + endpointQuery());
    const text = await resp.text();
    let shown = text;
    if (resp.ok) {
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: show as sent */ }
    }
    const payload = $('payload');
    payload.textContent = resp.ok ? shown : 'no payload: ' + text;
    payload.hidden = false;
  }

  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    search($('search-input').value).catch(report);
  });

  // ---- quarantine

  const TOLERANCE = 'timestamp_out_of_tolerance';

  async function loadQuarantine() {
    if (!quarantineServed) return;
    const resp = await api('/quarantine?limit=100');
    const tbody = $('quarantine').tBodies[0];
    const answer = await json(resp);
    if (!resp.ok) {
      tbody.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'error' }, answer.error || resp.statusText)));
      $('replay-all').disabled = true;
      return;
    }
    const entries = Array.isArray(answer) ? answer : (answer.entries || []);
    const rows = entries.map((q) => el('tr', { 'data-seq': q.seq, 'data-reason': q.reason },
      el('td', {}, q.seq),
      el('td', { class: 'when' }, when(q.received_at), q.signed_at
        ? el('div', { class: 'muted', 'data-field': 'signed_at', title: 'the t of the unverified signature header' }, 'signed ' + when(q.signed_at)) : ''),
      el('td', { class: 'reason' }, q.reason),
      el('td', { class: 'id' }, idLink(q.delivery_id)),
      el('td', {}, q.event_type || ''),
      el('td', { class: 'num' }, q.size),
      el('td', { class: 'endpoint' }, q.endpoint || ''),
      el('td', {}, el('button', { type: 'button', class: 'replay', onclick: (ev) => replay([q], ev.target).catch(report) }, 'Replay'))));
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'the quarantine is empty')));
    tbody.replaceChildren(...rows);
    $('replay-all').disabled = entries.length === 0 || !!state.tokenNeeded;
    state.quarantine = entries;
  }

  // replay sends the entries back through verification, by sequence: only
  // the ones given, which are the ones on the page. Entries held for their
  // timestamp are replayed ignoring the tolerance only after a confirmation
  // of their own that says how many they are, and in a request of their
  // own, so that the tolerance is ignored for nothing else.
  async function replay(entries, button) {
    const stale = entries.filter((q) => q.reason === TOLERANCE);
    const fresh = entries.filter((q) => q.reason !== TOLERANCE);
    const requests = [];
    if (fresh.length > 0) requests.push({ seqs: fresh.map((q) => q.seq) });
    let skipped = 0;
    if (stale.length > 0) {
      if (confirmIgnoreTolerance(stale)) requests.push({ seqs: stale.map((q) => q.seq), ignore_tolerance: true });
      else skipped = stale.length;
    }
    if (requests.length === 0) {
      $('quarantine-info').textContent = 'nothing replayed';
      return;
    }
    if (button) button.disabled = true;
    const said = [];
    for (const request of requests) {
      const resp = await api('/quarantine/replay', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
      });
      const answer = await json(resp);
      said.push(resp.ok ? summarize(answer) : 'failed: ' + (answer.error || resp.statusText));
    }
    $('quarantine-info').textContent = 'replayed: ' + said.join(', ') +
      (skipped ? ' (' + skipped + ' kept for their timestamp not replayed)' : '');
    await Promise.all([loadQuarantine(), loadDeliveries(), loadOverview()]);
  }

  function confirmIgnoreTolerance(stale) {
    const n = stale.length;
    return window.confirm(n + ' entr' + (n === 1 ? 'y was' : 'ies were') +
      ' quarantined for a timestamp outside the tolerance. Replay ' + (n === 1 ? 'it' : 'these ' + n) +
      ' ignoring the tolerance? An old signed request may be a captured copy.');
  }

  function summarize(answer) {
    if (Array.isArray(answer.results)) {
      return answer.results.map((r) => '#' + r.seq + ' ' + (r.status || r.outcome || r.error || '')).join(', ');
    }
    return JSON.stringify(answer);
  }

  // Replay all listed: the entries shown, never {"all":true}, which would
  // include entries the page does not show or that arrived since it loaded.
  $('replay-all').addEventListener('click', (ev) => replay(state.quarantine || [], ev.target).catch(report));

  // ---- refresh

  function report(err) {
    if (err instanceof NeedToken) return;
    $('updated').textContent = 'refresh failed: ' + err.message;
  }

  // refresh reloads everything but the search, which stays as the user
  // left it.
  async function refresh() {
    if (state.refreshing) return;
    state.refreshing = true;
    try {
      await loadOverview();
      if (tokenRequired && !token()) { askToken(''); return; }
      await Promise.all([loadDeliveries(), loadQuarantine()]);
      $('updated').textContent = 'updated ' + utc(new Date()).slice(11);
    } catch (err) {
      report(err);
    } finally {
      state.refreshing = false;
    }
  }

  if (tokenRequired && !token()) showTokenNeeded(true);
  refresh();
  setInterval(refresh, refreshMs);
}());
