// Renders an edgebench HTML report in headless Chromium (playwright-core) and prints one JSON
// line: console errors, page errors, requests that left the file, every chart's size, and the
// paths of a full-page screenshot and a print-to-PDF rendering.
// Usage: node check_report.js REPORT.html SCREENSHOT.png REPORT.pdf
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');

(async () => {
  const [html, png, pdf] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.EDGEBENCH_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = { console_errors: [], page_errors: [], external_requests: [], charts: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') result.console_errors.push(m.text()); });
    page.on('pageerror', (e) => result.page_errors.push(String(e)));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) result.external_requests.push(r.url()); });
    await page.goto('file://' + path.resolve(html), { waitUntil: 'load' });
    result.title = await page.title();
    result.charts = await page.$$eval('svg.chart', (els) => els.map((e) => {
      const b = e.getBoundingClientRect();
      return { id: e.id, width: b.width, height: b.height, marks: e.querySelectorAll('rect.bar, path.series, circle.point').length };
    }));
    result.verdicts = await page.$$eval('.v.good, .v.fair, .v.poor', (els) => els.length);
    await page.screenshot({ path: png, fullPage: true });
    await page.emulateMedia({ media: 'print' });
    await page.pdf({ path: pdf, format: 'A4', landscape: true, printBackground: true });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
