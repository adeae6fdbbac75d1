// Sluice admin dashboard: plain ES module, no build step. Talks to the /v1 API with the token the
// user logs in with (kept in sessionStorage: gone when the tab closes), so it shows exactly what
// that token may see: root every VO, a VO admin only their VO. Live by polling every 2 s.
const TOKEN_KEY = 'sluice.token';
const POLL_MS = 2000;
const $main = document.getElementById('main');
let stopView = () => {};
let whoami = null;

// ---- helpers ----------------------------------------------------------------------------------

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${u[i]}`;
}
const fmtRate = (n) => `${fmtBytes(n)}/s`;
const fmtPct = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '');

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, { method = 'GET', body } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401) { logout('Your token was refused (expired?). Log in again.'); throw new ApiError(401, 'Unauthorized', 'token refused'); }
  if (!res.ok) throw new ApiError(res.status, data?.error?.code ?? 'Error', data?.error?.message ?? res.statusText);
  return data;
}

function live(ok) {
  document.getElementById('live').textContent = ok ? `live · updated ${new Date().toLocaleTimeString()}` : 'connection problem, retrying…';
}

/** Runs `refresh` now and every POLL_MS until the view changes; errors show and polling goes on. */
function poll(refresh) {
  let stopped = false;
  let timer;
  const tick = async () => {
    try { await refresh(); live(true); } catch (e) { if (!stopped) live(false); console.error(e); }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function sparkline(canvas, values) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 160;
  const h = canvas.clientHeight || 32;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  if (!values.length) return;
  const max = Math.max(1, ...values);
  ctx.strokeStyle = '#0969da';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = values.length === 1 ? w : (i / (values.length - 1)) * (w - 2) + 1;
    const y = h - 2 - (v / max) * (h - 4);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
}

// ---- login ------------------------------------------------------------------------------------

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  whoami = null;
  location.hash = '#/login';
  if (message) sessionStorage.setItem('sluice.message', message);
  route();
}

function viewLogin() {
  const msg = sessionStorage.getItem('sluice.message');
  sessionStorage.removeItem('sluice.message');
  $main.innerHTML = `
    <form class="login" id="login">
      <h2>Log in</h2>
      ${msg ? `<div class="error">${esc(msg)}</div>` : ''}
      <p>Paste a Sluice token (<code>sluice token</code> for root, <code>sluice token --vo VO</code> for a VO account).</p>
      <textarea name="token" id="token" placeholder="eyJ..." required></textarea>
      <p><button type="submit">Log in</button></p>
      <div id="login-error"></div>
    </form>`;
  document.getElementById('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
    try {
      whoami = await api('/v1/accounts/whoami');
      if (location.hash === '#/links') route();
      else location.hash = '#/links';
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      document.getElementById('login-error').innerHTML = `<div class="error">${esc(e.message)}</div>`;
    }
  });
  return () => {};
}

// ---- links ------------------------------------------------------------------------------------

const linkName = (l) => `${l.source} → ${l.destination}`;

function viewLinks() {
  $main.innerHTML = `<h2>Links</h2><div id="links-note"></div>
    <table id="links"><thead><tr><th>Link</th><th class="num">Throughput</th><th>Last 30 min</th><th class="num">Active / limit</th>
    <th class="num">Queued</th><th class="num">Success</th><th>VOs</th></tr></thead><tbody></tbody></table>`;
  const body = $main.querySelector('#links tbody');
  const history = new Map();
  let statsAt = 0;
  return poll(async () => {
    let links;
    try {
      links = (await api('/v1/links')).items;
    } catch (e) {
      if (e.status === 404) {
        document.getElementById('links-note').innerHTML = '<div class="note">This server has no link API (/v1/links) yet: no links to show.</div>';
        body.innerHTML = '';
        return;
      }
      throw e;
    }
    document.getElementById('links-note').innerHTML = links.length ? '' : '<div class="note">No links yet: links appear when transfers are first scheduled between two endpoints.</div>';
    // Sparklines: per-minute history, refreshed every 10 s (the current minute is live).
    if (Date.now() - statsAt > 10_000) {
      statsAt = Date.now();
      const from = new Date(Date.now() - 30 * 60_000).toISOString();
      await Promise.all(links.slice(0, 50).map(async (l) => {
        const s = await api(`/v1/links/${l.id}/stats?from=${from}&step=60`).catch(() => null);
        if (s) history.set(l.id, s.points.map((p) => p.bytes_per_second));
      }));
    }
    body.innerHTML = links.map((l) => `
      <tr data-link="${l.id}">
        <td><a class="link" href="#/links/${l.id}">${esc(linkName(l))}</a>${l.pinned ? ' <span class="badge">pinned</span>' : ''}</td>
        <td class="num throughput" data-bps="${l.bytes_per_second}">${fmtRate(l.bytes_per_second)}</td>
        <td><canvas class="spark"></canvas></td>
        <td class="num">${l.active} / ${l.limit}</td>
        <td class="num">${l.queued}</td>
        <td class="num">${fmtPct(l.success_rate)}</td>
        <td>${l.vos.map((v) => `${esc(v.vo)} ${v.active}/${v.queued}`).join(', ')}</td>
      </tr>`).join('');
    for (const l of links) {
      const c = body.querySelector(`tr[data-link="${l.id}"] canvas`);
      const h = [...(history.get(l.id) ?? [])];
      if (h.length) h[h.length - 1] = Math.max(h[h.length - 1], l.bytes_per_second);
      if (c) sparkline(c, h);
    }
  });
}

// ---- one link ---------------------------------------------------------------------------------

function viewLink(id) {
  $main.innerHTML = `<p><a class="link" href="#/links">← links</a></p><h2 id="link-title">Link ${esc(id)}</h2>
    <div class="cards" id="cards"></div>
    <h3>Throughput (per minute; the last point is live)</h3><div class="chart" id="chart-tp"></div>
    <h3>Concurrency: limit set by the optimizer, active transfers; ◆ decisions</h3><div class="chart" id="chart-cc"></div>
    <h3>Optimizer decisions</h3><div id="decisions"></div>
    <h3>VO shares of the link's slots</h3><div id="vos"></div>`;
  const width = () => Math.max(400, $main.clientWidth - 40);
  const axes = (fmt) => [{}, { values: (u, vals) => vals.map(fmt), size: 80 }];
  let tp;
  let cc;
  const activeSamples = [];
  const onResize = () => { tp?.setSize({ width: width(), height: 220 }); cc?.setSize({ width: width(), height: 220 }); };
  window.addEventListener('resize', onResize);
  const stop = poll(async () => {
    const now = Date.now() / 1000;
    const from = new Date((now - 3600) * 1000).toISOString();
    const [link, stats, decisions] = await Promise.all([
      api(`/v1/links/${id}`).catch((e) => { if (e.status === 404) return null; throw e; }),
      api(`/v1/links/${id}/stats?from=${from}&step=60`).catch(() => null),
      api(`/v1/links/${id}/decisions?limit=500`).then((d) => d.items).catch(() => []),
    ]);
    if (!link) {
      document.getElementById('cards').innerHTML = '<div class="note">No such link, or this server has no link API (/v1/links) yet.</div>';
      return;
    }
    document.getElementById('link-title').textContent = `Link ${linkName(link)}`;
    document.getElementById('cards').innerHTML = `
      <div class="card">Throughput<b id="link-throughput" data-bps="${link.bytes_per_second}">${fmtRate(link.bytes_per_second)}</b></div>
      <div class="card">Active / limit<b>${link.active} / ${link.limit}</b>[${link.min}, ${link.max}]${link.pinned ? ' pinned' : ''}</div>
      <div class="card">Queued<b>${link.queued}</b></div>
      <div class="card">Success rate<b>${fmtPct(link.success_rate)}</b></div>`;
    activeSamples.push([now, link.active]);
    while (activeSamples.length && activeSamples[0][0] < now - 3600) activeSamples.shift();

    // One x axis for both charts: the last hour up to now.
    const scales = { x: { time: true, min: now - 3600, max: now } };
    const pts = stats?.points ?? [];
    const tpData = [pts.map((p) => new Date(p.t).getTime() / 1000), pts.map((p) => p.bytes_per_second)];
    if (tpData[1].length) tpData[1][tpData[1].length - 1] = Math.max(tpData[1][tpData[1].length - 1], link.bytes_per_second);
    if (!tp) {
      tp = new uPlot({ width: width(), height: 220, scales, axes: axes(fmtRate), series: [{}, { label: 'bytes/s', stroke: '#0969da', fill: 'rgba(9,105,218,0.1)', value: (u, v) => (v === null || v === undefined ? '–' : fmtRate(v)) }] }, tpData, document.getElementById('chart-tp'));
    } else {
      tp.setData(tpData, false);
      tp.setScale('x', { min: now - 3600, max: now });
    }
    // Limit as a step line from the decisions (oldest first), extended to now with the current limit.
    const ds = [...decisions].reverse().filter((d) => new Date(d.at).getTime() / 1000 >= now - 3600);
    const xs = new Set([...ds.map((d) => new Date(d.at).getTime() / 1000), ...activeSamples.map((s) => s[0]), now - 3600, now]);
    const x = [...xs].sort((a, b) => a - b);
    const limitAt = (t) => {
      let v = ds.length ? ds[0].previous_limit : link.limit;
      for (const d of ds) if (new Date(d.at).getTime() / 1000 <= t) v = d.limit;
      return t >= now ? link.limit : v;
    };
    const activeAt = new Map(activeSamples.map((s) => [s[0], s[1]]));
    const decisionAt = new Map(ds.map((d) => [new Date(d.at).getTime() / 1000, d.limit]));
    const ccData = [x, x.map(limitAt), x.map((t) => activeAt.get(t) ?? null), x.map((t) => decisionAt.get(t) ?? null)];
    if (!cc) {
      cc = new uPlot({
        width: width(), height: 220, scales, axes: axes((v) => v),
        series: [{}, { label: 'limit', stroke: '#cf222e', paths: uPlot.paths.stepped({ align: 1 }) },
          { label: 'active', stroke: '#1a7f37', spanGaps: true },
          { label: 'decision', stroke: '#9a6700', paths: () => null, points: { show: true, size: 9, fill: '#9a6700' } }],
      }, ccData, document.getElementById('chart-cc'));
    } else {
      cc.setData(ccData, false);
      cc.setScale('x', { min: now - 3600, max: now });
    }
    document.getElementById('decisions').innerHTML = decisions.length
      ? `<table id="decisions-table"><thead><tr><th>At</th><th class="num">Limit</th><th>Reason</th></tr></thead><tbody>${decisions.slice(0, 50).map((d) => `
          <tr><td>${esc(fmtTime(d.at))}</td><td class="num">${d.previous_limit} → ${d.limit}</td><td class="reason">${esc(d.reason)}</td></tr>`).join('')}</tbody></table>`
      : '<div class="note">No optimizer decisions on this link yet.</div>';
    const total = link.vos.reduce((s, v) => s + v.active, 0) || 1;
    document.getElementById('vos').innerHTML = link.vos.length
      ? `<table><thead><tr><th>VO</th><th class="num">Share</th><th class="num">Active</th><th class="num">Slots used</th><th class="num">Queued</th></tr></thead><tbody>${link.vos.map((v) => `
          <tr><td>${esc(v.vo)}</td><td class="num">${fmtPct(v.share)}</td><td class="num">${v.active}</td><td class="num">${fmtPct(v.active / total)}</td><td class="num">${v.queued}</td></tr>`).join('')}</tbody></table>`
      : '<div class="note">No VO has transfers on this link now.</div>';
  });
  return () => { stop(); window.removeEventListener('resize', onResize); };
}

// ---- rules ------------------------------------------------------------------------------------

function viewRules() {
  $main.innerHTML = '<h2>Rules</h2><div id="rules"></div>';
  const el = document.getElementById('rules');
  if (whoami?.kind === 'root') {
    el.innerHTML = '<div class="note">Rules belong to VOs: log in with a VO admin token (sluice token --vo VO) to see a VO\'s rules.</div>';
    return () => {};
  }
  return poll(async () => {
    const rules = (await api('/v1/rules?limit=1000')).items;
    const by = {};
    for (const r of rules) by[r.state] = (by[r.state] ?? 0) + 1;
    const stuck = rules.filter((r) => r.state === 'STUCK' || r.state === 'SUSPENDED').slice(0, 20);
    const locks = await Promise.all(stuck.map((r) => api(`/v1/rules/${r.id}/locks?state=STUCK&limit=50`).then((p) => p.items).catch(() => [])));
    el.innerHTML = `
      <div class="cards">${['OK', 'REPLICATING', 'STUCK', 'SUSPENDED'].map((s) => `<div class="card ${s}">${s}<b>${by[s] ?? 0}</b></div>`).join('')}</div>
      <h3>Stuck rules and why</h3>
      ${stuck.length ? stuck.map((r, i) => `
        <div class="card" style="margin-bottom:.6em"><b style="font-size:14px">${esc(r.scope)}:${esc(r.name)} → ${esc(r.rse_expression)}</b>
          <span class="badge ${r.state}">${r.state}</span> ${r.locks_stuck_cnt} stuck, ${r.unplaced_cnt} unplaced · stuck since ${esc(fmtTime(r.stuck_at))}
          ${r.error ? `<div>${esc(r.error)}</div>` : ''}
          <table><thead><tr><th>File</th><th>RSE</th><th>Reason</th></tr></thead><tbody>${locks[i].map((l) => `<tr><td>${esc(l.scope)}:${esc(l.name)}</td><td>${esc(l.rse)}</td><td>${esc(l.error ?? '')}</td></tr>`).join('')}</tbody></table>
        </div>`).join('') : '<div class="note">No stuck rules.</div>'}
      <h3>Recent rules</h3>
      <table><thead><tr><th>DID</th><th>Expression</th><th>State</th><th class="num">OK / replicating / stuck</th><th>Created</th></tr></thead><tbody>
      ${rules.slice(-50).reverse().map((r) => `<tr><td>${esc(r.scope)}:${esc(r.name)}</td><td>${esc(r.rse_expression)}</td><td class="${r.state}">${r.state}</td>
        <td class="num">${r.locks_ok_cnt} / ${r.locks_replicating_cnt} / ${r.locks_stuck_cnt}</td><td>${esc(fmtTime(r.created_at))}</td></tr>`).join('')}</tbody></table>`;
  });
}

// ---- endpoints --------------------------------------------------------------------------------

function viewEndpoints() {
  $main.innerHTML = '<h2>Storage endpoints</h2><p>Probed periodically (write, read, checksum, delete); excluded after consecutive failures, readmitted when they recover. Excluded and banned endpoints get no new transfers.</p><div id="eps"></div>';
  const el = document.getElementById('eps');
  const isRoot = whoami?.kind === 'root';
  el.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-ban], button[data-unban]');
    if (!b) return;
    try {
      if (b.dataset.ban) {
        const reason = prompt(`Why ban ${b.dataset.ban}?`);
        if (!reason) return;
        await api(`/v1/endpoints/${encodeURIComponent(b.dataset.ban)}/ban`, { method: 'PUT', body: { reason } });
      } else {
        await api(`/v1/endpoints/${encodeURIComponent(b.dataset.unban)}/ban`, { method: 'DELETE' });
      }
    } catch (e) { alert(e.message); }
  });
  return poll(async () => {
    const eps = (await api('/v1/endpoints/-/status')).items;
    el.innerHTML = `<table id="endpoints"><thead><tr><th>Endpoint</th><th>Status</th><th>Reason</th><th>Since</th><th class="num">Failures in a row</th><th>Last probe</th>${isRoot ? '<th></th>' : ''}</tr></thead><tbody>
      ${eps.map((e) => `<tr data-endpoint="${esc(e.name)}"><td>${esc(e.name)}<br><small>${esc(e.url)}</small></td><td><span class="badge ${e.status}">${e.status}</span></td>
        <td>${esc(e.reason ?? '')}</td><td>${esc(fmtTime(e.since))}</td><td class="num">${e.consecutive_failures}</td>
        <td>${e.last_probes[0] ? `${e.last_probes[0].ok ? '✓' : '✗'} ${esc(fmtTime(e.last_probes[0].at))}` : 'never'}</td>
        ${isRoot ? `<td>${e.status === 'banned' ? `<button data-unban="${esc(e.name)}">Lift ban</button>` : `<button data-ban="${esc(e.name)}">Ban…</button>`}</td>` : ''}</tr>`).join('')}</tbody></table>`;
  });
}

// ---- usage ------------------------------------------------------------------------------------

function viewUsage() {
  $main.innerHTML = '<h2>Usage</h2><div id="usage"></div>';
  const el = document.getElementById('usage');
  return poll(async () => {
    const u = await api('/v1/usage');
    el.innerHTML = `<h3>Replicas per RSE</h3><table><thead><tr><th>VO</th><th>RSE</th><th class="num">Files</th><th class="num">Bytes</th><th class="num">Quota</th></tr></thead><tbody>
      ${u.rses.map((r) => `<tr><td>${esc(r.vo)}</td><td>${esc(r.rse)}</td><td class="num">${r.files}</td><td class="num">${fmtBytes(r.bytes)}</td>
        <td class="num">${r.quota_bytes === null ? '–' : `${fmtBytes(r.quota_bytes)} (${fmtPct(r.bytes / Math.max(1, r.quota_bytes))})`}</td></tr>`).join('')}</tbody></table>
      <h3>Locked by rules, per account</h3><table><thead><tr><th>VO</th><th>Account</th><th>RSE</th><th class="num">Files</th><th class="num">Bytes</th></tr></thead><tbody>
      ${u.accounts.map((a) => `<tr><td>${esc(a.vo)}</td><td>${esc(a.account)}</td><td>${esc(a.rse)}</td><td class="num">${a.files}</td><td class="num">${fmtBytes(a.bytes)}</td></tr>`).join('')}</tbody></table>`;
  });
}

// ---- routing ----------------------------------------------------------------------------------

async function route() {
  stopView();
  const token = sessionStorage.getItem(TOKEN_KEY);
  const hash = location.hash || '#/links';
  const nav = document.getElementById('nav');
  const out = document.getElementById('logout');
  if (!token) {
    nav.hidden = true;
    out.hidden = true;
    document.getElementById('who').textContent = '';
    stopView = viewLogin();
    return;
  }
  if (!whoami) {
    try { whoami = await api('/v1/accounts/whoami'); } catch { return; }
  }
  nav.hidden = false;
  out.hidden = false;
  document.getElementById('who').textContent = whoami.kind === 'root' ? 'root (all VOs)' : `${whoami.account}@${whoami.vo} (${whoami.role})`;
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')));
  const m = hash.match(/^#\/links\/(\d+)/);
  if (m) stopView = viewLink(m[1]);
  else if (hash.startsWith('#/rules')) stopView = viewRules();
  else if (hash.startsWith('#/endpoints')) stopView = viewEndpoints();
  else if (hash.startsWith('#/usage')) stopView = viewUsage();
  else stopView = viewLinks();
}

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', route);
route();
