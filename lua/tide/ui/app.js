// tide's dashboard: polls the JSON API of the process that serves it and
// draws its charts as SVG (no library, nothing fetched from elsewhere).
// Every text from the API goes into the page as text (textContent), never
// as markup.
'use strict';

const POLL_MS = 1000;
const SVG = 'http://www.w3.org/2000/svg';
let lastOk = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(a >= 100 ? 0 : a >= 1 ? 1 : 3);
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + ' ' + u[i];
}

function time(ms) {
  return ms === null || ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// A line chart: series [{name, points: [[x, y], ...]}], drawn into a fresh
// SVG; each line carries data-points (its number of points).
function chart(title, series, unit) {
  const W = 320, H = 140, L = 44, R = 8, T = 8, B = 18;
  const box = el('div', { class: 'chart' }, el('h4', {}, title));
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
  const all = series.flatMap(x => x.points);
  let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
  let y0 = Math.min(0, ...all.map(p => p[1])), y1 = Math.max(...all.map(p => p[1]));
  if (!all.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  s.append(svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  const label = (x, y, text, anchor) => {
    const t = svg('text', { x, y, 'text-anchor': anchor || 'end' });
    t.textContent = text;
    s.append(t);
  };
  label(L - 4, T + 8, fmt(y1));
  label(L - 4, H - B, fmt(y0));
  if (all.length) {
    label(L, H - 4, new Date(x0).toISOString().substr(11, 8), 'start');
    label(W - R, H - 4, new Date(x1).toISOString().substr(11, 8), 'end');
  }
  series.forEach((ser, i) => {
    const d = ser.points.map((p, k) => (k ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    s.append(svg('path', { class: `line s${i}`, d: d || 'M0 0', 'data-series': ser.name, 'data-points': ser.points.length }));
  });
  box.append(s);
  const legend = el('div', { class: 'legend' });
  series.forEach((ser, i) => {
    const last = ser.points.length ? ser.points[ser.points.length - 1][1] : null;
    legend.append(el('span', { class: `k${i}` }, `■ ${ser.name}: ${fmt(last)}${unit ? ' ' + unit : ''}  `));
  });
  box.append(legend);
  return box;
}

function points(progress, f) {
  const out = [];
  for (const p of progress) {
    const v = f(p);
    if (v !== null && v !== undefined && Number.isFinite(v)) out.push([p.timestamp, v]);
  }
  return out;
}

function renderQueries(data) {
  const body = document.querySelector('#queries tbody');
  body.replaceChildren();
  const charts = document.getElementById('charts');
  charts.replaceChildren();
  document.getElementById('no-queries').hidden = data.queries.length > 0;
  for (const q of data.queries) {
    const rp = q.recent_progress;
    const last = rp.length ? rp[rp.length - 1] : null;
    const status = q.exception ? 'failed: ' + q.exception : q.active ? q.status : 'stopped';
    const cls = q.exception ? 'status-failed' : q.active ? 'status-active' : '';
    body.append(el('tr', { 'data-query': q.id },
      el('td', {}, q.name || '-'), el('td', { class: 'muted' }, q.id), el('td', { class: cls }, status),
      el('td', {}, fmt(q.batches)), el('td', {}, fmt(q.input_rows)),
      el('td', {}, fmt(last ? last.input_rows_per_second : null)),
      el('td', {}, fmt(last ? last.processed_rows_per_second : null)), el('td', {}, time(q.watermark))));
    const card = el('div', { class: 'query', 'data-query': q.id }, el('h3', {}, (q.name || q.id) + ' '),
      el('div', { class: 'grid' },
        chart('Input vs processing rate', [
          { name: 'input rows/s', points: points(rp, p => p.input_rows_per_second) },
          { name: 'processed rows/s', points: points(rp, p => p.processed_rows_per_second) }]),
        chart('Batch duration', [{ name: 'total', points: points(rp, p => p.duration_ms.total) }], 'ms'),
        chart('Watermark delay (batch time - watermark)', [{ name: 'delay',
          points: points(rp, p => p.event_time && p.event_time.watermark > 0 ?
            (p.timestamp - p.event_time.watermark) / 1000 : null) }], 's'),
        chart('State rows', [{ name: 'rows', points: points(rp, p => p.state_operators.length ?
          p.state_operators.reduce((a, o) => a + (o.num_rows_total || 0), 0) : null) }])));
    card.querySelector('h3').append(el('span', { class: 'muted' }, `batch ${last ? last.batch_id : '-'}`));
    charts.append(card);
  }
}

function renderTopics(data) {
  const body = document.querySelector('#topics tbody');
  body.replaceChildren();
  document.getElementById('no-topics').hidden = data.topics.length > 0;
  for (const t of data.topics) {
    const parts = t.partitions.map(p => `p${p.partition}: ${p.earliest}..${p.latest}`).join(', ');
    const versions = (t.schema_versions || []).map(v => typeof v === 'object' ? v.version : v).join(', ');
    body.append(el('tr', { 'data-topic': t.name }, el('td', {}, t.name), el('td', {}, parts), el('td', {}, fmt(t.records)),
      el('td', {}, bytes(t.bytes)), el('td', {}, bytes(t.stored_bytes)), el('td', {}, fmt(t.segments)),
      el('td', {}, versions || String(t.schema_version))));
  }
}

function setState(ok) {
  const st = document.getElementById('state');
  const gone = document.getElementById('gone');
  if (ok) {
    lastOk = Date.now();
    st.textContent = 'live';
    st.className = 'state live';
    gone.hidden = true;
    document.body.classList.remove('gone');
    document.getElementById('updated').textContent = 'updated ' + new Date(lastOk).toLocaleTimeString();
  } else {
    st.textContent = 'process gone';
    st.className = 'state gone';
    gone.hidden = false;
    gone.textContent = 'The tide process is not answering' + (lastOk ? ' since ' + new Date(lastOk).toLocaleTimeString() : '') +
      ': it has ended or is unreachable. What is shown is the last data received; retrying.';
    document.body.classList.add('gone');
  }
}

let tick = 0;
async function poll() {
  try {
    const r = await fetch('/api/queries', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    renderQueries(await r.json());
    if (tick++ % 3 === 0) {
      const t = await fetch('/api/topics', { cache: 'no-store' });
      if (t.ok) renderTopics(await t.json());
    }
    setState(true);
  } catch (e) {
    setState(false);
  }
  setTimeout(poll, POLL_MS);
}

poll();
