// tiercare web app shell: vanilla JS, hash routing, every string from the zh/en dictionary.
// Talks only to this server's JSON API (/api/v1); loads nothing from anywhere else.
'use strict';
(function () {
  const TOKEN_KEY = 'tiercare.token';
  const LANG_KEY = 'tiercare.lang';

  // ------------------------------------------------------------------ dictionary
  const DICT = {
    zh: {
      'app.title': '医共体分级诊疗', 'skip': '跳到正文', 'nav.label': '主导航',
      'nav.directory': '机构目录', 'nav.patients': '患者查询', 'nav.users': '用户', 'nav.access_log': '访问日志',
      'lang.switch': 'English', 'lang.switch_label': 'Switch to English', 'logout': '退出', 'loading': '加载中…',
      'login.title': '登录', 'login.username': '用户名', 'login.password': '密码', 'login.submit': '登录',
      'login.signed_in_as': '{name}（{facility}）', 'login.signed_out': '已退出登录',
      'dir.title': '机构与医共体目录', 'dir.filter': '筛选', 'dir.tier': '层级', 'dir.community': '医共体',
      'dir.all': '全部', 'dir.none': '（未加入）', 'dir.apply': '筛选', 'dir.facilities': '医疗机构（{n}）',
      'dir.communities': '医共体（{n}）', 'dir.name': '名称', 'dir.code': '机构编码', 'dir.grade': '等级',
      'dir.region': '行政区划', 'dir.beds': '床位', 'dir.emergency': '急救中心', 'dir.departments': '科室',
      'dir.community_wide_read': '共同体内共享病历', 'dir.member_count': '成员机构', 'dir.no_facilities': '没有符合条件的机构。',
      'dir.no_communities': '尚未建立医共体。', 'yes': '是', 'no': '否',
      'tier.village': '村卫生室', 'tier.township': '乡镇卫生院', 'tier.county': '县级医院', 'tier.city': '市级医院',
      'tier.provincial': '省级医院', 'tier.national': '国家级医院',
      'grade.ungraded': '未定级', 'grade.level1': '一级', 'grade.level2': '二级', 'grade.level2a': '二级甲等',
      'grade.level3': '三级', 'grade.level3a': '三级甲等',
      'ec.chest_pain': '胸痛中心', 'ec.stroke': '卒中中心', 'ec.trauma': '创伤中心',
      'ec.critical_maternal': '危重孕产妇救治中心', 'ec.critical_newborn': '危重儿童和新生儿救治中心',
      'pat.title': '患者查询', 'pat.by_id': '按身份证号查询', 'pat.identity_number': '居民身份证号码',
      'pat.identity_hint': '18 位，最后一位可为 X', 'pat.by_name': '按姓名或电话查询', 'pat.name': '姓名', 'pat.phone': '电话',
      'pat.search': '查询', 'pat.results': '查询结果（{n}）', 'pat.no_results': '没有找到患者。', 'pat.open': '查看',
      'pat.sex': '性别', 'pat.birth_date': '出生日期', 'pat.age': '年龄', 'pat.identity_masked': '身份证号',
      'pat.phone_masked': '电话', 'pat.home_facility': '签约/首诊机构', 'pat.status': '状态',
      'pat.logged_note': '每次查询都会记入访问日志。', 'pat.address': '住址', 'pat.record_id': '档案编号',
      'sex.male': '男', 'sex.female': '女', 'age.years': '{n} 岁', 'status.active': '有效', 'status.merged': '已合并',
      'rec.title': '患者档案', 'rec.demographics': '基本信息', 'rec.enrolments': '参保信息', 'rec.timeline': '就诊时间线（全部机构）',
      'rec.no_enrolments': '没有参保记录。', 'rec.no_encounters': '没有就诊记录。', 'rec.basis': '访问依据：{basis}',
      'rec.scheme': '险种', 'rec.insured_region': '参保地', 'rec.filing_status': '备案状态', 'rec.filed_region': '就医地',
      'rec.valid': '有效期', 'rec.diagnoses': '诊断', 'rec.procedures': '手术操作', 'rec.department': '科室',
      'rec.cost': '总费用', 'rec.ended': '结束 {t}', 'rec.back': '返回查询', 'rec.merged_ids': '已并入的档案',
      'scheme.employee': '职工医保', 'scheme.resident': '城乡居民医保',
      'filing.not_filed': '未备案', 'filing.long_term': '长期备案', 'filing.temporary': '临时备案',
      'class.outpatient': '门诊', 'class.inpatient': '住院', 'class.emergency': '急诊',
      'basis.care_relationship': '诊疗关系', 'basis.same_community': '同一医共体', 'basis.break_glass': '紧急授权（破窗）',
      'basis.identification': '身份识别',
      'bg.title': '无诊疗关系', 'bg.explain': '您所在机构与该患者没有诊疗关系。如确属诊疗需要，可填写理由后紧急查看；理由和本次查看将记入访问日志，并由管理员审核。',
      'bg.reason': '紧急查看理由', 'bg.reason_hint': '至少说明具体原因，例如“急诊转入，需要既往用药史”。', 'bg.submit': '紧急查看',
      'bg.banner': '本次为紧急授权查看，已记入访问日志。',
      'log.title': '访问日志', 'log.filters': '筛选条件', 'log.user': '用户', 'log.patient_id': '患者档案编号',
      'log.basis': '访问依据', 'log.from': '起始日期', 'log.to': '截止日期', 'log.limit': '最多条数', 'log.apply': '查询',
      'log.entries': '记录（{n}）', 'log.none': '没有符合条件的记录。', 'log.at': '时间', 'log.facility': '机构',
      'log.patient': '患者', 'log.action': '操作', 'log.reason': '理由', 'log.client': '来源地址', 'log.all_users': '全部用户',
      'action.lookup': '证件查询', 'action.match': '相似匹配', 'action.search': '姓名/电话查询', 'action.read_record': '查看档案',
      'action.break_glass_read': '紧急查看',
      'users.title': '用户', 'users.username': '用户名', 'users.display_name': '姓名', 'users.facility': '所属机构',
      'users.roles': '角色', 'users.active': '启用', 'users.none': '没有用户。',
      'role.village_doctor': '乡村医生', 'role.township_clinician': '乡镇医生', 'role.referral_centre': '转诊中心',
      'role.specialist': '专科医生', 'role.lab': '检验', 'role.settlement_clerk': '结算员', 'role.insurance_officer': '医保经办',
      'role.community_admin': '医共体管理员', 'role.system_admin': '系统管理员',
      'notfound.title': '页面不存在', 'notfound.body': '请从导航中选择页面。', 'forbidden.page': '您的角色不能使用此页面。',
      'err.network': '无法连接服务器，请检查网络后重试。', 'err.generic': '出错了：{msg}',
      'err.auth.invalid': '用户名或密码错误。', 'err.auth.required': '登录已过期，请重新登录。',
      'err.auth.rate_limited': '登录失败次数过多，请稍后再试。', 'err.auth.forbidden': '您的角色无权执行此操作。',
      'err.role.forbidden': '您的角色无权执行此操作。',
      'err.patient.not_registered': '没有以此证件登记的患者。', 'err.search.too_little': '请填写姓名或电话。',
      'err.access.no_relationship': '您所在机构与该患者没有诊疗关系。', 'err.access.reason_too_short': '理由太短，请具体说明。',
      'err.reason.length': '理由最多 500 字。', 'err.identity_number.check_character': '身份证号校验位错误。', 'err.identity_number.region': '身份证号中的地区代码无效。',
      'err.identity_number.characters': '身份证号只能包含数字，最后一位可为 X。', 'err.identity_number.length': '身份证号应为 18 位。',
      'err.identity_number.birth_date': '身份证号中的出生日期无效。', 'err.identity_number.birth_date_future': '身份证号中的出生日期晚于今天。',
      'err.not_found': '未找到。', 'err.route.unknown': '接口不存在。', 'err.admin.no_community': '您所在机构未加入医共体。',
      'err.busy': '数据库繁忙，请稍后再试。', 'err.phone.format': '电话号码格式错误。', 'err.body.too_large': '提交的内容太大。', 'err.time.format': '日期格式错误。', 'err.validation': '输入有误：',
    },
    en: {
      'app.title': 'Tiered care', 'skip': 'Skip to content', 'nav.label': 'Main navigation',
      'nav.directory': 'Directory', 'nav.patients': 'Patients', 'nav.users': 'Users', 'nav.access_log': 'Access log',
      'lang.switch': '中文', 'lang.switch_label': '切换到中文', 'logout': 'Sign out', 'loading': 'Loading…',
      'login.title': 'Sign in', 'login.username': 'User name', 'login.password': 'Password', 'login.submit': 'Sign in',
      'login.signed_in_as': '{name} ({facility})', 'login.signed_out': 'Signed out',
      'dir.title': 'Facility and community directory', 'dir.filter': 'Filter', 'dir.tier': 'Tier', 'dir.community': 'Community',
      'dir.all': 'All', 'dir.none': '(none)', 'dir.apply': 'Filter', 'dir.facilities': 'Facilities ({n})',
      'dir.communities': 'Medical communities ({n})', 'dir.name': 'Name', 'dir.code': 'Code', 'dir.grade': 'Grade',
      'dir.region': 'Region', 'dir.beds': 'Beds', 'dir.emergency': 'Emergency centres', 'dir.departments': 'Departments',
      'dir.community_wide_read': 'Community-wide record sharing', 'dir.member_count': 'Member facilities',
      'dir.no_facilities': 'No facility matches.', 'dir.no_communities': 'No medical community yet.', 'yes': 'Yes', 'no': 'No',
      'tier.village': 'Village clinic', 'tier.township': 'Township centre', 'tier.county': 'County hospital',
      'tier.city': 'City hospital', 'tier.provincial': 'Provincial hospital', 'tier.national': 'National hospital',
      'grade.ungraded': 'Ungraded', 'grade.level1': 'Level 1', 'grade.level2': 'Level 2', 'grade.level2a': 'Level 2A',
      'grade.level3': 'Level 3', 'grade.level3a': 'Level 3A',
      'ec.chest_pain': 'Chest pain', 'ec.stroke': 'Stroke', 'ec.trauma': 'Trauma', 'ec.critical_maternal': 'Critical maternal care',
      'ec.critical_newborn': 'Critical child and newborn care',
      'pat.title': 'Find a patient', 'pat.by_id': 'By identity number', 'pat.identity_number': 'Resident identity number',
      'pat.identity_hint': '18 characters; the last may be X', 'pat.by_name': 'By name or phone', 'pat.name': 'Name', 'pat.phone': 'Phone',
      'pat.search': 'Search', 'pat.results': 'Results ({n})', 'pat.no_results': 'No patient found.', 'pat.open': 'Open',
      'pat.sex': 'Sex', 'pat.birth_date': 'Date of birth', 'pat.age': 'Age', 'pat.identity_masked': 'Identity number',
      'pat.phone_masked': 'Phone', 'pat.home_facility': 'Home facility', 'pat.status': 'Status',
      'pat.logged_note': 'Every search is written to the access log.', 'pat.address': 'Address', 'pat.record_id': 'Record id',
      'sex.male': 'Male', 'sex.female': 'Female', 'age.years': '{n} y', 'status.active': 'Active', 'status.merged': 'Merged',
      'rec.title': 'Patient record', 'rec.demographics': 'Demographics', 'rec.enrolments': 'Insurance enrolments',
      'rec.timeline': 'Encounters at all facilities', 'rec.no_enrolments': 'No enrolment.', 'rec.no_encounters': 'No encounter.',
      'rec.basis': 'Access basis: {basis}', 'rec.scheme': 'Scheme', 'rec.insured_region': 'Insured region',
      'rec.filing_status': 'Filing', 'rec.filed_region': 'Filed region', 'rec.valid': 'Valid', 'rec.diagnoses': 'Diagnoses',
      'rec.procedures': 'Procedures', 'rec.department': 'Department', 'rec.cost': 'Total cost', 'rec.ended': 'ended {t}',
      'rec.back': 'Back to search', 'rec.merged_ids': 'Records merged into this one',
      'scheme.employee': 'Employee insurance', 'scheme.resident': 'Resident insurance',
      'filing.not_filed': 'Not filed', 'filing.long_term': 'Long-term filing', 'filing.temporary': 'Temporary filing',
      'class.outpatient': 'Outpatient', 'class.inpatient': 'Inpatient', 'class.emergency': 'Emergency',
      'basis.care_relationship': 'care relationship', 'basis.same_community': 'same community', 'basis.break_glass': 'break-glass',
      'basis.identification': 'identification',
      'bg.title': 'No care relationship', 'bg.explain': 'Your facility has no care relationship with this patient. If you need the record for their care, give the reason and open it anyway: the reason and this read are written to the access log and reviewed by an administrator.',
      'bg.reason': 'Reason for break-glass access', 'bg.reason_hint': 'Be specific, e.g. "emergency transfer, need past medication".',
      'bg.submit': 'Open the record (break glass)', 'bg.banner': 'Break-glass read: it has been written to the access log.',
      'log.title': 'Access log', 'log.filters': 'Filters', 'log.user': 'User', 'log.patient_id': 'Patient record id',
      'log.basis': 'Basis', 'log.from': 'From (date)', 'log.to': 'To (date)', 'log.limit': 'At most', 'log.apply': 'Show',
      'log.entries': 'Entries ({n})', 'log.none': 'No entry matches.', 'log.at': 'Time', 'log.facility': 'Facility',
      'log.patient': 'Patient', 'log.action': 'Action', 'log.reason': 'Reason', 'log.client': 'Client address', 'log.all_users': 'All users',
      'action.lookup': 'identity lookup', 'action.match': 'match', 'action.search': 'name/phone search', 'action.read_record': 'record read',
      'action.break_glass_read': 'break-glass read',
      'users.title': 'Users', 'users.username': 'User name', 'users.display_name': 'Name', 'users.facility': 'Facility',
      'users.roles': 'Roles', 'users.active': 'Active', 'users.none': 'No user.',
      'role.village_doctor': 'Village doctor', 'role.township_clinician': 'Township clinician', 'role.referral_centre': 'Referral centre',
      'role.specialist': 'Specialist', 'role.lab': 'Laboratory', 'role.settlement_clerk': 'Settlement clerk',
      'role.insurance_officer': 'Insurance officer', 'role.community_admin': 'Community admin', 'role.system_admin': 'System admin',
      'notfound.title': 'No such page', 'notfound.body': 'Choose a page from the navigation.', 'forbidden.page': 'Your role cannot use this page.',
      'err.network': 'Cannot reach the server; check the network and try again.', 'err.generic': 'Something went wrong: {msg}',
      'err.auth.invalid': 'Wrong user name or password.', 'err.auth.required': 'Your session has ended; please sign in again.',
      'err.auth.rate_limited': 'Too many failed sign-ins; try again later.', 'err.auth.forbidden': 'Your role may not do this.',
      'err.role.forbidden': 'Your role may not do this.',
      'err.patient.not_registered': 'No patient is registered with this identifier.', 'err.search.too_little': 'Give a name or a phone number.',
      'err.access.no_relationship': 'Your facility has no care relationship with this patient.',
      'err.access.reason_too_short': 'The reason is too short; be specific.', 'err.reason.length': 'A reason is at most 500 characters.',
      'err.identity_number.check_character': 'The identity number\u2019s check character is wrong.', 'err.identity_number.region': 'The region code in the identity number is not valid.',
      'err.identity_number.characters': 'An identity number has digits only; the last may be X.',
      'err.identity_number.length': 'An identity number has 18 characters.',
      'err.identity_number.birth_date': 'The birth date in the identity number is not a date.',
      'err.identity_number.birth_date_future': 'The birth date in the identity number is in the future.',
      'err.not_found': 'Not found.', 'err.route.unknown': 'No such endpoint.', 'err.admin.no_community': 'Your facility belongs to no community.',
      'err.busy': 'The database is busy; try again shortly.', 'err.phone.format': 'Not a phone number.', 'err.body.too_large': 'What you sent is too large.', 'err.time.format': 'Wrong date format.', 'err.validation': 'Please check: ',
    },
  };

  let lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';
  function t(key, params) {
    let s = DICT[lang][key];
    if (s === undefined) s = DICT.zh[key] !== undefined ? DICT.zh[key] : key;
    if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] !== undefined ? String(params[k]) : m));
    return s;
  }
  function has(key) { return DICT[lang][key] !== undefined; }
  // a value from the API shown through the dictionary when it has a word for it
  function word(prefix, value) { return value == null ? '' : (has(prefix + '.' + value) ? t(prefix + '.' + value) : String(value)); }

  // ------------------------------------------------------------------ DOM helper
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  let uid = 0;
  function field(labelText, input, hint) {
    const id = input.id || ('f' + (++uid));
    input.id = id;
    const kids = [h('label', { for: id }, labelText), input];
    if (hint) { const hid = id + '-hint'; input.setAttribute('aria-describedby', hid); kids.push(h('span', { class: 'hint', id: hid }, hint)); }
    return h('div', { class: 'field' }, kids);
  }
  function table(cls, headers, rows, caption) {
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'stack ' + (cls || '') },
        caption ? h('caption', {}, caption) : null,
        h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => {
          const cell = c && c.cell ? c : { cell: c };
          return h('td', { 'data-label': headers[i], class: cell.cls }, cell.cell);
        }))))));
  }
  function alertBox(kind, text) { return h('div', { class: 'alert ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text); }
  function announce(text) { const s = document.getElementById('status'); s.textContent = ''; setTimeout(() => { s.textContent = text; }, 30); }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || ('HTTP ' + status));
      this.status = status; this.code = e.code || ''; this.details = e.details || [];
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY); }
  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const tok = token();
    if (tok) headers.authorization = 'Bearer ' + tok;
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      const err = new ApiError(0, null); err.code = 'network'; throw err;
    }
    let data = null;
    const text = await resp.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!resp.ok) {
      const err = new ApiError(resp.status, data);
      if (resp.status === 401 && path !== '/api/v1/auth/login') { endSession(); err.code = err.code || 'auth.required'; }
      throw err;
    }
    return data;
  }
  function errText(e) {
    if (!(e instanceof ApiError)) return t('err.generic', { msg: e && e.message ? e.message : String(e) });
    let s = e.code && has('err.' + e.code) ? t('err.' + e.code) : e.message;
    if (e.details && e.details.length) {
      s += ' ' + e.details.map((d) => (has('err.' + d.code) ? t('err.' + d.code) : (d.field ? d.field + ': ' : '') + d.message)).join(' ');
    }
    return s;
  }

  // ------------------------------------------------------------------ session and shared data
  let me = null;
  let cache = {};
  function endSession() { sessionStorage.removeItem(TOKEN_KEY); me = null; cache = {}; }
  async function loadMe() { if (!me && token()) me = await api('GET', '/api/v1/auth/me'); return me; }
  async function facilities() { if (!cache.facilities) cache.facilities = await api('GET', '/api/v1/facilities'); return cache.facilities; }
  async function communities() { if (!cache.communities) cache.communities = await api('GET', '/api/v1/communities'); return cache.communities; }
  function facilityName(list, id) { const f = list.find((x) => x.id === id); return f ? f.name : (id ? String(id).slice(0, 8) + '…' : ''); }

  const READ_ROLES = ['village_doctor', 'township_clinician', 'referral_centre', 'specialist', 'lab', 'settlement_clerk', 'insurance_officer'];
  const ADMIN_ROLES = ['community_admin', 'system_admin'];
  const hasAny = (roles) => !!me && me.roles.some((r) => roles.includes(r));
  const PAGES = [
    { hash: '#/patients', key: 'nav.patients', allowed: () => hasAny(READ_ROLES) },
    { hash: '#/directory', key: 'nav.directory', allowed: () => true },
    { hash: '#/users', key: 'nav.users', allowed: () => hasAny(ADMIN_ROLES) },
    { hash: '#/access-log', key: 'nav.access_log', allowed: () => hasAny(ADMIN_ROLES) },
  ];

  // ------------------------------------------------------------------ formatting
  function locale() { return lang === 'en' ? 'en-GB' : 'zh-CN'; }
  function yuan(fen) {
    if (fen == null) return '';
    return new Intl.NumberFormat(locale(), { style: 'currency', currency: 'CNY', minimumFractionDigits: 2 }).format(fen / 100);
  }
  function dateTime(s) {
    if (!s) return '';
    const d = new Date(s);
    if (isNaN(d)) return s;
    // care happens in China: show China time whatever the browser's zone
    return new Intl.DateTimeFormat(locale(), { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false }).format(d);
  }
  function maskId(v) { // as the server masks: first 6 and last 4 of long numbers
    if (!v) return '';
    const c = Array.from(v);
    if (c.length <= 4) return '*'.repeat(c.length);
    const front = c.length >= 14 ? 6 : 1;
    return c.map((ch, i) => (i < front || i + 4 >= c.length ? ch : '*')).join('');
  }
  function grade(g) { return word('grade', g === 'level2_a' ? 'level2a' : g === 'level3_a' ? 'level3a' : g); }

  // ------------------------------------------------------------------ shell
  function renderShell() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.title = t('app.title');
    document.getElementById('brand').textContent = t('app.title');
    document.getElementById('skip-link').textContent = t('skip');
    const toggle = document.getElementById('lang-toggle');
    toggle.textContent = t('lang.switch');
    toggle.setAttribute('lang', lang === 'en' ? 'zh-CN' : 'en');
    toggle.setAttribute('aria-label', t('lang.switch_label'));
    const nav = document.getElementById('nav');
    nav.setAttribute('aria-label', t('nav.label'));
    nav.replaceChildren();
    const logout = document.getElementById('logout');
    const who = document.getElementById('who');
    if (me) {
      const here = location.hash.split('?')[0];
      for (const p of PAGES.filter((x) => x.allowed())) {
        const current = here === p.hash || (p.hash === '#/patients' && here.startsWith('#/patients/'));
        nav.append(h('a', { href: p.hash, 'aria-current': current ? 'page' : null }, t(p.key)));
      }
      logout.hidden = false;
      logout.textContent = t('logout');
      const fname = cache.facilities ? facilityName(cache.facilities, me.facility_id) : '';
      who.textContent = fname ? t('login.signed_in_as', { name: me.display_name, facility: fname }) : me.display_name;
    } else {
      logout.hidden = true;
      who.textContent = '';
    }
  }

  function page(title, ...kids) {
    const main = document.getElementById('main');
    main.replaceChildren(h('h1', {}, title), ...kids.flat(Infinity).filter((k) => k != null && k !== false));
    return main;
  }

  // ------------------------------------------------------------------ login
  function viewLogin() {
    const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const out = h('div', {});
    const btn = h('button', { type: 'submit', class: 'primary' }, t('login.submit'));
    const form = h('form', { class: 'card login', novalidate: true }, field(t('login.username'), user), field(t('login.password'), pass), out, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      btn.disabled = true;
      try {
        const r = await api('POST', '/api/v1/auth/login', { username: user.value.trim(), password: pass.value });
        sessionStorage.setItem(TOKEN_KEY, r.token);
        me = r.user; cache = {};
        await facilities().catch(() => null);
        const first = PAGES.find((p) => p.allowed());
        location.hash = first ? first.hash : '#/directory'; // hashchange routes
      } catch (e) {
        out.replaceChildren(alertBox('error', errText(e)));
        pass.value = ''; pass.focus();
      } finally { btn.disabled = false; }
    });
    const main = document.getElementById('main');
    main.replaceChildren(h('div', { class: 'login' }, h('h1', {}, t('login.title')), form));
    user.focus();
  }

  // ------------------------------------------------------------------ directory
  async function viewDirectory(params) {
    const [all, comms] = await Promise.all([facilities(), communities()]);
    const tierSel = h('select', { name: 'tier' }, h('option', { value: '' }, t('dir.all')),
      ['village', 'township', 'county', 'city', 'provincial', 'national'].map((x) => h('option', { value: x, selected: params.get('tier') === x }, t('tier.' + x))));
    const commSel = h('select', { name: 'community' }, h('option', { value: '' }, t('dir.all')),
      comms.map((c) => h('option', { value: c.id, selected: params.get('community') === c.id }, c.name)));
    const form = h('form', { class: 'card', role: 'search' }, h('div', { class: 'row' },
      field(t('dir.tier'), tierSel), field(t('dir.community'), commSel), h('button', { type: 'submit', class: 'primary' }, t('dir.apply'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if (tierSel.value) q.set('tier', tierSel.value);
      if (commSel.value) q.set('community', commSel.value);
      location.hash = '#/directory' + (q.toString() ? '?' + q : '');
    });
    const q = new URLSearchParams();
    if (params.get('tier')) q.set('tier', params.get('tier'));
    if (params.get('community')) q.set('community_id', params.get('community'));
    const list = q.toString() ? await api('GET', '/api/v1/facilities?' + q) : all;
    const commName = (id) => { const c = comms.find((x) => x.id === id); return c ? c.name : t('dir.none'); };
    const facRows = list.map((f) => [
      h('span', {}, f.name), { cell: f.code, cls: 'mono' }, word('tier', f.tier), grade(f.grade), { cell: f.region_code, cls: 'mono' },
      commName(f.community_id), { cell: String((f.capabilities && f.capabilities.beds) || 0), cls: 'num' },
      ((f.capabilities && f.capabilities.emergency_centres) || []).map((c) => h('span', { class: 'tag' }, word('ec', c))),
    ]);
    const commRows = comms.map((c) => [c.name, { cell: c.region_code, cls: 'mono' }, c.community_wide_read ? t('yes') : t('no'),
      { cell: String(all.filter((f) => f.community_id === c.id).length), cls: 'num' }]);
    page(t('dir.title'), form,
      h('section', { 'aria-labelledby': 'fac-h' }, h('h2', { id: 'fac-h' }, t('dir.facilities', { n: list.length })),
        list.length ? table('facilities', [t('dir.name'), t('dir.code'), t('dir.tier'), t('dir.grade'), t('dir.region'), t('dir.community'), t('dir.beds'), t('dir.emergency')], facRows)
          : h('p', { class: 'empty' }, t('dir.no_facilities'))),
      h('section', { 'aria-labelledby': 'com-h' }, h('h2', { id: 'com-h' }, t('dir.communities', { n: comms.length })),
        comms.length ? table('communities', [t('dir.name'), t('dir.region'), t('dir.community_wide_read'), t('dir.member_count')], commRows)
          : h('p', { class: 'empty' }, t('dir.no_communities'))));
  }

  // ------------------------------------------------------------------ patient search
  let lastResults = null; // kept so that "back to search" shows the list again
  function resultsView(fac, rows) {
    if (!rows.length) return h('p', { class: 'empty' }, t('pat.no_results'));
    return h('section', { 'aria-labelledby': 'res-h' }, h('h2', { id: 'res-h' }, t('pat.results', { n: rows.length })),
      table('results', [t('pat.name'), t('pat.sex'), t('pat.birth_date'), t('pat.identity_masked'), t('pat.phone_masked'), t('pat.home_facility'), ''],
        rows.map((p) => [
          h('a', { href: '#/patients/' + p.patient_id }, p.name),
          word('sex', p.sex), p.birth_date + ' (' + t('age.years', { n: p.age }) + ')',
          { cell: p.identity_number_masked || '', cls: 'mono' }, { cell: p.phone_masked || '', cls: 'mono' },
          facilityName(fac, p.home_facility_id),
          h('a', { href: '#/patients/' + p.patient_id, 'aria-label': t('pat.open') + ' ' + p.name }, t('pat.open')),
        ])));
  }
  async function viewPatients() {
    const fac = await facilities();
    const out = h('div', { id: 'results' });
    const idIn = h('input', { name: 'identity_number', inputmode: 'text', autocomplete: 'off', maxlength: '18', spellcheck: 'false', class: 'mono' });
    const idBtn = h('button', { type: 'submit', class: 'primary' }, t('pat.search'));
    const idForm = h('form', { class: 'card', role: 'search', 'aria-labelledby': 'byid-h' }, h('h2', { id: 'byid-h' }, t('pat.by_id')),
      h('div', { class: 'row' }, field(t('pat.identity_number'), idIn, t('pat.identity_hint')), idBtn));
    const nameIn = h('input', { name: 'name', autocomplete: 'off' });
    const phoneIn = h('input', { name: 'phone', type: 'tel', autocomplete: 'off' });
    const nameBtn = h('button', { type: 'submit', class: 'primary' }, t('pat.search'));
    const nameForm = h('form', { class: 'card', role: 'search', 'aria-labelledby': 'byname-h' }, h('h2', { id: 'byname-h' }, t('pat.by_name')),
      h('div', { class: 'row' }, field(t('pat.name'), nameIn), field(t('pat.phone'), phoneIn), nameBtn));
    async function run(btn, call) {
      btn.disabled = true; out.replaceChildren(h('p', {}, t('loading')));
      try {
        const rows = await call();
        lastResults = rows;
        out.replaceChildren(resultsView(fac, rows));
        announce(rows.length ? t('pat.results', { n: rows.length }) : t('pat.no_results'));
      } catch (e) {
        if (e.code === 'patient.not_registered') { lastResults = []; out.replaceChildren(alertBox('info', errText(e))); } else out.replaceChildren(alertBox('error', errText(e)));
      } finally { btn.disabled = false; }
    }
    idForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      run(idBtn, async () => {
        const p = await api('POST', '/api/v1/patients/lookup', { type: 'resident_id', value: idIn.value.trim().toUpperCase() });
        const rid = (p.identifiers || []).find((i) => i.type === 'resident_id');
        return [{ patient_id: p.id, name: p.name, sex: p.sex, birth_date: p.birth_date, age: p.age, identity_number_masked: rid ? rid.value_masked : '', phone_masked: p.phone_masked, home_facility_id: p.home_facility_id }];
      });
    });
    nameForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = {};
      if (nameIn.value.trim()) body.name = nameIn.value.trim();
      if (phoneIn.value.trim()) body.phone = phoneIn.value.trim();
      run(nameBtn, async () => (await api('POST', '/api/v1/patients/search', body)).patients);
    });
    if (lastResults) out.replaceChildren(resultsView(fac, lastResults));
    page(t('pat.title'), h('p', { class: 'hint' }, t('pat.logged_note')), idForm, nameForm, out);
  }

  // ------------------------------------------------------------------ patient record
  function recordView(fac, rec) {
    const p = rec.patient;
    const rid = (p.identifiers || []).find((i) => (i.kind || i.type) === 'resident_id');
    const facts = [
      [t('pat.name'), p.name], [t('pat.sex'), word('sex', p.sex)], [t('pat.birth_date'), p.birth_date + ' (' + t('age.years', { n: p.age }) + ')'],
      [t('pat.identity_masked'), h('span', { class: 'mono' }, rid ? maskId(rid.value) : '')], [t('pat.phone'), h('span', { class: 'mono' }, maskId(p.phone || ''))],
      [t('pat.address'), p.address || ''], [t('pat.home_facility'), facilityName(fac, p.home_facility_id)],
      [t('pat.status'), word('status', p.status)], [t('pat.record_id'), h('span', { class: 'mono' }, p.id)],
    ];
    const enrol = rec.enrolments || [];
    const encs = (rec.encounters || []).slice().sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)));
    const tierOf = (id) => { const f = fac.find((x) => x.id === id); return f ? word('tier', f.tier) : ''; };
    return [
      rec.access && rec.access.basis === 'break_glass' ? alertBox('warn', t('bg.banner')) : null,
      h('p', { class: 'hint' }, t('rec.basis', { basis: word('basis', rec.access && rec.access.basis) })),
      h('section', { class: 'card', 'aria-labelledby': 'demo-h' }, h('h2', { id: 'demo-h' }, t('rec.demographics')),
        h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      h('section', { 'aria-labelledby': 'enr-h' }, h('h2', { id: 'enr-h' }, t('rec.enrolments')),
        enrol.length ? table('enrolments', [t('rec.scheme'), t('rec.insured_region'), t('rec.filing_status'), t('rec.filed_region'), t('rec.valid')],
          enrol.map((e) => [word('scheme', e.scheme), { cell: e.insured_region, cls: 'mono' }, word('filing', e.filing_status), e.filed_region || '', e.valid_from + ' – ' + (e.valid_to || '')]))
          : h('p', { class: 'empty' }, t('rec.no_enrolments'))),
      h('section', { 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, t('rec.timeline')),
        encs.length ? h('ol', { class: 'timeline' }, encs.map((e) => h('li', { class: 'encounter' },
          h('div', { class: 'tl-head' }, h('time', { datetime: e.started_at }, dateTime(e.started_at)),
            h('span', { class: 'tl-facility' }, facilityName(fac, e.facility_id)), h('span', { class: 'tl-meta' }, tierOf(e.facility_id)),
            h('span', { class: 'tag' }, word('class', e.class)), h('span', { class: 'tl-cost' }, t('rec.cost') + ' ' + yuan(e.total_cost_fen))),
          h('div', { class: 'tl-meta' }, e.department ? t('rec.department') + '：' + e.department : null, e.ended_at ? ' · ' + t('rec.ended', { t: dateTime(e.ended_at) }) : null),
          e.diagnoses && e.diagnoses.length ? h('div', {}, t('rec.diagnoses') + ' ', e.diagnoses.map((d) => h('span', { class: 'tag code' }, d))) : null,
          e.procedures && e.procedures.length ? h('div', {}, t('rec.procedures') + ' ', e.procedures.map((d) => h('span', { class: 'tag code' }, d))) : null)))
          : h('p', { class: 'empty' }, t('rec.no_encounters'))),
    ];
  }
  async function viewRecord(id) {
    const fac = await facilities();
    const back = h('p', {}, h('a', { href: '#/patients' }, '← ' + t('rec.back')));
    const show = (rec) => { page(t('rec.title') + ' · ' + rec.patient.name, back, recordView(fac, rec)); };
    try {
      show(await api('GET', '/api/v1/patients/' + encodeURIComponent(id)));
    } catch (e) {
      if (e.code !== 'access.no_relationship') throw e;
      const reason = h('textarea', { name: 'reason', required: true, maxlength: '500', rows: '3' });
      const out = h('div', {});
      const btn = h('button', { type: 'submit', class: 'primary' }, t('bg.submit'));
      const form = h('form', { class: 'card', 'aria-labelledby': 'bg-h' }, h('h2', { id: 'bg-h' }, t('bg.title')), h('p', {}, t('bg.explain')),
        field(t('bg.reason'), reason, t('bg.reason_hint')), out, h('p', {}, btn));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        btn.disabled = true; out.replaceChildren();
        try {
          show(await api('POST', '/api/v1/patients/' + encodeURIComponent(id) + '/break-glass', { reason: reason.value.trim() }));
          document.getElementById('main').focus();
        } catch (err) { out.replaceChildren(alertBox('error', errText(err))); reason.focus(); } finally { btn.disabled = false; }
      });
      page(t('rec.title'), back, alertBox('warn', errText(e)), form);
    }
  }

  // ------------------------------------------------------------------ users
  async function viewUsers() {
    const [fac, users] = await Promise.all([facilities(), api('GET', '/api/v1/users')]);
    page(t('users.title'), users.length ? table('users', [t('users.username'), t('users.display_name'), t('users.facility'), t('users.roles'), t('users.active')],
      users.map((u) => [{ cell: u.username, cls: 'mono' }, u.display_name, facilityName(fac, u.facility_id),
        (u.roles || []).map((r) => h('span', { class: 'tag' }, word('role', r))), u.active ? t('yes') : t('no')]))
      : h('p', { class: 'empty' }, t('users.none')));
  }

  // ------------------------------------------------------------------ access log
  function dayStart(d, end) { return d ? d + (end ? 'T23:59:59+08:00' : 'T00:00:00+08:00') : null; }
  async function viewAccessLog(params) {
    const [fac, users] = await Promise.all([facilities(), api('GET', '/api/v1/users').catch(() => [])]);
    const userSel = h('select', { name: 'user_id' }, h('option', { value: '' }, t('log.all_users')),
      users.map((u) => h('option', { value: u.id, selected: params.get('user_id') === u.id }, u.display_name + ' (' + u.username + ')')));
    const patIn = h('input', { name: 'patient_id', value: params.get('patient_id') || '', class: 'mono', autocomplete: 'off', spellcheck: 'false' });
    const basisSel = h('select', { name: 'basis' }, h('option', { value: '' }, t('dir.all')),
      ['care_relationship', 'same_community', 'break_glass', 'identification'].map((b) => h('option', { value: b, selected: params.get('basis') === b }, word('basis', b))));
    const fromIn = h('input', { name: 'from', type: 'date', value: params.get('from') || '' });
    const toIn = h('input', { name: 'to', type: 'date', value: params.get('to') || '' });
    const limitIn = h('input', { name: 'limit', type: 'number', min: '1', max: '1000', value: params.get('limit') || '100' });
    const form = h('form', { class: 'card', role: 'search', 'aria-labelledby': 'lf-h' }, h('h2', { id: 'lf-h' }, t('log.filters')),
      h('div', { class: 'row' }, field(t('log.user'), userSel), field(t('log.patient_id'), patIn), field(t('log.basis'), basisSel),
        field(t('log.from'), fromIn), field(t('log.to'), toIn), field(t('log.limit'), limitIn), h('button', { type: 'submit', class: 'primary' }, t('log.apply'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const el of [userSel, patIn, basisSel, fromIn, toIn, limitIn]) if (el.value.trim()) q.set(el.name, el.value.trim());
      location.hash = '#/access-log?' + q;
    });
    const q = new URLSearchParams();
    for (const k of ['user_id', 'patient_id', 'basis', 'limit']) if (params.get(k)) q.set(k, params.get(k));
    if (params.get('from')) q.set('from', dayStart(params.get('from'), false));
    if (params.get('to')) q.set('to', dayStart(params.get('to'), true));
    let body;
    try {
      const r = await api('GET', '/api/v1/access-log' + (q.toString() ? '?' + q : ''));
      const uname = (id) => { const u = users.find((x) => x.id === id); return u ? u.display_name + ' (' + u.username + ')' : String(id).slice(0, 8) + '…'; };
      body = h('section', { 'aria-labelledby': 'le-h' }, h('h2', { id: 'le-h' }, t('log.entries', { n: r.entries.length })),
        r.entries.length ? table('access-log', [t('log.at'), t('log.user'), t('log.facility'), t('log.patient'), t('log.action'), t('log.basis'), t('log.reason'), t('log.client')],
          r.entries.map((e) => [h('time', { datetime: e.at }, dateTime(e.at)), uname(e.user_id), facilityName(fac, e.facility_id),
            h('a', { href: '#/access-log?patient_id=' + e.patient_id, class: 'mono' }, String(e.patient_id).slice(0, 8) + '…'),
            word('action', e.action), word('basis', e.basis), e.reason || '', { cell: e.client_addr || '', cls: 'mono' }]))
          : h('p', { class: 'empty' }, t('log.none')));
    } catch (e) { body = alertBox('error', errText(e)); }
    page(t('log.title'), form, body);
  }

  // ------------------------------------------------------------------ router
  let routing = 0;
  async function route() {
    const my = ++routing;
    const raw = location.hash || '';
    const [path, qs] = raw.split('?');
    const params = new URLSearchParams(qs || '');
    const main = document.getElementById('main');
    if (!token()) { me = null; renderShell(); if (path !== '#/login') { history.replaceState(null, '', '#/login'); } viewLogin(); return; }
    try {
      await loadMe();
      await facilities();
    } catch (e) {
      if (!token()) { renderShell(); viewLogin(); return; }
    }
    if (my !== routing) return;
    if (path === '' || path === '#' || path === '#/' || path === '#/login') {
      const first = PAGES.find((p) => p.allowed());
      history.replaceState(null, '', first ? first.hash : '#/directory');
      return route();
    }
    renderShell();
    main.replaceChildren(h('p', {}, t('loading')));
    try {
      const m = path.match(/^#\/patients\/([0-9a-fA-F-]{36})$/);
      const pageDef = PAGES.find((p) => p.hash === path || (m && p.hash === '#/patients'));
      if (!pageDef) { page(t('notfound.title'), h('p', {}, t('notfound.body'))); }
      else if (!pageDef.allowed()) { page(t('notfound.title'), alertBox('error', t('forbidden.page'))); }
      else if (m) await viewRecord(m[1]);
      else if (path === '#/patients') await viewPatients();
      else if (path === '#/directory') await viewDirectory(params);
      else if (path === '#/users') await viewUsers();
      else if (path === '#/access-log') await viewAccessLog(params);
    } catch (e) {
      if (!token()) { renderShell(); viewLogin(); return; }
      page(t('notfound.title'), alertBox('error', errText(e)));
    }
    if (my === routing) { main.focus({ preventScroll: true }); window.scrollTo(0, 0); }
  }

  function init() {
    document.getElementById('lang-toggle').addEventListener('click', () => {
      lang = lang === 'en' ? 'zh' : 'en';
      localStorage.setItem(LANG_KEY, lang);
      route().then(() => document.getElementById('lang-toggle').focus());
    });
    document.getElementById('logout').addEventListener('click', async () => {
      try { await api('POST', '/api/v1/auth/logout'); } catch (e) { /* signed out either way */ }
      endSession(); lastResults = null;
      location.hash = '#/login';
      announce(t('login.signed_out'));
    });
    window.addEventListener('hashchange', () => { route(); });
    route();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
