#!/usr/bin/env node
// The browser test of wgquant's web page: serve a built page (web/dist by default: index.html,
// main.js, style.css, wgquant_web.js, wgquant_web_bg.wasm) from 127.0.0.1, open it in headless
// Chromium with WebGPU enabled, wait until the page has run the verify suite and the bench, and
// check the results.
//
// Setup (once):   cd web/test && npm ci          (playwright-core only; no browser download)
// Run:            web/build.sh && node web/test/browser-test.mjs [DIR] [options]
//
//   DIR              the directory to serve (default: web/dist of this repository, found from
//                    this script's location; a relative DIR is taken from the current directory)
//   --no-bench       open the page with ?bench=0 (verify only)
//   --formats=LIST   open the page with ?formats=LIST (e.g. q4_0,q8_0)
//   --query=PARAMS   more query parameters, appended as they are (e.g. mockfail=1 for the mock)
//   --screenshot=P   where the full-page screenshot goes, taken at the end whatever happened
//                    (default: target/web/screenshot.png of this repository)
// Environment: WGQUANT_WEB_TIMEOUT_S (default 900: verify on a software adapter takes minutes),
//              WGQUANT_CHROMIUM (default /usr/bin/chromium).
//
// Exit status: 0 the page finished (data-state "done") and every verify case passed, the device
// was ready within 3 s of navigation and the .wasm is at most 3 MiB; 2 skipped, "SKIPPED: reason"
// (no WebGPU in this browser, or no adapter); 1 anything else: a failed case, the page's "error"
// state, a timeout, a slow load, an oversized .wasm (also when skipped), a request to anywhere
// but the local server.
//
// Testing the page itself without the wasm: serve a directory holding index.html, main.js and
// style.css beside test/mock/wgquant_web.js (a fake module; see its top comment):
//   d=$(mktemp -d) && cp web/index.html web/main.js web/style.css web/test/mock/wgquant_web.js "$d"
//   node web/test/browser-test.mjs "$d"                     # exit 0
//   node web/test/browser-test.mjs "$d" --query=mockfail=1  # exit 1

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const LOAD_LIMIT_MS = 3000;
const WASM_LIMIT = 3 * 1024 * 1024;
const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

function parseArgs(argv) {
  const opts = {
    dir: path.join(repo, 'web', 'dist'),
    bench: true,
    formats: null,
    query: '',
    screenshot: path.join(repo, 'target', 'web', 'screenshot.png'),
  };
  for (const a of argv) {
    if (a === '--no-bench') opts.bench = false;
    else if (a.startsWith('--formats=')) opts.formats = a.slice('--formats='.length);
    else if (a.startsWith('--query=')) opts.query = a.slice('--query='.length).replace(/^[?&]/, '');
    else if (a.startsWith('--screenshot=')) opts.screenshot = path.resolve(a.slice('--screenshot='.length));
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n\n')[0].replace(/^#!.*\n/, ''));
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a} (see --help)`);
    else opts.dir = path.resolve(a);
  }
  return opts;
}

// A static file server for `root` on 127.0.0.1 and a free port; resolves to the server.
function serve(root) {
  const server = http.createServer((req, res) => {
    let file;
    try {
      const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      file = path.join(root, path.normalize(pathname));
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (!(file === root || file.startsWith(root + path.sep)) || !['GET', 'HEAD'].includes(req.method)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        file = path.join(file, 'index.html');
        st = fs.existsSync(file) ? fs.statSync(file) : null;
      }
      if (err || !st || !st.isFile()) {
        console.log(`[server] 404 ${req.url}`);
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TIMEOUT = Symbol('timeout');
const within = (promise, ms) => Promise.race([promise, sleep(Math.max(ms, 0)).then(() => TIMEOUT)]);

function wasmFiles(dir) {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.wasm')).map((f) => [f, fs.statSync(path.join(dir, f)).size]);
}

function time(seconds) {
  const us = seconds * 1e6;
  return us < 1000 ? `${us.toFixed(1)} us` : `${(us / 1000).toFixed(2)} ms`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const timeoutS = Number(process.env.WGQUANT_WEB_TIMEOUT_S || 900);
  const chromiumPath = process.env.WGQUANT_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(path.join(opts.dir, 'index.html'))) {
    console.log(`FAIL: no ${path.join(opts.dir, 'index.html')} (build the page with web/build.sh)`);
    return 1;
  }
  const failures = [];

  // The .wasm's size: checked whatever the browser can do.
  const wasm = wasmFiles(opts.dir);
  if (wasm.length === 0) console.log(`wasm: no .wasm file in ${opts.dir}`);
  for (const [name, size] of wasm) {
    const over = size > WASM_LIMIT;
    console.log(`wasm: ${name} ${size} bytes (${(size / 1048576).toFixed(2)} MiB; limit 3 MiB)${over ? ' — TOO BIG' : ''}`);
    if (over) failures.push(`${name} is ${size} bytes, over 3 MiB`);
  }

  const server = await serve(opts.dir);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const query = [opts.bench ? '' : 'bench=0', opts.formats ? `formats=${encodeURIComponent(opts.formats)}` : '', opts.query]
    .filter(Boolean).join('&');
  const url = `${origin}/${query ? `?${query}` : ''}`;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wgquant-chromium-'));
  let context;
  try {
    console.log(`serving ${opts.dir} at ${origin}; chromium ${chromiumPath}; timeout ${timeoutS} s`);
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 900 },
    });
    const external = [];
    context.on('request', (r) => {
      const u = r.url();
      if (/^(https?|wss?):/.test(u) && !u.startsWith(`${origin}/`)) external.push(u);
    });
    const page = context.pages()[0] ?? (await context.newPage());
    let crashed = false;
    page.on('console', (m) => console.log(`[page] ${m.type() === 'log' ? '' : `${m.type()}: `}${m.text()}`));
    page.on('pageerror', (e) => console.log(`[page] uncaught: ${e.message}`));
    page.on('crash', () => {
      crashed = true;
      console.log('[page] the page crashed');
    });

    console.log(`opening ${url}`);
    const deadline = Date.now() + timeoutS * 1000;
    let opened = true;
    await page.goto(url, { waitUntil: 'load', timeout: timeoutS * 1000 }).catch((e) => {
      failures.push(`opening ${url} failed: ${e.message}`);
      opened = false;
    });

    // Poll the page's state; print its progress line now and then (verify can take minutes).
    let st = {};
    let lastState = '';
    let lastText = '';
    let lastPrint = 0;
    while (opened) {
      const got = await within(
        page.evaluate(() => ({
          state: document.body?.dataset.state,
          text: document.getElementById('progress-text')?.textContent ?? '',
        })).catch(() => null),
        deadline - Date.now(),
      );
      if (got && got !== TIMEOUT) st = got;
      if (['done', 'skipped', 'error'].includes(st.state) || crashed) break;
      if (Date.now() >= deadline) {
        failures.push(`timed out after ${timeoutS} s in state "${st.state}" (${st.text})`);
        break;
      }
      const now = Date.now();
      if (st.state !== lastState || (st.text !== lastText && now - lastPrint >= 10000)) {
        console.log(`state ${st.state}: ${st.text}`);
        [lastState, lastText, lastPrint] = [st.state, st.text, now];
      }
      await sleep(500);
    }
    if (crashed) failures.push(`the page crashed in state "${st.state}"`);

    const info = await within(
      page.evaluate(() => ({
        ...document.body.dataset,
        results: window.wgquantResults ?? null,
        text: document.getElementById('progress-text')?.textContent ?? '',
      })).catch((e) => ({ evalError: e.message })),
      30000,
    );
    const res = (info !== TIMEOUT && info.results) || {};
    console.log(`\nstate: ${info.state ?? '?'}${info.reason ? ` (${info.reason})` : ''}; ${info.text ?? ''}`);

    if (res.adapter) {
      const a = res.adapter;
      console.log(`adapter: ${a.name} (${a.backend}, ${a.device_type}${a.fallback ? ', fallback adapter' : ''}); ` +
        `features: ${(a.features || []).join(', ') || 'none'}`);
    }
    const loadMs = info.loadMs === undefined ? null : Number(info.loadMs);
    if (loadMs !== null) {
      const slow = loadMs > LOAD_LIMIT_MS;
      console.log(`load: device ready ${loadMs.toFixed(0)} ms after navigation (limit ${LOAD_LIMIT_MS} ms)${slow ? ' — TOO SLOW' : ''}`);
      if (slow) failures.push(`loading took ${loadMs.toFixed(0)} ms, over ${LOAD_LIMIT_MS} ms`);
    } else {
      console.log('load: not measured (the device was never ready)');
    }

    const cases = res.cases ?? [];
    if (info.verify) {
      const per = new Map();
      for (const c of cases) {
        const p = per.get(c.format) ?? [0, 0];
        per.set(c.format, [p[0] + (c.passed ? 1 : 0), p[1] + 1]);
      }
      const passed = cases.filter((c) => c.passed).length;
      console.log(`verify: ${info.verify}, ${passed}/${cases.length} cases: ` +
        [...per].map(([f, [p, t]]) => `${f} ${p}/${t}`).join(', '));
      for (const c of cases.filter((c) => !c.passed)) {
        console.log(`  FAIL ${c.format} ${c.kernel} ${c.m}x${c.k}x${c.n} ${c.act ?? ''}: nmse ${c.nmse} bound ${c.bound}` +
          `${c.failure ? `; ${c.failure}` : ''}${c.first_nan != null ? `; first non-finite output ${c.first_nan}` : ''}` +
          `${c.guards_intact === false ? '; guards overwritten' : ''}`);
      }
      if (info.verify !== 'passed') failures.push(`verify ${info.verify}: ${passed} of ${cases.length} cases passed`);
    }

    const rows = res.rows ?? [];
    if (opts.bench && info.state === 'done') {
      console.log(`bench: ${rows.length} rows`);
      console.log(`  ${'format'.padEnd(10)} ${'kernel'.padEnd(14)} ${'n'.padStart(4)} ${'time'.padStart(11)} ${'GB/s'.padStart(8)} ${'vs f32'.padStart(7)}  timing`);
      for (const r of rows) {
        const ratio = r.ratio_to_f32 == null ? '-' : `${r.ratio_to_f32.toFixed(2)}x`;
        console.log(`  ${r.format.padEnd(10)} ${r.kernel.padEnd(14)} ${String(r.n).padStart(4)} ${time(r.seconds).padStart(11)} ` +
          `${r.gbps.toFixed(1).padStart(8)} ${ratio.padStart(7)}  ${r.timing} (${r.statistic})`);
      }
      if (rows.length === 0) failures.push('the bench gave no rows');
    } else if (!opts.bench) {
      console.log('bench: skipped (--no-bench)');
    }

    if (info.state === 'error') failures.push(`the page reported an error: ${info.reason}`);
    if (info.state === 'done' && loadMs === null) failures.push('the page set no data-load-ms');
    if (external.length) failures.push(`requests beyond the local server: ${[...new Set(external)].join(', ')}`);

    try {
      fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
      await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 30000 });
      console.log(`screenshot: ${opts.screenshot}`);
    } catch (e) {
      console.log(`screenshot failed: ${e.message}`);
    }

    if (failures.length) {
      for (const f of failures) console.log(`FAIL: ${f}`);
      return 1;
    }
    if (info.state === 'skipped') {
      console.log(`SKIPPED: ${info.reason}`);
      return 2;
    }
    console.log('PASS');
    return 0;
  } finally {
    await context?.close().catch(() => {});
    server.close();
    server.closeAllConnections?.();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`FAIL: ${e.stack || e.message || e}`);
    process.exit(1);
  },
);
