// The 'clients' suite's check of spanprof-report's page in headless Chromium (Debian's, driven by
// playwright-core from SPANPROF_VALIDATORS_DIR): no console errors; the endpoint's culprits table
// names the planted function with its file:line; typing in the flame graph's search box
// highlights the matching frames; clicking a frame zooms it to the full width; a screenshot.
//
//   node tests/report_browser_check.mjs REPORT_HTML ENDPOINT FUNCTION FILE_LINE SCREENSHOT_PNG [BASELINE_REPORT_HTML]
// Exit 0 when every check passed, 1 otherwise (each failure on its own line).
import path from 'node:path'; import os from 'node:os'; import fs from 'node:fs';
import {createRequire} from 'node:module'; import {pathToFileURL} from 'node:url';

const [html, endpoint, fn, fileLine, screenshot, baselineHtml] = process.argv.slice(2);
if (!screenshot) { console.error('usage: report_browser_check.mjs REPORT_HTML ENDPOINT FUNCTION FILE_LINE SCREENSHOT [BASELINE_HTML]'); process.exit(2); }
const require = createRequire(path.join(path.resolve(process.env.SPANPROF_VALIDATORS_DIR || '.'), 'package.json'));
const {chromium} = require('playwright-core');

const failures = [];
const check = (ok, what) => { console.log(`${ok ? 'OK  ' : 'FAIL'} ${what}`); if (!ok) failures.push(what); };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'report-browser-'));
const browser = await chromium.launchPersistentContext(path.join(tmp, 'user-data'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: {width: 1400, height: 1000},
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const watchdog = setTimeout(() => { console.error('FAIL: no verdict within 120 s'); process.exit(1); }, 120000);

async function open(file) {
  const page = await browser.newPage();
  const errors = [], requests = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push(`page error: ${e.message}`));
  page.on('request', r => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
  await page.goto(pathToFileURL(path.resolve(file)).href, {waitUntil: 'load'});
  await page.waitForTimeout(300);
  return {page, errors, requests};
}

try {
  const {page, errors, requests} = await open(html);
  const section = page.locator('section.endpoint', {has: page.locator('h2', {hasText: endpoint})}).first();
  check(await section.count() === 1, `the page has a section for ${endpoint}`);
  const top = (await section.locator('table.culprits tr').nth(1).innerText()).replace(/\s+/g, ' ');
  check(top.includes(fn) && top.includes(fileLine), `its top culprit is ${fn} (${fileLine}): "${top.slice(0, 200)}"`);

  const box = section.locator('.flame-box').first();
  const frames = await box.locator('rect.frame').count();
  check(frames > 1, `its flame graph has frames (${frames})`);
  await box.locator('input').fill(fn);
  await page.waitForTimeout(100);
  const highlighted = await box.locator('rect.frame.match').count();
  const expected = await box.locator('rect.frame').evaluateAll((rs, f) => rs.filter(r => r.getAttribute('data-name').toLowerCase().includes(f.toLowerCase())).length, fn);
  check(highlighted > 0 && highlighted === expected, `search "${fn}" highlights the ${expected} matching frames (${highlighted} highlighted)`);
  const matchesText = await box.locator('.matches').innerText();
  check(matchesText.startsWith(`${highlighted} matching`), `the search says "${matchesText}"`);

  const target = box.locator('rect.frame.match').first();
  const svgWidth = Number(await box.locator('svg').getAttribute('width'));
  const before = Number(await target.getAttribute('width'));
  await target.click();
  await page.waitForTimeout(100);
  const after = await box.locator('rect.frame').evaluateAll((rs, f) => rs.filter(r => r.getAttribute('data-name').includes(f)).map(r => Number(r.getAttribute('width'))), fn);
  check(after.length > 0 && Math.abs(after[0] - svgWidth) < 0.5, `clicking ${fn} zooms it from ${before.toFixed(1)} px to the full width (${after[0]} of ${svgWidth} px)`);
  const root = box.locator('rect.frame').first();
  check(Math.abs(Number(await root.getAttribute('width')) - svgWidth) < 0.5, 'the zoomed frame is the flame graph\'s new root');
  // Hover shows ms, samples and share.
  await target.hover().catch(() => {});
  await box.locator('rect.frame').first().hover();
  const tip = await page.locator('#tip').innerText();
  check(/ms, \d+ samples, [\d.]+ % of all/.test(tip), `hover shows ms, samples and share: "${tip.replace(/\n/g, ' | ')}"`);

  const waterfalls = await page.locator('.waterfall svg rect.inferred').count();
  check(waterfalls > 0, `the slowest transactions' waterfalls show inferred spans (${waterfalls})`);
  await box.locator('input').fill('');
  await section.scrollIntoViewIfNeeded();
  await page.screenshot({path: screenshot, fullPage: false});
  check(fs.existsSync(screenshot), `screenshot saved: ${screenshot}`);
  check(errors.length === 0, `no console errors${errors.length ? ': ' + errors.join(' | ') : ''}`);
  check(requests.length === 0, `no network requests${requests.length ? ': ' + requests.join(' ') : ''}`);

  if (baselineHtml) {
    const b = await open(baselineHtml);
    const gone = await b.page.locator('ul.gone').allInnerTexts();
    check(gone.join(' ').includes(fn), `with the slow run as baseline, the fixed run lists ${fn} as gone`);
    check(await b.page.locator('.flame-box.diff rect.frame').count() > 0, 'the differential flame graph is drawn');
    await b.page.screenshot({path: screenshot.replace(/\.png$/, '-baseline.png'), fullPage: false});
    check(b.errors.length === 0, `no console errors on the baseline page${b.errors.length ? ': ' + b.errors.join(' | ') : ''}`);
  }
} catch (e) {
  check(false, `the checks ran to the end: ${e.stack || e}`);
}
clearTimeout(watchdog);
await browser.close();
fs.rmSync(tmp, {recursive: true, force: true});
process.exit(failures.length === 0 ? 0 : 1);
