// Browser tests of the web app shell (issue 3), in Debian's headless Chromium.
// Run: node --test tests/e2e/   (needs /usr/bin/chromium and `npm ci`)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COUNTY_PATIENT, PATIENTS, USERS, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;
const SHOTS = process.env.TIERCARE_SCREENSHOT_DIR || path.join(os.tmpdir(), 'tiercare-screenshots');

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** A page whose uncaught errors and console errors fail the test. */
async function newPage(t, viewport) {
  const page = await browser.newPage(viewport);
  // every test starts in Chinese, whatever an earlier (maybe failed) test left behind
  await page.goto(server.base + '/');
  await page.evaluate(() => localStorage.removeItem('tiercare.lang'));
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // (answers with an error status are expected: the app shows them; anything else is not)
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push('console error: ' + m.text());
  });
  t.after(async () => {
    await page.close();
    assert.deepEqual(problems, [], 'no script or CSP errors in the page');
  });
  return page;
}

const wang = PATIENTS[0];
const masked = (n) => n.slice(0, 6) + '*'.repeat(n.length - 10) + n.slice(-4);

test('a township clinician finds a patient by name and by identity number and sees the timeline', async (t) => {
  const page = await newPage(t);
  await signIn(page, server.base, USERS.clinician.username);
  // clinicians land on patient search; no admin pages in their navigation
  await page.getByRole('heading', { level: 1, name: '患者查询' }).waitFor();
  const nav = page.getByRole('navigation');
  assert.deepEqual(await nav.getByRole('link').allTextContents(), ['患者查询', '转诊', '随访任务', '机构目录']);

  // by name: two people called 李明
  await page.getByLabel('姓名', { exact: true }).fill('李明');
  await page.getByRole('search', { name: '按姓名或电话查询' }).getByRole('button', { name: '查询' }).click();
  await page.getByRole('heading', { name: '查询结果（2）' }).waitFor();
  const text = await page.locator('#results').innerText();
  for (const p of PATIENTS.filter((x) => x.name === '李明')) {
    assert.ok(text.includes(masked(p.identity_number)), 'the masked number is listed');
    assert.ok(!text.includes(p.identity_number), 'the full number is not listed');
  }

  // by phone: two people share 13800001111
  await page.getByLabel('姓名', { exact: true }).fill('');
  await page.getByLabel('电话', { exact: true }).fill(wang.phone);
  await page.getByRole('search', { name: '按姓名或电话查询' }).getByRole('button', { name: '查询' }).click();
  await page.getByRole('heading', { name: '查询结果（2）' }).waitFor();

  // by identity number
  await page.getByLabel('居民身份证号码', { exact: true }).fill(wang.identity_number);
  await page.getByRole('search', { name: '按身份证号查询' }).getByRole('button', { name: '查询' }).click();
  await page.getByRole('heading', { name: '查询结果（1）' }).waitFor();
  const row = page.locator('#results tbody tr');
  assert.equal(await row.count(), 1);
  const rowText = await row.innerText();
  assert.ok(rowText.includes(wang.name) && rowText.includes(masked(wang.identity_number)), rowText);
  assert.ok(!rowText.includes(wang.identity_number), 'the lookup answer shows the number masked');
  assert.ok(rowText.includes('岳池县九龙镇中心卫生院'), 'home facility by name: ' + rowText);

  // the patient page: demographics and the encounter timeline
  await row.getByRole('link', { name: wang.name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: `患者档案 · ${wang.name}` }).waitFor();
  const entries = page.locator('ol.timeline li.encounter');
  assert.equal(await entries.count(), 2, 'both encounters, newest first');
  const entryText = await entries.first().innerText();
  for (const want of ['岳池县九龙镇中心卫生院', '门诊', '全科', 'I10.x00', '123.45']) {
    assert.ok(entryText.includes(want), `timeline entry shows ${want}: ${entryText}`);
  }
  const older = await entries.nth(1).innerText();
  for (const want of ['岳池县人民医院', '住院', '心血管内科', 'E11.900', '8,567.89']) {
    assert.ok(older.includes(want), `timeline entry shows ${want}: ${older}`);
  }
  assert.ok((await page.locator('table.enrolments').innerText()).includes('城乡居民医保'));
  const mainText = await page.locator('main').innerText();
  assert.ok(mainText.includes(masked(wang.identity_number)) && !mainText.includes(wang.identity_number));

  // a patient of the county hospital: no care relationship, so the break-glass form
  await page.getByRole('link', { name: '返回查询' }).click();
  await page.getByLabel('姓名', { exact: true }).fill(COUNTY_PATIENT.name);
  await page.getByLabel('电话', { exact: true }).fill('');
  await page.getByRole('search', { name: '按姓名或电话查询' }).getByRole('button', { name: '查询' }).click();
  await page.getByRole('heading', { name: '查询结果（1）' }).waitFor();
  await page.locator('#results tbody tr').getByRole('link', { name: COUNTY_PATIENT.name, exact: true }).click();
  await page.getByRole('heading', { name: '无诊疗关系' }).waitFor();
  await page.getByLabel('紧急查看理由').fill('急诊转入，需要既往病史和用药');
  await page.getByRole('button', { name: '紧急查看' }).click();
  await page.getByRole('heading', { level: 1, name: `患者档案 · ${COUNTY_PATIENT.name}` }).waitFor();
  assert.ok((await page.locator('main').innerText()).includes('紧急授权'));

  // screenshots of the patient page, phone and desktop
  mkdirSync(SHOTS, { recursive: true });
  for (const [label, viewport] of [['360', { width: 360, height: 780 }], ['desktop', { width: 1280, height: 900 }]]) {
    await page.setViewportSize(viewport);
    await page.goto(`${server.base}/#/patients/${server.wangId}`);
    await page.locator('ol.timeline li.encounter').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at ${viewport.width}px (overflow ${overflow}px)`);
    await page.screenshot({ path: path.join(SHOTS, `patient-${label}.png`), fullPage: true });
  }
});

test('the language switches to English and back, and the choice is remembered', async (t) => {
  const page = await newPage(t);
  await signIn(page, server.base, USERS.clinician.username);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  // keyboard: after navigation focus is on the main content; Tab reaches its first field,
  // and focus is visible there
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => {
    const el = document.activeElement;
    return { label: el.labels && el.labels[0] ? el.labels[0].textContent : el.textContent, outline: getComputedStyle(el).outlineStyle };
  });
  assert.deepEqual(focused, { label: '居民身份证号码', outline: 'solid' });
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await page.getByRole('heading', { level: 1, name: 'Find a patient' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.deepEqual(await page.getByRole('navigation').getByRole('link').allTextContents(), ['Patients', 'Referrals', 'Follow-ups', 'Directory']);
  assert.ok(await page.getByLabel('Resident identity number').isVisible());
  // remembered across a reload (localStorage); the session survives too (sessionStorage)
  await page.reload();
  await page.getByRole('heading', { level: 1, name: 'Find a patient' }).waitFor();
  await page.getByRole('link', { name: 'Directory' }).click();
  await page.getByRole('heading', { level: 1, name: 'Facility and community directory' }).waitFor();
  assert.ok((await page.locator('main').innerText()).includes('Township centre'));
  // an API error shown through the dictionary by its code
  await page.getByRole('link', { name: 'Patients' }).click();
  await page.getByRole('search', { name: 'By name or phone' }).getByRole('button', { name: 'Search' }).click();
  await page.getByText('Give a name or a phone number.').waitFor();
  // and back to Chinese, from the keyboard
  await page.getByRole('button', { name: 'Switch to English' }).or(page.getByRole('button', { name: '切换到中文' })).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: '患者查询' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  assert.equal(await page.evaluate(() => localStorage.getItem('tiercare.lang')), 'zh');
});

test('no page references anything outside this server', async (t) => {
  const origin = new URL(server.base).origin;
  const requests = [];
  const offending = (u) => !(u.startsWith(origin + '/') || u === origin || u.startsWith('data:') || u.startsWith('blob:') || u.startsWith('#') || u === '');
  const check = async (page, where) => {
    const refs = await page.evaluate(() => Array.from(document.querySelectorAll('[src],[href],[action],[srcset],[poster],[data]'))
      .flatMap((el) => ['src', 'href', 'action', 'srcset', 'poster', 'data'].filter((a) => el.hasAttribute(a)).map((a) => {
        const v = el.getAttribute(a);
        try { return new URL(v, document.baseURI).href; } catch { return v; }
      })));
    const css = await page.evaluate(() => Array.from(document.styleSheets).flatMap((s) => { try { return Array.from(s.cssRules).map((r) => r.cssText); } catch { return ['<unreadable sheet>']; } }).join('\n'));
    const urls = [...css.matchAll(/url\(([^)]*)\)/g)].map((m) => m[1].replace(/["']/g, ''));
    for (const u of [...refs, ...urls.map((u) => new URL(u, origin + '/').href)]) assert.ok(!offending(u), `${where}: ${u}`);
  };
  for (const user of [USERS.clinician, USERS.admin]) {
    const page = await newPage(t);
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(server.base + '/');
    await page.getByLabel('用户名').waitFor();
    await check(page, 'login');
    await signIn(page, server.base, user.username);
    const routes = ['#/directory', '#/directory?tier=township', '#/patients', `#/patients/${server.wangId}`, '#/users', '#/access-log', '#/nope'];
    for (const r of routes) {
      await page.goto(server.base + '/' + r);
      await page.locator('main h1').waitFor();
      await page.waitForLoadState('networkidle');
      await check(page, `${user.username} ${r}`);
    }
    // English too
    await page.getByRole('button', { name: 'Switch to English' }).click();
    await page.locator('html[lang="en"]').waitFor();
    await check(page, `${user.username} English`);
    await page.getByRole('button', { name: '切换到中文' }).click();
    await page.locator('html[lang="zh-CN"]').waitFor();
  }
  assert.ok(requests.length > 10, 'requests were seen');
  const outside = requests.filter(offending);
  assert.deepEqual(outside, [], 'every request stays on this server');
});

test('the community admin sees the clinician\'s reads in the access log', async (t) => {
  const page = await newPage(t);
  await signIn(page, server.base, USERS.admin.username);
  const nav = page.getByRole('navigation');
  assert.deepEqual(await nav.getByRole('link').allTextContents(), ['日结', '医保报表', '互认节约报表', 'DIP/DRG 支付', '医保政策', '考核指标', '机构目录', '转诊总览', '用户', '访问日志']);
  await nav.getByRole('link', { name: '访问日志' }).click();
  await page.getByRole('heading', { level: 1, name: '访问日志' }).waitFor();
  await page.getByLabel('用户').selectOption({ label: `${USERS.clinician.display_name} (${USERS.clinician.username})` });
  await page.getByRole('button', { name: '查询' }).click();
  await page.waitForURL(/user_id=/);
  await page.getByRole('heading', { name: /^记录（\d+）$/ }).waitFor();
  const rows = page.locator('table.access-log tbody tr');
  const texts = await rows.allInnerTexts();
  assert.ok(texts.length >= 3, 'the clinician\'s reads are listed: ' + texts.length);
  assert.ok(texts.every((x) => x.includes(USERS.clinician.display_name)), 'only the chosen user');
  const all = texts.join('\n');
  for (const want of ['证件查询', '身份识别', '岳池县九龙镇中心卫生院']) assert.ok(all.includes(want), `${want} in\n${all}`);
  // filter by basis: break-glass reads (the first test makes one) are listed with their reason
  await page.getByLabel('访问依据').selectOption('break_glass');
  await page.getByRole('button', { name: '查询' }).click();
  await page.waitForURL(/basis=break_glass/);
  await page.getByRole('heading', { name: /^记录（\d+）$/ }).waitFor();
  const bg = await page.locator('table.access-log tbody tr').allInnerTexts();
  for (const x of bg) assert.ok(x.includes('紧急查看') && x.includes('急诊转入'), x);

  // the users page and the directory
  await nav.getByRole('link', { name: '用户' }).click();
  await page.getByRole('heading', { level: 1, name: '用户' }).waitFor();
  assert.ok((await page.locator('main').innerText()).includes('乡镇医生'));
  await nav.getByRole('link', { name: '机构目录' }).click();
  await page.getByRole('heading', { level: 1, name: '机构与医共体目录' }).waitFor();
  await page.getByLabel('层级').selectOption('village');
  await page.getByRole('button', { name: '筛选' }).click();
  await page.getByRole('heading', { name: '医疗机构（1）' }).waitFor();
  assert.ok((await page.locator('table.facilities').innerText()).includes('岳池县医共体'));
});
