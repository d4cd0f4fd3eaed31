// Browser tests of the settlement pages (issue 6), in Debian's headless Chromium.
// Run: node --test tests/e2e/settlement.test.mjs   (needs /usr/bin/chromium and `npm ci`)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FACILITIES, PASSWORD, PATIENTS, USERS, checkedPage, launchBrowser, signIn, startServer } from './helpers.mjs';

let server;
let browser;
const SHOTS = process.env.TIERCARE_SCREENSHOT_DIR || path.join(os.tmpdir(), 'tiercare-screenshots');
// the demo's settlement clerk (tiercare demo: `clerk`, 医保窗口赵老师, at the county hospital)
const CLERK = { username: 'clerk', display_name: '医保窗口赵老师' };

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const admin = await server.login(USERS.admin.username);
  const county = server.facilities.find((f) => f.code === FACILITIES.county.code);
  await server.api('POST', '/api/v1/users', admin, {
    username: CLERK.username, display_name: CLERK.display_name, facility_id: county.id, roles: ['settlement_clerk'], password: PASSWORD,
  });
});
after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const wang = PATIENTS[0]; // resident scheme, insured in 511600 (广安市), from 2026-01-01 (helpers.mjs)
const squash = (s) => s.replace(/\s+/g, ' ').trim();
const masked = (n) => n.slice(0, 6) + '*'.repeat(n.length - 10) + n.slice(-4);

async function noSidewaysScroll(page, what) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${what}: no sideways scrolling (overflow ${overflow}px)`);
}

/** The one catalogue item of this class whose name contains `name` (from the county's catalogue). */
async function catalogueItem(token, name, cls) {
  const r = await server.api('GET', '/api/v1/settlement/catalogue?q=' + encodeURIComponent(name) + '&limit=50', token);
  const item = r.items.find((i) => i.class === cls && i.name.includes(name));
  assert.ok(item, `a class-${cls} catalogue item named like ${name}: ${JSON.stringify(r.items)}`);
  return item;
}

/** Add a catalogue line through the search form and set its quantity and unit price (yuan). */
async function addLine(page, item, query, quantity, price) {
  await page.getByLabel('编码或名称', { exact: true }).fill(query);
  await page.getByRole('button', { name: '查询目录' }).click();
  await page.getByRole('button', { name: `添加 ${item.name}`, exact: true }).click();
  await page.getByLabel(`${item.name} 数量`, { exact: true }).fill(String(quantity));
  await page.getByLabel(`${item.name} 单价（元）`, { exact: true }).fill(price);
}

const fenOf = (page, scope, cls) => page.locator(`${scope} dl.split dd.${cls} .money`).first().getAttribute('data-fen');

test('a clinician has no settlement pages', async (t) => {
  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, USERS.clinician.username);
  const nav = await page.locator('#nav').getByRole('link').allTextContents();
  assert.deepEqual(nav, ['患者查询', '转诊', '随访任务', '机构目录']);
  for (const hash of ['#/settle', '#/journal', '#/reports', '#/policies']) {
    await page.goto(server.base + '/' + hash);
    await page.getByText('您的角色不能使用此页面。').waitFor();
  }
});

test('the clerk finds a patient, previews and settles a bill, prints the receipt, and reverses it from the journal', async (t) => {
  const token = await server.login(CLERK.username);
  // outpatient at the county hospital: one class-A and one class-B drug of the Sichuan catalogue
  const amox = await catalogueItem(token, '阿莫西林', 'a');
  const valsartan = await catalogueItem(token, '缬沙坦', 'b');
  assert.ok(amox.price_limit_fen === null || amox.price_limit_fen >= 1185, 'the chosen price is within the limit');
  assert.ok(valsartan.price_limit_fen === null || valsartan.price_limit_fen >= 3505, 'the chosen price is within the limit');

  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, CLERK.username);
  await page.getByRole('heading', { level: 1, name: '结算窗口' }).waitFor(); // the clerk lands on the desk
  assert.deepEqual(await page.locator('#nav').getByRole('link').allTextContents(), ['患者查询', '结算窗口', '日结', 'DIP/DRG 支付', '医保政策', '机构目录']);
  assert.equal(await page.locator('#nav a[data-page="#/settle"]').getAttribute('aria-current'), 'page');

  // ---- the patient: the identity number typed (or scanned) and Enter
  const scan = page.getByLabel('扫码或输入身份证号', { exact: true });
  assert.ok(await scan.evaluate((el) => el === document.activeElement), 'the scan field has the focus');
  await scan.fill(wang.identity_number);
  await scan.press('Enter');
  const who = page.locator('.patient-line');
  await who.waitFor();
  const whoText = squash(await who.innerText());
  assert.ok(whoText.includes(wang.name) && whoText.includes(masked(wang.identity_number)), whoText);
  assert.ok(!whoText.includes(wang.identity_number), 'the full identity number is not shown');
  // the year so far: nothing paid yet
  await page.locator('#main .accumulators dl').waitFor();

  // ---- two lines from the catalogue
  await addLine(page, amox, '阿莫西林', 2, '11.85');
  await addLine(page, valsartan, '缬沙坦', 1, '35.05');
  assert.equal(await page.locator('table.bill tbody tr').count(), 2);
  assert.equal(squash(await page.locator('.bill-total').innerText()), '合计：¥58.75（2 项）');

  // a quantity of 0 is refused next to its line, before anything is sent
  const qty = page.getByLabel(`${amox.name} 数量`, { exact: true });
  await qty.fill('0');
  await page.getByRole('button', { name: '预结算' }).click();
  assert.equal(await qty.getAttribute('aria-invalid'), 'true');
  const qtyErr = (await qty.getAttribute('aria-describedby')).split(' ').find((x) => x.endsWith('-err'));
  assert.equal(await page.locator('#' + qtyErr).textContent(), '数量须为 1 以上的整数。');
  await qty.fill('2');

  // a price above the catalogue's limit: the server refuses (422), the message stands next to that line's price
  if (valsartan.price_limit_fen !== null) {
    const price = page.getByLabel(`${valsartan.name} 单价（元）`, { exact: true });
    const over = valsartan.price_limit_fen + 1;
    await price.fill(`${Math.trunc(over / 100)}.${String(over % 100).padStart(2, '0')}`);
    await page.getByRole('button', { name: '预结算' }).click();
    await page.locator('.field-error:not([hidden])').first().waitFor();
    assert.equal(await price.getAttribute('aria-invalid'), 'true');
    const priceErr = (await price.getAttribute('aria-describedby')).split(' ').find((x) => x.endsWith('-err'));
    assert.equal(await page.locator('#' + priceErr).textContent(), '单价超过目录限价。');
    assert.equal(await page.locator('#st-result dl.split').count(), 0, 'no split for a refused bill');
    await price.fill('35.05');
  }

  // ---- preview. By hand, from crates/domain/data/policy-default.toml (广安市城乡居民医保 2026),
  // outpatient at a county hospital, insured region 511600 = home, no referral needed outpatient:
  //   class A: 2 × 11.85 = 23.70 yuan (2370 fen); class B: 1 × 35.05 = 35.05 yuan (3505 fen)
  //   total                      = 2370 + 3505                 = 5875 fen
  //   class-B first share (10 %) = 3505 × 1000 / 10000 = 350.5 → 351 fen (half-up)
  //   eligible                   = 5875 − 351                  = 5524 fen
  //   deductible (outpatient, county: 0)                       =    0 fen
  //   fund (county outpatient 50 %) = 5524 × 5000 / 10000     = 2762 fen
  //   coinsurance                = 5524 − 2762                 = 2762 fen
  //   outpatient pool cap 400 yuan, nothing used yet: 2762 ≤ 40000, nothing above it
  //   patient                    = 5875 − 2762 = 351 + 0 + 2762 = 3113 fen
  await page.getByLabel(`${valsartan.name} 单价（元）`, { exact: true }).press('Enter'); // Enter in a line previews
  await page.getByRole('heading', { name: /预结算结果（未保存）/ }).waitFor();
  const want = { total: '5875', fund: '2762', patient: '3113' };
  for (const [cls, fen] of Object.entries(want)) assert.equal(await fenOf(page, '#st-result', cls), fen, cls);
  const split = squash(await page.locator('#st-result dl.split').innerText());
  for (const s of ['医疗费用总额 ¥58.75', '统筹基金支付 ¥27.62', '个人支付 ¥31.13', '乙类先行自付 ¥3.51', '起付线 ¥0.00', '按比例自付 ¥27.62', '超限额自付 ¥0.00',
    '报销比例 50%', '广安市城乡居民医保 2026']) assert.ok(split.includes(s), `${s} in ${split}`);
  const steps = await page.locator('#st-result ol.explanation li').evaluateAll((ls) => ls.map((l) => [l.dataset.code, l.querySelector('.money').dataset.fen]));
  assert.deepEqual(steps, [['class_b_share', '351'], ['eligible', '5524'], ['deductible', '0'], ['rate', '5524'], ['fund', '2762'], ['coinsurance', '2762']]);
  const explained = (await page.locator('#st-result ol.explanation li').allInnerTexts()).map(squash);
  assert.ok(explained[0].startsWith('乙类项目个人先行自付 10%，由个人支付'), explained[0]);
  assert.ok(explained[3].startsWith('按县级医院门诊报销比例 50% 计算的费用'), explained[3]);
  assert.ok(explained[4].startsWith('统筹基金按 50% 支付') && explained[4].endsWith('¥27.62'), explained[4]);

  // ---- settle: the receipt, and the print stylesheet shows only it
  const txn = await page.getByLabel('交易流水号', { exact: true }).inputValue();
  assert.match(txn, /^WEB-\d{8}-[0-9A-F]{8}$/);
  await page.getByRole('button', { name: '结算', exact: true }).click();
  const rc = page.locator('main > .receipt');
  await rc.waitFor();
  assert.equal(await fenOf(page, 'main > .receipt', 'fund'), '2762');
  const rcText = squash(await rc.innerText());
  for (const s of ['医疗费用结算单', FACILITIES.county.name, wang.name, masked(wang.identity_number), txn, '已结算', amox.name, valsartan.name, '广安市城乡居民医保 2026']) {
    assert.ok(rcText.includes(s), `${s} on the receipt: ${rcText}`);
  }
  assert.ok(!rcText.includes(wang.identity_number), 'the receipt masks the identity number');
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, 'settlement-desk-desktop.png'), fullPage: true });
  await page.emulateMedia({ media: 'print' });
  assert.ok(await rc.isVisible(), 'the receipt prints');
  for (const sel of ['header.top', '#st-result', 'main > h1', 'main > section.card >> nth=0']) assert.ok(await page.locator(sel).first().isHidden(), `${sel} does not print`);
  await page.emulateMedia({ media: 'screen' });
  // the year's outpatient pool now shows the fund's payment
  await page.locator('#main .accumulators dd', { hasText: '¥27.62' }).first().waitFor();

  // ---- the same transaction number for another bill: 409, shown next to the number
  await page.getByRole('button', { name: '新的结算' }).click();
  await addLine(page, amox, '阿莫西林', 1, '11.85');
  const txnIn = page.getByLabel('交易流水号', { exact: true });
  await txnIn.fill(txn);
  await page.getByRole('button', { name: '结算', exact: true }).click();
  await page.locator('.field-error:not([hidden])').first().waitFor();
  assert.equal(await txnIn.getAttribute('aria-invalid'), 'true');
  const txnErr = (await txnIn.getAttribute('aria-describedby')).split(' ').find((x) => x.endsWith('-err'));
  assert.equal(await page.locator('#' + txnErr).textContent(), '该流水号已用于另一笔不同的结算，请换一个流水号。');
  assert.equal(await page.locator('main > .receipt').count(), 0, 'nothing settled');
  await noSidewaysScroll(page, 'the desk');

  // ---- the journal lists it; the clerk reverses it there
  await page.locator('#nav').getByRole('link', { name: '日结' }).click();
  await page.getByRole('heading', { level: 1, name: '日结' }).waitFor();
  const row = page.locator(`table.journal tbody tr[data-txn="${txn}"]`);
  await row.waitFor();
  assert.equal(await page.locator('table.journal tbody tr').count(), 1);
  let rowText = squash(await row.innerText());
  for (const s of [txn, wang.name, '门诊', '¥58.75', '¥27.62', '¥31.13', '已结算']) assert.ok(rowText.includes(s), `${s} in ${rowText}`);
  assert.equal(await page.locator('dd[data-total="count"]').textContent(), '1');
  assert.equal(await page.locator('dd[data-total="fund"] .money').getAttribute('data-fen'), '2762');
  await page.screenshot({ path: path.join(SHOTS, 'settlement-journal-desktop.png'), fullPage: true });

  await row.getByRole('button', { name: `冲正 ${txn}` }).click();
  const dialog = page.getByRole('dialog', { name: `冲正结算 ${txn}` });
  await dialog.waitFor();
  assert.equal(await dialog.getByLabel('冲正流水号').inputValue(), 'R-' + txn);
  await dialog.getByLabel('冲正原因').fill('收费项目录入错误，患者同意冲正后重新结算');
  await dialog.getByRole('button', { name: '冲正', exact: true }).click();
  await page.locator('main .alert.info', { hasText: '已冲正' }).waitFor();
  assert.equal(await dialog.count(), 0, 'the dialog is gone');
  rowText = squash(await page.locator(`table.journal tbody tr[data-txn="${txn}"]`).innerText());
  assert.ok(rowText.includes('已冲正') && !rowText.includes('已结算'), rowText);
  assert.equal(await page.locator(`table.journal tbody tr[data-txn="${txn}"]`).getByRole('button', { name: /冲正/ }).count(), 0, 'no second reversal offered');
  assert.equal(await page.locator('dd[data-total="reversed_count"]').textContent(), '1');

  // the settlement's page shows the reversal on its receipt
  await page.locator(`table.journal tbody tr[data-txn="${txn}"]`).getByRole('link', { name: txn }).click();
  await page.getByRole('heading', { level: 1, name: `结算详情 · ${txn}` }).waitFor();
  assert.ok(squash(await page.locator('main > .receipt').innerText()).includes('已冲正'));
  // …after a reload too (read back from the store): the bill's lines with their items,
  // quantities and prices, and the reversal's reason
  await page.reload();
  await page.getByRole('heading', { level: 1, name: `结算详情 · ${txn}` }).waitFor();
  const back = squash(await page.locator('main > .receipt').innerText());
  for (const s of [amox.name, valsartan.name, amox.code, valsartan.code, '冲正原因', '收费项目录入错误，患者同意冲正后重新结算']) {
    assert.ok(back.includes(s), `${s} on the reloaded receipt: ${back}`);
  }
  assert.equal(await page.locator('main > .receipt table.rc-lines tbody tr').count(), 2, 'both lines');
  // the explanation in English too (translated by step code)
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await page.getByRole('heading', { level: 1, name: `Settlement · ${txn}` }).waitFor();
  const en = (await page.locator('ol.explanation li').allInnerTexts()).map(squash);
  assert.ok(en[0].startsWith('Class-B first share of 10%, paid by the patient') && en[0].endsWith('¥3.51'), en[0]);
  assert.ok(en[3].startsWith('Amount the outpatient rate at a county hospital (50%) applies to'), en[3]);
  assert.ok(squash(await page.locator('main > .receipt').innerText()).includes('Reversed'));
  await page.getByRole('button', { name: '切换到中文' }).click();
  await page.locator('html[lang="zh-CN"]').waitFor();

  // ---- the patient page: the settlement (reversed) and the year's accumulators back to 0
  await page.goto(`${server.base}/#/patients/${server.wangId}`);
  const ps = page.locator('section.patient-settlements');
  await ps.locator('.accumulators').waitFor();
  const psText = squash(await ps.innerText());
  for (const s of ['医保结算', txn, '已冲正', '门诊统筹已支付 ¥0.00']) assert.ok(psText.includes(s), `${s} in ${psText}`);
});

test('the policy viewer shows the default policy, and the desk works at 360 px', async (t) => {
  const page = await checkedPage(browser, server, t, { width: 360, height: 780 });
  await signIn(page, server.base, CLERK.username);
  await page.goto(server.base + '/#/policies');
  await page.getByRole('heading', { level: 1, name: '医保政策' }).waitFor();
  const pol = page.locator('section.policy', { has: page.getByRole('heading', { name: '广安市城乡居民医保 2026' }) });
  const text = squash(await pol.innerText());
  // from policy-default.toml: ceiling 300,000 yuan, outpatient cap 400 yuan, county outpatient 50 %, county stay 500 yuan / 80 %
  for (const s of ['¥300,000.00', '¥400.00', '10%', '县级医院 ¥500.00 80%', '县级医院 ¥0.00 50%']) assert.ok(text.includes(s), `${s} in ${text}`);
  await noSidewaysScroll(page, 'the policy viewer at 360px');
  await page.goto(server.base + '/#/settle');
  await page.getByRole('heading', { level: 1, name: '结算窗口' }).waitFor();
  await noSidewaysScroll(page, 'the desk at 360px');
});

test('an insurance officer sees the fund report with its chart', async (t) => {
  const admin = await server.login(USERS.admin.username);
  const county = server.facilities.find((f) => f.code === FACILITIES.county.code);
  await server.api('POST', '/api/v1/users', admin, {
    username: 'insurance', display_name: '医保局周科长', facility_id: county.id, roles: ['insurance_officer'], password: PASSWORD,
  });
  // one settlement in force (the one of the test above was reversed): 2 × 11.85 yuan of a
  // class-A drug, outpatient at the county hospital: fund = 2370 × 50 % = 1185 fen
  const clerk = await server.login(CLERK.username);
  const amox = await catalogueItem(clerk, '阿莫西林', 'a');
  const v = await server.api('POST', '/api/v1/settlements', clerk, {
    txn_no: 'E2E-FUND-1', patient_id: server.wangId, setting: 'outpatient', lines: [{ code: amox.code, quantity: 2, unit_price_fen: 1185 }],
  });
  assert.equal(v.fund_fen, 1185);

  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, 'insurance');
  assert.deepEqual(await page.locator('#nav').getByRole('link').allTextContents(), ['患者查询', '日结', '医保报表', '互认节约报表', 'DIP/DRG 支付', '医保政策', '考核指标', '机构目录']);
  await page.locator('#nav').getByRole('link', { name: '医保报表' }).click();
  await page.getByRole('heading', { level: 1, name: '医保报表' }).waitFor();
  assert.equal(await page.getByRole('link', { name: '基金支付' }).getAttribute('aria-current'), 'page');
  const rows = page.locator('table.report tbody tr');
  await rows.first().waitFor();
  const text = squash(await rows.first().innerText());
  for (const s of [FACILITIES.county.name, '县级医院', '¥23.70', '¥11.85']) assert.ok(text.includes(s), `${s} in ${text}`);
  const chart = page.getByRole('img', { name: '基金支付（元）', exact: false });
  assert.equal(await chart.count(), 1);
  assert.equal(await page.locator('figure.chart rect').count(), 1);
  assert.ok((await page.locator('figure.chart').innerHTML()).includes('¥11.85'));
  // a malformed period is refused next to its field
  await page.goto(server.base + '/#/reports?kind=fund&from=2026-13&to=2026-12');
  const from = page.getByLabel('起始月份');
  await page.locator('.field-error:not([hidden])').first().waitFor();
  assert.equal(await from.getAttribute('aria-invalid'), 'true');
});

test('the journal shows a page at a time and loads more on demand, with the whole day\u2019s totals', async (t) => {
  const clerk = await server.login(CLERK.username);
  const amox = await catalogueItem(clerk, '阿莫西林', 'a');
  for (const n of [1, 2, 3]) {
    await server.api('POST', '/api/v1/settlements', clerk, {
      txn_no: `E2E-PAGE-${n}`, patient_id: server.wangId, setting: 'outpatient', lines: [{ code: amox.code, quantity: 1, unit_price_fen: 1000 }],
    });
  }
  // the day as the API answers it in one page: the order and totals the pages must add up to
  const day = await server.api('GET', '/api/v1/settlements?limit=1000', clerk);
  const want = day.rows.map((r) => r.txn_no);
  assert.ok(want.length >= 4, `at least the three above and one of the earlier tests: ${want}`);
  assert.equal(day.cursor, undefined, 'one page holds the day');

  const page = await checkedPage(browser, server, t);
  await signIn(page, server.base, CLERK.username);
  await page.goto(server.base + '/#/journal?limit=2');
  await page.getByRole('heading', { level: 1, name: '日结' }).waitFor();
  const rows = page.locator('table.journal tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 2, 'the first page of two');
  const more = page.getByRole('button', { name: '加载更多' });
  assert.equal(await page.locator('dd[data-total="count"]').textContent(), String(day.totals.count), 'the whole day\u2019s count on the first page');
  assert.equal(await page.locator('dd[data-total="fund"] .money').getAttribute('data-fen'), String(day.totals.fund_fen));
  assert.ok(squash(await page.locator('p.journal-shown').innerText()).includes(`已显示 2 条，共 ${want.length} 条`));
  for (let shown = 2; shown < want.length; shown += 2) {
    await more.click();
    await page.waitForFunction((n) => document.querySelectorAll('table.journal tbody tr').length === n, Math.min(shown + 2, want.length));
  }
  await page.locator('button.journal-more[hidden]').waitFor({ state: 'attached' });
  assert.equal(await more.count(), 0, 'no more to load after the last page');
  const got = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.txn));
  assert.deepEqual(got, want, 'the pages add up to the day, newest first, no row twice');
  assert.ok(squash(await page.locator('p.journal-shown').innerText()).includes(`已显示 ${want.length} 条，共 ${want.length} 条`));
  assert.equal(await page.locator('dd[data-total="count"]').textContent(), String(day.totals.count), 'the totals unchanged');
  // the control in English
  await page.getByRole('button', { name: 'Switch to English' }).click();
  await page.getByRole('heading', { level: 1, name: 'Daily journal' }).waitFor();
  await page.goto(server.base + '/#/journal?limit=3');
  await page.getByRole('button', { name: 'More' }).waitFor();
  await page.getByRole('button', { name: '切换到中文' }).click();
  await page.locator('html[lang="zh-CN"]').waitFor();
});
