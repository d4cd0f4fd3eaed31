// Browser tests of the indicator pages (issue 8), in Debian's headless Chromium.
// Run: node --test tests/e2e/indicators.test.mjs   (needs /usr/bin/chromium and `npm ci`)
//
// The seed (helpers.mjs): community 岳池县医共体 (511621); 王秀英, a 岳池 resident, had one
// outpatient visit at the township centre 26 hours ago and one stay at the county hospital
// 40 days ago, both inside the county. So, for this year to this month (domain.md M14, by hand):
//   county in-area visit rate   = 1 visit in county ÷ 1 visit       = 100.0% ≥ 90%  → met (green)
//   grassroots visit share      = 1 township visit ÷ 1 visit        = 100.0% ≥ 65%  → met
//   in-county inpatient share   = 1 ÷ 1 = 100.0%, target "rising", no earlier year → no colour
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FACILITIES, USERS, checkedPage, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const squash = (s) => s.replace(/\s+/g, ' ').trim();

test('the scorecard shows the indicators against their targets, and drills down to the records', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.admin.username);
  await page.locator('#nav').getByRole('link', { name: '考核指标' }).click();
  await page.getByRole('heading', { name: '医共体考核指标' }).waitFor();
  const rate = page.locator('table.ind-scorecard tbody tr', { hasText: '县域内就诊率' });
  await rate.waitFor();
  assert.match(squash(await rate.innerText()), /100\.0%.*1 \/ 1.*≥ 90\.0%.*达标/);
  assert.equal(await rate.locator('[data-rag]').getAttribute('data-rag'), 'green');
  const share = page.locator('table.ind-scorecard tbody tr', { hasText: '基层诊疗量占比' });
  assert.match(squash(await share.innerText()), /100\.0%.*1 \/ 1.*≥ 65\.0%/);
  const stays = page.locator('table.ind-scorecard tbody tr', { hasText: '县域内住院人次占比' });
  assert.equal(await stays.locator('[data-rag]').getAttribute('data-rag'), 'none', 'no earlier year to compare with');
  // the patient-flow picture and the townships compared
  await page.locator('svg[data-test=flow]').waitFor();
  await page.locator('table.ind-flow tbody tr', { hasText: '居民·县域内' }).first().waitFor();

  // drill down: indicator → facility → month → records
  await rate.getByRole('link', { name: '县域内就诊率' }).click();
  await page.locator('svg[data-test=trend]').waitFor();
  const township = page.locator('table.ind-drilldown tbody tr', { hasText: FACILITIES.township.name });
  await township.waitFor();
  assert.match(squash(await township.innerText()), /1 \/ 1/, 'the township has the one resident visit of one');
  await township.getByRole('link', { name: FACILITIES.township.name }).click();
  const months = page.locator('table.ind-months tbody tr');
  await months.first().waitFor();
  const visitMonth = new Date(Date.now() - 26 * 3600 * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 7);
  await page.locator('table.ind-months').getByRole('link', { name: visitMonth }).click();
  const record = page.locator('table.ind-records tbody tr');
  await record.first().waitFor();
  assert.match(squash(await record.first().innerText()), /就诊.*outpatient.*511621.*123\.45/);
  assert.ok(!(await page.locator('#main').innerText()).includes('王秀英'), 'no patient name in the records');

  // English
  await page.locator('#lang-toggle').click();
  await page.getByRole('heading', { name: 'Community assessment indicators' }).waitFor();
  await page.locator('table.ind-scorecard tbody tr', { hasText: 'County in-area visit rate' }).waitFor();
});

test('a bad period is answered with a message, not a blank page', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.admin.username);
  await page.goto(`${server.base}/#/indicators?community=${server.community.id}&from=2026-05&to=2026-01`);
  await page.locator('#main [role=alert]').waitFor();
  assert.match(await page.locator('#main [role=alert]').innerText(), /2026-01|before|之前|period/i);
});

test('a clinician has no indicator page in the navigation', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.clinician.username);
  assert.equal(await page.locator('#nav').getByRole('link', { name: '考核指标' }).count(), 0);
});
