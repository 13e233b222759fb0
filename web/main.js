// wgquant in the browser: acquire the WebGPU device, run the verify suite, then the benchmark,
// through the wasm module (wgquant_web.js, built by web/build.sh). The state for tests is on
// <body>: data-state = loading | verifying | benchmarking | done | skipped | error (with
// data-reason), data-verify = passed | failed, data-load-ms; results in window.wgquantResults.

const FORMATS = 'q8_0,q4_0,q4_1,int4_g128,q4_k';
const params = new URLSearchParams(location.search);
const formats = params.get('formats') || FORMATS;
const runBench = params.get('bench') !== '0';
// device: the variants Kernels::new picks here; gpu: a hardware GPU's (checks their shaders
// on a software adapter too).
const kernels = params.get('kernels') || 'device';

const $ = (id) => document.getElementById(id);
const body = document.body;
const message = (e) => (e instanceof Error ? e.message : String(e));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function addRow(tbody, cells, cls) {
  const tr = el('tr', undefined, cls);
  for (const c of cells) tr.append(el('td', c));
  tbody.append(tr);
  return tr;
}

function setState(state, reason) {
  body.dataset.state = state;
  if (reason !== undefined) {
    body.dataset.reason = reason;
    const p = $('message');
    p.textContent = (state === 'skipped' ? 'Skipped: ' : 'Error: ') + reason;
    p.className = state;
    p.hidden = false;
    $('progress').value = 0;
    const t = $('progress-text');
    t.textContent = state === 'skipped' ? 'Nothing was run.' : `Stopped at: ${t.textContent}`;
  }
}

function progress(done, total, text) {
  const bar = $('progress');
  if (total > 0) {
    bar.max = total;
    bar.value = done;
  } else {
    bar.removeAttribute('value'); // indeterminate
  }
  $('progress-text').textContent = text;
}

// 2.5e-5 s -> "25.0 µs", 0.0123 s -> "12.30 ms".
function time(seconds) {
  const us = seconds * 1e6;
  return us < 1000 ? `${us.toFixed(1)} µs` : `${(us / 1000).toFixed(2)} ms`;
}

const bytes = (b) => (b >= 1 << 20 ? `${b} (${(b / (1 << 20)).toFixed(0)} MiB)` : String(b));

function showAdapter(a, loadMs) {
  const dl = $('adapter');
  dl.replaceChildren();
  const item = (term, value) => {
    dl.append(el('dt', term));
    const dd = el('dd');
    dd.append(value);
    dl.append(dd);
  };
  item('Name', a.name || '(no name)');
  item('Backend', `${a.backend} (${a.device_type})`);
  item('Driver', [a.driver, a.driver_info].filter(Boolean).join(', ') || '—');
  item('Fallback', a.fallback ? 'yes: a software adapter, its timings are not a GPU\'s' : 'no');
  const feats = el('span');
  for (const f of a.features || []) feats.append(el('code', f, 'chip'), ' ');
  if (!(a.features || []).length) feats.textContent = 'none';
  item('Features', feats);
  for (const [k, v] of Object.entries(a.limits || {})) {
    item(k, k.endsWith('_size') ? bytes(v) : String(v));
  }
  if (a.kernel_config) item('Kernel config', a.kernel_config);
  item('Ready after', `${loadMs.toFixed(0)} ms (page, wasm and device)`);
}

// Verify: one table row per case, and a passed/total line per format.
const summary = new Map();

function showCase(c) {
  const ok = c.passed;
  const result = ok ? 'pass' : `FAIL${c.failure ? `: ${c.failure}` : c.nmse > c.bound ? ': NMSE over bound' : ''}`;
  addRow($('cases').tBodies[0], [
    c.format,
    c.kernel,
    `${c.m} × ${c.k} × ${c.n}`,
    c.act ?? '',
    c.nmse == null ? 'not finite' : c.nmse.toExponential(2),
    c.bound.toExponential(1),
    result,
  ], ok ? '' : 'fail');
  const s = summary.get(c.format) ?? { passed: 0, total: 0 };
  s.passed += ok ? 1 : 0;
  s.total += 1;
  summary.set(c.format, s);
  const tbody = $('summary').tBodies[0];
  tbody.replaceChildren();
  for (const [f, { passed, total }] of summary) {
    addRow(tbody, [f, `${passed} / ${total}`, passed === total ? 'pass' : 'FAIL'], passed === total ? '' : 'fail');
  }
  if (!ok) console.error(`[wgquant] ${c.format} ${c.kernel} ${c.m}x${c.k}x${c.n}: ${result}`);
}

// Bench: a CLI-like table and a bar chart of GB/s.
function showRow(r) {
  const ratio = r.ratio_to_f32 == null ? '—' : `${r.ratio_to_f32.toFixed(2)}x`;
  const tr = addRow($('rows').tBodies[0], [
    r.format,
    r.kernel,
    `${r.m} × ${r.k}`,
    String(r.n),
    time(r.seconds),
    r.gbps.toFixed(1),
    r.gflops.toFixed(1),
    ratio,
    `${r.timing} (${r.statistic})`,
  ], r.format === 'f32' ? 'baseline' : '');
  if (r.format !== 'f32' && r.ratio_to_f32 != null) tr.cells[7].className = r.ratio_to_f32 < 1 ? 'faster' : 'slower';
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];

function drawChart(rows) {
  const ns = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  const fmts = [...new Set(rows.map((r) => r.format))]; // f32 first: it is measured first
  const best = new Map(); // "n format" -> fastest row (most GB/s)
  for (const r of rows) {
    const key = `${r.n} ${r.format}`;
    if (!best.has(key) || r.gbps > best.get(key).gbps) best.set(key, r);
  }
  const max = Math.max(...rows.map((r) => r.gbps), 1e-9);
  const step = 10 ** Math.floor(Math.log10(max / 4));
  const tick = [1, 2, 5, 10].map((m) => m * step).find((t) => max / t <= 5);
  const top = Math.ceil(max / tick) * tick;
  const [bw, gap, groupGap, left, pad, h, bottom] = [36, 6, 36, 60, 24, 220, 80];
  const groupW = fmts.length * (bw + gap) - gap;
  const width = left + ns.length * (groupW + groupGap);
  const y = (v) => pad + h - (v / top) * h;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${pad + h + bottom}" width="${width}" height="${pad + h + bottom}" role="img" aria-label="GB/s per format and batch">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#bbb"/><line x1="0" y1="0" x2="0" y2="6" stroke="#666" stroke-width="3"/></pattern></defs>`;
  for (let v = 0; v <= top + tick / 2; v += tick) {
    svg += `<line x1="${left - 4}" x2="${width}" y1="${y(v)}" y2="${y(v)}" class="grid"/>`;
    svg += `<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${+v.toPrecision(6)}</text>`;
  }
  svg += `<text transform="translate(14 ${pad + h / 2}) rotate(-90)" text-anchor="middle">GB/s</text>`;
  ns.forEach((n, gi) => {
    const x0 = left + groupGap / 2 + gi * (groupW + groupGap);
    fmts.forEach((f, fi) => {
      const r = best.get(`${n} ${f}`);
      const x = x0 + fi * (bw + gap);
      const cx = x + bw / 2;
      const fill = f === 'f32' ? 'url(#hatch)' : PALETTE[(fi - 1 + PALETTE.length) % PALETTE.length];
      if (r) {
        svg += `<rect x="${x}" y="${y(r.gbps)}" width="${bw}" height="${Math.max(y(0) - y(r.gbps), 0.5)}" fill="${fill}"${f === 'f32' ? ' stroke="#555"' : ''}><title>${esc(`${f} ${r.kernel}, n = ${n}: ${r.gbps.toFixed(1)} GB/s`)}</title></rect>`;
        svg += `<text x="${cx}" y="${y(r.gbps) - 4}" text-anchor="middle" class="value">${r.gbps.toPrecision(3)}</text>`;
      }
      svg += `<text transform="translate(${cx + 4} ${pad + h + 8}) rotate(-45)" text-anchor="end" class="${f === 'f32' ? 'base' : ''}">${esc(f)}</text>`;
    });
    svg += `<text x="${x0 + groupW / 2}" y="${pad + h + bottom - 8}" text-anchor="middle" class="group">n = ${n}</text>`;
  });
  $('chart').innerHTML = `${svg}<line x1="${left}" x2="${width}" y1="${y(0)}" y2="${y(0)}" class="axis"/></svg>`;
}

async function main() {
  body.dataset.state = 'loading';
  if (!navigator.gpu) return setState('skipped', 'this browser has no WebGPU (navigator.gpu is missing)');
  let wasm;
  try {
    wasm = await import('./wgquant_web.js');
    await wasm.default();
  } catch (e) {
    return setState('error', `loading the wasm module failed: ${message(e)}`);
  }
  progress(0, 0, 'Requesting the WebGPU adapter and device…');
  let adapter;
  try {
    adapter = JSON.parse(await wasm.acquire());
  } catch (e) {
    $('adapter').querySelector('dd').textContent = 'none';
    return setState('skipped', `no WebGPU device: ${message(e)}`);
  }
  const loadMs = performance.now();
  body.dataset.loadMs = loadMs.toFixed(0);
  showAdapter(adapter, loadMs);
  console.log(`[wgquant] adapter ${adapter.name} (${adapter.backend}, fallback ${adapter.fallback}), ready after ${loadMs.toFixed(0)} ms`);

  try {
    setState('verifying');
    $('verify-section').hidden = false;
    progress(0, 0, `Verifying ${formats} (${kernels} kernels)…`);
    const cases = JSON.parse(await wasm.verify(formats, kernels, (done, total, json) => {
      const c = JSON.parse(json);
      showCase(c);
      progress(done, total, `Verifying: case ${done} of ${total} (${c.format} ${c.kernel} ${c.m} × ${c.k} × ${c.n})`);
    }));
    const passed = cases.filter((c) => c.passed).length;
    // Errors must reach the caller on the web too: a refused blocking call, a rejected dispatch.
    let errorCheck;
    try {
      errorCheck = { passed: true, ...JSON.parse(await wasm.error_check()) };
    } catch (e) {
      errorCheck = { passed: false, reason: message(e) };
    }
    body.dataset.errorCheck = errorCheck.passed ? 'passed' : 'failed';
    console.log(`[wgquant] error check: ${errorCheck.passed ? 'passed' : `FAILED: ${errorCheck.reason}`}`);
    const ok = cases.length > 0 && passed === cases.length && errorCheck.passed;
    body.dataset.verify = ok ? 'passed' : 'failed';
    const results = { adapter, cases, rows: [], loadMs, kernels, errorCheck };
    window.wgquantResults = results;
    console.log(`[wgquant] verify: ${passed} of ${cases.length} cases passed`);
    $('cases-details').open = !ok || cases.length <= 40;
    const verdict = `Verify (${kernels} kernels): ${passed} of ${cases.length} cases passed, errors ${errorCheck.passed ? 'reported' : 'NOT reported'}${ok ? '' : ' — FAILED'}.`;

    if (!runBench) {
      progress(1, 1, `${verdict} Bench skipped (?bench=0).`);
      return setState('done');
    }
    setState('benchmarking');
    $('bench-section').hidden = false;
    progress(0, 0, `${verdict} Benchmarking…`);
    const rows = JSON.parse(await wasm.bench(formats, (done, total, json) => {
      const r = JSON.parse(json);
      results.rows.push(r);
      showRow(r);
      drawChart(results.rows);
      progress(done, total, `${verdict} Benchmarking: row ${done} of ${total} (${r.format} ${r.kernel}, n = ${r.n})`);
    }));
    results.rows = rows;
    drawChart(rows);
    console.log(`[wgquant] bench: ${rows.length} rows`);
    progress(1, 1, `${verdict} Bench: ${rows.length} rows.`);
    setState('done');
  } catch (e) {
    setState('error', message(e));
  }
}

// Whatever escapes main (a bug, a trap in the wasm) still ends the run for the test.
const fatal = (what) => {
  if (!['done', 'skipped', 'error'].includes(body.dataset.state)) setState('error', what);
};
window.addEventListener('error', (e) => fatal(`uncaught: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => fatal(`unhandled rejection: ${message(e.reason)}`));
main().catch((e) => fatal(message(e)));
