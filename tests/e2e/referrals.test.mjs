// Browser tests of the referral pages (issue 4), in Debian's headless Chromium.
// Run: node --test tests/e2e/   (needs /usr/bin/chromium and `npm ci`)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FACILITIES, PATIENTS, USERS, checkedPage, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;
const SHOTS = process.env.TIERCARE_SCREENSHOT_DIR || path.join(os.tmpdir(), 'tiercare-screenshots');

before(async () => {
  server = await startServer(); // a fresh data directory: no referral exists yet
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const wang = PATIENTS[0];
const zhang = PATIENTS[3];
const facility = (code) => server.facilities.find((f) => f.code === code);
/** Tomorrow's date in China (YYYY-MM-DD). */
const chinaTomorrow = () => new Date(Date.now() + 8 * 3600e3 + 24 * 3600e3).toISOString().slice(0, 10);
const squash = (s) => s.replace(/\s+/g, ' ').trim();
const actionButtons = (page) => page.locator('#ref-actions .buttons button').allTextContents();

async function noSidewaysScroll(page, what) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${what}: no sideways scrolling (overflow ${overflow}px)`);
}

async function screenshots(page, name, url, ready) {
  mkdirSync(SHOTS, { recursive: true });
  for (const [label, viewport] of [['360', { width: 360, height: 780 }], ['desktop', { width: 1280, height: 900 }]]) {
    await page.setViewportSize(viewport);
    await page.goto(url);
    await ready.waitFor();
    await noSidewaysScroll(page, `${name} at ${viewport.width}px`);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${label}.png`), fullPage: true });
  }
}

test('a township clinician refers up, the county referral centre accepts and schedules, the township sees it', async (t) => {
  const county = facility(FACILITIES.county.code);

  // ---- the township clinician refers 王秀英 up to the county hospital
  const town = await checkedPage(browser, server, t);
  await signIn(town, server.base, USERS.clinician.username);
  assert.deepEqual(await town.locator('#nav').getByRole('link').allTextContents(), ['患者查询', '转诊', '随访任务', '机构目录']);
  await town.goto(`${server.base}/#/patients/${server.wangId}`);
  await town.getByRole('heading', { level: 1, name: `患者档案 · ${wang.name}` }).waitFor();
  await town.getByRole('link', { name: '发起转诊' }).click();
  await town.getByRole('heading', { level: 1, name: '发起转诊' }).waitFor();

  const receiver = town.getByLabel('接收机构', { exact: true });
  await receiver.locator(`option[value="${county.id}"]`).waitFor({ state: 'attached' });
  // proposed: the facilities of a higher tier (the county hospital), not the village clinic below
  assert.deepEqual(await receiver.locator('optgroup').first().locator('option').allTextContents(), [`${FACILITIES.county.name} · 县级医院`]);
  await receiver.selectOption(county.id);
  assert.equal(await town.locator('#nr-direction').textContent(), '上转');
  assert.ok(await town.locator('fieldset.downward').isHidden(), 'no discharge summary or follow-up plan for an upward referral');
  await town.getByLabel('紧急程度', { exact: true }).selectOption('urgent');
  await town.getByLabel('转诊原因', { exact: true }).fill('血压控制不佳，近一周胸闷加重，需心内科评估');
  await town.getByLabel('诊断（ICD-10 编码）', { exact: true }).fill('I10.x00, ZZZ.999');
  await town.getByLabel('病情摘要', { exact: true }).fill('血压 178/102 mmHg，心电图未见 ST 段改变。');
  const encounters = town.locator('fieldset.checks input[type="checkbox"]');
  assert.equal(await encounters.count(), 2, 'both encounters of the record can be linked');
  await encounters.first().check();

  // an unknown diagnosis code: the server refuses, the message stands next to the field, in Chinese
  await town.getByRole('button', { name: '发送转诊' }).click();
  const diagnoses = town.getByLabel('诊断（ICD-10 编码）', { exact: true });
  await town.locator('.field-error:not([hidden])').waitFor();
  assert.equal(await diagnoses.getAttribute('aria-invalid'), 'true');
  const errorId = (await diagnoses.getAttribute('aria-describedby')).split(' ').find((x) => x.endsWith('-err'));
  assert.equal(await town.locator('#' + errorId).textContent(), '“ZZZ.999”不是 ICD-10 医保版 2.0 诊断编码。');
  assert.ok(await diagnoses.evaluate((el) => el === document.activeElement), 'focus moves to the field in error');

  await diagnoses.fill('I10.x00');
  await town.getByRole('button', { name: '发送转诊' }).click();
  await town.waitForURL(/#\/referrals\/[0-9a-f-]{36}$/);
  const referralId = town.url().split('/').pop();
  await town.getByRole('heading', { level: 1, name: `转诊 · ${wang.name}` }).waitFor();
  const summary = squash(await town.locator('.ref-tags').innerText());
  for (const want of ['待接收', '上转', '紧急', '县域内']) assert.ok(summary.includes(want), `${want} in ${summary}`);
  // the sender may cancel or record its clock times, nothing else
  assert.deepEqual(await actionButtons(town), ['撤销转诊', '记录时间节点']);

  // ---- the county referral centre: the inbox shows it under 待处理
  const centre = await checkedPage(browser, server, t);
  await signIn(centre, server.base, USERS.centre.username);
  await centre.getByRole('heading', { level: 1, name: '转诊工作台' }).waitFor(); // the centre lands on its inbox
  const newTab = centre.getByRole('link', { name: /^待处理/ });
  assert.equal(await newTab.getAttribute('aria-current'), 'page');
  assert.equal(squash(await newTab.textContent()), '待处理 1');
  // the badge: one new referral in the inbox and one unseen notification of it
  const badge = centre.locator('#nav a[data-page="#/referrals"] .badge');
  await badge.waitFor();
  assert.equal(await badge.textContent(), '2');
  const rows = centre.locator('table.referrals tbody tr');
  assert.equal(await rows.count(), 1);
  const rowText = squash(await rows.first().innerText());
  for (const want of [wang.name, '上转', '紧急', FACILITIES.township.name, FACILITIES.county.name, '待接收']) {
    assert.ok(rowText.includes(want), `${want} in the row: ${rowText}`);
  }
  assert.ok((await centre.locator('section.notes').innerText()).includes('新转诊：发起转诊'));
  await screenshots(centre, 'referral-inbox', `${server.base}/#/referrals?box=inbox&category=new`, rows.first());
  await rows.first().getByRole('link', { name: wang.name }).click();
  await centre.getByRole('heading', { level: 1, name: `转诊 · ${wang.name}` }).waitFor();
  assert.deepEqual(await actionButtons(centre), ['确认收到', '接收', '拒绝', '改转他院', '记录时间节点']);

  // a colleague at the county hospital acknowledges it meanwhile: the page is now stale, and
  // accepting from it is refused with the current state shown
  const colleague = await server.login(USERS.specialist.username);
  await server.api('POST', `/api/v1/referrals/${referralId}/transitions`, colleague, { action: 'acknowledge', version: 1 });
  await centre.getByRole('button', { name: '接收', exact: true }).click();
  const stale = centre.locator('#ref-actions [role="alert"]');
  await stale.waitFor();
  assert.equal(squash(await stale.textContent()), '该转诊已被他人处理，请刷新。 当前状态：待接收（第 2 版）。');
  await centre.getByRole('button', { name: '刷新' }).click();
  await centre.locator('#ref-actions .buttons').waitFor();
  assert.deepEqual(await actionButtons(centre), ['接收', '拒绝', '改转他院', '记录时间节点']);

  await centre.getByRole('button', { name: '接收', exact: true }).click();
  await centre.locator('main .alert.info', { hasText: '已接收。' }).waitFor();
  assert.ok(squash(await centre.locator('.ref-tags').innerText()).startsWith('已接收'));
  assert.deepEqual(await actionButtons(centre), ['预约', '记录时间节点']);

  // schedule tomorrow 09:30 China time, from the keyboard-reachable dialog
  await centre.getByRole('button', { name: '预约', exact: true }).click();
  const dialog = centre.getByRole('dialog', { name: '预约' });
  await dialog.waitFor();
  const day = chinaTomorrow();
  await dialog.getByLabel('时间（北京时间）').fill(`${day}T09:30`);
  await dialog.getByLabel('接收科室（可选）').fill('心血管内科');
  await dialog.getByRole('button', { name: '确定' }).click();
  await centre.locator('main .alert.info', { hasText: '已预约。' }).waitFor();
  assert.equal(await dialog.count(), 0, 'the dialog is gone');
  const facts = squash(await centre.locator('dl.facts').first().innerText());
  assert.ok(facts.includes(`${day.replaceAll('-', '/')} 09:30`), `scheduled at 09:30 China time: ${facts}`);
  assert.ok(facts.includes('科室：心血管内科'), facts);
  assert.ok(squash(await centre.locator('.ref-tags').innerText()).startsWith('已预约'));
  // the history: who, where, what, in order
  const history = (await centre.locator('ol.history > li').allInnerTexts()).map(squash);
  assert.equal(history.length, 4, history.join('\n'));
  assert.ok(history[0].includes('发起转诊') && history[0].includes(`${USERS.clinician.display_name}（${FACILITIES.township.name}）`), history[0]);
  assert.ok(history[1].includes('确认收到') && history[1].includes(USERS.specialist.display_name), history[1]);
  assert.ok(history[2].includes('接收') && history[2].includes(USERS.centre.display_name) && history[2].includes('待接收 → 已接收'), history[2]);
  assert.ok(history[3].includes('预约') && history[3].includes('已接收 → 已预约'), history[3]);

  await screenshots(centre, 'referral-detail', `${server.base}/#/referrals/${referralId}`, centre.locator('ol.history > li').first());

  // ---- back at the township: the outbox shows it scheduled, and the notifications say so
  await town.goto(`${server.base}/#/referrals?box=outbox`);
  await town.getByRole('heading', { level: 1, name: '转诊工作台' }).waitFor();
  assert.equal(await town.getByRole('link', { name: /^我发起的/ }).getAttribute('aria-current'), 'page');
  const outRow = town.locator('table.referrals tbody tr');
  await outRow.first().waitFor();
  assert.equal(await outRow.count(), 1);
  const outText = squash(await outRow.first().innerText());
  assert.ok(outText.includes('已预约') && outText.includes(FACILITIES.county.name), outText);
  // accepted and scheduled: two unseen notifications (the acknowledgement notifies nobody)
  const townBadge = town.locator('#nav a[data-page="#/referrals"] .badge');
  await townBadge.waitFor();
  assert.equal(await townBadge.textContent(), '2');
  const notes = town.locator('section.notes');
  assert.equal(squash(await notes.getByRole('heading').textContent()), '通知（2 条未读）');
  const noteTexts = (await notes.locator('li').allInnerTexts()).map(squash);
  assert.ok(noteTexts.some((x) => x.includes('对方已处理：预约')), noteTexts.join('\n'));
  assert.ok(noteTexts.some((x) => x.includes('对方已处理：接收')), noteTexts.join('\n'));
  await notes.getByRole('button', { name: '全部已读' }).click();
  await notes.getByRole('heading', { name: '通知', exact: true }).waitFor();
  assert.equal(await notes.getByRole('button', { name: '全部已读' }).count(), 0);
  await townBadge.waitFor({ state: 'detached' });

  // the patient page shows the referral in the timeline
  await town.goto(`${server.base}/#/patients/${server.wangId}`);
  const item = town.locator('ol.timeline li.referral');
  await item.waitFor();
  const itemText = squash(await item.innerText());
  for (const want of ['转诊', '上转', FACILITIES.county.name, '已预约']) assert.ok(itemText.includes(want), `${want} in ${itemText}`);
  await item.getByRole('link', { name: '查看转诊' }).click();
  await town.getByRole('heading', { level: 1, name: `转诊 · ${wang.name}` }).waitFor();
});

test('a green-channel referral proposes only facilities with the centre and keeps the clock', async (t) => {
  // a city hospital with a stroke centre; the county hospital has none
  const admin = await server.login(USERS.admin.username);
  const city = await server.api('POST', '/api/v1/facilities', admin, {
    code: 'H51160200001', name: '广安市人民医院', tier: 'city', grade: 'level3_a', region_code: '511602', insurance_region: '511600',
    community_id: null, capabilities: { beds: 1200, departments: ['神经内科'], emergency_centres: ['stroke', 'chest_pain'] },
  });
  const clin = await server.login(USERS.clinician.username);
  const found = await server.api('POST', '/api/v1/patients/lookup', clin, { type: 'resident_id', value: zhang.identity_number });

  const page = await checkedPage(browser, server, t, { width: 360, height: 780 });
  await signIn(page, server.base, USERS.clinician.username);
  await page.goto(`${server.base}/#/referrals/new?patient=${found.id}`);
  await page.getByRole('heading', { level: 1, name: '发起转诊' }).waitFor();
  const receiver = page.getByLabel('接收机构', { exact: true });
  await receiver.locator(`option[value="${city.id}"]`).waitFor({ state: 'attached' });
  await page.getByLabel('绿色通道（所需救治中心）').selectOption('stroke');
  // only the capable facility is left to choose
  await receiver.locator(`option[value="${facility(FACILITIES.county.code).id}"]`).waitFor({ state: 'detached' });
  const values = (await receiver.locator('option').evaluateAll((os) => os.map((o) => o.value))).filter(Boolean);
  assert.deepEqual(values, [city.id]);
  const urgency = page.getByLabel('紧急程度', { exact: true });
  assert.equal(await urgency.inputValue(), 'emergency');
  assert.ok(await urgency.isDisabled(), 'a green channel is an emergency');
  await receiver.selectOption(city.id);
  assert.equal(await page.locator('#nr-direction').textContent(), '上转');
  await page.getByLabel('转诊原因', { exact: true }).fill('突发右侧肢体无力 1 小时，疑急性脑卒中');
  await page.getByLabel('诊断（ICD-10 编码）', { exact: true }).fill('I63.900');
  await noSidewaysScroll(page, 'the referral form at 360px');
  await page.getByRole('button', { name: '发送转诊' }).click();
  await page.getByRole('heading', { level: 1, name: `转诊 · ${zhang.name}` }).waitFor();
  const tags = squash(await page.locator('.ref-tags').innerText());
  for (const want of ['待接收', '急危重', '绿色通道·卒中']) assert.ok(tags.includes(want), `${want} in ${tags}`);
  await page.getByRole('heading', { name: '绿色通道时间节点' }).waitFor();
  assert.ok((await page.locator('main').innerText()).includes('尚未记录时间节点。'));

  // the sender records first medical contact (its side of the clock)
  await page.getByRole('button', { name: '记录时间节点' }).click();
  const dialog = page.getByRole('dialog', { name: '记录时间节点' });
  assert.deepEqual(await dialog.getByLabel('时间节点').locator('option').allTextContents(), ['首次医疗接触', '离开转出机构']);
  await dialog.getByRole('button', { name: '确定' }).click();
  await page.locator('main .alert.info', { hasText: '已记录时间节点。' }).waitFor();
  assert.ok((await page.locator('table.timepoints').innerText()).includes('首次医疗接触'));
  await noSidewaysScroll(page, 'the green-channel detail at 360px');

  // the outbox filtered to green channels lists it, marked in words as well as colour; in English too
  await page.goto(`${server.base}/#/referrals?box=outbox&green=true`);
  const rows = page.locator('table.referrals tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 1);
  assert.ok(squash(await rows.first().innerText()).includes('绿色通道·卒中'));
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await page.getByRole('heading', { level: 1, name: 'Referral worklist' }).waitFor();
  const en = squash(await page.locator('table.referrals tbody tr').first().innerText());
  for (const want of ['Green channel: stroke', 'Emergency', 'Upward', 'Requested']) assert.ok(en.includes(want), `${want} in ${en}`);
  await page.getByRole('button', { name: '切换到中文' }).click();
  await page.locator('html[lang="zh-CN"]').waitFor();
});

test('the community admin sees the community\'s referrals, names masked', async (t) => {
  // a village doctor and a community admin at the village clinic, which is in the community
  const admin = await server.login(USERS.admin.username);
  for (const [username, display_name, roles] of [['vdoc_huayuan', '杨医生', ['village_doctor']], ['cadmin_huayuan', '医共体办公室', ['community_admin']]]) {
    await server.api('POST', '/api/v1/users', admin, { username, display_name, facility_id: server.villageClinic.id, roles, password: 'yuechi-e2e-secret-2026' });
  }
  const li = PATIENTS[1];
  const vdoc = await server.login('vdoc_huayuan');
  const found = await server.api('POST', '/api/v1/patients/lookup', vdoc, { type: 'resident_id', value: li.identity_number });
  await server.api('POST', '/api/v1/referrals', vdoc, {
    patient_id: found.id, to_facility_id: facility(FACILITIES.county.code).id, reason: '反复头晕，村卫生室无法明确诊断', diagnoses: ['I10.x00'],
  });

  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, 'cadmin_huayuan');
  await page.locator('#nav').getByRole('link', { name: '转诊总览' }).click();
  await page.getByRole('heading', { level: 1, name: '医共体转诊总览' }).waitFor();
  const rows = page.locator('table.referrals tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 1);
  const text = squash(await rows.first().innerText());
  assert.ok(text.includes('李*') && !text.includes(li.name), `the name is masked: ${text}`);
  for (const want of ['上转', '花园村卫生室', FACILITIES.county.name, '待接收']) assert.ok(text.includes(want), `${want} in ${text}`);
  assert.equal(await rows.first().getByRole('link').count(), 0, 'no link to a referral the admin is not party to');
  // the closed tab has none
  await page.getByRole('link', { name: '已结束' }).click();
  await page.getByText('没有符合条件的转诊。').waitFor();
});
