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
      'basis.identification': '身份识别', 'basis.bulk_export': '批量导出',
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
      'basis.identification': 'identification', 'basis.bulk_export': 'bulk export',
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
  // referrals, follow-ups, notifications, filings (issue 4)
  Object.assign(DICT.zh, {
    'nav.referrals': '转诊', 'nav.follow_ups': '随访任务', 'nav.community_referrals': '转诊总览', 'nav.badge': '（{n} 条新消息）',
    'nav.badge_due': '（{n} 项到期）',
    'ref.title': '转诊工作台', 'ref.tabs': '工作列表', 'ref.tab.new': '待处理', 'ref.tab.awaiting_scheduling': '待预约',
    'ref.tab.arriving_today': '今日到达', 'ref.tab.overdue': '已超时', 'ref.tab.outbox': '我发起的', 'ref.tab.open': '进行中', 'ref.tab.closed': '已结束',
    'ref.filters': '筛选条件', 'ref.f.urgency': '紧急程度', 'ref.f.green': '绿色通道', 'ref.f.green_only': '仅绿色通道',
    'ref.f.direction': '方向', 'ref.f.state': '状态', 'ref.f.department': '科室', 'ref.f.tier': '对方机构层级',
    'ref.f.from': '申请日期（起）', 'ref.f.to': '申请日期（止）', 'ref.f.apply': '筛选', 'ref.f.clear': '清除筛选',
    'ref.list': '{what} · 共 {n} 条', 'ref.none': '没有符合条件的转诊。', 'ref.next': '下一页', 'ref.first': '回到第一页',
    'ref.col.patient': '患者', 'ref.col.direction': '方向', 'ref.col.urgency': '紧急程度', 'ref.col.parties': '转出 → 接收',
    'ref.col.requested': '申请时间', 'ref.col.due': '处理期限', 'ref.col.state': '状态', 'ref.overdue': '已超时',
    'ref.community_title': '医共体转诊总览', 'ref.community_note': '本页显示本医共体内机构发出或接收的转诊；患者姓名已部分隐藏。',
    'ref.community_all': '全部转诊',
    'direction.upward': '上转', 'direction.downward': '下转', 'direction.lateral': '平转',
    'urgency.routine': '普通', 'urgency.urgent': '紧急', 'urgency.emergency': '急危重',
    'gc.marker': '绿色通道·{c}', 'gc.chest_pain': '胸痛', 'gc.stroke': '卒中', 'gc.trauma': '创伤',
    'gc.critical_maternal': '危重孕产妇', 'gc.critical_newborn': '危重儿童和新生儿',
    'state.requested': '待接收', 'state.accepted': '已接收', 'state.rejected': '已拒绝', 'state.redirected': '已改转',
    'state.scheduled': '已预约', 'state.arrived': '已到达', 'state.completed': '已完成', 'state.cancelled': '已撤销', 'state.expired': '已过期',
    'reach.in_county': '县域内', 'reach.out_of_county': '出县（省内）', 'reach.out_of_province': '出省',
    'act.request': '发起转诊', 'act.acknowledge': '确认收到', 'act.accept': '接收', 'act.reject': '拒绝', 'act.redirect': '改转他院',
    'act.schedule': '预约', 'act.arrive': '登记到达', 'act.complete': '完成', 'act.cancel': '撤销', 'act.record_timepoint': '记录时间节点',
    'act.expire': '超时失效', 'act.escalate': '超时升级',
    'btn.acknowledge': '确认收到', 'btn.accept': '接收', 'btn.reject': '拒绝', 'btn.redirect': '改转他院', 'btn.schedule': '预约',
    'btn.arrive': '登记到达', 'btn.complete': '完成转诊', 'btn.cancel': '撤销转诊', 'btn.record_timepoint': '记录时间节点',
    'note.incoming': '新转诊', 'note.answered': '对方已处理', 'note.progress': '转诊进展', 'note.cancelled': '转出方已撤销',
    'note.expired': '转诊已过期', 'note.escalated': '绿色通道超时升级', 'note.follow_up': '新的随访任务',
    'notes.title': '通知', 'notes.unseen': '（{n} 条未读）', 'notes.none': '没有通知。', 'notes.seen_all': '全部已读',
    'notes.all_seen': '通知已全部标为已读。', 'notes.new': '未读', 'notes.open': '查看转诊',
    'nr.title': '发起转诊', 'nr.button': '发起转诊', 'nr.patient': '患者', 'nr.green': '绿色通道（所需救治中心）',
    'nr.green_none': '否（非绿色通道）', 'nr.green_hint': '先选择所需的救治中心，接收机构只列出具备该中心的医院。',
    'nr.receiver': '接收机构', 'nr.receiver_choose': '请选择接收机构', 'nr.proposed': '推荐（按能力与车程）', 'nr.all': '其他机构',
    'nr.minutes': '约 {n} 分钟车程', 'nr.in_community': '医共体内', 'nr.no_proposals': '没有具备该救治中心的机构。',
    'nr.choose_receiver': '请选择接收机构。', 'nr.direction': '转诊方向', 'nr.urgency': '紧急程度',
    'nr.urgency_green': '绿色通道转诊按急危重处理。', 'nr.from_department': '转出科室（可选）', 'nr.to_department': '接收科室（可选）',
    'nr.reason': '转诊原因', 'nr.diagnoses': '诊断（ICD-10 编码）', 'nr.diagnoses_hint': '主要诊断在前，多个用逗号分隔，例如 I63.900, I10.x00',
    'nr.summary': '病情摘要', 'nr.encounters': '关联就诊记录', 'nr.no_encounters': '没有可关联的就诊记录。',
    'nr.downward': '下转资料', 'nr.downward_hint': '下转须附出院小结和随访计划，接收后在接收机构生成随访任务。',
    'nr.discharge': '出院小结', 'nr.plan': '随访计划', 'nr.plan_item': '第 {n} 项', 'nr.plan_what': '随访内容', 'nr.plan_days': '接收后天数',
    'nr.plan_add': '添加一项', 'nr.plan_remove': '删除此项', 'nr.submit': '发送转诊', 'nr.sent': '转诊已发送。',
    'nr.errors': '请修改以下内容：', 'nr.back': '返回患者档案', 'nr.no_patient': '请从患者档案页发起转诊。',
    'rd.title': '转诊 · {name}', 'rd.summary': '转诊概况', 'rd.patient': '患者', 'rd.from': '转出机构', 'rd.to': '接收机构',
    'rd.state': '状态', 'rd.reach': '范围', 'rd.requested': '申请时间', 'rd.acknowledged': '确认收到', 'rd.due': '处理期限',
    'rd.scheduled': '预约时间', 'rd.reason': '转诊原因', 'rd.diagnoses': '诊断', 'rd.clinical_summary': '病情摘要',
    'rd.discharge_summary': '出院小结', 'rd.plan': '随访计划', 'rd.plan_item': '{what}（接收后 {days} 天）', 'rd.outcome': '诊疗结果',
    'rd.escalations': '超时升级次数', 'rd.my_side': '本院为', 'side.sender': '转出方', 'side.receiver': '接收方',
    'rd.actions': '操作', 'rd.no_actions': '目前没有需要本院处理的操作。', 'rd.history': '处理记录', 'rd.system': '系统',
    'rd.change': '{from} → {to}', 'rd.to_facility': '接收机构：{name}', 'rd.time': '时间：{t}', 'rd.scheduled_for': '预约：{t}',
    'rd.green': '绿色通道时间节点', 'rd.timepoints': '时间节点', 'rd.no_timepoints': '尚未记录时间节点。', 'rd.intervals': '关键时间间隔',
    'rd.minutes': '{n} 分钟', 'rd.encounters': '关联就诊记录', 'rd.encounter': '就诊 {id}', 'rd.follow_ups': '随访任务',
    'rd.filing': '医保备案', 'rd.stale': '该转诊已被他人处理，请刷新。', 'rd.current': '当前状态：{state}（第 {v} 版）。',
    'rd.refresh': '刷新', 'rd.done': '已{action}。', 'rd.back': '返回转诊工作台', 'rd.open_record': '查看患者档案', 'rd.dept': '科室：{d}',
    'rd.version': '第 {v} 版', 'rd.all_recorded': '本院一方的时间节点都已记录。',
    'tp.first_medical_contact': '首次医疗接触', 'tp.departed': '离开转出机构', 'tp.door': '到达接收医院（入门）', 'tp.ecg': '首份心电图',
    'tp.ct': '头颅 CT', 'tp.needle': '溶栓给药', 'tp.balloon': '导丝通过（球囊扩张）',
    'iv.request_to_acknowledge': '申请到确认收到', 'iv.first_contact_to_door': '首次医疗接触到入门', 'iv.door_to_ecg': '入门到心电图',
    'iv.door_to_ct': '入门到 CT', 'iv.door_to_needle': '入门到溶栓（DNT）', 'iv.door_to_balloon': '入门到球囊扩张（D2B）',
    'dlg.close': '关闭', 'dlg.confirm': '确定', 'dlg.reason': '理由', 'dlg.note': '备注（可选）', 'dlg.outcome': '诊疗结果（回复转出机构）',
    'dlg.at': '时间（北京时间）', 'dlg.department': '接收科室（可选）', 'dlg.timepoint': '时间节点', 'dlg.receiver': '改转至',
    'fu.title': '随访任务', 'fu.open': '待完成', 'fu.done': '已完成', 'fu.all': '全部', 'fu.tabs': '随访任务状态',
    'fu.due': '到期日', 'fu.patient': '患者', 'fu.what': '随访内容', 'fu.referral': '来源转诊', 'fu.status': '完成情况',
    'fu.overdue': '已逾期', 'fu.complete': '完成', 'fu.complete_label': '完成：{what}（{name}）', 'fu.note': '随访记录（可选）',
    'fu.none': '没有随访任务。', 'fu.done_at': '完成于 {t}', 'fu.completed': '随访任务已完成。', 'fu.count': '共 {n} 项',
    'filing.title': '医保备案（异地就医）', 'filing.category': '类别', 'filing.none': '没有备案记录。', 'filing.referral': '来源转诊',
    'filing.until_changed': '长期有效', 'filing.valid': '有效期',
    'fc.relocated_retiree': '异地安置退休', 'fc.long_term_resident': '异地长期居住', 'fc.posted_staff': '常驻异地工作',
    'fc.referred': '异地转诊', 'fc.emergency': '异地急诊抢救', 'fc.other_temporary': '其他临时外出',
    'rec.referral': '转诊', 'rec.referral_open': '查看转诊',
    'err.conflict': '数据已被他人修改，请刷新后重试。', 'err.duplicate': '记录已存在。', 'err.reference.unknown': '所选机构或患者不存在。',
    'err.patient.merged': '该患者档案已合并到另一份档案，请使用合并后的档案。',
    'err.referral.other_facility': '只能以本机构的名义发起转诊。',
    'err.referral.no_relationship': '本机构与该患者没有诊疗关系，不能发起转诊；请先核验患者身份。',
    'err.referral.same_facility': '接收机构不能是转出机构（改转时也不能是原接收机构）。',
    'err.referral.capability': '该机构不具备所需的救治中心，请从推荐列表中选择。',
    'err.referral.discharge_summary': '下转须附出院小结。', 'err.referral.follow_up_plan': '下转须附随访计划（内容和天数）。',
    'err.referral.follow_up_upward': '只有下转才附随访计划。', 'err.referral.links': '最多关联 50 次就诊。',
    'err.referral.transition': '该转诊当前的状态不允许此操作。', 'err.referral.not_your_turn': '此操作应由对方机构执行。',
    'err.referral.not_party': '本机构不是该转诊的转出方或接收方。', 'err.referral.system_action': '此操作只能由系统执行。',
    'err.referral.schedule_past': '预约时间已经过去。', 'err.referral.schedule_far': '预约时间须在 180 天以内。',
    'err.diagnoses.missing': '请至少填写主要诊断（ICD-10 编码）。', 'err.diagnosis.unknown': '不是 ICD-10 医保版 2.0 诊断编码。',
    'err.diagnosis.unknown_code': '“{code}”不是 ICD-10 医保版 2.0 诊断编码。',
    'err.text.empty': '此项必填。', 'err.text.length': '内容太长。', 'err.text.characters': '含有不允许的控制字符。',
    'err.follow_up.due': '天数应为 1 至 366。', 'err.follow_up.count': '随访计划最多 20 项。',
    'err.timepoint.future': '时间不能晚于现在。', 'err.timepoint.early': '时间最早为转诊申请前 24 小时。',
    'err.timepoint.duplicate': '该时间节点已经记录过。', 'err.json.data': '提交的数据格式有误。', 'err.json.syntax': '提交的数据格式有误。',
    'err.internal': '服务器内部错误，已记录。', 'err.required': '此项必填。', 'err.datetime': '请填写完整的日期和时间。',
    'err.date.range': '起始日期不能晚于截止日期。', 'err.query.invalid': '查询条件有误。', 'err.follow_up.done': '该随访任务已经完成。',
    'err.follow_up.other_facility': '该随访任务属于其他机构。',
  });
  Object.assign(DICT.en, {
    'nav.referrals': 'Referrals', 'nav.follow_ups': 'Follow-ups', 'nav.community_referrals': 'Referral overview', 'nav.badge': ' ({n} new)',
    'nav.badge_due': ' ({n} due)',
    'ref.title': 'Referral worklist', 'ref.tabs': 'Worklists', 'ref.tab.new': 'New', 'ref.tab.awaiting_scheduling': 'To schedule',
    'ref.tab.arriving_today': 'Arriving today', 'ref.tab.overdue': 'Overdue', 'ref.tab.outbox': 'Sent by us', 'ref.tab.open': 'Open', 'ref.tab.closed': 'Closed',
    'ref.filters': 'Filters', 'ref.f.urgency': 'Urgency', 'ref.f.green': 'Green channel', 'ref.f.green_only': 'Green channel only',
    'ref.f.direction': 'Direction', 'ref.f.state': 'State', 'ref.f.department': 'Department', 'ref.f.tier': 'Other party\u2019s tier',
    'ref.f.from': 'Requested from', 'ref.f.to': 'Requested until', 'ref.f.apply': 'Apply', 'ref.f.clear': 'Clear filters',
    'ref.list': '{what} · {n} in all', 'ref.none': 'No referral matches.', 'ref.next': 'Next page', 'ref.first': 'Back to the first page',
    'ref.col.patient': 'Patient', 'ref.col.direction': 'Direction', 'ref.col.urgency': 'Urgency', 'ref.col.parties': 'From → to',
    'ref.col.requested': 'Requested', 'ref.col.due': 'Due', 'ref.col.state': 'State', 'ref.overdue': 'Overdue',
    'ref.community_title': 'Community referral overview', 'ref.community_note': 'Referrals sent or received by facilities of this community; patient names are partly masked.',
    'ref.community_all': 'All referrals',
    'direction.upward': 'Upward', 'direction.downward': 'Downward', 'direction.lateral': 'Lateral',
    'urgency.routine': 'Routine', 'urgency.urgent': 'Urgent', 'urgency.emergency': 'Emergency',
    'gc.marker': 'Green channel: {c}', 'gc.chest_pain': 'chest pain', 'gc.stroke': 'stroke', 'gc.trauma': 'trauma',
    'gc.critical_maternal': 'critical maternal', 'gc.critical_newborn': 'critical child and newborn',
    'state.requested': 'Requested', 'state.accepted': 'Accepted', 'state.rejected': 'Rejected', 'state.redirected': 'Redirected',
    'state.scheduled': 'Scheduled', 'state.arrived': 'Arrived', 'state.completed': 'Completed', 'state.cancelled': 'Cancelled', 'state.expired': 'Expired',
    'reach.in_county': 'In the county', 'reach.out_of_county': 'Out of the county', 'reach.out_of_province': 'Out of the province',
    'act.request': 'requested', 'act.acknowledge': 'acknowledged', 'act.accept': 'accepted', 'act.reject': 'rejected', 'act.redirect': 'redirected',
    'act.schedule': 'scheduled', 'act.arrive': 'arrival recorded', 'act.complete': 'completed', 'act.cancel': 'cancelled',
    'act.record_timepoint': 'time recorded', 'act.expire': 'expired', 'act.escalate': 'escalated',
    'btn.acknowledge': 'Acknowledge', 'btn.accept': 'Accept', 'btn.reject': 'Reject', 'btn.redirect': 'Redirect', 'btn.schedule': 'Schedule',
    'btn.arrive': 'Patient arrived', 'btn.complete': 'Complete', 'btn.cancel': 'Cancel the referral', 'btn.record_timepoint': 'Record a time',
    'note.incoming': 'New referral', 'note.answered': 'Answered', 'note.progress': 'Progress', 'note.cancelled': 'Cancelled by the sender',
    'note.expired': 'Expired', 'note.escalated': 'Green channel escalated', 'note.follow_up': 'New follow-up tasks',
    'notes.title': 'Notifications', 'notes.unseen': ' ({n} unread)', 'notes.none': 'No notification.', 'notes.seen_all': 'Mark all as read',
    'notes.all_seen': 'All notifications marked as read.', 'notes.new': 'New', 'notes.open': 'Open the referral',
    'nr.title': 'New referral', 'nr.button': 'Refer this patient', 'nr.patient': 'Patient', 'nr.green': 'Green channel (centre needed)',
    'nr.green_none': 'No (not a green channel)', 'nr.green_hint': 'Choose the centre needed first: only facilities that have it are listed as receivers.',
    'nr.receiver': 'Receiving facility', 'nr.receiver_choose': 'Choose the receiving facility', 'nr.proposed': 'Proposed (capability, travel time)',
    'nr.all': 'Other facilities', 'nr.minutes': 'about {n} min by road', 'nr.in_community': 'in the community',
    'nr.no_proposals': 'No facility has this centre.', 'nr.choose_receiver': 'Choose the receiving facility.', 'nr.direction': 'Direction',
    'nr.urgency': 'Urgency', 'nr.urgency_green': 'A green-channel referral is an emergency.', 'nr.from_department': 'Sending department (optional)',
    'nr.to_department': 'Receiving department (optional)', 'nr.reason': 'Reason', 'nr.diagnoses': 'Diagnoses (ICD-10 codes)',
    'nr.diagnoses_hint': 'Principal first, comma separated, e.g. I63.900, I10.x00', 'nr.summary': 'Clinical summary',
    'nr.encounters': 'Link encounters', 'nr.no_encounters': 'No encounter to link.', 'nr.downward': 'Downward referral',
    'nr.downward_hint': 'A downward referral carries the discharge summary and a follow-up plan; accepting it creates the follow-up tasks.',
    'nr.discharge': 'Discharge summary', 'nr.plan': 'Follow-up plan', 'nr.plan_item': 'Step {n}', 'nr.plan_what': 'What to do',
    'nr.plan_days': 'Days after acceptance', 'nr.plan_add': 'Add a step', 'nr.plan_remove': 'Remove this step', 'nr.submit': 'Send the referral',
    'nr.sent': 'The referral has been sent.', 'nr.errors': 'Please correct:', 'nr.back': 'Back to the patient record',
    'nr.no_patient': 'Start a referral from the patient\u2019s record.',
    'rd.title': 'Referral · {name}', 'rd.summary': 'Summary', 'rd.patient': 'Patient', 'rd.from': 'Sending facility', 'rd.to': 'Receiving facility',
    'rd.state': 'State', 'rd.reach': 'Reach', 'rd.requested': 'Requested', 'rd.acknowledged': 'Acknowledged', 'rd.due': 'Due',
    'rd.scheduled': 'Scheduled for', 'rd.reason': 'Reason', 'rd.diagnoses': 'Diagnoses', 'rd.clinical_summary': 'Clinical summary',
    'rd.discharge_summary': 'Discharge summary', 'rd.plan': 'Follow-up plan', 'rd.plan_item': '{what} ({days} days after acceptance)',
    'rd.outcome': 'Outcome', 'rd.escalations': 'Escalations', 'rd.my_side': 'We are the', 'side.sender': 'sender', 'side.receiver': 'receiver',
    'rd.actions': 'Actions', 'rd.no_actions': 'Nothing for us to do now.', 'rd.history': 'History', 'rd.system': 'System',
    'rd.change': '{from} → {to}', 'rd.to_facility': 'Receiver: {name}', 'rd.time': 'Time: {t}', 'rd.scheduled_for': 'Scheduled for {t}',
    'rd.green': 'Green-channel clock', 'rd.timepoints': 'Times', 'rd.no_timepoints': 'No time recorded yet.', 'rd.intervals': 'Intervals',
    'rd.minutes': '{n} min', 'rd.encounters': 'Linked encounters', 'rd.encounter': 'Encounter {id}', 'rd.follow_ups': 'Follow-up tasks',
    'rd.filing': 'Insurance filing', 'rd.stale': 'Someone else has acted on this referral; please refresh.',
    'rd.current': 'Current state: {state} (version {v}).', 'rd.refresh': 'Refresh', 'rd.done': 'Done: {action}.', 'rd.back': 'Back to the worklist',
    'rd.open_record': 'Open the patient record', 'rd.dept': 'Department: {d}', 'rd.version': 'version {v}', 'rd.all_recorded': 'Every time for our side is recorded.',
    'tp.first_medical_contact': 'First medical contact', 'tp.departed': 'Left the sending facility', 'tp.door': 'Door (arrival)', 'tp.ecg': 'First ECG',
    'tp.ct': 'Head CT', 'tp.needle': 'Thrombolysis (needle)', 'tp.balloon': 'Wire crossing (balloon)',
    'iv.request_to_acknowledge': 'Request to acknowledgement', 'iv.first_contact_to_door': 'First contact to door', 'iv.door_to_ecg': 'Door to ECG',
    'iv.door_to_ct': 'Door to CT', 'iv.door_to_needle': 'Door to needle (DNT)', 'iv.door_to_balloon': 'Door to balloon (D2B)',
    'dlg.close': 'Close', 'dlg.confirm': 'Confirm', 'dlg.reason': 'Reason', 'dlg.note': 'Note (optional)', 'dlg.outcome': 'Outcome (for the sender)',
    'dlg.at': 'Time (China time)', 'dlg.department': 'Receiving department (optional)', 'dlg.timepoint': 'Which time', 'dlg.receiver': 'Redirect to',
    'fu.title': 'Follow-up tasks', 'fu.open': 'Open', 'fu.done': 'Done', 'fu.all': 'All', 'fu.tabs': 'Task status',
    'fu.due': 'Due', 'fu.patient': 'Patient', 'fu.what': 'What', 'fu.referral': 'Referral', 'fu.status': 'Status',
    'fu.overdue': 'Overdue', 'fu.complete': 'Done', 'fu.complete_label': 'Done: {what} ({name})', 'fu.note': 'Note (optional)',
    'fu.none': 'No follow-up task.', 'fu.done_at': 'done {t}', 'fu.completed': 'Follow-up task completed.', 'fu.count': '{n} in all',
    'filing.title': 'Insurance filings (care outside the insured region)', 'filing.category': 'Category', 'filing.none': 'No filing.',
    'filing.referral': 'Referral', 'filing.until_changed': 'until changed', 'filing.valid': 'Valid',
    'fc.relocated_retiree': 'Relocated retiree', 'fc.long_term_resident': 'Long-term resident elsewhere', 'fc.posted_staff': 'Posted staff',
    'fc.referred': 'Referred elsewhere', 'fc.emergency': 'Emergency elsewhere', 'fc.other_temporary': 'Other temporary stay',
    'rec.referral': 'Referral', 'rec.referral_open': 'Open the referral',
    'err.conflict': 'Someone else changed this; refresh and try again.', 'err.duplicate': 'This already exists.',
    'err.reference.unknown': 'The chosen facility or patient does not exist.',
    'err.patient.merged': 'This record was merged into another; use that one.',
    'err.referral.other_facility': 'You can only refer from your own facility.',
    'err.referral.no_relationship': 'Your facility has no care relationship with this patient; identify the patient first.',
    'err.referral.same_facility': 'The receiver must be another facility than the sender (and, on redirect, than the current receiver).',
    'err.referral.capability': 'This facility lacks the centre needed; choose one of the proposals.',
    'err.referral.discharge_summary': 'A downward referral carries the discharge summary.',
    'err.referral.follow_up_plan': 'A downward referral carries a follow-up plan (what, when).',
    'err.referral.follow_up_upward': 'Only a downward referral carries a follow-up plan.', 'err.referral.links': 'At most 50 linked encounters.',
    'err.referral.transition': 'The referral\u2019s state does not allow this.', 'err.referral.not_your_turn': 'The other facility does this.',
    'err.referral.not_party': 'Your facility neither sent nor receives this referral.', 'err.referral.system_action': 'Only the system does this.',
    'err.referral.schedule_past': 'The scheduled time is in the past.', 'err.referral.schedule_far': 'Schedule within 180 days.',
    'err.diagnoses.missing': 'Give at least the principal diagnosis (ICD-10).', 'err.diagnosis.unknown': 'Not an ICD-10 (insurance 2.0) diagnosis code.',
    'err.diagnosis.unknown_code': '\u201c{code}\u201d is not an ICD-10 (insurance 2.0) diagnosis code.',
    'err.text.empty': 'Required.', 'err.text.length': 'Too long.', 'err.text.characters': 'Contains control characters.',
    'err.follow_up.due': 'Days are 1 to 366.', 'err.follow_up.count': 'At most 20 follow-up steps.',
    'err.timepoint.future': 'A time cannot be in the future.', 'err.timepoint.early': 'At most 24 hours before the referral.',
    'err.timepoint.duplicate': 'This time is already recorded.', 'err.json.data': 'What was sent is not in the expected form.',
    'err.json.syntax': 'What was sent is not in the expected form.', 'err.internal': 'Internal server error; it has been logged.',
    'err.required': 'Required.', 'err.datetime': 'Give the full date and time.',
    'err.date.range': 'The first day is after the last.', 'err.query.invalid': 'The filter is not valid.', 'err.follow_up.done': 'This task is already done.',
    'err.follow_up.other_facility': 'This task belongs to another facility.',
  });

  // settlement desk, journal, policies, reports (issue 6)
  Object.assign(DICT.zh, {
    'nav.settle': '结算窗口', 'nav.journal': '日结', 'nav.policies': '医保政策', 'nav.reports': '医保报表',
    'st.title': '结算窗口', 'st.patient': '1. 患者', 'st.scan': '扫码或输入身份证号', 'st.scan_hint': '可用扫码枪读取身份证或医保码，读取后自动查询',
    'st.find': '查询', 'st.by_name': '按姓名查询', 'st.name': '姓名', 'st.choose': '选择', 'st.choose_label': '选择 {name}',
    'st.change_patient': '更换患者', 'st.no_patient': '请先查询并选择患者。', 'st.patient_line': '{name} · {sex} · {age} · 身份证号 {id}',
    'st.visit': '2. 就诊', 'st.encounter': '本院就诊/住院记录', 'st.encounter_none': '不关联就诊记录', 'st.encounter_hint': '只列出本机构的就诊记录；选择后按其类别和日期结算',
    'st.no_record': '无法读取该患者的就诊记录（{why}），可不关联就诊记录直接结算。',
    'st.setting': '门诊/住院', 'st.date': '就诊日期', 'st.arrival': '就诊方式', 'st.arrival_auto': '自动（按转诊记录判断）',
    'st.after_stay': '上转前住院机构层级', 'st.after_stay_none': '无（门诊转诊）',
    'st.lines': '3. 费用明细', 'st.catalogue': '医保目录查询', 'st.q': '编码或名称', 'st.kind': '类别', 'st.kind_all': '全部',
    'st.search': '查询目录', 'st.cat_results': '目录项目（{n}）', 'st.cat_none': '目录中没有符合条件的项目。', 'st.add': '添加', 'st.add_label': '添加 {name}',
    'st.added': '已添加：{name}', 'st.col.code': '编码', 'st.col.name': '名称', 'st.col.kind': '类别', 'st.col.class': '医保类别', 'st.col.unit': '单位',
    'st.col.limit': '限价', 'st.col.qty': '数量', 'st.col.price': '单价（元）', 'st.col.amount': '金额', 'st.col.action': '操作',
    'st.remove': '删除', 'st.remove_label': '删除 {name}', 'st.no_lines': '尚未添加费用明细。', 'st.bill_total': '合计：{amount}（{n} 项）',
    'st.qty_label': '{name} 数量', 'st.price_label': '{name} 单价（元）', 'st.no_limit': '不限',
    'st.txn': '交易流水号', 'st.txn_hint': '同一流水号重复提交只返回首次结算结果',
    'st.preview': '预结算', 'st.settle': '结算', 'st.new': '新的结算', 'st.print': '打印结算单',
    'st.split': '费用分割', 'st.split_preview': '预结算结果（未保存）', 'st.split_settled': '结算结果', 'st.replayed': '该流水号已结算过，以下为首次结算的结果。',
    'st.settled_ok': '结算成功，流水号 {txn}。', 'st.preview_ok': '预结算完成：基金支付 {fund}，个人支付 {patient}。',
    'st.total': '医疗费用总额', 'st.fund': '统筹基金支付', 'st.patient_pay': '个人支付', 'st.of_which': '其中',
    'st.self_pay': '自费', 'st.class_b': '乙类先行自付', 'st.deductible': '起付线', 'st.coinsurance': '按比例自付', 'st.above': '超限额自付',
    'st.rate': '报销比例', 'st.policy': '适用政策', 'st.scheme': '险种', 'st.insured': '参保地', 'st.place': '就医地类型',
    'st.explanation': '计算说明（可读给患者听）', 'st.amount': '金额',
    'st.errors': '请更正：', 'st.line_error': '第 {n} 行', 'st.err.qty': '数量须为 1 以上的整数。', 'st.err.price': '单价须为不小于 0 的金额，最多两位小数。',
    'st.err.no_lines': '请至少添加一项费用。', 'st.err.txn': '请填写交易流水号。',
    'st.acc': '本年度累计（{year}）', 'st.acc_in': '住院统筹已支付', 'st.acc_out': '门诊统筹已支付', 'st.acc_ceiling': '年度封顶线', 'st.acc_cap': '门诊统筹限额',
    'st.acc_left': '剩余 {left}', 'st.acc_none': '无法读取年度累计：{why}',
    'setting.outpatient': '门诊', 'setting.inpatient': '住院',
    'arrival.self_referred': '自行就诊', 'arrival.upward_referral': '上转', 'arrival.downward_referral': '下转', 'arrival.emergency': '急诊',
    'place.home': '参保地就医', 'place.filed_long_term': '异地就医（长期备案）', 'place.filed_temporary': '异地就医（临时备案）', 'place.unfiled': '异地就医（未备案）',
    'kind.drug': '药品', 'kind.service': '诊疗项目', 'kind.material': '医用耗材',
    'iclass.a': '甲类', 'iclass.b': '乙类', 'iclass.self_pay': '自费',
    'sstatus.settled': '已结算', 'sstatus.reversed': '已冲正', 'sstatus.preview': '预结算',
    'step.self_pay': '自费项目（目录外），由个人支付', 'step.class_b_share': '乙类项目个人先行自付 {pct}，由个人支付',
    'step.eligible': '纳入统筹支付范围的费用', 'step.not_pooled': '{tier}{setting}不在统筹支付范围内（比例 0%），由个人支付',
    'step.continuous_deductible': '上转连续计算起付线：只补两级起付线的差额', 'step.no_deductible_after_downward': '下转后不再另付起付线',
    'step.deductible': '{tier}{setting}起付线，由个人支付', 'step.rate': '按{tier}{setting}报销比例 {pct} 计算的费用',
    'step.no_referral_reduction': '未经转诊住院：报销比例下调至 {rate}', 'step.out_of_region_reduction': '参保地外就医：报销比例下调至 {rate}',
    'step.fund': '统筹基金按 {rate} 支付', 'step.coinsurance': '其余按比例由个人支付', 'step.above_ceiling': '超过年度封顶线或门诊统筹限额的部分，由个人支付',
    'rc.title': '医疗费用结算单', 'rc.facility': '结算机构', 'rc.patient': '患者', 'rc.id': '身份证号', 'rc.txn': '交易流水号', 'rc.time': '结算时间',
    'rc.date': '就诊日期', 'rc.setting': '就诊类别', 'rc.status': '状态', 'rc.reversed': '已于 {t} 冲正（冲正流水号 {txn}）', 'rc.reversal_reason': '冲正原因', 'rc.lines': '费用明细', 'rc.split': '费用分割',
    'rc.sign': '患者签字：', 'rc.clerk': '经办人：{name}',
    'jr.title': '日结', 'jr.filters': '查询条件', 'jr.date': '结算日期', 'jr.facility': '机构', 'jr.status': '状态', 'jr.all': '全部', 'jr.apply': '查询',
    'jr.totals': '{date} 合计', 'jr.count': '笔数', 'jr.reversed_count': '冲正笔数', 'jr.reversed_fund': '冲正基金金额',
    'jr.rows': '结算记录（{n}）', 'jr.none': '当日没有结算记录。', 'jr.time': '时间', 'jr.txn': '流水号', 'jr.patient': '患者',
    'jr.reverse': '冲正', 'jr.reverse_label': '冲正 {txn}', 'jr.reverse_title': '冲正结算 {txn}', 'jr.reason': '冲正原因', 'jr.reversal_txn': '冲正流水号',
    'jr.reversed_ok': '已冲正：{txn}。', 'jr.open': '查看',
    'jr.shown': '已显示 {n} 条，共 {total} 条；合计为全天。', 'jr.more': '加载更多', 'jr.loading': '正在加载…', 'jr.loaded': '又加载了 {n} 条，已显示 {shown} 条。',
    'sd.title': '结算详情 · {txn}', 'sd.back': '返回日结',
    'pol.title': '医保政策', 'pol.source': '政策来源：{src}', 'pol.default': '系统默认政策（domain.md 默认值）', 'pol.none': '没有配置政策。',
    'pol.region': '参保地', 'pol.effective': '有效期', 'pol.open_end': '至今', 'pol.inpatient': '住院（每次住院）', 'pol.outpatient': '门诊统筹（每次就诊）',
    'pol.tier': '机构层级', 'pol.deductible': '起付线', 'pol.rate': '报销比例', 'pol.not_listed': '未列出的层级不予支付。',
    'pol.ceiling': '年度封顶线', 'pol.cap': '门诊统筹年度限额', 'pol.class_b': '乙类先行自付比例', 'pol.no_ref': '未转诊住院比例下调',
    'pol.no_ref_from': '（{tier}及以上）', 'pol.filed_tmp': '异地临时备案比例下调', 'pol.unfiled': '异地未备案比例下调', 'pol.points': '{n} 个百分点',
    'rp.title': '医保报表', 'rp.tabs': '报表', 'rp.fund': '基金支付', 'rp.outflow': '县外就医流出', 'rp.clearing': '跨省清算',
    'rp.from': '起始月份', 'rp.to': '截止月份', 'rp.month': '月份', 'rp.group': '分组', 'rp.by_facility': '按机构', 'rp.by_tier': '按层级',
    'rp.region': '参保县（行政区划代码）', 'rp.apply': '查询', 'rp.none': '所选期间没有数据。', 'rp.count': '笔数', 'rp.total': '医疗费用',
    'rp.fund_col': '基金支付', 'rp.patient_col': '个人支付', 'rp.facility': '机构', 'rp.tier': '层级', 'rp.destination': '去向',
    'rp.insured': '参保地', 'rp.treatment': '就医地', 'rp.direction': '方向', 'rp.chart': '{what}：基金支付（元）', 'rp.sum': '合计',
    'dest.out_of_county_in_province': '省内县外', 'dest.out_of_province': '省外', 'cdir.inbound': '异地患者来本地就医', 'cdir.outbound': '本地参保人外出就医', 'cdir.other': '其他',
    'ps.title': '医保结算', 'ps.none': '没有结算记录。', 'ps.rows': '结算记录', 'ps.today_only': '仅显示本机构今日的结算。',
    'err.settlement.not_enrolled': '该患者在就诊日期没有有效的参保记录。', 'err.settlement.txn_conflict': '该流水号已用于另一笔不同的结算，请换一个流水号。',
    'err.settlement.encounter_settled': '该次就诊已结算过，不能重复结算（如需更正请先冲正）。', 'err.settlement.no_policy': '参保地没有在该日期生效的医保政策。',
    'err.settlement.policy_expired': '适用的医保政策已过期。', 'err.settlement.no_lines': '请至少添加一项费用。', 'err.settlement.amount': '金额不正确。',
    'err.settlement.unknown_item': '本地医保目录中没有该编码。', 'err.settlement.price_above_limit': '单价超过目录限价。', 'err.settlement.quantity': '数量须为 1 以上的整数。',
    'err.settlement.price_negative': '单价不能为负数。', 'err.settlement.amount_overflow': '金额过大。', 'err.settlement.too_many_lines': '费用明细行数过多。',
    'err.settlement.other_facility': '该结算不属于您可查看的机构。', 'err.settlement.reversal_reason': '请填写冲正原因（1 至 200 字）。', 'err.settlement.reversal_conflict': '该结算已用另一个冲正流水号冲正。',
    'err.settlement.date_future': '就诊日期不能晚于今天。', 'err.settlement.no_catalogue': '本机构所在地区没有加载医保目录。',
    'err.settlement.no_facility': '您所在的机构未登记。', 'err.settlement.no_relationship': '本机构与该患者没有诊疗关系，请先通过身份证号识别患者。',
    'err.settlement.patient_merged': '该档案已合并到另一档案，请在保留的档案上结算。', 'err.settlement.txn_no': '请填写交易流水号。',
  });
  Object.assign(DICT.en, {
    'nav.settle': 'Settlement desk', 'nav.journal': 'Daily journal', 'nav.policies': 'Insurance policies', 'nav.reports': 'Insurance reports',
    'st.title': 'Settlement desk', 'st.patient': '1. Patient', 'st.scan': 'Scan or type the identity number', 'st.scan_hint': 'A scanner reading the identity card or insurance code searches as soon as it has read',
    'st.find': 'Find', 'st.by_name': 'Find by name', 'st.name': 'Name', 'st.choose': 'Choose', 'st.choose_label': 'Choose {name}',
    'st.change_patient': 'Another patient', 'st.no_patient': 'Find and choose the patient first.', 'st.patient_line': '{name} · {sex} · {age} · identity number {id}',
    'st.visit': '2. Visit or stay', 'st.encounter': 'Visit or stay at this facility', 'st.encounter_none': 'No recorded visit', 'st.encounter_hint': 'Only this facility\u2019s encounters are listed; choosing one settles it by its class and date',
    'st.no_record': 'The patient\u2019s encounters cannot be read ({why}); you can settle without linking one.',
    'st.setting': 'Outpatient or inpatient', 'st.date': 'Day of care', 'st.arrival': 'How the patient came', 'st.arrival_auto': 'Automatic (from the referral records)',
    'st.after_stay': 'Tier of the stay before the upward referral', 'st.after_stay_none': 'None (referred from a visit)',
    'st.lines': '3. Bill lines', 'st.catalogue': 'Search the insurance catalogue', 'st.q': 'Code or name', 'st.kind': 'Kind', 'st.kind_all': 'All',
    'st.search': 'Search the catalogue', 'st.cat_results': 'Catalogue items ({n})', 'st.cat_none': 'No catalogue item matches.', 'st.add': 'Add', 'st.add_label': 'Add {name}',
    'st.added': 'Added: {name}', 'st.col.code': 'Code', 'st.col.name': 'Name', 'st.col.kind': 'Kind', 'st.col.class': 'Class', 'st.col.unit': 'Unit',
    'st.col.limit': 'Price limit', 'st.col.qty': 'Quantity', 'st.col.price': 'Unit price (yuan)', 'st.col.amount': 'Amount', 'st.col.action': 'Action',
    'st.remove': 'Remove', 'st.remove_label': 'Remove {name}', 'st.no_lines': 'No bill line yet.', 'st.bill_total': 'Total: {amount} ({n} lines)',
    'st.qty_label': '{name} quantity', 'st.price_label': '{name} unit price (yuan)', 'st.no_limit': 'none',
    'st.txn': 'Transaction number', 'st.txn_hint': 'Sending the same number again returns the first result',
    'st.preview': 'Preview', 'st.settle': 'Settle', 'st.new': 'New settlement', 'st.print': 'Print the receipt',
    'st.split': 'Split', 'st.split_preview': 'Preview (not stored)', 'st.split_settled': 'Settled', 'st.replayed': 'This transaction number was already settled; this is the first result.',
    'st.settled_ok': 'Settled, transaction {txn}.', 'st.preview_ok': 'Preview: the fund pays {fund}, the patient {patient}.',
    'st.total': 'Total', 'st.fund': 'Fund pays', 'st.patient_pay': 'Patient pays', 'st.of_which': 'of which',
    'st.self_pay': 'Self-pay', 'st.class_b': 'Class-B first share', 'st.deductible': 'Deductible', 'st.coinsurance': 'Coinsurance', 'st.above': 'Above the ceiling',
    'st.rate': 'Rate', 'st.policy': 'Policy', 'st.scheme': 'Scheme', 'st.insured': 'Insured region', 'st.place': 'Place of care',
    'st.explanation': 'How it was computed (to read to the patient)', 'st.amount': 'Amount',
    'st.errors': 'Please correct:', 'st.line_error': 'Line {n}', 'st.err.qty': 'The quantity is a whole number, at least 1.', 'st.err.price': 'The unit price is an amount of at least 0 with at most two decimals.',
    'st.err.no_lines': 'Add at least one bill line.', 'st.err.txn': 'Give the transaction number.',
    'st.acc': 'This year so far ({year})', 'st.acc_in': 'Inpatient fund paid', 'st.acc_out': 'Outpatient pool paid', 'st.acc_ceiling': 'Annual ceiling', 'st.acc_cap': 'Outpatient pool cap',
    'st.acc_left': '{left} left', 'st.acc_none': 'The year\u2019s accumulators cannot be read: {why}',
    'setting.outpatient': 'Outpatient', 'setting.inpatient': 'Inpatient',
    'arrival.self_referred': 'Came on their own', 'arrival.upward_referral': 'Referred up', 'arrival.downward_referral': 'Referred down', 'arrival.emergency': 'Emergency',
    'place.home': 'In the insured region', 'place.filed_long_term': 'Elsewhere, long-term filing', 'place.filed_temporary': 'Elsewhere, temporary filing', 'place.unfiled': 'Elsewhere, not filed',
    'kind.drug': 'Drug', 'kind.service': 'Service', 'kind.material': 'Material',
    'iclass.a': 'Class A', 'iclass.b': 'Class B', 'iclass.self_pay': 'Self-pay',
    'sstatus.settled': 'Settled', 'sstatus.reversed': 'Reversed', 'sstatus.preview': 'Preview',
    'step.self_pay': 'Self-pay items (outside the catalogue), paid by the patient', 'step.class_b_share': 'Class-B first share of {pct}, paid by the patient',
    'step.eligible': 'Eligible for the fund', 'step.not_pooled': '{setting} care at a {tier} is not paid by the fund (rate 0 %); the patient pays',
    'step.continuous_deductible': 'Continuous deductible after an upward referral: only the difference between the two tiers', 'step.no_deductible_after_downward': 'No new deductible after a downward referral',
    'step.deductible': 'Deductible ({setting}, {tier}), paid by the patient', 'step.rate': 'Amount the {setting} rate at a {tier} ({pct}) applies to',
    'step.no_referral_reduction': 'A stay without a referral: the rate is reduced to {rate}', 'step.out_of_region_reduction': 'Care outside the insured region: the rate is reduced to {rate}',
    'step.fund': 'The fund pays {rate}', 'step.coinsurance': 'The rest, paid by the patient (coinsurance)', 'step.above_ceiling': 'Above the annual ceiling or the outpatient pool cap, paid by the patient',
    'rc.title': 'Medical bill settlement receipt', 'rc.facility': 'Facility', 'rc.patient': 'Patient', 'rc.id': 'Identity number', 'rc.txn': 'Transaction number', 'rc.time': 'Settled at',
    'rc.date': 'Day of care', 'rc.setting': 'Setting', 'rc.status': 'Status', 'rc.reversed': 'Reversed at {t} (reversal number {txn})', 'rc.reversal_reason': 'Reason for the reversal', 'rc.lines': 'Bill lines', 'rc.split': 'Split',
    'rc.sign': 'Patient\u2019s signature:', 'rc.clerk': 'Clerk: {name}',
    'jr.title': 'Daily journal', 'jr.filters': 'Filters', 'jr.date': 'Day', 'jr.facility': 'Facility', 'jr.status': 'Status', 'jr.all': 'All', 'jr.apply': 'Show',
    'jr.totals': 'Totals of {date}', 'jr.count': 'Settlements', 'jr.reversed_count': 'Reversed', 'jr.reversed_fund': 'Fund reversed',
    'jr.rows': 'Settlements ({n})', 'jr.none': 'No settlement on this day.', 'jr.time': 'Time', 'jr.txn': 'Transaction', 'jr.patient': 'Patient',
    'jr.reverse': 'Reverse', 'jr.reverse_label': 'Reverse {txn}', 'jr.reverse_title': 'Reverse settlement {txn}', 'jr.reason': 'Reason for the reversal', 'jr.reversal_txn': 'Reversal number',
    'jr.reversed_ok': 'Reversed: {txn}.', 'jr.open': 'Open',
    'jr.shown': '{n} of {total} shown; the totals are the whole day\u2019s.', 'jr.more': 'More', 'jr.loading': 'Loading…', 'jr.loaded': '{n} more loaded, {shown} shown.',
    'sd.title': 'Settlement · {txn}', 'sd.back': 'Back to the journal',
    'pol.title': 'Insurance policies', 'pol.source': 'Source: {src}', 'pol.default': 'built-in defaults (domain.md)', 'pol.none': 'No policy configured.',
    'pol.region': 'Insured region', 'pol.effective': 'In force', 'pol.open_end': 'until changed', 'pol.inpatient': 'Inpatient (per stay)', 'pol.outpatient': 'Outpatient pool (per visit)',
    'pol.tier': 'Tier', 'pol.deductible': 'Deductible', 'pol.rate': 'Rate', 'pol.not_listed': 'Tiers not listed are not paid.',
    'pol.ceiling': 'Annual ceiling', 'pol.cap': 'Outpatient pool cap per year', 'pol.class_b': 'Class-B first share', 'pol.no_ref': 'Stay without referral: rate reduced by',
    'pol.no_ref_from': ' (from {tier} up)', 'pol.filed_tmp': 'Elsewhere, temporary filing: reduced by', 'pol.unfiled': 'Elsewhere, not filed: reduced by', 'pol.points': '{n} points',
    'rp.title': 'Insurance reports', 'rp.tabs': 'Reports', 'rp.fund': 'Fund payments', 'rp.outflow': 'Out-of-county outflow', 'rp.clearing': 'Cross-province clearing',
    'rp.from': 'From (month)', 'rp.to': 'To (month)', 'rp.month': 'Month', 'rp.group': 'Group by', 'rp.by_facility': 'Facility', 'rp.by_tier': 'Tier',
    'rp.region': 'Insured county (region code)', 'rp.apply': 'Show', 'rp.none': 'No data for this period.', 'rp.count': 'Count', 'rp.total': 'Total',
    'rp.fund_col': 'Fund', 'rp.patient_col': 'Patient', 'rp.facility': 'Facility', 'rp.tier': 'Tier', 'rp.destination': 'Destination',
    'rp.insured': 'Insured region', 'rp.treatment': 'Treated in', 'rp.direction': 'Direction', 'rp.chart': '{what}: fund payments (yuan)', 'rp.sum': 'Total',
    'dest.out_of_county_in_province': 'Out of the county, in the province', 'dest.out_of_province': 'Out of the province', 'cdir.inbound': 'Patients from elsewhere treated here', 'cdir.outbound': 'Our insured treated elsewhere', 'cdir.other': 'Other',
    'ps.title': 'Insurance settlements', 'ps.none': 'No settlement.', 'ps.rows': 'Settlements', 'ps.today_only': 'Only today\u2019s settlements at this facility are listed.',
    'err.settlement.not_enrolled': 'The patient has no insurance enrolment valid on the day of care.', 'err.settlement.txn_conflict': 'This transaction number was used for another bill; use a new number.',
    'err.settlement.encounter_settled': 'This visit is already settled; reverse that settlement first to correct it.', 'err.settlement.no_policy': 'No policy of the insured region is in force on that day.',
    'err.settlement.policy_expired': 'The policy that applies has expired.', 'err.settlement.no_lines': 'Add at least one bill line.', 'err.settlement.amount': 'The amount is not right.',
    'err.settlement.unknown_item': 'The local catalogue has no item with this code.', 'err.settlement.price_above_limit': 'The unit price is above the catalogue limit.', 'err.settlement.quantity': 'The quantity is a whole number, at least 1.',
    'err.settlement.price_negative': 'A unit price cannot be negative.', 'err.settlement.amount_overflow': 'The amount is too large.', 'err.settlement.too_many_lines': 'Too many bill lines.',
    'err.settlement.other_facility': 'This settlement is of a facility outside your scope.', 'err.settlement.reversal_reason': 'Give the reason for the reversal (1 to 200 characters).', 'err.settlement.reversal_conflict': 'This settlement was reversed under another reversal number.',
    'err.settlement.date_future': 'The day of care cannot be after today.', 'err.settlement.no_catalogue': 'No insurance catalogue is loaded for the region of your facility.',
    'err.settlement.no_facility': 'Your facility is not registered.', 'err.settlement.no_relationship': 'Your facility has no care relationship with this patient; identify the patient by the identity number first.',
    'err.settlement.patient_merged': 'This record was merged into another; settle on the surviving record.', 'err.settlement.txn_no': 'Give the transaction number.',
  });

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
          // one wrapper, so that a stacked (small-screen) cell keeps its parts on one line
          return h('td', { 'data-label': headers[i], class: cell.cls }, Array.isArray(cell.cell) ? h('span', { class: 'cell' }, cell.cell) : cell.cell);
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
  const REFER_ROLES = ['village_doctor', 'township_clinician', 'referral_centre', 'specialist'];
  // settlement (issue 6): the clerk settles at its desk; officers and admins read journals and reports
  const SETTLE_ROLES = ['settlement_clerk'];
  const JOURNAL_ROLES = ['settlement_clerk', 'insurance_officer', 'community_admin', 'system_admin'];
  const REPORT_ROLES = ['insurance_officer', 'community_admin', 'system_admin'];
  const PATIENT_SETTLEMENT_ROLES = ['settlement_clerk', 'insurance_officer'];
  const hasAny = (roles) => !!me && me.roles.some((r) => roles.includes(r));
  const canRefer = () => hasAny(REFER_ROLES);
  const PAGES = [
    { hash: '#/patients', key: 'nav.patients', allowed: () => hasAny(READ_ROLES) },
    { hash: '#/referrals', key: 'nav.referrals', allowed: canRefer },
    { hash: '#/follow-ups', key: 'nav.follow_ups', allowed: canRefer },
    { hash: '#/settle', key: 'nav.settle', allowed: () => hasAny(SETTLE_ROLES) },
    { hash: '#/journal', key: 'nav.journal', allowed: () => hasAny(JOURNAL_ROLES) },
    { hash: '#/reports', key: 'nav.reports', allowed: () => hasAny(REPORT_ROLES) },
    { hash: '#/policies', key: 'nav.policies', allowed: () => hasAny(JOURNAL_ROLES) },
    { hash: '#/directory', key: 'nav.directory', allowed: () => true },
    { hash: '#/referrals-community', key: 'nav.community_referrals', allowed: () => hasAny(['community_admin']) },
    { hash: '#/users', key: 'nav.users', allowed: () => hasAny(ADMIN_ROLES) },
    { hash: '#/access-log', key: 'nav.access_log', allowed: () => hasAny(ADMIN_ROLES) },
  ];
  /** Where a user lands: the referral centre on its inbox, everyone else on their first page. */
  function home() {
    if (hasAny(['referral_centre'])) return '#/referrals';
    if (hasAny(SETTLE_ROLES)) return '#/settle';
    const first = PAGES.find((p) => p.allowed());
    return first ? first.hash : '#/directory';
  }

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
      for (const p of PAGES.filter((x) => x.allowed() && x.nav !== false)) {
        const current = here === p.hash || here.startsWith(p.hash + '/');
        nav.append(h('a', { href: p.hash, 'data-page': p.hash, 'aria-current': current ? 'page' : null }, t(p.key)));
      }
      if (canRefer()) refreshBadges();
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
        location.hash = home(); // hashchange routes
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
    const refs = rec.referrals || [];
    // encounters and referrals in one timeline, newest first
    const items = encs.map((e) => ({ at: e.started_at, e })).concat(refs.map((r) => ({ at: r.requested_at, r })))
      .sort((a, b) => new Date(b.at) - new Date(a.at));
    const tierOf = (id) => { const f = fac.find((x) => x.id === id); return f ? word('tier', f.tier) : ''; };
    return [
      rec.access && rec.access.basis === 'break_glass' ? alertBox('warn', t('bg.banner')) : null,
      h('p', { class: 'hint' }, t('rec.basis', { basis: word('basis', rec.access && rec.access.basis) })),
      canRefer() && p.status !== 'merged' ? h('p', { class: 'page-actions' }, h('a', { class: 'button primary', href: '#/referrals/new?patient=' + p.id }, t('nr.button'))) : null,
      h('section', { class: 'card', 'aria-labelledby': 'demo-h' }, h('h2', { id: 'demo-h' }, t('rec.demographics')),
        h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      h('section', { 'aria-labelledby': 'enr-h' }, h('h2', { id: 'enr-h' }, t('rec.enrolments')),
        enrol.length ? table('enrolments', [t('rec.scheme'), t('rec.insured_region'), t('rec.filing_status'), t('rec.filed_region'), t('rec.valid')],
          enrol.map((e) => [word('scheme', e.scheme), { cell: e.insured_region, cls: 'mono' }, word('filing', e.filing_status), e.filed_region || '', e.valid_from + ' – ' + (e.valid_to || '')]))
          : h('p', { class: 'empty' }, t('rec.no_enrolments')),
        Array.isArray(rec.filings) ? [h('h3', { id: 'fil-h' }, t('filing.title')),
          rec.filings.length ? filingTable(rec.filings, fac) : h('p', { class: 'empty' }, t('filing.none'))] : null),
      h('section', { 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, t('rec.timeline')),
        items.length ? h('ol', { class: 'timeline' }, items.map(({ e, r }) => (r ? referralTimelineItem(r) : h('li', { class: 'encounter' },
          h('div', { class: 'tl-head' }, h('time', { datetime: e.started_at }, dateTime(e.started_at)),
            h('span', { class: 'tl-facility' }, facilityName(fac, e.facility_id)), h('span', { class: 'tl-meta' }, tierOf(e.facility_id)),
            h('span', { class: 'tag' }, word('class', e.class)), h('span', { class: 'tl-cost' }, t('rec.cost') + ' ' + yuan(e.total_cost_fen))),
          h('div', { class: 'tl-meta' }, e.department ? t('rec.department') + '：' + e.department : null, e.ended_at ? ' · ' + t('rec.ended', { t: dateTime(e.ended_at) }) : null),
          e.diagnoses && e.diagnoses.length ? h('div', {}, t('rec.diagnoses') + ' ', e.diagnoses.map((d) => h('span', { class: 'tag code' }, d))) : null,
          e.procedures && e.procedures.length ? h('div', {}, t('rec.procedures') + ' ', e.procedures.map((d) => h('span', { class: 'tag code' }, d))) : null))))
          : h('p', { class: 'empty' }, t('rec.no_encounters'))),
    ];
  }
  async function viewRecord(id) {
    const fac = await facilities();
    const back = h('p', {}, h('a', { href: '#/patients' }, '← ' + t('rec.back')));
    const show = (rec) => {
      page(t('rec.title') + ' · ' + rec.patient.name, back, recordView(fac, rec));
      if (hasAny(PATIENT_SETTLEMENT_ROLES)) document.getElementById('main').append(patientSettlements(rec.patient));
      // the patient's results (issue 5, results.js)
      if (window.tiercare.results && hasAny(READ_ROLES)) document.getElementById('main').append(h('p', {}, window.tiercare.results.resultsLink(rec.patient.id)));
    };
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

  // ------------------------------------------------------------------ referrals (issue 4)
  const TIERS = ['village', 'township', 'county', 'city', 'provincial', 'national'];
  const CENTRES = ['chest_pain', 'stroke', 'trauma', 'critical_maternal', 'critical_newborn'];
  const STATES = ['requested', 'accepted', 'rejected', 'redirected', 'scheduled', 'arrived', 'completed', 'cancelled', 'expired'];
  const TIMEPOINTS = ['first_medical_contact', 'departed', 'door', 'ecg', 'ct', 'needle', 'balloon'];
  const SENDER_TIMEPOINTS = ['first_medical_contact', 'departed'];
  const INTERVALS = ['request_to_acknowledge', 'first_contact_to_door', 'door_to_ecg', 'door_to_ct', 'door_to_needle', 'door_to_balloon'];
  const INBOX_TABS = ['new', 'awaiting_scheduling', 'arriving_today', 'overdue'];
  const UUID_RE = /^[0-9a-fA-F-]{36}$/;

  // the worklist counts behind the navigation badges, fetched once per page shown
  let summaryP = null;
  function loadSummary() {
    summaryP = canRefer() ? api('GET', '/api/v1/referrals/summary').catch(() => null) : Promise.resolve(null);
    return summaryP;
  }
  function updateBadges(s) {
    const set = (hash, n, key) => {
      const a = document.querySelector('#nav a[data-page="' + hash + '"]');
      if (!a) return;
      a.querySelectorAll('.badge, .visually-hidden').forEach((x) => x.remove());
      if (n > 0) a.append(h('span', { class: 'badge', 'aria-hidden': 'true' }, String(n)), h('span', { class: 'visually-hidden' }, t(key, { n })));
    };
    set('#/referrals', s ? (s.notifications_unseen || 0) + (s.new || 0) : 0, 'nav.badge');
    set('#/follow-ups', s ? s.follow_ups_due || 0 : 0, 'nav.badge_due');
  }
  function refreshBadges() { return loadSummary().then(updateBadges); }

  // China time in and out of <input type="datetime-local">
  function chinaInput(d) { return new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 16); }
  function fromChinaInput(v) {
    const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2})?/.exec(v || '');
    return m ? m[1] + (m[2] || ':00') + '+08:00' : null;
  }
  function tomorrowAt(hhmm) {
    const d = chinaInput(new Date(Date.now() + 24 * 3600e3)).slice(0, 10);
    return d + 'T' + hhmm;
  }

  function urgencyTags(r) {
    return [h('span', { class: 'tag urgency-' + r.urgency }, word('urgency', r.urgency)),
      r.green_channel ? h('span', { class: 'tag green' }, t('gc.marker', { c: word('gc', r.green_channel) })) : null];
  }
  function stateTag(s) { return h('span', { class: 'tag state state-' + s }, word('state', s)); }
  function timeEl(s) { return s ? h('time', { datetime: s }, dateTime(s)) : '—'; }
  function patientBrief(p, href) {
    const name = (p && p.name) || '—';
    const meta = [p && p.sex ? word('sex', p.sex) : '', p && p.age != null ? t('age.years', { n: p.age }) : ''].filter(Boolean).join(' · ');
    return [href ? h('a', { href }, name) : h('span', { class: 'pname' }, name), meta ? h('span', { class: 'tl-meta' }, ' ' + meta) : null];
  }
  function referralTable(rows, linkable) {
    const wrap = table('referrals', [t('ref.col.patient'), t('ref.col.direction'), t('ref.col.urgency'), t('ref.col.parties'), t('ref.col.requested'),
      t('ref.col.due'), t('ref.col.state')],
    rows.map((r) => [patientBrief(r.patient, linkable ? '#/referrals/' + r.id : null), word('direction', r.direction), urgencyTags(r),
      [r.from_facility.name || '', ' → ', r.to_facility.name || ''], timeEl(r.requested_at),
      [r.due_at && r.state !== 'completed' ? timeEl(r.due_at) : '—', r.overdue ? h('span', { class: 'tag overdue' }, t('ref.overdue')) : null],
      stateTag(r.state)]));
    wrap.querySelectorAll('tbody tr').forEach((tr, i) => {
      if (rows[i].overdue) tr.classList.add('overdue');
      if (rows[i].green_channel) tr.classList.add('green-row');
    });
    return wrap;
  }

  /** Field errors from the server shown next to their fields; the rest in a summary. */
  function fieldErrors(summary) {
    const slots = [];
    function register(name, input, container) {
      if (!input.id) input.id = 'f' + (++uid);
      // one input may carry several fields' errors (a bill line: its code, quantity, price)
      const k = slots.filter((x) => x.input === input).length;
      const slot = h('p', { class: 'field-error', id: input.id + (k ? '-' + k : '') + '-err', hidden: true });
      (container || input.closest('.field') || input.parentNode).append(slot);
      slots.push({ name, input, slot, described: input.getAttribute('aria-describedby') });
      return slot;
    }
    function clear() {
      summary.replaceChildren();
      for (const s of slots) {
        s.slot.hidden = true; s.slot.textContent = '';
        s.input.removeAttribute('aria-invalid');
        if (s.described) s.input.setAttribute('aria-describedby', s.described); else s.input.removeAttribute('aria-describedby');
      }
    }
    function mark(s, msg) {
      s.slot.textContent = s.slot.textContent ? s.slot.textContent + ' ' + msg : msg;
      s.slot.hidden = false;
      s.input.setAttribute('aria-invalid', 'true');
      s.input.setAttribute('aria-describedby', [s.described, s.slot.id].filter(Boolean).join(' '));
    }
    function find(fieldName) {
      const name = (s) => (typeof s.name === 'function' ? s.name() : s.name);
      return slots.find((s) => name(s) === fieldName) || slots.find((s) => name(s) === fieldName.replace(/[[.].*$/, ''));
    }
    /** `e` an ApiError (or a list of {field, code, message}); `msgOf` the text of one detail. */
    function show(e, msgOf) {
      clear();
      const details = Array.isArray(e) ? e : (e && e.details) || [];
      if (!details.length) { summary.replaceChildren(alertBox('error', errText(e))); return; }
      const text = (d) => (msgOf && msgOf(d)) || (has('err.' + d.code) ? t('err.' + d.code) : d.message);
      let first = null;
      const items = details.map((d) => {
        const s = d.field ? find(d.field) : null;
        if (s) { mark(s, text(d)); first = first || s.input; }
        const lab = s && s.input.type !== 'checkbox' && s.input.labels && s.input.labels[0];
        const label = lab ? lab.textContent + '：' : '';
        return h('li', {}, label + text(d));
      });
      summary.replaceChildren(h('div', { class: 'alert error', role: 'alert' }, t('nr.errors'), h('ul', {}, items)));
      if (first) first.focus();
    }
    return { register, clear, show };
  }

  /** A modal dialog with a form; `onConfirm(errors)` does the work and may throw. */
  function modal(title, fields, confirmText, onConfirm) {
    const out = h('div', {});
    const ok = h('button', { type: 'submit', class: 'primary' }, confirmText);
    const close = h('button', { type: 'button', class: 'secondary' }, t('dlg.close'));
    const hid = 'dlg-h' + (++uid);
    const form = h('form', { novalidate: true }, h('h2', { id: hid }, title), fields, out, h('div', { class: 'buttons' }, ok, close));
    const dlg = h('dialog', { 'aria-labelledby': hid }, form);
    const opener = document.activeElement;
    const errors = fieldErrors(out);
    close.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => { dlg.remove(); if (opener && opener.isConnected) opener.focus(); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      ok.disabled = true; errors.clear();
      try {
        if (await onConfirm(errors) !== false && dlg.open) dlg.close();
      } catch (e) { errors.show(e); } finally { ok.disabled = false; }
    });
    document.body.append(dlg);
    dlg.showModal();
    return { dlg, errors };
  }

  function proposalText(p) {
    return [p.name, word('tier', p.tier), p.travel_minutes != null ? t('nr.minutes', { n: p.travel_minutes }) : null,
      p.in_community ? t('nr.in_community') : null].filter(Boolean).join(' · ');
  }
  /** <option>s of receivers: the proposals first, then (without a green channel) every other facility. */
  function receiverOptions(fac, proposals, green, exclude) {
    const opts = [h('option', { value: '' }, t('nr.receiver_choose'))];
    const props = proposals.filter((p) => !exclude.includes(p.facility_id));
    if (props.length) opts.push(h('optgroup', { label: t('nr.proposed') }, props.map((p) => h('option', { value: p.facility_id }, proposalText(p)))));
    if (!green) {
      const others = fac.filter((f) => !exclude.includes(f.id) && !props.some((p) => p.facility_id === f.id));
      if (others.length) opts.push(h('optgroup', { label: t('nr.all') }, others.map((f) => h('option', { value: f.id }, f.name + ' · ' + word('tier', f.tier)))));
    }
    return opts;
  }
  async function proposalsFor(green) {
    return (await api('GET', '/api/v1/referrals/proposals' + (green ? '?green_channel=' + encodeURIComponent(green) : ''))).items || [];
  }

  // ---------------------------------------------------------------- notifications
  function notificationsPanel() {
    const box = h('section', { class: 'card notes', 'aria-labelledby': 'nt-h' });
    async function fill(focusHeading) {
      let r;
      try { r = await api('GET', '/api/v1/notifications?limit=10'); } catch (e) {
        box.replaceChildren(h('h2', { id: 'nt-h' }, t('notes.title')), alertBox('error', errText(e))); return;
      }
      const items = r.items || [];
      const btn = r.unseen ? h('button', { type: 'button', class: 'secondary' }, t('notes.seen_all')) : null;
      if (btn) {
        btn.addEventListener('click', async () => {
          btn.disabled = true;
          try {
            await api('POST', '/api/v1/notifications/seen', {});
            await fill(true);
            refreshBadges();
            announce(t('notes.all_seen'));
          } catch (e) { btn.disabled = false; box.append(alertBox('error', errText(e))); }
        });
      }
      const head = h('h2', { id: 'nt-h', tabindex: '-1' }, t('notes.title'), r.unseen ? t('notes.unseen', { n: r.unseen }) : '');
      box.replaceChildren(h('div', { class: 'card-head' }, head, btn),
        items.length ? h('ul', { class: 'notes-list' }, items.map((n) => h('li', { class: n.unseen ? 'unseen' : null },
          n.unseen ? h('span', { class: 'tag new' }, t('notes.new')) : null, timeEl(n.at), ' ',
          h('a', { href: '#/referrals/' + n.referral_id }, word('note', n.kind) + '：' + word('act', n.action)))))
          : h('p', { class: 'empty' }, t('notes.none')));
      if (focusHeading) head.focus();
    }
    return fill(false).then(() => box);
  }

  // ---------------------------------------------------------------- worklists
  function referralFilters(params, base, community) {
    const sel = (name, values, prefix) => h('select', { name }, h('option', { value: '' }, t('dir.all')),
      values.map((v) => h('option', { value: v, selected: params.get(name) === v }, word(prefix, v))));
    const els = {
      urgency: sel('urgency', ['routine', 'urgent', 'emergency'], 'urgency'),
      green: h('select', { name: 'green' }, h('option', { value: '' }, t('dir.all')), h('option', { value: 'true', selected: params.get('green') === 'true' }, t('ref.f.green_only'))),
      direction: sel('direction', ['upward', 'downward', 'lateral'], 'direction'),
      state: sel('state', STATES, 'state'),
      department: h('input', { name: 'department', value: params.get('department') || '', autocomplete: 'off' }),
      tier: community ? null : sel('tier', TIERS, 'tier'),
      from: h('input', { name: 'from', type: 'date', value: params.get('from') || '' }),
      to: h('input', { name: 'to', type: 'date', value: params.get('to') || '' }),
    };
    const list = Object.values(els).filter(Boolean);
    const active = list.some((e) => params.get(e.name));
    const keep = new URLSearchParams();
    for (const k of ['box', 'category']) if (params.get(k)) keep.set(k, params.get(k));
    const formOut = h('div', {});
    const form = h('form', { role: 'search', 'aria-label': t('ref.filters'), novalidate: true }, formOut, h('div', { class: 'row' },
      field(t('ref.f.urgency'), els.urgency), field(t('ref.f.green'), els.green), field(t('ref.f.direction'), els.direction),
      field(t('ref.f.state'), els.state), field(t('ref.f.department'), els.department), els.tier ? field(t('ref.f.tier'), els.tier) : null,
      field(t('ref.f.from'), els.from), field(t('ref.f.to'), els.to),
      h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('ref.f.apply')),
        active ? h('a', { href: base + (keep.toString() ? '?' + keep : '') }, t('ref.f.clear')) : null)));
    const errs = fieldErrors(formOut);
    errs.register('from', els.from);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (els.from.value && els.to.value && els.from.value > els.to.value) { errs.show([{ field: 'from', code: 'date.range', message: t('err.date.range') }]); return; }
      const q = new URLSearchParams(keep);
      for (const el of list) if (el.value.trim()) q.set(el.name, el.value.trim());
      location.hash = base + (q.toString() ? '?' + q : '');
    });
    return h('details', { class: 'card filters', open: active }, h('summary', {}, t('ref.filters')), form);
  }

  async function viewReferrals(params, community) {
    const box = community ? 'community' : params.get('box') === 'outbox' ? 'outbox' : 'inbox';
    const category = box === 'inbox' ? params.get('category') || 'new' : community ? params.get('category') || '' : '';
    const base = community ? '#/referrals-community' : '#/referrals';
    const q = new URLSearchParams({ box, limit: '50' });
    if (category) q.set('category', category);
    for (const k of ['urgency', 'direction', 'state', 'department', 'tier', 'from', 'to', 'green', 'before']) if (params.get(k)) q.set(k, params.get(k));
    const [summary, list, notes] = await Promise.all([
      community ? null : summaryP || loadSummary(),
      api('GET', '/api/v1/referrals?' + q).catch((e) => e),
      community ? null : notificationsPanel(),
    ]);
    const tabDefs = community
      ? [['', t('ref.community_all')], ['open', t('ref.tab.open')], ['closed', t('ref.tab.closed')]].map(([c, label]) => ({
        href: base + (c ? '?category=' + c : ''), label, n: null, current: category === c }))
      : INBOX_TABS.map((c) => ({ href: '#/referrals?box=inbox&category=' + c, label: t('ref.tab.' + c), n: summary ? summary[c] : null, current: box === 'inbox' && category === c, hot: c === 'overdue' }))
        .concat([{ href: '#/referrals?box=outbox', label: t('ref.tab.outbox'), n: summary ? summary.outbox_open : null, current: box === 'outbox' }]);
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('ref.tabs') }, h('ul', {}, tabDefs.map((x) => h('li', {},
      h('a', { href: x.href, 'aria-current': x.current ? 'page' : null },
        x.label, x.n ? h('span', { class: 'tab-count' + (x.hot ? ' hot' : '') }, ' ' + x.n) : null)))));
    const current = tabDefs.find((x) => x.current);
    let body;
    if (list instanceof Error) body = alertBox('error', errText(list));
    else {
      const rows = list.items || [];
      const more = new URLSearchParams(params);
      if (list.next) more.set('before', list.next);
      const first = new URLSearchParams(params);
      first.delete('before');
      body = h('section', { 'aria-labelledby': 'rl-h' },
        h('h2', { id: 'rl-h' }, t('ref.list', { what: current ? current.label : t('ref.title'),
          // the server counts at most 1,000 rows: past that, "1000+"
          n: list.total == null ? rows.length : list.total + (list.total_capped ? '+' : '') })),
        rows.length ? referralTable(rows, !community) : h('p', { class: 'empty' }, t('ref.none')),
        list.next || params.get('before') ? h('p', { class: 'pager' },
          params.get('before') ? h('a', { href: base + (first.toString() ? '?' + first : '') }, t('ref.first')) : null,
          list.next ? h('a', { href: base + '?' + more }, t('ref.next')) : null) : null);
    }
    page(community ? t('ref.community_title') : t('ref.title'),
      community ? h('p', { class: 'hint' }, t('ref.community_note')) : null,
      notes, tabs, referralFilters(params, base, community), body);
  }

  // ---------------------------------------------------------------- new referral
  async function viewNewReferral(params) {
    const pid = params.get('patient');
    if (!pid || !UUID_RE.test(pid)) { page(t('nr.title'), alertBox('error', t('nr.no_patient'))); return; }
    const [fac, rec] = await Promise.all([facilities(), api('GET', '/api/v1/patients/' + encodeURIComponent(pid))]);
    const p = rec.patient;
    const mine = fac.find((f) => f.id === me.facility_id);
    const summaryOut = h('div', {});
    const errs = fieldErrors(summaryOut);

    const gc = h('select', { name: 'green_channel' }, h('option', { value: '' }, t('nr.green_none')), CENTRES.map((c) => h('option', { value: c }, t('ec.' + c))));
    const recv = h('select', { name: 'to_facility_id', required: true, 'aria-required': 'true' });
    const recvNote = h('p', { class: 'hint', hidden: true });
    const dirOut = h('output', { id: 'nr-direction', class: 'direction', 'aria-live': 'polite' }, '—');
    const urg = h('select', { name: 'urgency' }, ['routine', 'urgent', 'emergency'].map((u) => h('option', { value: u }, word('urgency', u))));
    const urgNote = h('span', { class: 'hint', hidden: true }, t('nr.urgency_green'));
    const fromDep = h('input', { name: 'from_department', autocomplete: 'off', maxlength: '50' });
    const toDep = h('input', { name: 'to_department', autocomplete: 'off', maxlength: '50' });
    const reason = h('textarea', { name: 'reason', rows: '3', maxlength: '500', 'aria-required': 'true' });
    const diag = h('input', { name: 'diagnoses', class: 'mono', autocomplete: 'off', spellcheck: 'false' });
    const summary = h('textarea', { name: 'clinical_summary', rows: '5', maxlength: '4000' });
    const encs = (rec.encounters || []).slice().sort((a, b) => new Date(b.started_at) - new Date(a.started_at));
    const encBoxes = encs.map((e) => h('input', { type: 'checkbox', name: 'encounter_ids', value: e.id }));
    const encSet = h('fieldset', { class: 'checks' }, h('legend', {}, t('nr.encounters')),
      encs.length ? encs.map((e, i) => h('label', {}, encBoxes[i], h('span', {},
        [dateTime(e.started_at), facilityName(fac, e.facility_id), word('class', e.class), e.department, (e.diagnoses || []).join(', ')].filter(Boolean).join(' · '))))
        : h('p', { class: 'empty' }, t('nr.no_encounters')));
    const discharge = h('textarea', { name: 'discharge_summary', rows: '5', maxlength: '4000' });
    const planBox = h('div', { class: 'plan' });
    const planRows = [];
    function addPlanRow(focus) {
      const what = h('input', { name: 'what', autocomplete: 'off', maxlength: '200' });
      const days = h('input', { name: 'due_in_days', type: 'number', min: '1', max: '366', inputmode: 'numeric' });
      const legend = h('legend', {});
      const remove = h('button', { type: 'button', class: 'secondary' }, t('nr.plan_remove'));
      const row = { what, days, legend, el: null };
      row.el = h('fieldset', { class: 'plan-row' }, legend, h('div', { class: 'row' }, field(t('nr.plan_what'), what), field(t('nr.plan_days'), days), remove));
      remove.addEventListener('click', () => {
        planRows.splice(planRows.indexOf(row), 1); row.el.remove(); renumber();
        (planRows.length ? planRows[planRows.length - 1].what : addBtn).focus();
      });
      planRows.push(row);
      planBox.append(row.el);
      errs.register(() => `follow_up_plan[${planRows.indexOf(row)}].what`, what);
      errs.register(() => `follow_up_plan[${planRows.indexOf(row)}].due_in_days`, days);
      renumber();
      if (focus) what.focus();
    }
    function renumber() { planRows.forEach((r, i) => { r.legend.textContent = t('nr.plan_item', { n: i + 1 }); }); }
    const addBtn = h('button', { type: 'button', class: 'secondary' }, t('nr.plan_add'));
    addBtn.addEventListener('click', () => addPlanRow(true));
    const planWrap = h('div', { class: 'field' }, h('span', { class: 'label', id: 'plan-l' }, t('nr.plan')), planBox, h('p', {}, addBtn));
    const downward = h('fieldset', { class: 'downward', hidden: true }, h('legend', {}, t('nr.downward')), h('p', { class: 'hint' }, t('nr.downward_hint')),
      field(t('nr.discharge'), discharge), planWrap);

    let proposals = [];
    let direction = null;
    function updateDirection() {
      const f = fac.find((x) => x.id === recv.value);
      const pr = proposals.find((x) => x.facility_id === recv.value);
      const tier = f ? f.tier : pr ? pr.tier : null;
      direction = null;
      if (tier && mine) {
        const a = TIERS.indexOf(mine.tier); const b = TIERS.indexOf(tier);
        direction = b > a ? 'upward' : b < a ? 'downward' : 'lateral';
      }
      dirOut.textContent = direction ? word('direction', direction) : '—';
      downward.hidden = direction !== 'downward';
      if (direction === 'downward' && !planRows.length) addPlanRow(false);
    }
    async function loadProposals() {
      const green = gc.value;
      recv.disabled = true;
      recvNote.hidden = true;
      try { proposals = await proposalsFor(green); } catch (e) { proposals = []; recvNote.textContent = errText(e); recvNote.hidden = false; }
      const keep = recv.value;
      recv.replaceChildren(...receiverOptions(fac, proposals, green, [me.facility_id]));
      if (Array.from(recv.options).some((o) => o.value === keep)) recv.value = keep;
      if (green && !proposals.length && recvNote.hidden) { recvNote.textContent = t('nr.no_proposals'); recvNote.hidden = false; }
      recv.disabled = false;
      updateDirection();
    }
    gc.addEventListener('change', () => {
      urg.disabled = !!gc.value;
      if (gc.value) urg.value = 'emergency';
      urgNote.hidden = !gc.value;
      loadProposals();
    });
    recv.addEventListener('change', updateDirection);

    const btn = h('button', { type: 'submit', class: 'primary' }, t('nr.submit'));
    const form = h('form', { class: 'card referral-form', novalidate: true, 'aria-labelledby': 'nr-h' },
      h('h2', { id: 'nr-h' }, t('nr.patient') + '：' + p.name + ' · ' + word('sex', p.sex) + ' · ' + t('age.years', { n: p.age })),
      summaryOut,
      field(t('nr.green'), gc, t('nr.green_hint')),
      field(t('nr.receiver'), recv), recvNote,
      h('p', { class: 'direction-line' }, h('span', { class: 'label' }, t('nr.direction') + '：'), dirOut),
      h('div', { class: 'row' }, field(t('nr.urgency'), urg), field(t('nr.from_department'), fromDep), field(t('nr.to_department'), toDep)),
      urgNote,
      field(t('nr.reason'), reason),
      field(t('nr.diagnoses'), diag, t('nr.diagnoses_hint')),
      field(t('nr.summary'), summary),
      encSet, downward,
      h('p', {}, btn));
    for (const [name, el] of [['green_channel', gc], ['to_facility_id', recv], ['urgency', urg], ['from_department', fromDep], ['to_department', toDep],
      ['reason', reason], ['diagnoses', diag], ['clinical_summary', summary], ['discharge_summary', discharge]]) errs.register(name, el);
    errs.register('encounter_ids', encBoxes[0] || encSet, encSet);
    errs.register('follow_up_plan', addBtn, planWrap);
    let codes = [];
    const msgOf = (d) => {
      const m = /^diagnoses\[(\d+)\]$/.exec(d.field || '');
      return m && d.code === 'diagnosis.unknown' && codes[Number(m[1])] ? t('err.diagnosis.unknown_code', { code: codes[Number(m[1])] }) : null;
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      errs.clear();
      if (!recv.value) { errs.show([{ field: 'to_facility_id', code: 'nr.choose_receiver', message: t('nr.choose_receiver') }]); return; }
      codes = diag.value.split(/[\s,，、;；]+/).map((s) => s.trim()).filter(Boolean);
      const body = {
        patient_id: p.id, to_facility_id: recv.value, urgency: gc.value ? 'emergency' : urg.value, reason: reason.value, diagnoses: codes,
        clinical_summary: summary.value, encounter_ids: encBoxes.filter((b) => b.checked).map((b) => b.value),
      };
      if (gc.value) body.green_channel = gc.value;
      if (fromDep.value.trim()) body.from_department = fromDep.value.trim();
      if (toDep.value.trim()) body.to_department = toDep.value.trim();
      if (direction === 'downward') {
        body.discharge_summary = discharge.value;
        body.follow_up_plan = planRows.filter((r) => r.what.value.trim() || r.days.value.trim())
          .map((r) => ({ what: r.what.value, due_in_days: Math.max(0, Math.min(65535, parseInt(r.days.value, 10) || 0)) }));
      }
      btn.disabled = true;
      try {
        const d = await api('POST', '/api/v1/referrals', body);
        announce(t('nr.sent'));
        location.hash = '#/referrals/' + d.id;
      } catch (e) { errs.show(e, msgOf); } finally { btn.disabled = false; }
    });
    page(t('nr.title'), h('p', {}, h('a', { href: '#/patients/' + p.id }, '← ' + t('nr.back'))), form);
    await loadProposals();
  }

  // ---------------------------------------------------------------- referral detail
  async function viewReferral(id) {
    renderReferral(await api('GET', '/api/v1/referrals/' + encodeURIComponent(id)), null);
  }
  function historyItem(e) {
    const who = e.actor ? [e.actor.name || '', e.actor.facility_name ? '（' + e.actor.facility_name + '）' : ''].join('') : t('rd.system');
    return h('li', { class: 'event' },
      h('div', { class: 'tl-head' }, timeEl(e.at), h('span', { class: 'tl-facility' }, word('act', e.action)), h('span', {}, who),
        e.to_state && e.from_state && e.from_state !== e.to_state ? h('span', { class: 'tl-meta' }, t('rd.change', { from: word('state', e.from_state), to: word('state', e.to_state) })) : null),
      e.to_facility && e.action !== 'request' ? h('div', { class: 'tl-meta' }, t('rd.to_facility', { name: e.to_facility.name || '' })) : null,
      e.timepoint ? h('div', {}, word('tp', e.timepoint) + '：' + dateTime(e.time)) : e.time ? h('div', {}, t('rd.scheduled_for', { t: dateTime(e.time) })) : null,
      e.reason ? h('div', { class: 'reason' }, e.reason) : null);
  }
  function renderReferral(d, notice) {
    const fac = cache.facilities || [];
    const facLine = (f, dept) => [f.name || '', f.tier ? ' · ' + word('tier', f.tier) : '', dept ? ' · ' + t('rd.dept', { d: dept }) : ''].join('');
    const pt = d.patient || {};
    const facts = [
      [t('rd.patient'), [h('a', { href: '#/patients/' + pt.id }, pt.name || '—'), ' · ', word('sex', pt.sex), pt.age != null ? ' · ' + t('age.years', { n: pt.age }) : '',
        pt.identity_masked ? [' · ', h('span', { class: 'mono' }, pt.identity_masked)] : null]],
      [t('rd.from'), facLine(d.from_facility, d.from_department)],
      [t('rd.to'), facLine(d.to_facility, d.to_department)],
      [t('rd.requested'), timeEl(d.requested_at)],
      d.acknowledged_at ? [t('rd.acknowledged'), timeEl(d.acknowledged_at)] : null,
      d.scheduled_at ? [t('rd.scheduled'), timeEl(d.scheduled_at)] : null,
      d.due_at && ['requested', 'redirected', 'accepted', 'scheduled'].includes(d.state)
        ? [t('rd.due'), [timeEl(d.due_at), d.overdue ? h('span', { class: 'tag overdue' }, t('ref.overdue')) : null]] : null,
      [t('rd.reason'), h('span', { class: 'pre' }, d.reason)],
      [t('rd.diagnoses'), (d.diagnoses || []).map((x) => h('span', { class: 'tag code', title: x.name || '' }, x.code + (x.name ? ' ' + x.name : '')))],
      d.clinical_summary ? [t('rd.clinical_summary'), h('span', { class: 'pre' }, d.clinical_summary)] : null,
      d.discharge_summary ? [t('rd.discharge_summary'), h('span', { class: 'pre' }, d.discharge_summary)] : null,
      d.follow_up_plan && d.follow_up_plan.length ? [t('rd.plan'), h('ul', { class: 'plain' }, d.follow_up_plan.map((x) => h('li', {}, t('rd.plan_item', { what: x.what, days: x.due_in_days }))))] : null,
      d.outcome ? [t('rd.outcome'), h('span', { class: 'pre' }, d.outcome)] : null,
      d.escalations ? [t('rd.escalations'), String(d.escalations)] : null,
      [t('rd.my_side'), word('side', d.my_side)],
    ].filter(Boolean);
    const head = h('div', { class: 'ref-tags' }, stateTag(d.state), h('span', { class: 'tag' }, word('direction', d.direction)), urgencyTags(d),
      h('span', { class: 'tag' }, word('reach', d.reach)), d.overdue ? h('span', { class: 'tag overdue' }, t('ref.overdue')) : null,
      h('span', { class: 'tl-meta' }, t('rd.version', { v: d.version })));

    // actions: exactly what the server lists
    const actOut = h('div', {});
    const actions = d.actions || [];
    const actCard = h('section', { class: 'card actions-card', id: 'ref-actions', 'aria-labelledby': 'act-h' }, h('h2', { id: 'act-h' }, t('rd.actions')),
      actions.length ? h('div', { class: 'buttons' }, actions.map((a) => {
        const b = h('button', { type: 'button', class: ['accept', 'schedule', 'arrive', 'complete', 'acknowledge'].includes(a) ? 'primary' : 'secondary', 'data-action': a }, t('btn.' + a));
        b.addEventListener('click', () => startAction(d, a, b, actOut));
        return b;
      })) : h('p', { class: 'empty' }, t('rd.no_actions')), actOut);

    const showGreen = d.green_channel || (d.timepoints && d.timepoints.length);
    const iv = d.intervals || {};
    const green = showGreen ? h('section', { class: 'card', 'aria-labelledby': 'gc-h' }, h('h2', { id: 'gc-h' }, t('rd.green')),
      h('h3', {}, t('rd.timepoints')),
      d.timepoints && d.timepoints.length ? table('timepoints', [t('rd.timepoints'), t('log.at')], d.timepoints.map((x) => [word('tp', x.timepoint), timeEl(x.at)]))
        : h('p', { class: 'empty' }, t('rd.no_timepoints')),
      h('h3', {}, t('rd.intervals')),
      h('dl', { class: 'facts' }, INTERVALS.map((k) => [h('dt', {}, t('iv.' + k)), h('dd', {}, iv[k] != null ? t('rd.minutes', { n: iv[k] }) : '—')]))) : null;

    const history = (d.history || []).slice().sort((a, b) => a.version - b.version);
    const encIds = d.encounter_ids || [];
    const fus = d.follow_ups || [];
    const back = d.my_side === 'sender' ? '#/referrals?box=outbox' : '#/referrals';
    page(t('rd.title', { name: pt.name || '' }),
      h('p', {}, h('a', { href: back }, '← ' + t('rd.back'))),
      notice,
      h('section', { class: 'card', 'aria-labelledby': 'sum-h' }, h('h2', { id: 'sum-h' }, t('rd.summary')), head,
        h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      actCard,
      green,
      h('section', { 'aria-labelledby': 'hist-h' }, h('h2', { id: 'hist-h' }, t('rd.history')), h('ol', { class: 'timeline history' }, history.map(historyItem))),
      encIds.length ? h('section', { 'aria-labelledby': 'enc-h' }, h('h2', { id: 'enc-h' }, t('rd.encounters')),
        h('ul', { class: 'plain' }, encIds.map((e) => h('li', {}, h('a', { href: '#/patients/' + pt.id, class: 'mono' }, t('rd.encounter', { id: String(e).slice(0, 8) + '…' })))))) : null,
      fus.length ? h('section', { 'aria-labelledby': 'fu-h' }, h('h2', { id: 'fu-h' }, t('rd.follow_ups')),
        table('follow-ups', [t('fu.due'), t('fu.what'), t('fu.status')], fus.map((x) => [
          [x.due_date, x.overdue ? h('span', { class: 'tag overdue' }, t('fu.overdue')) : null], x.what,
          x.done_at ? t('fu.done_at', { t: dateTime(x.done_at) }) + (x.note ? ' · ' + x.note : '') : t('fu.open')]))) : null,
      d.filing ? h('section', { 'aria-labelledby': 'fil-h' }, h('h2', { id: 'fil-h' }, t('rd.filing')), filingTable([d.filing], fac)) : null);
    // the receiver sees the patient's recognisable results at a glance (issue 5, results.js)
    if (window.tiercare.results && pt.id && d.my_side === 'receiver') {
      const here = location.hash;
      window.tiercare.results.recognisableCard(pt.id).then((el) => { if (el && location.hash === here) document.getElementById('main').append(el); });
    }
  }
  async function afterTransition(nd, action) {
    renderReferral(nd, alertBox('info', t('rd.done', { action: word('act', action) })));
    refreshBadges();
    announce(t('rd.done', { action: word('act', action) }));
    const main = document.getElementById('main');
    main.focus({ preventScroll: true });
  }
  async function showStale(d) {
    let cur = null;
    try { cur = await api('GET', '/api/v1/referrals/' + encodeURIComponent(d.id)); } catch (e) { cur = null; }
    const card = document.getElementById('ref-actions');
    if (!card) return;
    const refresh = h('button', { type: 'button', class: 'primary' }, t('rd.refresh'));
    refresh.addEventListener('click', async () => {
      refresh.disabled = true;
      try { await viewReferral(d.id); document.getElementById('main').focus(); } catch (e) { card.append(alertBox('error', errText(e))); refresh.disabled = false; }
    });
    card.replaceChildren(h('h2', { id: 'act-h' }, t('rd.actions')),
      h('div', { class: 'alert error stale', role: 'alert' }, t('rd.stale'), cur ? ' ' + t('rd.current', { state: word('state', cur.state), v: cur.version }) : ''),
      h('p', {}, refresh));
    refresh.focus();
  }
  /** Run one action; a 409 (someone else acted first) shows the current state instead. */
  async function sendTransition(d, action, extra) {
    try {
      const nd = await api('POST', '/api/v1/referrals/' + encodeURIComponent(d.id) + '/transitions', Object.assign({ action, version: d.version }, extra || {}));
      return () => afterTransition(nd, action);
    } catch (e) {
      if (e.status === 409) return () => showStale(d);
      throw e;
    }
  }
  function startAction(d, action, btn, out) {
    out.replaceChildren();
    const direct = async () => {
      btn.disabled = true;
      try { (await sendTransition(d, action))(); } catch (e) { out.replaceChildren(alertBox('error', errText(e))); btn.disabled = false; }
    };
    const dialog = (fields, build, register) => {
      let then = null;
      const m = modal(t('btn.' + action), fields, t('dlg.confirm'), async () => {
        const extra = build();
        if (!extra) return false;
        then = await sendTransition(d, action, extra);
        return true;
      });
      m.dlg.addEventListener('close', () => { if (then) then(); });
      if (register) register(m.errors);
      const first = m.dlg.querySelector('input, select, textarea');
      if (first) first.focus();
      return m;
    };
    const reasonBox = (name, label, required) => {
      const el = h('textarea', { name, rows: '3', maxlength: name === 'outcome' ? '4000' : '500', 'aria-required': required ? 'true' : null });
      return [el, field(label, el)];
    };
    if (['accept', 'acknowledge', 'arrive'].includes(action)) { direct(); return; }
    if (action === 'reject' || action === 'cancel') {
      const [el, f] = reasonBox('reason', t('dlg.reason'), true);
      dialog(f, () => ({ reason: el.value }), (errs) => errs.register('reason', el));
    } else if (action === 'complete') {
      const [el, f] = reasonBox('outcome', t('dlg.outcome'), true);
      dialog(f, () => ({ outcome: el.value }), (errs) => errs.register('outcome', el));
    } else if (action === 'schedule') {
      const at = h('input', { name: 'at', type: 'datetime-local', value: d.scheduled_at ? chinaInput(new Date(d.scheduled_at)) : tomorrowAt('09:00'), 'aria-required': 'true' });
      const dept = h('input', { name: 'department', value: d.to_department || '', maxlength: '50', autocomplete: 'off' });
      const [note, nf] = reasonBox('note', t('dlg.note'), false);
      let errsRef = null;
      dialog([field(t('dlg.at'), at), field(t('dlg.department'), dept), nf], () => {
        const when = fromChinaInput(at.value);
        if (!when) { errsRef.show([{ field: 'at', code: 'datetime', message: t('err.datetime') }]); return null; }
        const x = { at: when };
        if (dept.value.trim()) x.department = dept.value.trim();
        if (note.value.trim()) x.note = note.value.trim();
        return x;
      }, (errs) => { errsRef = errs; errs.register('at', at); errs.register('department', dept); errs.register('note', note); });
    } else if (action === 'record_timepoint') {
      const done = (d.timepoints || []).map((x) => x.timepoint);
      const mineTps = TIMEPOINTS.filter((x) => (d.my_side === 'sender') === SENDER_TIMEPOINTS.includes(x) && !done.includes(x));
      if (!mineTps.length) { out.replaceChildren(alertBox('info', t('rd.all_recorded'))); return; }
      const tp = h('select', { name: 'timepoint' }, mineTps.map((x) => h('option', { value: x }, word('tp', x))));
      const at = h('input', { name: 'at', type: 'datetime-local', value: chinaInput(new Date()), 'aria-required': 'true' });
      let errsRef = null;
      dialog([field(t('dlg.timepoint'), tp), field(t('dlg.at'), at)], () => {
        const when = fromChinaInput(at.value);
        if (!when) { errsRef.show([{ field: 'at', code: 'datetime', message: t('err.datetime') }]); return null; }
        return { timepoint: tp.value, at: when };
      }, (errs) => { errsRef = errs; errs.register('timepoint', tp); errs.register('at', at); });
    } else if (action === 'redirect') {
      const recv = h('select', { name: 'to_facility_id', 'aria-required': 'true' }, h('option', { value: '' }, t('loading')));
      const [reason, rf] = reasonBox('reason', t('dlg.reason'), true);
      let errsRef = null;
      dialog([field(t('dlg.receiver'), recv), rf], () => {
        if (!recv.value) { errsRef.show([{ field: 'to_facility_id', code: 'nr.choose_receiver', message: t('nr.choose_receiver') }]); return null; }
        return { to_facility_id: recv.value, reason: reason.value };
      }, (errs) => { errsRef = errs; errs.register('to_facility_id', recv); errs.register('reason', reason); });
      Promise.all([facilities(), proposalsFor(d.green_channel)]).then(([fac, props]) => {
        recv.replaceChildren(...receiverOptions(fac, props, d.green_channel, [d.from_facility.id, d.to_facility.id, me.facility_id]));
      }).catch((e) => { errsRef.show(e); });
    } else direct();
  }

  // ---------------------------------------------------------------- follow-ups
  async function viewFollowUps(params) {
    const status = ['open', 'done', 'all'].includes(params.get('status')) ? params.get('status') : 'open';
    const r = await api('GET', '/api/v1/follow-ups?status=' + status + '&limit=200');
    const items = r.items || [];
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('fu.tabs') }, h('ul', {}, ['open', 'done', 'all'].map((s) =>
      h('li', {}, h('a', { href: '#/follow-ups' + (s === 'open' ? '' : '?status=' + s), 'aria-current': s === status ? 'page' : null }, t('fu.' + s))))));
    const rows = items.map((x) => {
      let cell;
      if (x.done_at) cell = t('fu.done_at', { t: dateTime(x.done_at) }) + (x.note ? ' · ' + x.note : '');
      else {
        const b = h('button', { type: 'button', class: 'secondary', 'aria-label': t('fu.complete_label', { what: x.what, name: (x.patient && x.patient.name) || '' }) }, t('fu.complete'));
        b.addEventListener('click', () => {
          const note = h('textarea', { name: 'note', rows: '3', maxlength: '500' });
          let done = false;
          const m = modal(t('fu.complete_label', { what: x.what, name: (x.patient && x.patient.name) || '' }), field(t('fu.note'), note), t('dlg.confirm'), async () => {
            await api('POST', '/api/v1/follow-ups/' + encodeURIComponent(x.id) + '/complete', note.value.trim() ? { note: note.value.trim() } : {});
            done = true;
            return true;
          });
          m.errors.register('note', note);
          m.dlg.addEventListener('close', async () => {
            if (!done) return;
            await viewFollowUps(params).catch(() => null);
            refreshBadges();
            announce(t('fu.completed'));
            document.getElementById('main').focus();
          });
          note.focus();
        });
        cell = b;
      }
      return [[x.due_date, x.overdue ? h('span', { class: 'tag overdue' }, t('fu.overdue')) : null], patientBrief(x.patient, x.patient && x.patient.id ? '#/patients/' + x.patient.id : null),
        x.what, h('a', { href: '#/referrals/' + x.referral_id }, t('rec.referral_open')), cell];
    });
    const tbl = items.length ? table('follow-ups', [t('fu.due'), t('fu.patient'), t('fu.what'), t('fu.referral'), t('fu.status')], rows) : null;
    if (tbl) tbl.querySelectorAll('tbody tr').forEach((tr, i) => { if (items[i].overdue) tr.classList.add('overdue'); });
    page(t('fu.title'), tabs, h('section', { 'aria-labelledby': 'ful-h' }, h('h2', { id: 'ful-h' }, t('fu.' + status) + ' · ' + t('fu.count', { n: items.length })),
      tbl || h('p', { class: 'empty' }, t('fu.none'))));
  }

  // ---------------------------------------------------------------- patient page parts
  function filingTable(filings, fac) {
    return table('filings', [t('filing.category'), t('rec.insured_region'), t('rec.filed_region'), t('filing.valid'), t('filing.referral')],
      filings.map((f) => [word('fc', f.category), { cell: f.insured_region, cls: 'mono' }, { cell: f.filed_region, cls: 'mono' },
        f.valid_from + ' – ' + (f.valid_to || t('filing.until_changed')),
        f.referral_id ? h('a', { href: '#/referrals/' + f.referral_id }, t('rec.referral_open')) : '—']));
  }
  function referralTimelineItem(r) {
    return h('li', { class: 'referral' + (r.green_channel ? ' green' : '') },
      h('div', { class: 'tl-head' }, timeEl(r.requested_at), h('span', { class: 'tag ref' }, t('rec.referral')),
        h('span', { class: 'tl-facility' }, word('direction', r.direction)),
        h('span', {}, (r.from_facility.name || '') + ' → ' + (r.to_facility.name || '')), stateTag(r.state), urgencyTags(r)),
      r.reason ? h('div', { class: 'tl-meta' }, r.reason) : null,
      r.diagnoses && r.diagnoses.length ? h('div', {}, t('rec.diagnoses') + ' ', r.diagnoses.map((d) => h('span', { class: 'tag code' }, d.code))) : null,
      h('div', {}, h('a', { href: '#/referrals/' + r.id }, t('rec.referral_open'))));
  }

  // ---------------------------------------------------------------- settlement (issue 6)
  // Money comes from the API in integer fen and is only ever added or multiplied as
  // integers here; it is shown as ¥12.34 by integer division (BigInt), never via floats.
  function money(fen) {
    if (fen == null || fen === '') return '';
    let b;
    try { b = BigInt(fen); } catch (e) { return String(fen); }
    const neg = b < 0n;
    if (neg) b = -b;
    const whole = (b / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return (neg ? '-¥' : '¥') + whole + '.' + (b % 100n).toString().padStart(2, '0');
  }
  /** A money amount with its exact fen kept in `data-fen` (for tests and copy-paste). */
  function moneyEl(fen) { return h('span', { class: 'money', 'data-fen': fen == null ? null : String(fen) }, money(fen)); }
  /** Fen as the text of a yuan input: 1235 → "12.35". */
  function fenToInput(fen) { const s = money(fen); return s.replace(/[¥,]/g, ''); }
  /** "12.35" (yuan, at most two decimals) → 1235 fen; null if not such an amount. */
  function parseYuan(s) {
    const m = /^\s*¥?\s*(\d{1,11})(?:\.(\d{0,2}))?\s*$/.exec(String(s || '').replace(/,/g, ''));
    if (!m) return null;
    return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
  }
  /** Basis points as a percentage: 5000 → "50%", 8050 → "80.5%". */
  function pct(bp) {
    if (bp == null) return '';
    const n = Number(bp);
    const frac = n % 100;
    return Math.trunc(n / 100) + (frac ? '.' + String(frac).padStart(2, '0').replace(/0$/, '') : '') + '%';
  }
  function chinaToday() { return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10); }
  const kindOf = (x) => (x && typeof x === 'object' ? x.kind : x);
  const SETTLE_KINDS = ['drug', 'service', 'material'];
  const STEP_CODES = ['self_pay', 'class_b_share', 'eligible', 'not_pooled', 'continuous_deductible', 'no_deductible_after_downward', 'deductible',
    'rate', 'no_referral_reduction', 'out_of_region_reduction', 'fund', 'coinsurance', 'above_ceiling'];
  function statusTag(s) { return h('span', { class: 'tag sstatus sstatus-' + s }, word('sstatus', s)); }
  function classTag(c) { return c ? h('span', { class: 'tag iclass iclass-' + c }, word('iclass', c)) : null; }

  /** One explanation step in words: translated by its code, with the figures of the view. */
  function stepText(step, v) {
    const code = step.code;
    if (!STEP_CODES.includes(code)) return step.message || code;
    const lower = (s) => (lang === 'en' ? s.toLowerCase() : s);
    // the tier's own rate (before a reduction) and the class-B share are in the engine's
    // message (e.g. "rate for a county hospital outpatient visit: 50 %")
    const inMsg = /(\d+(?:\.\d+)?) %/.exec(step.message || '');
    const msgPct = inMsg ? inMsg[1] + '%' : pct(v.rate_bp);
    return t('step.' + code, {
      tier: lower(word('tier', v.facility && v.facility.tier)), setting: lower(word('setting', v.setting)),
      pct: msgPct, rate: pct(v.rate_bp),
    });
  }
  function explanationList(v) {
    return h('ol', { class: 'explanation' }, (v.explanation || []).map((s) => h('li', { 'data-code': s.code },
      h('span', { class: 'step-text' }, stepText(s, v)), h('span', { class: 'step-amount' }, moneyEl(s.amount_fen)))));
  }
  /** The split: total, fund, patient and the patient's five parts. */
  function splitFacts(v) {
    const part = (key, fen, cls) => [h('dt', { class: cls }, t(key)), h('dd', { class: cls }, moneyEl(fen))];
    return h('dl', { class: 'facts split' },
      part('st.total', v.total_fen, 'total'), part('st.fund', v.fund_fen, 'fund'), part('st.patient_pay', v.patient_fen, 'patient'),
      part('st.self_pay', v.self_pay_fen, 'sub'), part('st.class_b', v.class_b_share_fen, 'sub'), part('st.deductible', v.deductible_fen, 'sub'),
      part('st.coinsurance', v.coinsurance_fen, 'sub'), part('st.above', v.above_ceiling_fen, 'sub'),
      h('dt', {}, t('st.rate')), h('dd', {}, pct(v.rate_bp)),
      h('dt', {}, t('st.policy')), h('dd', {}, v.policy || ''),
      v.scheme ? [h('dt', {}, t('st.scheme')), h('dd', {}, word('scheme', v.scheme))] : null,
      v.insured_region ? [h('dt', {}, t('st.insured')), h('dd', {}, [v.insured_region_name || '', ' ', h('span', { class: 'mono' }, v.insured_region)])] : null,
      v.place ? [h('dt', {}, t('st.place')), h('dd', {}, word('place', kindOf(v.place)))] : null,
      v.arrival ? [h('dt', {}, t('st.arrival')), h('dd', {}, word('arrival', kindOf(v.arrival)))] : null);
  }
  /** The printable receipt (the print stylesheet shows only this). */
  function receipt(v) {
    const f = v.facility || {};
    const p = v.patient || {};
    return h('section', { class: 'receipt card', 'aria-labelledby': 'rc-h' },
      h('h2', { id: 'rc-h' }, t('rc.title')),
      h('p', { class: 'rc-facility' }, f.name || '', f.tier ? ' · ' + word('tier', f.tier) : ''),
      h('dl', { class: 'facts' },
        h('dt', {}, t('rc.patient')), h('dd', {}, p.name || ''),
        h('dt', {}, t('rc.id')), h('dd', { class: 'mono' }, p.masked_id || ''),
        h('dt', {}, t('rc.txn')), h('dd', { class: 'mono rc-txn' }, v.txn_no || ''),
        h('dt', {}, t('rc.time')), h('dd', {}, timeEl(v.created_at)),
        h('dt', {}, t('rc.date')), h('dd', {}, v.date || ''),
        h('dt', {}, t('rc.setting')), h('dd', {}, word('setting', v.setting)),
        h('dt', {}, t('rc.status')), h('dd', {}, statusTag(v.status),
          v.status === 'reversed' ? ' ' + t('rc.reversed', { t: dateTime(v.reversed_at), txn: v.reversal_txn_no || '' }) : ''),
        v.reversal_reason ? [h('dt', {}, t('rc.reversal_reason')), h('dd', { class: 'rc-reason' }, v.reversal_reason)] : null),
      h('h3', {}, t('rc.lines')),
      table('rc-lines', [t('st.col.code'), t('st.col.name'), t('st.col.class'), t('st.col.qty'), t('st.col.price'), t('st.col.amount')],
        (v.lines || []).map((l) => [{ cell: l.code || '', cls: 'mono' }, l.name || '', word('iclass', l.class), { cell: l.quantity == null ? '' : String(l.quantity), cls: 'num' },
          { cell: l.unit_price_fen == null ? '' : moneyEl(l.unit_price_fen), cls: 'num' }, { cell: moneyEl(l.amount_fen), cls: 'num' }])),
      h('h3', {}, t('rc.split')), splitFacts(v),
      h('p', { class: 'rc-sign' }, t('rc.sign'), h('span', { class: 'sign-line' }), me ? ' ' + t('rc.clerk', { name: me.display_name }) : ''));
  }
  function printButton() {
    const b = h('button', { type: 'button', class: 'secondary no-print' }, t('st.print'));
    b.addEventListener('click', () => window.print());
    return b;
  }
  /** A year's accumulators of one person, as a small fact list. */
  async function accumulatorsCard(patientId, year) {
    const box = h('section', { class: 'card accumulators', 'aria-labelledby': 'acc-h' + patientId.slice(0, 8) });
    const head = h('h3', { id: 'acc-h' + patientId.slice(0, 8) }, t('st.acc', { year }));
    try {
      const a = await api('GET', '/api/v1/patients/' + encodeURIComponent(patientId) + '/accumulators?year=' + year);
      const left = (limit, used) => (limit == null ? '' : ' · ' + t('st.acc_left', { left: money(Math.max(0, limit - used)) }));
      box.replaceChildren(head, h('dl', { class: 'facts' },
        h('dt', {}, t('st.acc_in')), h('dd', {}, moneyEl(a.inpatient_fund_paid_fen), ' / ', t('st.acc_ceiling'), ' ', moneyEl(a.annual_ceiling_fen),
          left(a.annual_ceiling_fen, a.inpatient_fund_paid_fen)),
        h('dt', {}, t('st.acc_out')), h('dd', {}, moneyEl(a.outpatient_fund_paid_fen), ' / ', t('st.acc_cap'), ' ', moneyEl(a.outpatient_cap_fen),
          left(a.outpatient_cap_fen, a.outpatient_fund_paid_fen)),
        a.policy ? [h('dt', {}, t('st.policy')), h('dd', {}, a.policy)] : null));
    } catch (e) {
      box.replaceChildren(head, h('p', { class: 'hint' }, t('st.acc_none', { why: errText(e) })));
    }
    return box;
  }

  // ---------------------------------------------------------------- settlement desk
  function newTxnNo() {
    const d = chinaToday().replaceAll('-', '');
    const r = Array.from(crypto.getRandomValues(new Uint8Array(4)), (x) => x.toString(16).padStart(2, '0')).join('');
    return 'WEB-' + d + '-' + r.toUpperCase();
  }
  async function viewSettle() {
    const summary = h('div', {});
    const errs = fieldErrors(summary);
    const state = { patient: null, encounters: [], lines: [], result: null };

    // ---- 1. patient
    const patBox = h('div', { id: 'st-patient', 'aria-live': 'polite' });
    const idIn = h('input', { name: 'identity_number', autocomplete: 'off', maxlength: '18', spellcheck: 'false', class: 'mono', 'data-autofocus': true });
    const idBtn = h('button', { type: 'submit', class: 'primary' }, t('st.find'));
    const idForm = h('form', { role: 'search', 'aria-label': t('pat.by_id') }, h('div', { class: 'row' }, field(t('st.scan'), idIn, t('st.scan_hint')), idBtn));
    const nameIn = h('input', { name: 'name', autocomplete: 'off' });
    const nameBtn = h('button', { type: 'submit', class: 'secondary' }, t('st.find'));
    const nameForm = h('form', { role: 'search', 'aria-label': t('st.by_name') }, h('div', { class: 'row' }, field(t('st.name'), nameIn), nameBtn));
    const finders = h('div', { class: 'finders' }, idForm, nameForm);
    const patCard = h('section', { class: 'card', 'aria-labelledby': 'stp-h' }, h('h2', { id: 'stp-h' }, t('st.patient')), finders, patBox);

    // ---- 2. visit or stay
    const encSel = h('select', { name: 'encounter_id' }, h('option', { value: '' }, t('st.encounter_none')));
    const settingSel = h('select', { name: 'setting' }, ['outpatient', 'inpatient'].map((s) => h('option', { value: s }, word('setting', s))));
    const dateIn = h('input', { name: 'date', type: 'date', value: chinaToday(), max: chinaToday() });
    const arrSel = h('select', { name: 'arrival' }, h('option', { value: '' }, t('st.arrival_auto')),
      ['self_referred', 'upward_referral', 'downward_referral', 'emergency'].map((a) => h('option', { value: a }, word('arrival', a))));
    const afterSel = h('select', { name: 'after_stay_at', disabled: true }, h('option', { value: '' }, t('st.after_stay_none')),
      ['village', 'township', 'county', 'city', 'provincial'].map((x) => h('option', { value: x }, word('tier', x))));
    const recNote = h('p', { class: 'hint', hidden: true });
    const accBox = h('div', {});
    arrSel.addEventListener('change', () => { afterSel.disabled = arrSel.value !== 'upward_referral'; if (afterSel.disabled) afterSel.value = ''; });
    encSel.addEventListener('change', () => {
      const e = state.encounters.find((x) => x.id === encSel.value);
      if (!e) return;
      settingSel.value = e.class === 'inpatient' ? 'inpatient' : 'outpatient';
      const day = new Date(new Date(e.ended_at || e.started_at).getTime() + 8 * 3600e3).toISOString().slice(0, 10);
      dateIn.value = day;
      invalidate();
    });
    const visitCard = h('section', { class: 'card', 'aria-labelledby': 'stv-h', hidden: true }, h('h2', { id: 'stv-h' }, t('st.visit')),
      field(t('st.encounter'), encSel, t('st.encounter_hint')), recNote,
      h('div', { class: 'row' }, field(t('st.setting'), settingSel), field(t('st.date'), dateIn), field(t('st.arrival'), arrSel), field(t('st.after_stay'), afterSel)),
      accBox);

    // ---- 3. bill lines
    const qIn = h('input', { name: 'q', autocomplete: 'off', spellcheck: 'false' });
    const kindSel = h('select', { name: 'kind' }, h('option', { value: '' }, t('st.kind_all')), SETTLE_KINDS.map((k) => h('option', { value: k }, word('kind', k))));
    const catBtn = h('button', { type: 'submit', class: 'secondary' }, t('st.search'));
    const catForm = h('form', { role: 'search', 'aria-label': t('st.catalogue') }, h('div', { class: 'row' }, field(t('st.q'), qIn), field(t('st.kind'), kindSel), catBtn));
    const catOut = h('div', { id: 'st-catalogue' });
    const linesBox = h('div', { id: 'st-lines' });
    const totalOut = h('p', { class: 'bill-total', 'aria-live': 'polite' });
    const txnIn = h('input', { name: 'txn_no', value: newTxnNo(), class: 'mono', autocomplete: 'off', spellcheck: 'false', maxlength: '64' });
    const previewBtn = h('button', { type: 'button', class: 'secondary' }, t('st.preview'));
    const settleBtn = h('button', { type: 'button', class: 'primary' }, t('st.settle'));
    const newBtn = h('button', { type: 'button', class: 'secondary', hidden: true }, t('st.new'));
    const resultBox = h('div', { id: 'st-result' });
    const linesCard = h('section', { class: 'card', 'aria-labelledby': 'stl-h', hidden: true }, h('h2', { id: 'stl-h' }, t('st.lines')),
      h('h3', {}, t('st.catalogue')), catForm, catOut, linesBox, totalOut,
      h('div', { class: 'row' }, field(t('st.txn'), txnIn, t('st.txn_hint'))), summary,
      h('div', { class: 'buttons' }, previewBtn, settleBtn, newBtn));
    errs.register('patient_id', idIn, patCard); // (the finders hide once a patient is chosen)
    errs.register('encounter_id', encSel);
    errs.register('setting', settingSel);
    errs.register('date', dateIn);
    errs.register('arrival', arrSel);
    errs.register('txn_no', txnIn);
    errs.register('lines', qIn, linesBox);

    function invalidate() {
      // a bill changed after a preview: the preview no longer applies
      if (state.result && state.result.status === 'preview') { state.result = null; resultBox.replaceChildren(); }
    }
    for (const el of [settingSel, dateIn, arrSel, afterSel]) el.addEventListener('change', invalidate);

    function showPatient(p) {
      state.patient = p;
      const change = h('button', { type: 'button', class: 'secondary' }, t('st.change_patient'));
      change.addEventListener('click', () => { reset(true); idIn.focus(); });
      patBox.replaceChildren(h('p', { class: 'patient-line' }, h('strong', {}, p.name), ' · ', word('sex', p.sex),
        p.age != null ? ' · ' + t('age.years', { n: p.age }) : '', p.masked_id ? [' · ', h('span', { class: 'mono' }, p.masked_id)] : null, ' ', change));
      finders.hidden = true;
      visitCard.hidden = false; linesCard.hidden = false;
    }
    async function choose(p) {
      showPatient(p);
      encSel.replaceChildren(h('option', { value: '' }, t('st.encounter_none')));
      recNote.hidden = true;
      const year = Number((dateIn.value || chinaToday()).slice(0, 4));
      const [rec, acc] = await Promise.all([
        api('GET', '/api/v1/patients/' + encodeURIComponent(p.id)).catch((e) => e),
        accumulatorsCard(p.id, year),
      ]);
      accBox.replaceChildren(acc);
      if (rec instanceof Error) { recNote.textContent = t('st.no_record', { why: errText(rec) }); recNote.hidden = false; state.encounters = []; }
      else {
        state.encounters = (rec.encounters || []).filter((e) => e.facility_id === me.facility_id)
          .sort((a, b) => new Date(b.started_at) - new Date(a.started_at)).slice(0, 30);
        encSel.append(...state.encounters.map((e) => h('option', { value: e.id },
          [dateTime(e.started_at), word('class', e.class), e.department, (e.diagnoses || []).join(', ')].filter(Boolean).join(' · '))));
      }
      qIn.focus();
    }
    async function find(btn, call) {
      btn.disabled = true; patBox.replaceChildren(h('p', {}, t('loading')));
      try {
        const list = await call();
        if (list.length === 1 && btn === idBtn) { await choose(list[0]); return; }
        if (!list.length) { patBox.replaceChildren(alertBox('info', t('pat.no_results'))); return; }
        patBox.replaceChildren(table('st-found', [t('pat.name'), t('pat.sex'), t('pat.birth_date'), t('pat.identity_masked'), ''],
          list.map((p) => {
            const b = h('button', { type: 'button', class: 'secondary', 'aria-label': t('st.choose_label', { name: p.name + ' ' + (p.masked_id || '') }) }, t('st.choose'));
            b.addEventListener('click', () => choose(p));
            return [p.name, word('sex', p.sex), p.birth_date || '', { cell: p.masked_id || '', cls: 'mono' }, b];
          })));
        announce(t('pat.results', { n: list.length }));
      } catch (e) {
        patBox.replaceChildren(alertBox(e.code === 'patient.not_registered' ? 'info' : 'error', errText(e)));
      } finally { btn.disabled = false; }
    }
    idForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      find(idBtn, async () => {
        const p = await api('POST', '/api/v1/patients/lookup', { type: 'resident_id', value: idIn.value.trim().toUpperCase() });
        const rid = (p.identifiers || []).find((i) => (i.type || i.kind) === 'resident_id');
        return [{ id: p.id, name: p.name, sex: p.sex, age: p.age, birth_date: p.birth_date, masked_id: rid ? rid.value_masked || maskId(rid.value) : '' }];
      });
    });
    nameForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      find(nameBtn, async () => ((await api('POST', '/api/v1/patients/search', { name: nameIn.value.trim() })).patients || [])
        .map((p) => ({ id: p.patient_id, name: p.name, sex: p.sex, age: p.age, birth_date: p.birth_date, masked_id: p.identity_number_masked || '' })));
    });

    // ---- catalogue and lines
    catForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      catBtn.disabled = true;
      const q = new URLSearchParams({ q: qIn.value.trim(), limit: '20' });
      if (kindSel.value) q.set('kind', kindSel.value);
      try {
        const r = await api('GET', '/api/v1/settlement/catalogue?' + q);
        const items = r.items || [];
        catOut.replaceChildren(items.length ? h('section', { 'aria-labelledby': 'cat-h' }, h('h4', { id: 'cat-h', class: 'h4' }, t('st.cat_results', { n: items.length })),
          table('catalogue', [t('st.col.code'), t('st.col.name'), t('st.col.kind'), t('st.col.class'), t('st.col.unit'), t('st.col.limit'), ''],
            items.map((it) => {
              const b = h('button', { type: 'button', class: 'secondary', 'aria-label': t('st.add_label', { name: it.name }) }, t('st.add'));
              b.addEventListener('click', () => addLine(it));
              return [{ cell: it.code, cls: 'mono' }, it.name, word('kind', it.kind), classTag(it.class), it.unit || '',
                { cell: it.price_limit_fen == null ? t('st.no_limit') : moneyEl(it.price_limit_fen), cls: 'num' }, b];
            }))) : h('p', { class: 'empty' }, t('st.cat_none')));
        announce(items.length ? t('st.cat_results', { n: items.length }) : t('st.cat_none'));
      } catch (e) { catOut.replaceChildren(alertBox('error', errText(e))); } finally { catBtn.disabled = false; }
    });
    function addLine(it) {
      invalidate();
      const line = { item: it };
      const idx = () => state.lines.indexOf(line);
      line.qty = h('input', { name: 'quantity', type: 'number', min: '1', step: '1', value: '1', inputmode: 'numeric', class: 'qty', 'aria-label': t('st.qty_label', { name: it.name }) });
      line.price = h('input', { name: 'unit_price', inputmode: 'decimal', autocomplete: 'off', class: 'price', value: it.price_limit_fen == null ? '' : fenToInput(it.price_limit_fen),
        'aria-label': t('st.price_label', { name: it.name }) });
      line.amount = h('output', { class: 'amount' });
      const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': t('st.remove_label', { name: it.name }) }, t('st.remove'));
      line.qtyCell = h('div', { class: 'cell-input' }, line.qty);
      line.priceCell = h('div', { class: 'cell-input' }, line.price);
      line.nameCell = h('div', {}, it.name, ' ', classTag(it.class), it.unit ? h('span', { class: 'tl-meta' }, ' / ' + it.unit) : null);
      line.row = h('tr', { class: 'bill-line' },
        h('td', { 'data-label': t('st.col.code'), class: 'mono' }, it.code), h('td', { 'data-label': t('st.col.name') }, line.nameCell),
        h('td', { 'data-label': t('st.col.qty') }, line.qtyCell), h('td', { 'data-label': t('st.col.price') }, line.priceCell),
        h('td', { 'data-label': t('st.col.amount'), class: 'num' }, line.amount), h('td', { 'data-label': t('st.col.action') }, remove));
      for (const el of [line.qty, line.price]) {
        el.addEventListener('input', () => { invalidate(); recompute(); });
        // Enter in a line previews the bill (the keyboard path of the desk: scan, search, add, type, Enter)
        el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && !previewBtn.hidden) { ev.preventDefault(); send(previewBtn, false); } });
      }
      remove.addEventListener('click', () => {
        invalidate();
        const i = idx();
        state.lines.splice(i, 1); line.row.remove(); renderLines();
        const next = state.lines[Math.min(i, state.lines.length - 1)];
        (next ? next.qty : qIn).focus();
      });
      errs.register(() => 'lines[' + idx() + '].quantity', line.qty, line.qtyCell);
      errs.register(() => 'lines[' + idx() + '].unit_price_fen', line.price, line.priceCell);
      errs.register(() => 'lines[' + idx() + '].code', line.qty, line.nameCell);
      errs.register(() => 'lines[' + idx() + '].amount_fen', line.price, line.priceCell);
      errs.register(() => 'lines[' + idx() + ']', line.qty, line.nameCell);
      state.lines.push(line);
      renderLines();
      announce(t('st.added', { name: it.name }));
      line.qty.focus();
      line.qty.select();
    }
    let linesTbody = null;
    function renderLines() {
      if (!state.lines.length) { linesBox.replaceChildren(h('p', { class: 'empty' }, t('st.no_lines'))); linesTbody = null; recompute(); return; }
      if (!linesTbody || !linesTbody.isConnected) {
        linesTbody = h('tbody', {});
        linesBox.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'stack bill' },
          h('caption', { class: 'visually-hidden' }, t('st.lines')),
          h('thead', {}, h('tr', {}, [t('st.col.code'), t('st.col.name'), t('st.col.qty'), t('st.col.price'), t('st.col.amount'), t('st.col.action')].map((x) => h('th', { scope: 'col' }, x)))),
          linesTbody)));
      }
      linesTbody.replaceChildren(...state.lines.map((l) => l.row));
      recompute();
    }
    const lineQty = (l) => (/^\s*\d{1,6}\s*$/.test(l.qty.value) && Number(l.qty.value) >= 1 ? Number(l.qty.value) : null);
    function recompute() {
      let total = 0; let ok = true;
      for (const l of state.lines) {
        const q = lineQty(l); const p = parseYuan(l.price.value);
        if (q == null || p == null) { l.amount.replaceChildren('—'); ok = false; continue; }
        l.amount.replaceChildren(moneyEl(q * p));
        total += q * p;
      }
      totalOut.replaceChildren(state.lines.length ? t('st.bill_total', { amount: ok ? money(total) : '—', n: state.lines.length }) : '');
    }
    renderLines();

    /** The bill as the API takes it; null (with the problems shown) if a line is not right. */
    function bill(withTxn) {
      const problems = [];
      if (!state.lines.length) problems.push({ field: 'lines', code: 'st.err.no_lines', message: t('st.err.no_lines') });
      const lines = state.lines.map((l, i) => {
        const q = lineQty(l); const p = parseYuan(l.price.value);
        if (q == null) problems.push({ field: 'lines[' + i + '].quantity', code: 'st.err.qty', message: t('st.err.qty') });
        // (the catalogue's price limit is the server's to check: it answers next to the line)
        if (p == null) problems.push({ field: 'lines[' + i + '].unit_price_fen', code: 'st.err.price', message: t('st.err.price') });
        return { code: l.item.code, quantity: q, unit_price_fen: p };
      });
      if (withTxn && !txnIn.value.trim()) problems.push({ field: 'txn_no', code: 'st.err.txn', message: t('st.err.txn') });
      if (problems.length) { errs.show(problems, (d) => d.message); return null; }
      const body = { patient_id: state.patient.id, encounter_id: encSel.value || null, setting: settingSel.value, date: dateIn.value || null, lines };
      if (arrSel.value === 'upward_referral') body.arrival = { kind: 'upward_referral', after_stay_at: afterSel.value || null };
      else if (arrSel.value) body.arrival = { kind: arrSel.value };
      else body.arrival = null;
      if (withTxn) body.txn_no = txnIn.value.trim();
      return body;
    }
    /** Server errors next to what they are about: a line, the transaction number, the visit. */
    function showError(e) {
      if (e instanceof ApiError && e.status === 409 && !(e.details && e.details.length)) {
        const fieldName = e.code === 'settlement.encounter_settled' ? 'encounter_id' : 'txn_no';
        errs.show([{ field: fieldName, code: e.code, message: e.message }]);
      } else if (e instanceof ApiError && e.status === 422 && !(e.details && e.details.length) && e.code.startsWith('settlement.')) {
        errs.show([{ field: e.code === 'settlement.not_enrolled' ? 'patient_id' : '', code: e.code, message: e.message }]);
      } else errs.show(e);
    }
    function showResult(v, settled) {
      state.result = v;
      const kids = [
        v.replayed ? alertBox('warn', t('st.replayed')) : null,
        h('section', { class: 'card split-card', 'aria-labelledby': 'sts-h' },
          h('h2', { id: 'sts-h' }, settled ? t('st.split_settled') : t('st.split_preview'), ' ', statusTag(v.status || (settled ? 'settled' : 'preview'))),
          splitFacts(v), h('h3', {}, t('st.explanation')), explanationList(v)),
      ];
      resultBox.replaceChildren(...kids.filter(Boolean));
      // the receipt is a direct child of <main> so that the print stylesheet can show it alone
      const main = document.getElementById('main');
      main.querySelectorAll(':scope > .receipt').forEach((x) => x.remove());
      if (settled) {
        main.append(receipt(v));
        const actions = h('p', { class: 'buttons no-print' }, printButton(), v.id ? h('a', { href: '#/journal/' + v.id }, t('jr.open')) : null);
        resultBox.append(actions);
      }
    }
    /** A settled bill is not edited any more: the next one starts with "new settlement". */
    function lock(on) {
      for (const el of [encSel, settingSel, dateIn, arrSel, txnIn, qIn, kindSel, catBtn]) el.disabled = on;
      if (!on) afterSel.disabled = arrSel.value !== 'upward_referral'; else afterSel.disabled = true;
      linesBox.querySelectorAll('input, button').forEach((el) => { el.disabled = on; });
      catOut.querySelectorAll('button').forEach((el) => { el.disabled = on; });
    }
    async function send(btn, settled) {
      errs.clear();
      if (!state.patient) { errs.show([{ field: 'patient_id', code: 'st.no_patient', message: t('st.no_patient') }], (d) => d.message); return; }
      const body = bill(settled);
      if (!body) return;
      btn.disabled = true;
      try {
        const v = await api('POST', settled ? '/api/v1/settlements' : '/api/v1/settlements/preview', body);
        showResult(v, settled);
        if (settled) {
          for (const el of [settleBtn, previewBtn]) el.hidden = true;
          newBtn.hidden = false;
          lock(true);
          announce(t('st.settled_ok', { txn: v.txn_no }));
          accBox.replaceChildren(await accumulatorsCard(state.patient.id, Number(String(v.date || chinaToday()).slice(0, 4))));
          newBtn.focus();
        } else announce(t('st.preview_ok', { fund: money(v.fund_fen), patient: money(v.patient_fen) }));
      } catch (e) { showError(e); } finally { btn.disabled = false; }
    }
    previewBtn.addEventListener('click', () => send(previewBtn, false));
    settleBtn.addEventListener('click', () => send(settleBtn, true));
    function reset(patientToo) {
      state.lines = []; state.result = null;
      renderLines(); resultBox.replaceChildren(); catOut.replaceChildren(); errs.clear();
      document.getElementById('main').querySelectorAll(':scope > .receipt').forEach((x) => x.remove());
      lock(false);
      txnIn.value = newTxnNo();
      settleBtn.hidden = false; previewBtn.hidden = false; newBtn.hidden = true;
      encSel.value = ''; arrSel.value = ''; afterSel.value = ''; afterSel.disabled = true;
      if (patientToo) {
        state.patient = null; patBox.replaceChildren(); finders.hidden = false; visitCard.hidden = true; linesCard.hidden = true; idIn.value = ''; nameIn.value = '';
      }
    }
    newBtn.addEventListener('click', () => { reset(false); qIn.focus(); });

    page(t('st.title'), patCard, visitCard, linesCard, resultBox);
    idIn.focus();
  }

  // ---------------------------------------------------------------- journal (日结) and reversal
  function reverseDialog(v, done) {
    const reason = h('textarea', { name: 'reason', rows: '3', maxlength: '200', 'aria-required': 'true' });
    const rtxn = h('input', { name: 'txn_no', value: 'R-' + v.txn_no, class: 'mono', autocomplete: 'off', maxlength: '64' });
    let result = null;
    const m = modal(t('jr.reverse_title', { txn: v.txn_no }), [field(t('jr.reason'), reason), field(t('jr.reversal_txn'), rtxn)], t('jr.reverse'), async () => {
      result = await api('POST', '/api/v1/settlements/' + encodeURIComponent(v.id) + '/reversal', { txn_no: rtxn.value.trim(), reason: reason.value.trim() });
      return true;
    });
    m.errors.register('reason', reason);
    m.errors.register('txn_no', rtxn);
    m.dlg.addEventListener('close', () => { if (result) done(result); });
    reason.focus();
  }
  const mayReverse = () => hasAny(SETTLE_ROLES);
  async function viewJournal(params) {
    const fac = await facilities();
    const date = /^\d{4}-\d{2}-\d{2}$/.test(params.get('date') || '') ? params.get('date') : chinaToday();
    const clerkOnly = hasAny(SETTLE_ROLES) && !hasAny(REPORT_ROLES);
    const facId = clerkOnly ? me.facility_id : (params.get('facility_id') || me.facility_id);
    const status = ['settled', 'reversed'].includes(params.get('status')) ? params.get('status') : '';
    const dateIn = h('input', { name: 'date', type: 'date', value: date });
    const facSel = h('select', { name: 'facility_id', disabled: clerkOnly }, fac.map((f) => h('option', { value: f.id, selected: f.id === facId }, f.name)));
    const stSel = h('select', { name: 'status' }, h('option', { value: '' }, t('jr.all')), ['settled', 'reversed'].map((s) => h('option', { value: s, selected: s === status }, word('sstatus', s))));
    const form = h('form', { class: 'card', role: 'search', 'aria-labelledby': 'jf-h' }, h('h2', { id: 'jf-h' }, t('jr.filters')),
      h('div', { class: 'row' }, field(t('jr.date'), dateIn), field(t('jr.facility'), facSel), field(t('jr.status'), stSel), h('button', { type: 'submit', class: 'primary' }, t('jr.apply'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      if (dateIn.value) q.set('date', dateIn.value);
      if (!clerkOnly && facSel.value) q.set('facility_id', facSel.value);
      if (stSel.value) q.set('status', stSel.value);
      location.hash = '#/journal?' + q;
    });
    // a page of the journal at a time (the API pages with a cursor; `limit` in the address
    // for a smaller page, 1 to 1,000); "more" appends the next page
    const LIMIT = Math.min(1000, Math.max(1, parseInt(params.get('limit'), 10) || 200));
    const q = new URLSearchParams({ date, limit: String(LIMIT) });
    if (facId) q.set('facility_id', facId);
    if (status) q.set('status', status);
    const headers = [t('jr.time'), t('jr.txn'), t('jr.patient'), t('st.setting'), t('st.total'), t('st.fund'), t('st.patient_pay'), t('jr.status'), ''];
    const cells = (v) => {
      let act = null;
      if (mayReverse() && v.status === 'settled') {
        act = h('button', { type: 'button', class: 'secondary', 'aria-label': t('jr.reverse_label', { txn: v.txn_no }) }, t('jr.reverse'));
        act.addEventListener('click', () => reverseDialog(v, async (nv) => {
          await viewJournal(params).catch(() => null);
          announce(t('jr.reversed_ok', { txn: nv.txn_no || v.txn_no }));
          const main = document.getElementById('main');
          main.insertBefore(alertBox('info', t('jr.reversed_ok', { txn: nv.txn_no || v.txn_no })), main.children[1] || null);
          main.focus();
        }));
      }
      return [timeEl(v.created_at), h('a', { href: '#/journal/' + v.id, class: 'mono' }, v.txn_no),
        [(v.patient && v.patient.name) || '', v.patient && v.patient.masked_id ? h('span', { class: 'tl-meta mono' }, ' ' + v.patient.masked_id) : null],
        word('setting', v.setting), { cell: moneyEl(v.total_fen), cls: 'num' }, { cell: moneyEl(v.fund_fen), cls: 'num' }, { cell: moneyEl(v.patient_fen), cls: 'num' },
        statusTag(v.status), act];
    };
    const mark = (trs, rows) => trs.forEach((tr, i) => { tr.dataset.txn = rows[i].txn_no; if (rows[i].status === 'reversed') tr.classList.add('reversed'); });
    let body;
    try {
      const r = await api('GET', '/api/v1/settlements?' + q);
      const rows = r.rows || [];
      const tot = r.totals || {};
      const dayRows = (tot.count || 0) + (tot.reversed_count || 0);
      const totals = h('section', { class: 'card', 'aria-labelledby': 'jt-h' }, h('h2', { id: 'jt-h' }, t('jr.totals', { date: r.date || date })),
        h('dl', { class: 'facts totals' },
          h('dt', {}, t('jr.count')), h('dd', { 'data-total': 'count' }, String(tot.count == null ? rows.length : tot.count)),
          h('dt', {}, t('st.total')), h('dd', { 'data-total': 'total' }, moneyEl(tot.total_fen)),
          h('dt', {}, t('st.fund')), h('dd', { 'data-total': 'fund' }, moneyEl(tot.fund_fen)),
          h('dt', {}, t('st.patient_pay')), h('dd', { 'data-total': 'patient' }, moneyEl(tot.patient_fen)),
          h('dt', {}, t('jr.reversed_count')), h('dd', { 'data-total': 'reversed_count' }, String(tot.reversed_count || 0)),
          h('dt', {}, t('jr.reversed_fund')), h('dd', { 'data-total': 'reversed_fund' }, moneyEl(tot.reversed_fund_fen || 0))));
      const tbl = rows.length ? table('journal', headers, rows.map(cells)) : h('p', { class: 'empty' }, t('jr.none'));
      if (rows.length) mark(tbl.querySelectorAll('tbody tr'), rows);
      let shown = rows.length;
      let cursor = r.cursor || null;
      const count = h('p', { class: 'journal-shown' }, t('jr.shown', { n: shown, total: Math.max(dayRows, shown) }));
      const more = h('button', { type: 'button', class: 'secondary journal-more', hidden: !cursor }, t('jr.more'));
      more.addEventListener('click', async () => {
        if (!cursor || more.disabled) return;
        more.disabled = true;
        more.textContent = t('jr.loading');
        try {
          const next = await api('GET', '/api/v1/settlements?' + new URLSearchParams([...q, ['cursor', cursor]]));
          const add = next.rows || [];
          const tbody = tbl.querySelector('tbody');
          const fresh = add.map((v) => table('journal', headers, [cells(v)]).querySelector('tbody tr'));
          mark(fresh, add);
          tbody.append(...fresh);
          shown += add.length;
          cursor = next.cursor || null;
          count.textContent = t('jr.shown', { n: shown, total: Math.max(dayRows, shown) });
          announce(t('jr.loaded', { n: add.length, shown }));
          const link = fresh[0] && fresh[0].querySelector('a');
          if (link) link.focus();
        } catch (e) {
          more.after(alertBox('error', errText(e)));
        } finally {
          more.disabled = false;
          more.textContent = t('jr.more');
          more.hidden = !cursor;
        }
      });
      body = [totals, h('section', { 'aria-labelledby': 'jr-h' }, h('h2', { id: 'jr-h' }, t('jr.rows', { n: dayRows || rows.length })), tbl,
        rows.length ? count : null, h('p', { class: 'buttons no-print' }, more))];
    } catch (e) { body = alertBox('error', errText(e)); }
    page(t('jr.title'), form, body);
  }
  async function viewSettlement(id, notice) {
    const v = await api('GET', '/api/v1/settlements/' + encodeURIComponent(id));
    const actions = h('p', { class: 'buttons no-print' }, printButton());
    if (mayReverse() && v.status === 'settled') {
      const b = h('button', { type: 'button', class: 'secondary' }, t('jr.reverse'));
      b.addEventListener('click', () => reverseDialog(v, async (nv) => {
        await viewSettlement(id, alertBox('info', t('jr.reversed_ok', { txn: nv.txn_no || v.txn_no })));
        announce(t('jr.reversed_ok', { txn: nv.txn_no || v.txn_no }));
        document.getElementById('main').focus();
      }));
      actions.append(b);
    }
    page(t('sd.title', { txn: v.txn_no }), h('p', { class: 'no-print' }, h('a', { href: '#/journal' + (v.date ? '?date=' + v.date : '') }, '← ' + t('sd.back'))),
      notice, actions,
      h('section', { class: 'card split-card', 'aria-labelledby': 'sdx-h' }, h('h2', { id: 'sdx-h' }, t('st.explanation')), explanationList(v)),
      receipt(v));
  }

  // ---------------------------------------------------------------- policy viewer
  async function viewPolicies() {
    const r = await api('GET', '/api/v1/settlement/policies');
    const pols = r.policies || [];
    const rules = (title, list) => [h('h3', {}, title), list && list.length
      ? table('policy-rules', [t('pol.tier'), t('pol.deductible'), t('pol.rate')], list.map((x) => [word('tier', x.tier), { cell: moneyEl(x.deductible_fen), cls: 'num' }, { cell: pct(x.rate_bp), cls: 'num' }]))
      : h('p', { class: 'empty' }, '—'), h('p', { class: 'hint' }, t('pol.not_listed'))];
    const points = (bp) => t('pol.points', { n: pct(bp).replace('%', '') });
    page(t('pol.title'), h('p', { class: 'hint' }, t('pol.source', { src: r.source === 'default' || !r.source ? t('pol.default') : r.source })),
      pols.length ? pols.map((p, i) => h('section', { class: 'card policy', 'aria-labelledby': 'pol-h' + i }, h('h2', { id: 'pol-h' + i }, p.name),
        h('dl', { class: 'facts' },
          h('dt', {}, t('pol.region')), h('dd', { class: 'mono' }, p.insured_region),
          h('dt', {}, t('st.scheme')), h('dd', {}, word('scheme', p.scheme)),
          h('dt', {}, t('pol.effective')), h('dd', {}, p.effective_from + ' – ' + (p.effective_to || t('pol.open_end'))),
          h('dt', {}, t('pol.ceiling')), h('dd', {}, moneyEl(p.annual_ceiling_fen)),
          h('dt', {}, t('pol.cap')), h('dd', {}, moneyEl(p.outpatient_cap_fen)),
          h('dt', {}, t('pol.class_b')), h('dd', {}, pct(p.class_b_share_bp)),
          h('dt', {}, t('pol.no_ref')), h('dd', {}, points(p.no_referral_reduction_bp), t('pol.no_ref_from', { tier: word('tier', p.no_referral_from_tier) })),
          h('dt', {}, t('pol.filed_tmp')), h('dd', {}, points(p.filed_temporary_reduction_bp)),
          h('dt', {}, t('pol.unfiled')), h('dd', {}, points(p.unfiled_reduction_bp))),
        rules(t('pol.inpatient'), p.inpatient), rules(t('pol.outpatient'), p.outpatient)))
        : h('p', { class: 'empty' }, t('pol.none')));
  }

  // ---------------------------------------------------------------- reports (fund, outflow, clearing)
  // the SVG namespace as the HTML parser assigns it to an inline <svg> (no URL in this file:
  // the app references nothing outside the server)
  const SVGNS = (() => { const d = document.createElement('div'); d.innerHTML = '<svg></svg>'; return d.firstChild.namespaceURI; })();
  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
    for (const kid of kids.flat(Infinity)) if (kid != null) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return el;
  }
  /** A horizontal bar chart of fen amounts; the table next to it carries the same figures. */
  function barChart(title, items) {
    const cid = 'chart' + (++uid);
    const max = Math.max(1, ...items.map((i) => Number(i.value) || 0));
    const rowH = 26; const labelW = 190; const barW = 330; const width = labelW + barW + 120; const height = items.length * rowH + 8;
    const short = (s) => (Array.from(s).length > 13 ? Array.from(s).slice(0, 12).join('') + '…' : s);
    return h('figure', { class: 'chart' },
      svg('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img', 'aria-labelledby': cid, class: 'bars' },
        svg('title', { id: cid }, title),
        items.map((it, i) => {
          const y = 4 + i * rowH;
          // pixels, not money: the bar's length may be fractional
          const w = it.value > 0 ? Math.max(1, Math.round((Number(it.value) * barW) / max)) : 0;
          return svg('g', { class: 'bar' },
            svg('title', {}, it.label + '：' + money(it.value)),
            svg('text', { x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'label' }, short(it.label)),
            svg('rect', { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 2 }),
            svg('text', { x: labelW + w + 6, y: y + rowH / 2 + 4, class: 'value' }, money(it.value)));
        })),
      h('figcaption', {}, title));
  }
  function sumBy(rows, keyOf, valueOf) {
    const m = new Map();
    for (const r of rows) { const k = keyOf(r); m.set(k, (m.get(k) || 0) + (Number(valueOf(r)) || 0)); }
    return Array.from(m, ([label, value]) => ({ label, value }));
  }
  async function viewReports(params) {
    const fac = await facilities();
    const kind = ['fund', 'outflow', 'clearing'].includes(params.get('kind')) ? params.get('kind') : 'fund';
    const month = chinaToday().slice(0, 7);
    const from = params.get('from') || month.slice(0, 4) + '-01';
    const to = params.get('to') || month;
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('rp.tabs') }, h('ul', {}, ['fund', 'outflow', 'clearing'].map((k) =>
      h('li', {}, h('a', { href: '#/reports?kind=' + k, 'aria-current': k === kind ? 'page' : null }, t('rp.' + k))))));
    const fromIn = h('input', { name: 'from', type: 'month', value: from, pattern: '\\d{4}-\\d{2}', placeholder: 'YYYY-MM' });
    const toIn = h('input', { name: 'to', type: 'month', value: to, pattern: '\\d{4}-\\d{2}', placeholder: 'YYYY-MM' });
    const groupSel = h('select', { name: 'group' }, ['facility', 'tier'].map((g) => h('option', { value: g, selected: (params.get('group') || 'facility') === g }, t('rp.by_' + g))));
    const mine = fac.find((f) => f.id === me.facility_id);
    const regionIn = h('input', { name: 'region', value: params.get('region') || (mine ? mine.region_code : ''), class: 'mono', maxlength: '6', inputmode: 'numeric' });
    const monthIn = h('input', { name: 'month', type: 'month', value: params.get('month') || month, placeholder: 'YYYY-MM' });
    const summary = h('div', {});
    const errs = fieldErrors(summary);
    const fields = kind === 'clearing' ? [field(t('rp.month'), monthIn)]
      : [field(t('rp.from'), fromIn), field(t('rp.to'), toIn), kind === 'fund' ? field(t('rp.group'), groupSel) : field(t('rp.region'), regionIn)];
    const form = h('form', { class: 'card', role: 'search', 'aria-label': t('rp.' + kind), novalidate: true },
      h('div', { class: 'row' }, fields, h('button', { type: 'submit', class: 'primary' }, t('rp.apply'))), summary);
    for (const el of kind === 'clearing' ? [monthIn] : kind === 'fund' ? [fromIn, toIn, groupSel] : [fromIn, toIn, regionIn]) errs.register(el.name, el);
    const q = new URLSearchParams();
    if (kind === 'clearing') q.set('month', params.get('month') || month);
    else { q.set('from', from); q.set('to', to); if (kind === 'fund') q.set('group', params.get('group') || 'facility'); else if (regionIn.value) q.set('region', regionIn.value); }
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const nq = new URLSearchParams({ kind });
      const els = kind === 'clearing' ? [monthIn] : kind === 'fund' ? [fromIn, toIn, groupSel] : [fromIn, toIn, regionIn];
      for (const el of els) if (el.value.trim()) nq.set(el.name, el.value.trim());
      location.hash = '#/reports?' + nq;
    });
    let body;
    try {
      const r = await api('GET', '/api/v1/settlement/reports/' + kind + '?' + q);
      const rows = r.rows || [];
      const facName = (x) => x.facility_name || (x.facility_id ? facilityName(fac, x.facility_id) : '');
      const n = (x) => ({ cell: String(x.count), cls: 'num' });
      const m = (fen) => ({ cell: moneyEl(fen), cls: 'num' });
      let tbl; let chart;
      if (!rows.length) body = h('p', { class: 'empty' }, t('rp.none'));
      else if (kind === 'fund') {
        const byFacility = q.get('group') === 'facility';
        tbl = table('report', [t('rp.month'), byFacility ? t('rp.facility') : null, t('rp.tier'), t('rp.count'), t('rp.total'), t('rp.fund_col'), t('rp.patient_col')].filter(Boolean),
          rows.map((x) => [x.month, byFacility ? facName(x) : null, word('tier', x.tier), n(x), m(x.total_fen), m(x.fund_fen), m(x.patient_fen)].filter((c) => c !== null)));
        chart = barChart(t('rp.chart', { what: byFacility ? t('rp.by_facility') : t('rp.by_tier') }),
          sumBy(rows, (x) => (byFacility ? facName(x) : word('tier', x.tier)), (x) => x.fund_fen));
      } else if (kind === 'outflow') {
        tbl = table('report', [t('rp.month'), t('rp.destination'), t('rp.tier'), t('rp.count'), t('rp.total'), t('rp.fund_col')],
          rows.map((x) => [x.month, word('dest', x.destination), word('tier', x.tier), n(x), m(x.total_fen), m(x.fund_fen)]));
        chart = barChart(t('rp.chart', { what: t('rp.outflow') }), sumBy(rows, (x) => x.month + ' ' + word('dest', x.destination), (x) => x.fund_fen));
      } else {
        const ins = (x) => x.insured_region || x.insured_province || '';
        const trt = (x) => x.treatment_region || x.treatment_province || '';
        tbl = table('report', [t('rp.insured'), t('rp.treatment'), t('rp.direction'), t('rp.count'), t('rp.total'), t('rp.fund_col')],
          rows.map((x) => [{ cell: ins(x), cls: 'mono' }, { cell: trt(x), cls: 'mono' }, x.direction ? word('cdir', x.direction) : '', n(x), m(x.total_fen), m(x.fund_fen)]));
        chart = barChart(t('rp.chart', { what: t('rp.clearing') }), sumBy(rows, (x) => ins(x) + ' → ' + trt(x), (x) => x.fund_fen));
      }
      if (rows.length) {
        const total = rows.reduce((a, x) => a + (Number(x.fund_fen) || 0), 0);
        body = h('section', { 'aria-labelledby': 'rp-h' }, h('h2', { id: 'rp-h' }, t('rp.' + kind)), chart, tbl,
          h('p', { class: 'report-total' }, t('rp.sum') + '：' + t('rp.fund_col') + ' ', moneyEl(total)));
      }
    } catch (e) {
      if (e instanceof ApiError && e.details && e.details.length) { errs.show(e); body = null; } else body = alertBox('error', errText(e));
    }
    page(t('rp.title'), tabs, form, body);
  }

  // ---------------------------------------------------------------- patient page: settlements, accumulators
  function patientSettlements(p) {
    const box = h('section', { class: 'patient-settlements', 'aria-labelledby': 'ps-h' }, h('h2', { id: 'ps-h' }, t('ps.title')), h('p', {}, t('loading')));
    (async () => {
      const year = Number(chinaToday().slice(0, 4));
      const [acc, first] = await Promise.all([accumulatorsCard(p.id, year),
        api('GET', '/api/v1/settlements?patient_id=' + encodeURIComponent(p.id) + '&limit=100').catch((e) => e)]);
      let list = first;
      let scopeNote = null;
      if (list instanceof ApiError && list.status === 400) {
        // a server whose journal takes no patient filter: this facility's journal of today
        list = await api('GET', '/api/v1/settlements?limit=1000').catch((e) => e);
        scopeNote = h('p', { class: 'hint' }, t('ps.today_only'));
      }
      let rows;
      if (list instanceof ApiError && list.status === 403) rows = null;
      else if (list instanceof Error) rows = alertBox('error', errText(list));
      else {
        // only this person's rows, whatever else the journal answered
        const mine = (list.rows || []).filter((v) => v.patient && v.patient.id === p.id);
        rows = mine.length ? table('patient-settlements', [t('jr.time'), t('jr.txn'), t('jr.facility'), t('st.setting'), t('st.total'), t('st.fund'), t('st.patient_pay'), t('jr.status')],
          mine.map((v) => [timeEl(v.created_at), h('a', { href: '#/journal/' + v.id, class: 'mono' }, v.txn_no), (v.facility && v.facility.name) || '',
            word('setting', v.setting), { cell: moneyEl(v.total_fen), cls: 'num' }, { cell: moneyEl(v.fund_fen), cls: 'num' }, { cell: moneyEl(v.patient_fen), cls: 'num' },
            statusTag(v.status)])) : h('p', { class: 'empty' }, t('ps.none'));
      }
      box.replaceChildren(h('h2', { id: 'ps-h' }, t('ps.title')), acc, ...(rows ? [h('h3', {}, t('ps.rows')), scopeNote, rows].filter(Boolean) : []));
    })().catch(() => null);
    return box;
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
      history.replaceState(null, '', home());
      return route();
    }
    renderShell();
    main.replaceChildren(h('p', {}, t('loading')));
    try {
      const m = path.match(/^#\/patients\/([0-9a-fA-F-]{36})$/);
      const rm = path.match(/^#\/referrals\/([0-9a-fA-F-]{36})$/);
      const jm = path.match(/^#\/journal\/([0-9a-fA-F-]{36})$/);
      const part = partPage(path);
      const pageDef = part ? null : PAGES.find((p) => !p.view && p.hash === path || (m && p.hash === '#/patients') || ((rm || path === '#/referrals/new') && p.hash === '#/referrals')
        || (jm && p.hash === '#/journal'));
      if (part) {
        if (!part.def.allowed()) page(t('notfound.title'), alertBox('error', t('forbidden.page')));
        else await part.def.view(params, part.match);
      } else if (!pageDef) { page(t('notfound.title'), h('p', {}, t('notfound.body'))); }
      else if (!pageDef.allowed()) { page(t('notfound.title'), alertBox('error', t('forbidden.page'))); }
      else if (m) await viewRecord(m[1]);
      else if (rm) await viewReferral(rm[1]);
      else if (jm) await viewSettlement(jm[1]);
      else if (path === '#/settle') await viewSettle();
      else if (path === '#/journal') await viewJournal(params);
      else if (path === '#/reports') await viewReports(params);
      else if (path === '#/policies') await viewPolicies();
      else if (path === '#/referrals/new') await viewNewReferral(params);
      else if (path === '#/referrals') await viewReferrals(params, false);
      else if (path === '#/referrals-community') await viewReferrals(params, true);
      else if (path === '#/follow-ups') await viewFollowUps(params);
      else if (path === '#/patients') await viewPatients();
      else if (path === '#/directory') await viewDirectory(params);
      else if (path === '#/users') await viewUsers();
      else if (path === '#/access-log') await viewAccessLog(params);
    } catch (e) {
      if (!token()) { renderShell(); viewLogin(); return; }
      page(t('notfound.title'), alertBox('error', errText(e)));
    }
    // a page whose work starts in one field (the settlement desk's scan field) marks it
    if (my === routing) { (main.querySelector('[data-autofocus]') || main).focus({ preventScroll: true }); window.scrollTo(0, 0); }
  }

  // ------------------------------------------------------------------ capability parts
  // Pages of the later capabilities live in their own scripts (results.js, case-payment.js,
  // indicators.js), loaded after this one; each calls `tiercare.define({ dict, pages })`.
  // A page: { hash, key (its navigation label), allowed(), view(params, match), nav? (false:
  // reached by links only, no navigation entry), before? (the hash of the page it is listed
  // before in the navigation), pattern? (a RegExp for
  // its sub-pages, e.g. /^#\/results\/([0-9a-f-]{36})$/; match is the RegExp's match) }.
  function partPage(path) {
    for (const def of PAGES) {
      if (!def.view) continue;
      if (def.hash === path) return { def, match: null };
      const m = def.pattern ? path.match(def.pattern) : null;
      if (m) return { def, match: m };
    }
    return null;
  }
  function definePart(part) {
    for (const l of ['zh', 'en']) Object.assign(DICT[l], (part.dict || {})[l] || {});
    for (const p of part.pages || []) {
      const at = p.before ? PAGES.findIndex((x) => x.hash === p.before) : -1;
      if (at >= 0) PAGES.splice(at, 0, p); else PAGES.push(p);
    }
  }
  window.tiercare = {
    define: definePart,
    // the shell's toolkit, for the parts' pages
    kit: {
      t, has, word, h, field, table, alertBox, announce, api, ApiError, errText, page, hasAny,
      me: () => me, lang: () => lang, facilities, communities, facilityName, yuan, money, moneyEl, pct, dateTime,
      timeEl, chinaToday, dayStart, maskId, grade, fieldErrors, modal, printButton, svg, barChart, sumBy, patientBrief,
      READ_ROLES, ADMIN_ROLES, REFER_ROLES, REPORT_ROLES,
    },
  };

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
  // after DOMContentLoaded: the parts' scripts (deferred, after this one) have defined their pages
  if (document.readyState === 'complete') init(); else document.addEventListener('DOMContentLoaded', init);
})();
