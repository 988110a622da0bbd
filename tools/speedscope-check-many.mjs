// Batch version of shared/docs/validation/speedscope-check.mjs: imports several files into the
// speedscope web app with ONE headless Chromium launch (the launch is most of the ~7 s that the
// single-file checker spends per file) and, while files pass, one page (see openPage below).
// The per-page logic is the same as speedscope-check.mjs — keep them in step when either changes:
// a file fails on a dialog ("Unrecognized format!"), a page error, "Failed to load format…" in the
// console, "Something went wrong" in the page, no import within the timeout, and, with --strict,
// on any console warning/error (speedscope's import warnings: unmatched E, overlapping slices, …).
//
//   usage: node speedscope-check-many.mjs [--strict] [--out DIR] FILE...
//   prints per file "OK: speedscope imported FILE" or "FAIL: FILE: reason" (plus "warning: FILE: …");
//   with --out, also writes file number I's verdict to DIR/I.speedscope: OK or FAIL, then the
//   reasons and warnings, one a line (tools/check-lib.sh reads them)
//   exit 0 when all imported, 1 when any failed, 2 on usage errors.
// Modules (playwright-core, speedscope) resolve from SPANPROF_VALIDATORS_DIR (the folder where
// `npm install` ran), else from the current directory: ESM ignores NODE_PATH.
// Env: CHROMIUM (default /usr/bin/chromium), SPEEDSCOPE_TIMEOUT_MS per file (default 60000).
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import {createRequire} from 'node:module';

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const outIndex = args.indexOf('--out');
const outDir = outIndex >= 0 ? args[outIndex + 1] : null;
if (outIndex >= 0 && !outDir) { console.error('usage: --out needs a folder'); process.exit(2); }
const files = args.filter((a, i) => a !== "--strict" && (outIndex < 0 || (i !== outIndex && i !== outIndex + 1)));
if (outDir) fs.mkdirSync(outDir, {recursive: true});
if (files.length === 0) { console.error('usage: node speedscope-check-many.mjs [--strict] FILE...'); process.exit(2); }
for (const f of files) if (!fs.existsSync(f)) { console.error(`usage: no such file: ${f}`); process.exit(2); }

const validatorsDir = process.env.SPANPROF_VALIDATORS_DIR || process.cwd();
const require = createRequire(path.join(path.resolve(validatorsDir), 'package.json'));
const {chromium} = require('playwright-core');
const release = path.join(path.dirname(require.resolve('speedscope/package.json')), 'dist/release');

const limitMs = Number(process.env.SPEEDSCOPE_TIMEOUT_MS || 60000);
// Last resort if Chromium itself wedges: every file's budget plus the launch.
const watchdog = setTimeout(() => { console.error(`FAIL: no result for all files within the time limit`); process.exit(1); },
                            limitMs * files.length + 60000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'speedscope-check-many-'));
const context = await chromium.launchPersistentContext(path.join(tmp, 'user-data'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});

const withTimeout = (promise, ms) => Promise.race([promise, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), ms))]);

// One page of the app serves file after file: the app's first load (its bundle, fonts, WebGL
// set-up) costs ~2-3 s of CPU, the import of a small file a fraction of that. Each file after
// the first goes through the same hook (a <script> calling speedscope.loadFileFromBase64), and
// the app sets document.title only after a successful import, so clearing the title first makes
// "title ends with ' - speedscope'" mean "THIS file imported". After any problem, and after a
// large file, the next file gets a fresh page, so one file's failure cannot colour another's.
const reuseBelowBytes = 4 << 20;
let page = null;
let state = null;  // the file being checked: its problems, warnings and pending console reads

async function openPage() {
  page = await context.newPage();
  page.on('dialog', async d => { state.problems.push(d.message()); await d.dismiss().catch(() => {}); });   // "Unrecognized format!"
  page.on('pageerror', e => state.problems.push(`page error: ${e.message}`));
  page.on('console', m => {
    const text = m.text(), into = state;
    if (/^Failed to load format|^Failed to create WebGL/.test(text)) {               // import threw
      into.pending.push(Promise.all(m.args().map(a =>
        a.evaluate(v => (v instanceof Error ? v.message : String(v))).catch(() => '')))
        .then(parts => into.problems.push(parts.join(' ') || text)));
    } else if ((m.type() === 'warning' || m.type() === 'error') && !/GL Driver Message|WebGL-/.test(text)) {
      into.warnings.push(text);                                                     // e.g. unmatched B/E
    }
  });
}

async function closePage() {
  if (page) await page.close().catch(() => {});
  page = null;
}

async function check(file, index) {
  // speedscope's own #localProfilePath hook: a script that hands the file over as base64.
  const loader = path.join(tmp, `load-${index}.js`);
  fs.writeFileSync(loader, `speedscope.loadFileFromBase64(${JSON.stringify(path.basename(file))}, ` +
    `${JSON.stringify(fs.readFileSync(file).toString('base64'))})`);
  state = {problems: [], warnings: [], pending: []};
  const {problems, warnings, pending} = state;
  const deadline = Date.now() + limitMs;
  let imported = false;
  try {
    if (page) {
      await withTimeout(page.evaluate(src => {
        document.title = '';
        const script = document.createElement('script');
        script.src = src;
        document.head.appendChild(script);
      }, `file://${loader}`), limitMs);
    } else {
      await openPage();
      await withTimeout(page.goto(`file://${release}/index.html#localProfilePath=${loader}`), limitMs);
    }
    while (!imported && problems.length === 0) {
      if (Date.now() > deadline) { problems.push(`no import result within ${limitMs} ms`); break; }
      await page.waitForTimeout(100);
      await Promise.all(pending);
      if (/Something went wrong/.test(await withTimeout(page.evaluate(() => document.body.innerText), limitMs)))
        problems.push('speedscope shows "Something went wrong"');
      else if ((await withTimeout(page.title(), limitMs)).endsWith(' - speedscope')) imported = true;  // set after a successful import
    }
    // The single-file checker closes the browser right here; console events already queued
    // still count, so let them arrive before judging.
    await page.waitForTimeout(100);
    await Promise.all(pending);
  } catch (e) {
    problems.push(`checker error: ${e.message.split('\n')[0]}`);
  }
  if (strict && warnings.length) problems.push(`${warnings.length} import warning(s) and --strict given`);
  if (problems.length || fs.statSync(file).size >= reuseBelowBytes) await closePage();
  fs.rmSync(loader, {force: true});
  for (const w of warnings) console.log(`warning: ${file}: ${w}`);
  if (outDir) fs.writeFileSync(path.join(outDir, `${index}.speedscope`),
    [problems.length ? 'FAIL' : 'OK', ...problems.map(p => `FAIL: ${p}`), ...warnings.map(w => `warning: ${w}`)].join('\n'));
  if (problems.length) { for (const p of problems) console.log(`FAIL: ${file}: ${p}`); return false; }
  console.log(`OK: speedscope imported ${file}`);
  return true;
}

let failed = 0;
for (const [i, file] of files.entries()) if (!(await check(file, i))) failed++;
await closePage();
await context.close();
fs.rmSync(tmp, {recursive: true, force: true});
clearTimeout(watchdog);
process.exit(failed ? 1 : 0);
