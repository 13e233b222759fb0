// MOCK of the wasm module wgquant_web.js — only for testing the page (web/index.html, web/main.js)
// and web/test/browser-test.mjs without building the wasm. It touches no GPU and measures
// nothing: the adapter, cases and rows below are made up. Same exports as the real module.
// Query parameters of the page steer it:
//   ?mockfail=1   one verify case fails (NMSE over its bound)
//   ?mocknogpu=1  acquire() rejects (the page reports "skipped")
//   ?mockerror=1  bench() rejects (the page reports "error")
//   ?mockslow=1   init() takes 4 s (the test's 3 s load limit fails)
//   ?mockerrcheck=1  error_check() rejects (an error went unreported: verify fails)

const q = new URLSearchParams(globalThis.location?.search ?? '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let acquired = false;

export default async function init() {
  console.warn('wgquant_web.js: this is the MOCK module (fake adapter, fake results)');
  await sleep(q.get('mockslow') === '1' ? 4000 : 30);
}

export async function acquire() {
  await sleep(20);
  if (q.get('mocknogpu') === '1') throw new Error('MOCK: no WebGPU adapter (mocknogpu=1)');
  acquired = true;
  return JSON.stringify({
    name: 'MOCK adapter (not a GPU)',
    backend: 'BrowserWebGpu',
    device_type: 'Cpu',
    driver: 'mock',
    driver_info: 'web/test/mock/wgquant_web.js',
    fallback: true,
    features: ['timestamp-query', 'shader-f16'],
    kernel_config: 'KernelConfig { mock: true }',
    limits: {
      max_buffer_size: 268435456,
      max_storage_buffer_binding_size: 134217728,
      max_compute_workgroup_storage_size: 16384,
      max_compute_invocations_per_workgroup: 256,
      max_compute_workgroups_per_dimension: 65535,
      max_storage_buffers_per_shader_stage: 8,
    },
  });
}

const formatList = (s) => s.split(',').map((f) => f.trim()).filter(Boolean);

export async function verify(formats, kernels, progress) {
  if (!['device', 'gpu'].includes(kernels)) throw new Error(`unknown kernels '${kernels}': device or gpu`);
  if (!acquired) throw new Error('call acquire() first');
  const fail = q.get('mockfail') === '1';
  const cases = [];
  for (const format of formatList(formats)) {
    for (const [kernel, m, k, n, act] of [
      ['gemv', 256, 512, 1, 'f32'],
      ['gemm', 256, 512, 8, 'f32'],
      ['gemv_f16', 256, 512, 1, 'f16'],
    ]) {
      const bad = fail && cases.length === 1;
      cases.push({
        format, kernel, m, k, n, act,
        nmse: bad ? 3.1e-2 : 1.2e-6 * (1 + cases.length),
        bound: act === 'f16' ? 1e-3 : 1e-4,
        first_nan: null,
        guards_intact: true,
        passed: !bad,
        failure: null,
      });
    }
  }
  for (let i = 0; i < cases.length; i++) {
    await sleep(40);
    progress(i + 1, cases.length, JSON.stringify(cases[i]));
  }
  return JSON.stringify(cases);
}

export async function bench(formats, progress) {
  if (!acquired) throw new Error('call acquire() first');
  const [m, k] = [2048, 2048];
  const spec = [['f32', 4], ...formatList(formats).slice(0, 2).map((f, i) => [f, i === 0 ? 1.0625 : 0.5625])];
  const rows = [];
  for (const n of [1, 8]) {
    let f32Seconds;
    for (const [format, bytesPerWeight] of spec) {
      const kernel = n === 1 ? 'gemv' : 'gemm';
      const bytes = Math.round(m * k * bytesPerWeight + 4 * n * (m + k));
      const gbps = (n === 1 ? 40 : 25) * (format === 'f32' ? 1 : 0.9 - 0.2 * spec.findIndex(([f]) => f === format) / 2);
      const seconds = bytes / (gbps * 1e9);
      f32Seconds ??= seconds;
      rows.push({
        kernel, format, m, k, n, seconds, bytes, gbps,
        gflops: (2 * m * k * n) / seconds / 1e9,
        ratio_to_f32: seconds / f32Seconds,
        copies: 4,
        timing: 'timestamp',
        statistic: 'median',
        adapter: 'MOCK adapter (not a GPU)',
      });
    }
  }
  for (let i = 0; i < rows.length; i++) {
    await sleep(40);
    if (q.get('mockerror') === '1' && i === 2) throw new Error('MOCK: bench failed (mockerror=1)');
    progress(i + 1, rows.length, JSON.stringify(rows[i]));
  }
  return JSON.stringify(rows);
}

export async function error_check() {
  if (!acquired) throw new Error('call acquire() first');
  await sleep(10);
  if (q.get('mockerrcheck') === '1') throw new Error('MOCK: an invalid dispatch went unreported (mockerrcheck=1)');
  return JSON.stringify({ needs_async: 'MOCK: refused', validation: 'MOCK: reported' });
}
