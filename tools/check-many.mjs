// The node-based checks of tools/check-* for MANY files in ONE node process: starting node and
// loading ajv, @sentry/core or Chrome's trace engine costs 0.3-2 s, which per file was most of
// the client suites' time. Each check does exactly what the per-file command it replaces did:
//
//   json          JSON.parse of the file, strict (was: node -e JSON.parse, check-chrome-trace)
//   devtools      Chrome DevTools' trace engine: analyzeTrace() of @paulirish/trace_engine's
//                 analyze-trace.mjs, whose CLI fails exactly when that throws (check-chrome-trace)
//   ajv7:SCHEMA   ajv-cli `validate -s SCHEMA` (draft-07), the Ajv that ajv-cli's own code builds
//   ajv2020:SCHEMA  likewise with --spec=draft2020 -c ajv-formats (the Sentry schemas)
//   timestamps    start_timestamp <= timestamp on a transaction and its spans (check-sentry-transaction)
//   envelope      the shipped sentry-envelope-check.mjs, unchanged, run in this process on the
//                 file (re-imported per file, with its process.exit and console captured)
//   images        debug_meta.images types Relay knows (check-sentry-envelope)
//   make-envelope  builds DIR/I.envelope from a transaction JSON file, as check-sentry-transaction
//                 did (a one-line file byte for byte, a pretty-printed one compacted)
//   split-envelope cuts an envelope by its item headers' `length` into DIR/I.transaction.json,
//                 DIR/I.profile.json (if any) and DIR/I.no-profile.envelope; the result's second
//                 line is "profile" or "transaction-only" (check-sentry-envelope)
//   pprof-format  the pure-JS pprof decoder, string_table[0] == "", values per sample (check-pprof)
//
//   usage: node tools/check-many.mjs --out DIR --check CHECK [--check CHECK...] FILE...
//   For file number I (0-based, in argument order) and each check, writes DIR/I.NAME, whose first
//   line is OK or FAIL and the rest the details (NAME: the check without its :SCHEMA part, or
//   the schema's basename for ajv checks). The caller reports; a missing result file means this
//   process died before that file, which the caller counts as a failure.
// Modules resolve from SPANPROF_VALIDATORS_DIR (ESM ignores NODE_PATH). Exit 0 when it ran to
// the end (whatever the verdicts), 2 on usage errors.
import fs from 'node:fs'; import path from 'node:path'; import zlib from 'node:zlib';
import {createRequire} from 'node:module'; import {pathToFileURL} from 'node:url';

const argv = process.argv.slice(2);
let out = null; const checks = [], files = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') out = argv[++i];
  else if (argv[i] === '--check') checks.push(argv[++i]);
  else files.push(argv[i]);
}
if (!out || checks.length === 0 || files.length === 0) {
  console.error('usage: node check-many.mjs --out DIR --check CHECK [--check CHECK...] FILE...');
  process.exit(2);
}
const V = path.resolve(process.env.SPANPROF_VALIDATORS_DIR || process.cwd());
const require = createRequire(path.join(V, 'package.json'));

const resultName = c => c.includes(':') ? path.basename(c.slice(c.indexOf(':') + 1)) : c;

// ajv exactly as ajv-cli builds it for `validate --spec=SPEC [-c ajv-formats] -s SCHEMA`.
const ajvFor = {};
function ajvValidator(spec, schema) {
  const key = `${spec}:${schema}`;
  if (!ajvFor[key]) {
    const cli = require('ajv-cli/dist/commands/ajv.js').default;
    const util = require('ajv-cli/dist/commands/util.js');
    const args = spec === 'draft2020' ? {spec, c: 'ajv-formats'} : {spec};
    const ajv = cli(args);
    const validate = util.compile(ajv, path.resolve(V, schema));
    ajvFor[key] = {ajv, validate, util};
  }
  return ajvFor[key];
}
function ajvCheck(spec, schema, file) {
  const {validate, util} = ajvValidator(spec, schema);
  let data;
  try { data = JSON.parse(fs.readFileSync(file, 'utf8')); }
  catch (e) { return [false, `error: data file ${file}: ${e.message}`]; }
  if (validate(data)) return [true, ''];
  return [false, JSON.stringify(validate.errors, null, 2)];
}

let analyzeTrace = null;
async function devtools(file) {
  if (!analyzeTrace) {
    const url = pathToFileURL(require.resolve('@paulirish/trace_engine/analyze-trace.mjs')).href;
    ({analyzeTrace} = await import(url));
  }
  await analyzeTrace(file);
}

// Runs the shipped sentry-envelope-check.mjs on FILE as if `node sentry-envelope-check.mjs FILE`.
class Exit extends Error { constructor(code) { super(`exit ${code}`); this.code = code; } }
let runs = 0;
async function shippedEnvelopeCheck(file) {
  const lines = [];
  const saved = {argv: process.argv, exit: process.exit, log: console.log, error: console.error};
  process.argv = [process.argv[0], path.join(V, 'sentry-envelope-check.mjs'), file];
  process.exit = code => { throw new Exit(code ?? 0); };
  console.log = (...a) => lines.push(a.join(' '));
  console.error = (...a) => lines.push(a.join(' '));
  let code = 0;
  try {
    await import(`${pathToFileURL(path.join(V, 'sentry-envelope-check.mjs')).href}?run=${runs++}`);
  } catch (e) {
    code = e instanceof Exit ? e.code : 1;
    if (!(e instanceof Exit)) lines.push(e.stack || String(e));
  } finally {
    Object.assign(process, {argv: saved.argv, exit: saved.exit});
    Object.assign(console, {log: saved.log, error: saved.error});
  }
  return [code === 0, code === 0 ? '' : lines.join('\n')];  // the CLI's output only when it fails
}

function timestamps(file) {
  let tx;
  try { tx = JSON.parse(fs.readFileSync(file, 'utf8')); }
  catch (e) { return [false, `not JSON: ${e.message}`]; }
  const t = v => typeof v === 'number' ? v * 1000 : Date.parse(v);
  const bad = [];
  const check = (o, where) => { if (o && t(o.timestamp) < t(o.start_timestamp)) bad.push(`${where}: timestamp is before start_timestamp`); };
  check(tx, 'transaction');
  (Array.isArray(tx.spans) ? tx.spans : []).forEach((s, i) => check(s, `spans[${i}]`));
  return [bad.length === 0, bad.join('\n')];
}

function images(file) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const known = new Set(['macho', 'symbolic', 'sourcemap', 'proguard', 'jvm']);
  const bad = [];
  ((p.debug_meta && p.debug_meta.images) || []).forEach((im, i) => {
    if (!known.has(im.type)) bad.push(`debug_meta.images[${i}].type ${JSON.stringify(im.type)} is not one Relay knows`);
    if (['macho', 'symbolic'].includes(im.type) && (typeof im.debug_id !== 'string' || typeof im.image_addr !== 'string'))
      bad.push(`debug_meta.images[${i}] lacks debug_id or image_addr`);
  });
  return [bad.length === 0, bad.join('\n')];
}

function pprofFormat(file) {
  const {Profile} = require('pprof-format');
  const p = Profile.decode(zlib.gunzipSync(fs.readFileSync(file)));
  const strings = p.stringTable.strings;
  const problems = [];
  if (strings.length === 0 || strings[0] !== '') problems.push('string_table[0] is not the empty string');
  if (p.sampleType.length === 0) problems.push('no sample_type');
  p.sample.forEach((s, i) => {
    if (s.value.length !== p.sampleType.length) problems.push(`sample ${i} has ${s.value.length} values for ${p.sampleType.length} sample types`);
  });
  return [problems.length === 0, problems.join('\n')];
}

function makeEnvelope(file, dest) {
  const text = fs.readFileSync(file, 'utf8').replace(/\n+$/, '');
  let tx;
  try { tx = JSON.parse(text); } catch (e) { return [false, `not JSON: ${e.message}`]; }
  const payload = /[\r\n]/.test(text) ? JSON.stringify(tx) : text;
  const eventId = tx && typeof tx === 'object' ? tx.event_id : undefined;
  fs.writeFileSync(dest,
    JSON.stringify({event_id: eventId}) + '\n' +
    JSON.stringify({type: 'transaction', length: Buffer.byteLength(payload)}) + '\n' + payload + '\n');
  return [true, ''];
}

function splitEnvelope(file, out) {
  const buf = fs.readFileSync(file);
  let pos = 0;
  const line = () => {
    const eol = buf.indexOf(10, pos);
    if (eol < 0) throw new Error(`no newline after byte ${pos}`);
    const text = buf.subarray(pos, eol); pos = eol + 1; return text;
  };
  const header = line();
  JSON.parse(header.toString('utf8'));
  const kept = [header, Buffer.from('\n')];
  const seen = {};
  while (pos < buf.length) {
    const start = pos;
    const itemHeader = JSON.parse(line().toString('utf8'));
    if (!Number.isInteger(itemHeader.length)) throw new Error(`item ${JSON.stringify(itemHeader)} has no integer length`);
    const body = buf.subarray(pos, pos + itemHeader.length);
    if (body.length !== itemHeader.length) throw new Error(`${itemHeader.type}: length ${itemHeader.length} runs past the end`);
    pos += itemHeader.length;
    if (pos < buf.length && buf[pos] !== 10) throw new Error(`${itemHeader.type}: no newline right after its ${itemHeader.length} bytes`);
    if (pos < buf.length) pos += 1;
    if (seen[itemHeader.type]) throw new Error(`a second ${itemHeader.type} item`);
    seen[itemHeader.type] = true;
    if (itemHeader.type === 'transaction' || itemHeader.type === 'profile') fs.writeFileSync(`${out}.${itemHeader.type}.json`, body);
    if (itemHeader.type !== 'profile') kept.push(buf.subarray(start, pos));
  }
  if (!seen.transaction) throw new Error('no transaction item');
  fs.writeFileSync(`${out}.no-profile.envelope`, Buffer.concat(kept));
  return [true, seen.profile ? 'profile' : 'transaction-only'];
}

async function run(check, file, index) {
  const [kind, schema] = check.includes(':') ? [check.slice(0, check.indexOf(':')), check.slice(check.indexOf(':') + 1)] : [check, null];
  switch (kind) {
    case 'json': JSON.parse(fs.readFileSync(file, 'utf8')); return [true, ''];
    case 'devtools': await devtools(file); return [true, ''];
    case 'ajv7': return ajvCheck('draft7', schema, file);
    case 'ajv2020': return ajvCheck('draft2020', schema, file);
    case 'timestamps': return timestamps(file);
    case 'envelope': return shippedEnvelopeCheck(file);
    case 'images': return images(file);
    case 'pprof-format': return pprofFormat(file);
    case 'make-envelope': return makeEnvelope(file, path.join(out, `${index}.envelope`));
    case 'split-envelope': return splitEnvelope(file, path.join(out, `${index}`));
    default: throw new Error(`unknown check ${check}`);
  }
}

fs.mkdirSync(out, {recursive: true});
for (const c of checks) if (!/^(json|devtools|timestamps|envelope|images|pprof-format|make-envelope|split-envelope|ajv7:.+|ajv2020:.+)$/.test(c)) {
  console.error(`check-many.mjs: unknown check ${c}`); process.exit(2);
}
for (const [i, file] of files.entries()) {
  for (const c of checks) {
    let ok, detail;
    try { [ok, detail] = await run(c, file, i); }
    catch (e) { ok = false; detail = `${e.name || 'Error'}: ${e.message}`; }
    fs.writeFileSync(path.join(out, `${i}.${resultName(c)}`), `${ok ? 'OK' : 'FAIL'}\n${detail || ''}`);
  }
}
process.exit(0);
