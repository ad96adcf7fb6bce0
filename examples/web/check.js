// Runs a ferry export bundle's golden cases in the browser with onnxruntime-web (WebAssembly).
//
// Open index.html?bundle=URL, URL being the bundle folder on the same server. The result is
// shown on the page and left in `window.ferryResult = {passed, failed, total, details, summary}`
// (plus `error` when the bundle could not be loaded). Floating outputs may differ by
// atol + rtol * |want| (golden.json's tolerance); every other dtype must be equal.
import * as ort from 'onnxruntime-web';

// The wasm files are served from this folder's node_modules; one thread needs no
// cross-origin isolation (no COOP/COEP headers on the server).
ort.env.wasm.wasmPaths = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url).href;
ort.env.wasm.numThreads = 1;

const TYPED_ARRAYS = {
  float32: Float32Array, float64: Float64Array,
  int8: Int8Array, int16: Int16Array, int32: Int32Array,
  uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array,
};
const FLOATING = new Set(['float16', 'float32', 'float64']);
const SHOWN_PER_OUTPUT = 5;

/**
 * JSON.parse keeping integers beyond 2^53 exact (as BigInt) where the runtime passes the
 * source text to the reviver (Chromium 114 and later; other browsers may read them rounded).
 */
function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    const source = context?.source;
    const integer = /^-?\d+$/.test(source ?? '');
    if (typeof value === 'number' && !Number.isSafeInteger(value) && integer) {
      return BigInt(source);
    }
    return value;
  });
}

async function fetchFrom(bundle, file) {
  const response = await fetch(new URL(file, bundle));
  if (!response.ok) throw new Error(`GET ${file}: HTTP ${response.status}`);
  return response;
}

/** An ort.Tensor from a golden.json tensor ({dtype, shape, data}). */
function toTensor({ dtype, shape, data }) {
  if (dtype === 'string') return new ort.Tensor('string', data.map(String), shape);
  if (dtype === 'bool') {
    return new ort.Tensor('bool', Uint8Array.from(data, (v) => (v ? 1 : 0)), shape);
  }
  const Typed = TYPED_ARRAYS[dtype];
  if (!Typed) throw new Error(`dtype ${dtype} is not supported by this checker`);
  const big = Typed === BigInt64Array || Typed === BigUint64Array;
  const values = big ? data.map((v) => BigInt(v)) : data;
  return new ort.Tensor(dtype, Typed.from(values), shape);
}

/** Whether one got value equals the wanted one for `dtype` (floating: within the tolerance). */
function matches(dtype, got, want, { rtol, atol }) {
  if (FLOATING.has(dtype)) return Math.abs(Number(got) - want) <= atol + rtol * Math.abs(want);
  if (dtype === 'int64' || dtype === 'uint64') {
    return typeof got === 'bigint' && got === BigInt(want);
  }
  if (dtype === 'bool') return Boolean(got) === want;
  return got === want;
}

/** Differences between one output and its expected tensor, as printable lines. */
function compareOutput(caseName, name, tensor, want, tolerance) {
  const where = `case ${caseName} output ${name}`;
  if (!tensor) return [`${where}: missing from the session's outputs`];
  if (tensor.type !== want.dtype) return [`${where}: dtype ${tensor.type}, want ${want.dtype}`];
  if (tensor.dims.join(',') !== want.shape.join(',')) {
    return [`${where}: shape [${tensor.dims}], want [${want.shape}]`];
  }
  const lines = [];
  let differing = 0;
  want.data.forEach((value, index) => {
    const got = tensor.data[index];
    if (matches(want.dtype, got, value, tolerance)) return;
    differing += 1;
    if (lines.length < SHOWN_PER_OUTPUT) {
      lines.push(`${where} index ${index}: got ${got}, want ${value}`);
    }
  });
  if (differing > lines.length) {
    lines.push(`${where}: ${differing - lines.length} more differences`);
  }
  return lines;
}

/** Runs one golden case; returns its differences (none when it passed). */
async function runCase(session, goldenCase, tolerance) {
  let results;
  try {
    const feeds = Object.fromEntries(
      Object.entries(goldenCase.inputs).map(([name, tensor]) => [name, toTensor(tensor)]));
    results = await session.run(feeds, Object.keys(goldenCase.outputs));
  } catch (error) {
    const message = error.message ?? error;
    return [`case ${goldenCase.name}: onnxruntime-web could not run it: ${message}`];
  }
  return Object.entries(goldenCase.outputs).flatMap(
    ([name, want]) => compareOutput(goldenCase.name, name, results[name], want, tolerance));
}

async function check(bundle) {
  const signature = await (await fetchFrom(bundle, 'signature.json')).json();
  const golden = parseJson(await (await fetchFrom(bundle, 'golden.json')).text());
  const model = new Uint8Array(await (await fetchFrom(bundle, 'model.onnx')).arrayBuffer());
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  const details = [];
  let passed = 0;
  for (const goldenCase of golden.cases) {
    const differences = await runCase(session, goldenCase, golden.tolerance);
    details.push(...differences.map((line) => `FAIL ${line}`));
    if (differences.length === 0) passed += 1;
  }
  const total = golden.cases.length;
  const verdict = passed === total ? 'all passed' : `${total - passed} failed`;
  const summary = `${signature.uri}: ${passed}/${total} golden cases passed (${verdict})`
    + ` with onnxruntime-web ${ort.env.versions.web}`;
  return { passed, failed: total - passed, total, details, summary };
}

function show(result) {
  window.ferryResult = result;
  const summary = document.getElementById('summary');
  summary.textContent = result.summary;
  summary.className = result.failed === 0 && !result.error ? 'passed' : 'failed';
  document.getElementById('details').textContent = result.details.join('\n');
}

/** The result of a page that could not run the bundle at all. */
function failure(message, details = []) {
  return { passed: 0, failed: 0, total: 0, details, error: message, summary: `error: ${message}` };
}

async function main() {
  const bundleParam = new URLSearchParams(window.location.search).get('bundle');
  if (!bundleParam) {
    show(failure('no bundle given: open index.html?bundle=URL'));
    return;
  }
  const folder = bundleParam.endsWith('/') ? bundleParam : `${bundleParam}/`;
  const bundle = new URL(folder, window.location.href);
  try {
    show(await check(bundle));
  } catch (error) {
    show(failure(String(error?.message ?? error), [String(error?.stack ?? error)]));
  }
}

main();
