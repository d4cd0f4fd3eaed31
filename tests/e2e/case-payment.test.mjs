// Browser tests of the case-based payment pages (issue 9), in Debian's headless Chromium.
// Run: node --test tests/e2e/case-payment.test.mjs   (needs /usr/bin/chromium and `npm ci`)
//
// The seed (helpers.mjs) has one inpatient stay at the county hospital (I10.x00, no procedure,
// 856,789 fen, discharged 33 days ago). The insurance officer builds that year from itself with a
// case threshold of 1, so (domain.md M9, computed by hand):
//   one core packet I10.x00 / conservative: mean 856,789 = the mean of all cases → 100 points
//   fund 600,000 fen at a ratio of 60 %: (600,000 ÷ 0.6) ÷ 100 points = 10,000 fen per point
//   county hospital: 100 points × 10,000 = 1,000,000 fen = ¥10,000.00 (patients paid nothing)
// DRG (sample scheme): I10.x00 with the CC E11.900 (exclusion group 11, not I10.x00's 10) → FU13,
// the only grouped stay of the history, so its
// weight is 856,789 ÷ 856,789 = 1.0000 and the hospital's CMI 1.0000; the default base rate is
// (600,000 ÷ 0.6) ÷ 1.0 = 1,000,000 fen per weight = ¥10,000.00, so the DRG payment is ¥10,000.00.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FACILITIES, PASSWORD, USERS, checkedPage, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;
const OFFICER = { username: 'officer', display_name: '医保局孙科长' };
let year;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const admin = await server.login(USERS.admin.username);
  const county = server.facilities.find((f) => f.code === FACILITIES.county.code);
  await server.api('POST', '/api/v1/users', admin, {
    username: OFFICER.username, display_name: OFFICER.display_name, facility_id: county.id, roles: ['insurance_officer'], password: PASSWORD,
  });
  // the China-time year in which the seeded stay was discharged
  year = new Date(Date.now() - 33 * 24 * 3600 * 1000 + 8 * 3600 * 1000).getUTCFullYear();
  const officer = await server.login(OFFICER.username);
  await server.api('POST', '/api/v1/case-payment/years', officer, {
    region_code: '511600',
    terms: { year, history_years: [year], params: { core_threshold: 1 }, fund_available_fen: 600000, reimbursement_ratio_bp: 6000 },
  });
  await server.api('POST', '/api/v1/case-payment/budgets', officer, { community_id: server.community.id, year, budget_fen: 5000000 });
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const squash = (s) => s.replace(/\s+/g, ' ').trim();

test('an insurance officer sees the hospital position, the packet catalogue and the budget burn-down', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, OFFICER.username);
  await page.locator('#nav').getByRole('link', { name: 'DIP/DRG 支付' }).click();
  await page.getByRole('heading', { name: 'DIP/DRG 支付：医院位置' }).waitFor();
  const row = page.locator('table.cp-hospitals tbody tr', { hasText: FACILITIES.county.name });
  await row.waitFor();
  const text = squash(await row.innerText());
  assert.match(text, /100\.00/, 'the county hospital has 100 points');
  assert.match(text, /10,000\.00/, 'and is paid ¥10,000.00');
  assert.equal(squash(await page.locator('[data-test=point-value]').innerText()), '10000.0000 分/点');
  // CMI 1.0000, then DIP: points × value, patients paid, payment; then DRG: weight × rate, payment
  assert.match(text, /1\.0000 ¥10,000\.00 ¥0\.00 ¥10,000\.00 ¥10,000\.00 ¥10,000\.00$/, text);
  assert.equal(squash(await page.locator('[data-test=drg-base-rate]').innerText()), '¥10,000.00 / 权重 1.0');
  const weight = page.locator('table.cp-drg-weights tbody tr', { hasText: 'FU13' });
  assert.match(squash(await weight.innerText()), /^FU13 .*1 \* ¥8,567\.89 1\.0000$/);

  await page.getByRole('link', { name: '病种目录' }).click();
  const packet = page.locator('table.cp-packets tbody tr', { hasText: /I10\.x00/i });
  await packet.waitFor();
  assert.match(squash(await packet.innerText()), /核心病种 I10\.X00 特发性（原发性）高血压 保守治疗 1 ¥8,567\.89 100\.00/);

  await page.goto(server.base + '/#/case-payment/budget');
  await page.getByRole('heading', { name: '医共体总额预算' }).waitFor();
  await page.getByLabel('年度').fill(String(year));
  await page.getByRole('button', { name: '查看' }).click();
  await page.locator('[data-test=budget]').waitFor();
  assert.match(await page.locator('[data-test=budget]').innerText(), /50,000\.00/);
  assert.equal(await page.locator('figure.chart svg [data-test=burn-line]').count(), 1, 'the burn-down is drawn');

  // English
  await page.locator('#lang-toggle').click();
  await page.goto(server.base + '/#/case-payment');
  await page.getByRole('heading', { name: 'DIP/DRG payment: hospital position' }).waitFor();
  await page.getByRole('heading', { name: 'DRG weights (from history)' }).waitFor();
});

test('a clinician has no case-payment page', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.clinician.username);
  assert.equal(await page.locator('#nav').getByRole('link', { name: 'DIP/DRG 支付' }).count(), 0);
});
