// Shared set-up of the browser tests: build the binary, seed a fresh data directory through
// the CLI (and, for what the CLI cannot do, the API), start `tiercare serve` on a free port,
// and launch Debian's headless Chromium through playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = '/usr/bin/chromium';
export const PASSWORD = 'yuechi-e2e-secret-2026';
export const REGION = '511621'; // 四川省广安市岳池县

// ---------------------------------------------------------------- GB 11643 identity numbers
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
/** region (6) + YYYYMMDD + sequence (3; odd last digit = male) + check character. */
export function identityNumber(region, birth, seq) {
  const body = region + birth.replaceAll('-', '') + seq;
  if (!/^\d{17}$/.test(body)) throw new Error('17 digits expected: ' + body);
  const sum = [...body].reduce((acc, d, i) => acc + Number(d) * WEIGHTS[i], 0);
  return body + CHECK[sum % 11];
}
// the standard's own example, so a slip in the helper shows here and not as a mystery later
if (identityNumber('440524', '18800101', '001') !== '440524188001010014') throw new Error('GB 11643 helper is wrong');

export const PATIENTS = [
  { name: '王秀英', sex: 'female', birth_date: '1962-03-08', identity_number: identityNumber(REGION, '1962-03-08', '102'), phone: '13800001111', address: '岳池县九龙镇花园村3组' },
  { name: '李明', sex: 'male', birth_date: '1958-11-20', identity_number: identityNumber(REGION, '1958-11-20', '113'), phone: '13800002222', address: '岳池县九龙镇石桥村1组' },
  { name: '李明', sex: 'male', birth_date: '1990-05-02', identity_number: identityNumber(REGION, '1990-05-02', '035'), phone: '13900003333', address: '岳池县九龙镇新街12号' },
  { name: '张桂兰', sex: 'female', birth_date: '1975-07-15', identity_number: identityNumber(REGION, '1975-07-15', '208'), phone: '13800001111', address: '岳池县九龙镇花园村3组' },
];
// registered at the county hospital: the township clinician has no care relationship
export const COUNTY_PATIENT = { name: '陈志强', sex: 'male', birth_date: '1966-09-09', identity_number: identityNumber(REGION, '1966-09-09', '051'), phone: '13700004444', address: '岳池县城关镇' };

function csv(rows) {
  const head = 'name,sex,birth_date,identity_number,phone,address,region_code';
  return [head, ...rows.map((p) => [p.name, p.sex, p.birth_date, p.identity_number, p.phone, p.address, REGION].join(','))].join('\n') + '\n';
}

// ---------------------------------------------------------------- binary, server
export function binary() {
  execFileSync('cargo', ['build', '-q', '--locked', '-p', 'tiercare'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
  return path.join(target, 'debug', 'tiercare');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

export const FACILITIES = {
  county: { code: 'H51162100001', name: '岳池县人民医院', tier: 'county', grade: 'level2a' },
  township: { code: 'H51162100102', name: '岳池县九龙镇中心卫生院', tier: 'township', grade: 'level1' },
};
export const USERS = {
  clinician: { username: 'clin_jiulong', display_name: '刘医生', facility: 'township', roles: 'township_clinician' },
  // the CLI cannot put a facility in a community, and a community admin outside one has
  // nothing to manage: this admin also holds system_admin (as in the README's tour)
  specialist: { username: 'spec_county', display_name: '周主任', facility: 'county', roles: 'specialist' },
  // the county hospital's referral centre (转诊中心): answers the referrals sent to it
  centre: { username: 'centre_county', display_name: '转诊中心陈护士', facility: 'county', roles: 'referral_centre' },
  admin: { username: 'admin_yuechi', display_name: '管理员', facility: 'county', roles: 'community_admin,system_admin' },
};

export async function startServer() {
  const bin = binary();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tiercare-e2e-'));
  const dataDir = path.join(dir, 'data');
  const run = (args, extraEnv) => execFileSync(bin, [...args, '--data-dir', dataDir], {
    cwd: dir, env: { ...process.env, TIERCARE_LOG: 'warn', ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const f of Object.values(FACILITIES)) {
    run(['facilities', 'add', '--code', f.code, '--name', f.name, '--tier', f.tier, '--grade', f.grade, '--region', REGION]);
  }
  for (const u of Object.values(USERS)) {
    run(['users', 'add', '--username', u.username, '--display-name', u.display_name, '--facility', FACILITIES[u.facility].code, '--roles', u.roles], { TIERCARE_PASSWORD: PASSWORD });
  }
  const townCsv = path.join(dir, 'township.csv');
  writeFileSync(townCsv, csv(PATIENTS));
  run(['import', 'patients', townCsv, '--facility', FACILITIES.township.code, '--quiet']);
  const countyCsv = path.join(dir, 'county.csv');
  writeFileSync(countyCsv, csv([COUNTY_PATIENT]));
  run(['import', 'patients', countyCsv, '--facility', FACILITIES.county.code, '--quiet']);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    cwd: dir, env: { ...process.env, TIERCARE_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tiercare serve exited (${child.exitCode}): ${stderr}`);
    try { if ((await fetch(base + '/healthz')).ok) break; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error('tiercare serve did not answer /healthz in 30 s: ' + stderr);
    await new Promise((r) => setTimeout(r, 100));
  }
  const server = {
    base, dir, child,
    async api(method, p, token, body) {
      const headers = { accept: 'application/json' };
      if (token) headers.authorization = 'Bearer ' + token;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await r.text();
      const json = text ? JSON.parse(text) : null;
      if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
      return json;
    },
    async login(username) { return (await server.api('POST', '/api/v1/auth/login', null, { username, password: PASSWORD })).token; },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await seedThroughApi(server);
  return server;
}

/** What the CLI cannot do: a community (for the directory) and an encounter (for the timeline). */
async function seedThroughApi(s) {
  const admin = await s.login(USERS.admin.username);
  const community = await s.api('POST', '/api/v1/communities', admin, { name: '岳池县医共体', region_code: REGION, community_wide_read: false });
  s.community = community;
  s.villageClinic = await s.api('POST', '/api/v1/facilities', admin, {
    code: 'V511621001', name: '花园村卫生室', tier: 'village', grade: 'ungraded', region_code: REGION, insurance_region: '511600', community_id: community.id,
    capabilities: { beds: 0, departments: ['全科'], emergency_centres: [] },
  });
  const clin = await s.login(USERS.clinician.username);
  const facilities = await s.api('GET', '/api/v1/facilities', clin);
  s.facilities = facilities;
  const township = facilities.find((f) => f.code === FACILITIES.township.code);
  const wang = PATIENTS[0];
  const found = await s.api('POST', '/api/v1/patients/lookup', clin, { type: 'resident_id', value: wang.identity_number });
  s.wangId = found.id;
  const started = new Date(Date.now() - 26 * 3600 * 1000).toISOString();
  s.encounter = await s.api('POST', '/api/v1/encounters', clin, {
    patient_id: found.id, facility_id: township.id, department: '全科', class: 'outpatient', started_at: started,
    diagnoses: ['I10.x00'], total_cost_fen: 12345,
  });
  // an earlier stay at the county hospital: the timeline spans facilities
  const spec = await s.login(USERS.specialist.username);
  const county = facilities.find((f) => f.code === FACILITIES.county.code);
  await s.api('POST', '/api/v1/patients/lookup', spec, { type: 'resident_id', value: wang.identity_number });
  const day = 24 * 3600 * 1000;
  await s.api('POST', '/api/v1/encounters', spec, {
    patient_id: found.id, facility_id: county.id, department: '心血管内科', class: 'inpatient',
    started_at: new Date(Date.now() - 40 * day).toISOString(), ended_at: new Date(Date.now() - 33 * day).toISOString(),
    diagnoses: ['I10.x00', 'E11.900'], total_cost_fen: 856789,
  });
  await s.api('POST', `/api/v1/patients/${found.id}/enrolments`, admin, {
    scheme: 'resident', insured_region: '511600', filing_status: 'not_filed', valid_from: '2026-01-01',
  });
}

// ---------------------------------------------------------------- browser
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tiercare-chromium-'));
  // a fresh profile per run; playwright wants it as launchPersistentContext's first argument
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async newPage(viewport) {
      const page = await context.newPage();
      if (viewport) await page.setViewportSize(viewport);
      return page;
    },
    async close() { await context.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

/**
 * A new page (its own sessionStorage, so its own signed-in user) whose uncaught errors and
 * console errors fail the test `t`; starts in Chinese.
 */
export async function checkedPage(browser, server, t, viewport) {
  const { default: assert } = await import('node:assert/strict');
  const page = await browser.newPage(viewport);
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

/** Sign in through the login form. */
export async function signIn(page, base, username) {
  await page.goto(base + '/');
  await page.getByLabel(/用户名|User name/).fill(username);
  await page.getByLabel(/密码|Password/).fill(PASSWORD);
  await page.getByRole('button', { name: /^(登录|Sign in)$/ }).click();
  await page.locator('#logout').waitFor({ state: 'visible' });
}
