// Browser tests of the results pages (issue 5): the patient's results with trend charts, the
// order-check dialog with its repeat-reason rule, and the savings report, in Debian's headless Chromium.
// Run: node --test tests/e2e/results.test.mjs   (needs /usr/bin/chromium and `npm ci`)
//
// Expected figures from the sample recognition catalogue (crates/domain/data/recognition-default.toml):
// head CT 28,000 fen (¥280.00), valid 90 days; HbA1c 3,500 fen, valid 60 days.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FACILITIES, PASSWORD, USERS, checkedPage, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;
const LAB = { username: 'lab_county', display_name: '县医院检验科' };
const DAY = 24 * 3600 * 1000;
const iso = (ms) => new Date(ms).toISOString();
// HbA1c over the year, oldest first (%): the last is 20 days old, within its 60-day window
const HBA1C = [[330, '8.6'], [240, '8.1'], [130, '7.4'], [20, '6.9']];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const admin = await server.login(USERS.admin.username);
  const county = server.facilities.find((f) => f.code === FACILITIES.county.code);
  server.county = county;
  await server.api('POST', '/api/v1/users', admin, {
    username: LAB.username, display_name: LAB.display_name, facility_id: county.id, roles: ['lab'], password: PASSWORD,
  });
  // the county hospital's lab holds the quality-control status (HR) since two years ago
  await server.api('POST', `/api/v1/results/labs/${county.id}/qualification`, admin, { action: 'grant', at: iso(Date.now() - 730 * DAY) });
  const lab = await server.login(LAB.username);
  const mark = { kind: 'province', province: '51' };
  const post = (days, body) => server.api('POST', '/api/v1/results', lab, {
    patient_id: server.wangId, facility_id: county.id, lab_id: county.id, mark,
    specimen_time: iso(Date.now() - days * DAY), report_time: iso(Date.now() - days * DAY + 3600e3), ...body,
  });
  for (const [days, v] of HBA1C) await post(days, { category: 'lab', observations: [{ code: 'HBA1C', value: v, unit: '%' }] });
  await post(3, {
    category: 'imaging',
    imaging: { code: 'CT-HEAD', modality: 'ct', body_site: '头颅', findings: '脑实质未见明显异常密度影', conclusion: '头颅CT平扫未见异常' },
  });
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test("the clinician sees the patient's results with an HbA1c trend chart", async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.clinician.username);
  // reached from the patient record's link (the results page has no navigation entry)
  await page.goto(`${server.base}/#/patients/${server.wangId}`);
  await page.locator('#main a.results-link').click();
  await page.getByRole('heading', { level: 1, name: '检验检查结果' }).waitFor();
  assert.equal(new URL(page.url()).hash, `#/results/${server.wangId}`);
  // the trend: one point per HbA1c result, oldest first, the newest (6.9) inside the range
  const chart = page.locator('figure.trend[data-item="HBA1C"]');
  await chart.waitFor();
  assert.equal(await chart.locator('circle.point').count(), HBA1C.length);
  const tips = await chart.locator('circle.point title').allTextContents();
  assert.deepEqual(tips.map((s) => s.match(/：([\d.]+)/)[1]), HBA1C.map(([, v]) => v));
  assert.match(await chart.locator('figcaption').textContent(), /糖化血红蛋白（%）趋势，共 4 次/);
  // the table: four HbA1c rows and the CT, the CT's conclusion shown
  assert.equal(await page.locator('table.results tbody tr').count(), 5);
  await page.getByText('头颅CT平扫未见异常').waitFor();
  assert.equal(await page.locator('#nav a[data-page="#/results"]').count(), 0);
  // the card the referral page shows (window.tiercare.results.recognisableCard): the latest
  // HbA1c (6.9 %) and the CT, recognisable at the township centre: 3,500 + 28,000 fen = ¥315.00
  await page.evaluate(async (id) => {
    document.getElementById('main').append(await window.tiercare.results.recognisableCard(id));
  }, server.wangId);
  const card = page.locator('section.recognisable');
  await card.getByRole('heading', { name: '可互认的检验检查结果' }).waitFor();
  assert.equal(await card.locator('tbody tr').count(), 2);
  assert.match(await card.textContent(), /6\.9 %.*可免重复检查，合计 ¥315\.00/s);
  // English
  await page.locator('#lang-toggle').click();
  await page.getByRole('heading', { level: 1, name: 'Lab and imaging results' }).waitFor();
  await page.locator('#lang-toggle').click();
});

test('the order-check dialog offers the recognisable results and asks a reason for a repeat', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.clinician.username);
  await page.goto(`${server.base}/#/results/${server.wangId}`);
  await page.getByRole('button', { name: '开检查单（互认查询）' }).click();
  const dlg = page.getByRole('dialog', { name: '检查互认查询' });
  await dlg.waitFor();
  for (const code of ['HBA1C', 'CT-HEAD', 'ECG']) await dlg.locator(`input[name=item][value="${code}"]`).check();
  await dlg.getByRole('button', { name: '查询可互认结果' }).click();
  const answer = (code) => dlg.locator(`.answer[data-item="${code}"]`);
  await answer('HBA1C').waitFor();
  assert.match(await answer('HBA1C').textContent(), /有可互认结果.*6\.9 %/);
  assert.match(await answer('CT-HEAD').textContent(), /有可互认结果.*头颅CT平扫未见异常/);
  assert.match(await answer('ECG').textContent(), /无可互认结果.*无既往结果/);
  // 3,500 + 28,000 = 31,500 fen recognisable
  await dlg.getByText('可互认项目合计 ¥315.00').waitFor();
  // repeat the HbA1c without a reason: refused, the reason field marked
  await answer('HBA1C').getByLabel('重新检查').check();
  await dlg.getByRole('button', { name: '记录检查单' }).click();
  const reason = dlg.getByLabel('糖化血红蛋白 重复检查理由');
  await dlg.getByText('该项目有可互认结果，重复检查须选择理由。').first().waitFor();
  assert.equal(await reason.getAttribute('aria-invalid'), 'true');
  await reason.selectOption('condition_changed');
  await dlg.getByRole('button', { name: '记录检查单' }).click();
  // the CT reused: one test avoided, ¥280.00 saved
  await page.locator('#order-outcome').getByText('已记录检查单：避免重复检查 1 项，节约 ¥280.00。').waitFor();
  assert.equal(await page.getByRole('dialog').count(), 0);
});

test('the savings report shows the avoided test per facility and month', async (t) => {
  // recorded by the previous test; run on its own, record one here
  const clin = await server.login(USERS.clinician.username);
  const savings = await server.api('GET', '/api/v1/results/savings', await server.login(USERS.admin.username));
  if (savings.total.reused === 0) {
    await server.api('POST', '/api/v1/results/orders', clin, { patient_id: server.wangId, items: [{ code: 'CT-HEAD', choice: 'reuse' }] });
  }
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.admin.username);
  await page.goto(`${server.base}/#/results-savings`);
  await page.getByRole('heading', { level: 1, name: '检验检查互认节约报表' }).waitFor();
  const row = page.locator('table.savings tbody tr').filter({ hasText: FACILITIES.township.name });
  await row.waitFor();
  assert.match(await row.textContent(), /¥280\.00/);
  await page.getByText('合计：避免重复检查 1 项，节约 ¥280.00').waitFor();
  // a bad month is refused with the field named
  await page.goto(`${server.base}/#/results-savings?from=2026-13&to=2026-12`);
  await page.getByRole('alert').first().waitFor();
  // a clinician may not open the report
  const page2 = await checkedPage(browser, server, t);
  await signIn(page2, server.base, USERS.clinician.username);
  await page2.goto(`${server.base}/#/results-savings`);
  await page2.getByText('您的角色不能使用此页面。').waitFor();
});
