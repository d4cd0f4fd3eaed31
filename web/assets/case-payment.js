// tiercare web app: Case-based payment: DIP, DRG and the global budget (issue 9). Pages defined through the shell's
// `tiercare.define` (see app.js, "capability parts"); strings in zh and en.
// #/case-payment: the hospitals' DIP/DRG position (a hospital's insurance office its own, community
// admins their community's, insurance officers all); #/case-payment/packets: the packet catalogue;
// #/case-payment/budget: the community budget's burn-down (SVG, with the same figures in a table).
'use strict';
(function () {
  const { t, h, page, api, table, alertBox, errText, yuan, svg, communities, me, hasAny } = window.tiercare.kit;
  const BUDGET_ROLES = ['insurance_officer', 'community_admin', 'system_admin'];
  // the hospital's own position is read by its insurance office (the settlement clerks)
  const POSITION_ROLES = [...BUDGET_ROLES, 'settlement_clerk'];
  const points = (e4) => (e4 == null ? '' : (Number(e4) / 10000).toFixed(2));
  const cmi = (e4) => (e4 == null ? '—' : (Number(e4) / 10000).toFixed(4));

  async function chooseYear(out) {
    const years = (await api('GET', '/api/v1/case-payment/years')).years;
    if (!years.length) { out.replaceChildren(alertBox('info', t('cp.no_year'))); return null; }
    return years[0];
  }

  function summary(y) {
    return h('dl', { class: 'card cp-summary' },
      h('dt', {}, t('cp.region_year')), h('dd', {}, `${y.region_code} · ${y.year}`),
      h('dt', {}, t('cp.point_value')), h('dd', { 'data-test': 'point-value' }, t('cp.fen_per_point', { v: (y.fen_per_point_e4 / 10000).toFixed(4) })),
      h('dt', {}, t('cp.packets')), h('dd', {}, t('cp.packets_n', { n: y.packets, core: y.core_packets })),
      h('dt', {}, t('cp.stays')), h('dd', {}, String(y.stays)),
      h('dt', {}, t('cp.fund')), h('dd', {}, yuan(y.fund_available_fen)),
      h('dt', {}, t('cp.base_rate')), h('dd', { 'data-test': 'drg-base-rate' }, y.drg_base_rate_fen == null ? '—' : t('cp.per_weight', { v: yuan(y.drg_base_rate_fen) })),
      h('dt', {}, t('cp.scheme')), h('dd', {}, y.scheme));
  }

  async function viewPosition() {
    const out = h('div', { 'aria-live': 'polite' }, t('cp.loading'));
    page(t('cp.title'), h('nav', { class: 'subnav' },
      h('a', { href: '#/case-payment/packets' }, t('cp.nav.packets')), ' · ',
      hasAny(BUDGET_ROLES) ? h('a', { href: '#/case-payment/budget' }, t('cp.nav.budget')) : null), out);
    try {
      const y = await chooseYear(out); if (!y) return;
      const r = await api('GET', `/api/v1/case-payment/hospitals?region=${y.region_code}&year=${y.year}`);
      const w = await api('GET', `/api/v1/case-payment/drg/weights?region=${y.region_code}&year=${y.year}`);
      const rows = r.hospitals.map((p) => [p.facility_name || p.facility_id, String(p.stays), points(p.points_e4),
        `${p.outliers_low} / ${p.outliers_high}`, String(p.expert_review), String(p.unscored), cmi(p.cmi_e4),
        yuan(p.gross_fen), yuan(p.patients_paid_fen), h('strong', {}, yuan(p.payment_fen)),
        p.drg_gross_fen == null ? '—' : yuan(p.drg_gross_fen), p.drg_payment_fen == null ? '—' : h('strong', {}, yuan(p.drg_payment_fen))]);
      const weights = w.weights.length ? table('cp-drg-weights', [t('cp.col.drg'), t('cp.col.name'), t('cp.col.cases'), t('cp.col.mean'),
        t('cp.col.weight')], w.weights.map((x) => [x.drg, x.name || '', String(x.kept_cases) + (x.low_volume ? ' *' : ''),
        yuan(x.mean_cost_fen), cmi(x.weight_e4)]), t('cp.weights_caption')) : alertBox('info', t('cp.no_weights'));
      out.replaceChildren(summary(y), r.hospitals.length ? table('cp-hospitals', [t('cp.col.hospital'), t('cp.col.stays'), t('cp.col.points'),
        t('cp.col.outliers'), t('cp.col.review'), t('cp.col.unscored'), t('cp.col.cmi'), t('cp.col.gross'), t('cp.col.patients'),
        t('cp.col.payment'), t('cp.col.drg_gross'), t('cp.col.drg_payment')], rows, t('cp.position_caption')) : alertBox('info', t('cp.no_hospital')),
      h('h2', {}, t('cp.weights_title')), weights);
    } catch (e) { out.replaceChildren(alertBox('error', errText(e))); }
  }

  async function viewPackets() {
    const out = h('div', { 'aria-live': 'polite' }, t('cp.loading'));
    const q = h('input', { type: 'search', name: 'q', placeholder: 'K80' });
    const form = h('form', { class: 'card', role: 'search' }, h('label', {}, t('cp.search'), ' ', q), h('button', { type: 'submit' }, t('cp.search_go')));
    page(t('cp.packets_title'), h('nav', { class: 'subnav' }, h('a', { href: '#/case-payment' }, t('cp.nav.position'))), form, out);
    let y = null;
    const load = async () => {
      try {
        y = y || await chooseYear(out); if (!y) return;
        const r = await api('GET', `/api/v1/case-payment/dip/packets?region=${y.region_code}&year=${y.year}&q=${encodeURIComponent(q.value.trim())}`);
        out.replaceChildren(summary(y), table('cp-packets', [t('cp.col.class'), t('cp.col.code'), t('cp.col.name'), t('cp.col.detail'),
          t('cp.col.cases'), t('cp.col.mean'), t('cp.col.score')], r.packets.map((p) => [t('cp.class.' + p.class), p.code, p.name || '',
          t('cp.kind.' + p.detail) === 'cp.kind.' + p.detail ? p.detail : t('cp.kind.' + p.detail), String(p.cases), yuan(p.mean_cost_fen), points(p.score_e4)])));
      } catch (e) { out.replaceChildren(alertBox('error', errText(e))); }
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
    await load();
  }

  /** Cumulative spend against the budget line, month by month (SVG; the table repeats the figures). */
  function burnDown(pos) {
    const W = 560; const H = 240; const L = 70; const B = 30; const top = 10;
    const max = Math.max(pos.budget_fen, pos.projected_fen, ...pos.months.map((m) => m.cumulative_fen), 1);
    const x = (m) => L + ((W - L - 10) * m) / 12;
    const yv = (v) => top + (H - top - B) * (1 - v / max);
    const line = pos.months.map((m, i) => `${i ? 'L' : 'M'}${x(m.month)},${yv(m.cumulative_fen)}`).join(' ');
    const last = pos.months.length ? pos.months[pos.months.length - 1] : { month: 0, cumulative_fen: 0 };
    return h('figure', { class: 'chart' }, svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': t('cp.burn_title') },
      svg('line', { x1: L, y1: yv(pos.budget_fen), x2: W - 10, y2: yv(pos.budget_fen), stroke: '#b00', 'stroke-dasharray': '6 4' }),
      svg('text', { x: L + 4, y: yv(pos.budget_fen) - 4, 'font-size': 12 }, t('cp.budget_line')),
      svg('line', { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: '#555' }),
      svg('path', { d: `M${x(0)},${yv(0)} ` + line.replace(/^M/, 'L'), fill: 'none', stroke: '#0a5', 'stroke-width': 2, 'data-test': 'burn-line' }),
      svg('path', { d: `M${x(last.month)},${yv(last.cumulative_fen)} L${x(12)},${yv(pos.projected_fen)}`, fill: 'none', stroke: '#0a5', 'stroke-dasharray': '3 3' }),
      Array.from({ length: 12 }, (_, i) => svg('text', { x: x(i + 1) - 6, y: H - 10, 'font-size': 11 }, String(i + 1)))),
    h('figcaption', {}, t('cp.burn_title')));
  }

  async function viewBudget() {
    const out = h('div', { 'aria-live': 'polite' }, t('cp.loading'));
    const pick = h('select', { name: 'community' });
    const year = h('input', { type: 'number', name: 'year', min: 2000, max: 2100, value: 2025 });
    const form = h('form', { class: 'card' }, h('label', {}, t('cp.community'), ' ', pick), ' ', h('label', {}, t('cp.year'), ' ', year), ' ', h('button', { type: 'submit' }, t('cp.show')));
    page(t('cp.budget_title'), h('nav', { class: 'subnav' }, h('a', { href: '#/case-payment' }, t('cp.nav.position'))), form, out);
    try {
      const list = await communities();
      const mine = (await api('GET', '/api/v1/facilities')).find((f) => f.id === me().facility_id);
      for (const c of list) pick.append(h('option', { value: c.id, selected: mine && mine.community_id === c.id }, c.name));
    } catch (e) { out.replaceChildren(alertBox('error', errText(e))); return; }
    const load = async () => {
      try {
        const r = await api('GET', `/api/v1/case-payment/budgets/${pick.value}?year=${Number(year.value)}`);
        const p = r.position;
        out.replaceChildren(
          h('dl', { class: 'card cp-summary' },
            h('dt', {}, t('cp.budget')), h('dd', { 'data-test': 'budget' }, yuan(p.budget_fen)),
            h('dt', {}, t('cp.spent')), h('dd', {}, `${yuan(p.spent_fen)} (${(p.burn_bp / 100).toFixed(2)}%)`),
            h('dt', {}, t('cp.out_of_county')), h('dd', {}, `${yuan(p.out_of_county_fen)} (${(p.out_of_county_share_bp / 100).toFixed(2)}%)`),
            h('dt', {}, t('cp.projected')), h('dd', {}, yuan(p.projected_fen)),
            h('dt', {}, t('cp.savings')), h('dd', {}, yuan(p.projected_savings_fen)),
            h('dt', {}, t('cp.share')), h('dd', {}, yuan(p.community_share_fen))),
          burnDown(p),
          table('cp-months', [t('cp.col.month'), t('cp.col.in_county'), t('cp.col.out_county'), t('cp.col.cumulative'), t('cp.col.remaining')],
            p.months.map((m) => [String(m.month), yuan(m.in_county_fen), yuan(m.out_of_county_fen), yuan(m.cumulative_fen), yuan(m.remaining_fen)])));
      } catch (e) { out.replaceChildren(alertBox('error', errText(e))); }
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
    if (pick.value) await load();
  }

  const zh = {
    'nav.case_payment': 'DIP/DRG 支付', 'cp.title': 'DIP/DRG 支付：医院位置', 'cp.packets_title': 'DIP 病种目录', 'cp.budget_title': '医共体总额预算',
    'cp.nav.packets': '病种目录', 'cp.nav.budget': '总额预算燃尽图', 'cp.nav.position': '医院位置', 'cp.loading': '加载中…',
    'cp.no_year': '尚未建立任何地区年度的 DIP 目录。', 'cp.no_hospital': '没有您可查看的医院。', 'cp.region_year': '统筹区 · 年度',
    'cp.point_value': '结算点值', 'cp.fen_per_point': '{v} 分/点', 'cp.packets': '病种数', 'cp.packets_n': '{n}（核心 {core}）', 'cp.stays': '住院病例',
    'cp.fund': '可用基金', 'cp.scheme': 'DRG 分组方案', 'cp.position_caption': '各医院点数、高低倍率病例、CMI 与预计支付',
    'cp.col.hospital': '医院', 'cp.col.stays': '病例', 'cp.col.points': '点数', 'cp.col.outliers': '低/高倍率', 'cp.col.review': '专家评审',
    'cp.col.unscored': '未入组', 'cp.col.cmi': 'CMI', 'cp.col.gross': '点数×点值', 'cp.col.patients': '患者已付', 'cp.col.payment': '预计医保支付',
    'cp.search': '按诊断编码查找', 'cp.search_go': '查找', 'cp.col.class': '类型', 'cp.col.code': '诊断/分组', 'cp.col.name': '名称',
    'cp.col.detail': '操作/治疗方式', 'cp.col.cases': '历史病例', 'cp.col.mean': '次均费用', 'cp.col.score': '分值',
    'cp.class.core': '核心病种', 'cp.class.comprehensive': '综合病种', 'cp.kind.conservative': '保守治疗', 'cp.kind.diagnostic': '诊断性操作',
    'cp.kind.therapeutic': '治疗性操作', 'cp.kind.surgery': '相关手术', 'cp.community': '医共体', 'cp.year': '年度', 'cp.show': '查看',
    'cp.budget': '年度预算', 'cp.spent': '已支出', 'cp.out_of_county': '其中县外', 'cp.projected': '预计全年', 'cp.savings': '预计结余',
    'cp.share': '医共体留用', 'cp.burn_title': '累计支出与预算线（虚线为预测）', 'cp.budget_line': '预算',
    'cp.col.month': '月份', 'cp.col.in_county': '县内', 'cp.col.out_county': '县外', 'cp.col.cumulative': '累计', 'cp.col.remaining': '剩余',
    'cp.base_rate': 'DRG 费率', 'cp.per_weight': '{v} / 权重 1.0', 'cp.col.drg_gross': 'DRG 权重×费率', 'cp.col.drg_payment': 'DRG 预计医保支付',
    'cp.weights_title': 'DRG 权重（历史数据计算）', 'cp.weights_caption': '权重 = 组均费用 ÷ 全部入组病例均费用；* 病例数不足 5 例',
    'cp.no_weights': '历史数据中没有入组病例，无 DRG 权重。', 'cp.col.drg': 'DRG', 'cp.col.weight': '权重',
  };
  const en = {
    'nav.case_payment': 'DIP/DRG payment', 'cp.title': 'DIP/DRG payment: hospital position', 'cp.packets_title': 'DIP packet catalogue',
    'cp.budget_title': 'Community global budget', 'cp.nav.packets': 'Packet catalogue', 'cp.nav.budget': 'Budget burn-down', 'cp.nav.position': 'Hospital position',
    'cp.loading': 'Loading…', 'cp.no_year': 'No DIP catalogue has been built for any region-year yet.', 'cp.no_hospital': 'No hospital you may see.',
    'cp.region_year': 'Region · year', 'cp.point_value': 'Settlement point value', 'cp.fen_per_point': '{v} fen per point', 'cp.packets': 'Packets',
    'cp.packets_n': '{n} ({core} core)', 'cp.stays': 'Inpatient stays', 'cp.fund': 'Fund available', 'cp.scheme': 'DRG scheme',
    'cp.position_caption': 'Points, outliers, CMI and projected payment by hospital', 'cp.col.hospital': 'Hospital', 'cp.col.stays': 'Stays',
    'cp.col.points': 'Points', 'cp.col.outliers': 'Low / high outliers', 'cp.col.review': 'Expert review', 'cp.col.unscored': 'No packet',
    'cp.col.cmi': 'CMI', 'cp.col.gross': 'Points × value', 'cp.col.patients': 'Patients paid', 'cp.col.payment': 'Projected payment',
    'cp.search': 'Find by diagnosis code', 'cp.search_go': 'Find', 'cp.col.class': 'Class', 'cp.col.code': 'Diagnosis / group', 'cp.col.name': 'Name',
    'cp.col.detail': 'Procedures / treatment', 'cp.col.cases': 'Historical cases', 'cp.col.mean': 'Mean cost', 'cp.col.score': 'Score',
    'cp.class.core': 'Core', 'cp.class.comprehensive': 'Comprehensive', 'cp.kind.conservative': 'Conservative', 'cp.kind.diagnostic': 'Diagnostic procedure',
    'cp.kind.therapeutic': 'Therapeutic procedure', 'cp.kind.surgery': 'Surgery', 'cp.community': 'Community', 'cp.year': 'Year', 'cp.show': 'Show',
    'cp.budget': 'Budget', 'cp.spent': 'Spent', 'cp.out_of_county': 'of which out of county', 'cp.projected': 'Projected year', 'cp.savings': 'Projected savings',
    'cp.share': 'Community keeps', 'cp.burn_title': 'Cumulative spend against the budget (dashed: projection)', 'cp.budget_line': 'Budget',
    'cp.col.month': 'Month', 'cp.col.in_county': 'In county', 'cp.col.out_county': 'Out of county', 'cp.col.cumulative': 'Cumulative', 'cp.col.remaining': 'Remaining',
    'cp.base_rate': 'DRG base rate', 'cp.per_weight': '{v} per weight 1.0', 'cp.col.drg_gross': 'DRG weight × rate', 'cp.col.drg_payment': 'Projected DRG payment',
    'cp.weights_title': 'DRG weights (from history)', 'cp.weights_caption': 'Weight = DRG mean cost ÷ mean cost of all grouped stays; * fewer than 5 cases',
    'cp.no_weights': 'No history stay was grouped: no DRG weights.', 'cp.col.drg': 'DRG', 'cp.col.weight': 'Weight',
  };
  window.tiercare.define({
    dict: { zh, en },
    pages: [
      {
        hash: '#/case-payment', key: 'nav.case_payment', before: '#/policies', allowed: () => hasAny(POSITION_ROLES),
        pattern: /^#\/case-payment(?:\/(packets|budget))?$/,
        view: (params, match) => {
          if (!match || !match[1]) return viewPosition();
          if (match[1] === 'packets') return viewPackets();
          if (!hasAny(BUDGET_ROLES)) return page(t('cp.budget_title'), alertBox('error', t('forbidden.page')));
          return viewBudget();
        },
      },
    ],
  });
})();
