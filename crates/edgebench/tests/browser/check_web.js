// Drives `edgebench serve` in headless Chromium (playwright-core) as a user would: each page,
// two short benchmarks started with the button (progress arriving over server-sent events), a
// third one cancelled, the results list, one experiment's table, a comparison of the two
// finished runs and a CSV download. Prints one JSON line: what it saw, console and page errors,
// and any request to another host. Screenshots of each page go to OUT_DIR.
// Usage: node check_web.js BASE_URL MODEL_PATH OUT_DIR
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');
const fs = require('fs');

(async () => {
  const [base, model, out] = process.argv.slice(2);
  const origin = new URL(base).origin;
  const browser = await chromium.launch({
    executablePath: process.env.EDGEBENCH_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = { console_errors: [], page_errors: [], external_requests: [], runs: [] };
  process.on('exit', (code) => { if (code !== 0) console.error('seen so far: ' + JSON.stringify(result)); });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
    page.on('pageerror', (e) => result.page_errors.push(String(e)));
    page.on('request', (r) => { if (!r.url().startsWith(origin)) result.external_requests.push(r.url()); });
    await page.goto(base, { waitUntil: 'load' });

    // Hardware.
    await page.waitForSelector('#hw table', { timeout: 30000 });
    result.hardware_rows = await page.$$eval('#hw tr', (rows) => rows.map((r) => r.querySelector('th').textContent));
    await page.screenshot({ path: path.join(out, 'hardware.png'), fullPage: true });

    // Benchmark: two short runs of the model, each to its end.
    await page.click('nav button[data-page=benchmark]');
    const start = async (runs) => {
      await page.selectOption('select[name=target]', '');
      await page.fill('input[name=models]', model);
      await page.selectOption('select[name=scenarios]', 'interactive_assistant');
      await page.fill('input[name=runs]', String(runs));
      await page.fill('input[name=warmup]', '0');
      await page.fill('input[name=max_tokens]', '8');
      await page.fill('input[name=cooldown_s]', '0');
      await page.fill('input[name=settle_timeout_s]', '0');
      const before = await page.textContent('#progress');
      await page.click('#start');
      // The new run's id, then its first finished request.
      await page.waitForFunction((old) => {
        const b = document.querySelector('#progress b');
        return b && !old.startsWith(b.textContent + ' ');
      }, before, { timeout: 120000 });
      await page.waitForFunction(() => /requests [1-9]/.test(document.querySelector('#progress').textContent), null, { timeout: 120000 });
    };
    for (let i = 0; i < 2; i++) {
      await start(2);
      await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'done', null, { timeout: 180000 });
      result.runs.push({ progress: await page.textContent('#progress'), log: await page.textContent('#log') });
    }
    await page.screenshot({ path: path.join(out, 'benchmark.png'), fullPage: true });
    // A third, long one, cancelled once its first request is in.
    await start(200);
    await page.click('#cancel');
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'interrupted', null, { timeout: 120000 });
    result.cancelled = await page.textContent('#progress');

    // Results: the list, one experiment, a comparison, a download.
    await page.click('nav button[data-page=results]');
    await page.waitForSelector('#experiments table');
    result.experiments = await page.$$eval('#experiments tr td:nth-child(4)', (tds) => tds.map((t) => t.textContent));
    const done = await page.$$eval('#experiments tr', (rows) => rows
      .filter((r) => r.querySelector('td:nth-child(4)')?.textContent === 'done')
      .map((r) => r.querySelector('input.pick').value));
    await page.click(`#experiments a.open[data-id="${done[0]}"]`);
    await page.waitForSelector('#detail table');
    result.detail = await page.$$eval('#detail tr td:nth-child(5)', (tds) => tds.map((t) => t.textContent));
    await page.check(`#experiments input.pick[value="${done[1]}"]`);
    await page.check(`#experiments input.pick[value="${done[0]}"]`);
    await page.click('#compare');
    await page.waitForSelector('#verdict');
    result.verdict = await page.textContent('#verdict');
    result.comparison = await page.textContent('#comparison');
    result.compared_metrics = await page.$$eval('#detail table.cmp tr td:first-child', (tds) => tds.map((t) => t.textContent));
    await page.screenshot({ path: path.join(out, 'results.png'), fullPage: true });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`#experiments tr:has(input[value="${done[0]}"]) a.dl:text("csv")`),
    ]);
    const csv = path.join(out, 'download.csv');
    await download.saveAs(csv);
    result.csv_head = fs.readFileSync(csv, 'utf8').split('\n').slice(0, 3);
    result.csv_name = download.suggestedFilename();

    // Another machine's results: an export file imported under a label, then the machines
    // side by side.
    const exported = path.join(out, 'laptop-b.json');
    const [json] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`#experiments tr:has(input[value="${done[1]}"]) a.dl:text("json")`),
    ]);
    await json.saveAs(exported);
    await page.fill('#importform input[name=label]', 'laptop-b');
    await page.setInputFiles('#importform input[name=file]', exported);
    await page.click('#import');
    await page.waitForSelector('#imported');
    result.imported = await page.textContent('#imported');
    await page.click('#machines');
    await page.waitForSelector('#machinelist');
    result.machines = await page.$$eval('#machinelist tr td:first-child', (tds) => tds.map((t) => t.textContent));
    result.machine_cells = await page.$$eval('table.machinerow tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
    await page.screenshot({ path: path.join(out, 'machines.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
