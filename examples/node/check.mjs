// Runs a ferry export bundle's golden cases with onnxruntime-node and compares every output.
//
//   node check.mjs BUNDLE_DIR
//
// Exit 0 when every case matches, 1 when one differs (each difference is printed), 2 when the
// bundle cannot be read or run. Floating outputs may differ by atol + rtol * |want| (the
// bundle's golden.json tolerance); every other dtype must be equal.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

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
 * source text to the reviver (Node.js 22 and later; Node.js 20 reads them as rounded Numbers).
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

async function readJson(path) {
  return parseJson(await readFile(path, 'utf8'));
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
    return [`case ${goldenCase.name}: onnxruntime-node could not run it: ${message}`];
  }
  return Object.entries(goldenCase.outputs).flatMap(
    ([name, want]) => compareOutput(goldenCase.name, name, results[name], want, tolerance));
}

async function main(bundle) {
  const signature = await readJson(join(bundle, 'signature.json'));
  const golden = await readJson(join(bundle, 'golden.json'));
  const session = await ort.InferenceSession.create(join(bundle, 'model.onnx'));
  let passed = 0;
  for (const goldenCase of golden.cases) {
    const differences = await runCase(session, goldenCase, golden.tolerance);
    for (const line of differences) console.log(`FAIL ${line}`);
    if (differences.length === 0) passed += 1;
  }
  const total = golden.cases.length;
  const verdict = passed === total ? 'all passed' : `${total - passed} failed`;
  console.log(`${signature.uri}: ${passed}/${total} golden cases passed (${verdict})`
    + ` with onnxruntime-node ${ort.env.versions.node}`);
  return passed === total ? 0 : 1;
}

if (process.argv.length !== 3) {
  console.error('usage: node check.mjs BUNDLE_DIR');
  process.exit(2);
}
try {
  process.exitCode = await main(process.argv[2]);
} catch (error) {
  console.error(`error: ${error.message}`);
  process.exitCode = 2;
}
