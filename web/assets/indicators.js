// tiercare web app: Reform indicators (issue 8). Pages defined through the shell's
// `tiercare.define` (see app.js, "capability parts"); strings in zh and en.
// #/indicators: a community's scorecard against targets (red/amber/green), the chosen
// indicator's monthly trend (SVG), its drill-down community → facility → month → records,
// the townships side by side and the residents' patient flow (SVG); CSV export and the
// printable monthly assessment sheet. Read by insurance officers and administrators.
'use strict';
(function () {
  const { t, h, page, api, table, alertBox, errText, svg, communities, me, hasAny, chinaToday, field, dateTime } = window.tiercare.kit;
  const ROLES = ['insurance_officer', 'community_admin', 'system_admin'];
  const RAG_COLOURS = { green: '#2e7d32', amber: '#b26a00', red: '#c62828', none: '#757575' };

  const lang = () => (window.tiercare.kit.lang ? window.tiercare.kit.lang() : 'zh');
  const nameOf = (i) => (lang() === 'en' ? i.en : i.zh);
  /** An indicator's value as shown: percent, yuan (from fen), ratio or count. */
  function shown(unit, v) {
    if (v == null) return '—';
    if (unit === 'percent') return (v * 100).toFixed(1) + '%';
    if (unit === 'fen') return '¥' + (v / 100).toFixed(2);
    if (unit === 'ratio') return Number(v).toFixed(2);
    return String(Math.round(v));
  }
  function targetText(i) {
    const tg = i.target || {};
    if (tg.kind === 'at_least') return '≥ ' + shown(i.unit, tg.green);
    if (tg.kind === 'at_most') return '≤ ' + shown(i.unit, tg.green);
    return t(i.direction === 'lower' ? 'ind.falling' : 'ind.rising');
  }
  // the shell's tag styles (the CSP allows no style of our own): green, amber as urgent, red as overdue
  const RAG_TAGS = { green: 'tag green', amber: 'tag urgency-urgent', red: 'tag overdue', none: 'tag' };
  const ragBadge = (rag) => h('span', { class: RAG_TAGS[rag] || 'tag', 'data-rag': rag || 'none' }, t('ind.rag.' + (rag || 'none')));

  function query(state, extra) {
    const q = new URLSearchParams({ community_id: state.community, from: state.from, to: state.to, ...(extra || {}) });
    return q.toString();
  }
  function go(state, extra) {
    const q = new URLSearchParams({ community: state.community, from: state.from, to: state.to, ...(extra || {}) });
    location.hash = '#/indicators?' + q.toString();
  }

  /** A line chart of monthly values with the target line; each point coloured by its rating. */
  function trendChart(def, months) {
    const W = 680; const H = 220; const L = 60; const R = 20; const T = 20; const B = 40;
    const vals = months.map((m) => m.value).filter((v) => v != null);
    const tg = def.target || {};
    const ref = tg.kind === 'at_least' || tg.kind === 'at_most' ? tg.green : null;
    const hi = Math.max(...vals, ref == null ? -Infinity : ref, 0) || 1;
    const x = (k) => L + (months.length <= 1 ? (W - L - R) / 2 : (k * (W - L - R)) / (months.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / hi);
    const pts = months.map((m, k) => (m.value == null ? null : [x(k), y(m.value), m])).filter(Boolean);
    const id = 'ind-trend-title';
    return h('figure', { class: 'chart ind-chart' },
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': id, 'data-test': 'trend' },
        svg('title', { id }, t('ind.trend_of', { name: nameOf(def) })),
        svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), stroke: '#999' }),
        svg('text', { x: L - 6, y: y(hi) + 4, 'text-anchor': 'end' }, shown(def.unit, hi)),
        svg('text', { x: L - 6, y: y(0) + 4, 'text-anchor': 'end' }, shown(def.unit, 0)),
        ref == null ? null : [svg('line', { x1: L, y1: y(ref), x2: W - R, y2: y(ref), stroke: '#2e7d32', 'stroke-dasharray': '5 4' }),
          svg('text', { x: W - R, y: y(ref) - 4, 'text-anchor': 'end', fill: '#2e7d32' }, t('ind.target') + ' ' + shown(def.unit, ref))],
        pts.length > 1 ? svg('polyline', { points: pts.map((p) => p[0] + ',' + p[1]).join(' '), fill: 'none', stroke: '#1565c0', 'stroke-width': 2 }) : null,
        pts.map(([px, py, m]) => svg('circle', { cx: px, cy: py, r: 4, fill: RAG_COLOURS[m.rag] || RAG_COLOURS.none },
          svg('title', {}, m.month + ': ' + shown(def.unit, m.value)))),
        months.map((m, k) => svg('text', { x: x(k), y: H - B + 16, 'text-anchor': 'middle' }, m.month.slice(2)))),
      h('figcaption', {}, t('ind.trend_of', { name: nameOf(def) })));
  }

  /** Residents' visits by tier, inside and outside the area, as stacked bars; non-residents treated inside apart. */
  function flowChart(flows) {
    const tiers = ['village', 'township', 'county', 'city', 'provincial', 'national'];
    const W = 680; const rowH = 34; const L = 150; const barW = 480;
    const groups = [
      { key: 'in', label: t('ind.flow.resident_in'), rows: flows.filter((f) => f.resident && f.in_area) },
      { key: 'out', label: t('ind.flow.resident_out'), rows: flows.filter((f) => f.resident && !f.in_area) },
      { key: 'inflow', label: t('ind.flow.visitors_in'), rows: flows.filter((f) => !f.resident && f.in_area) },
    ];
    const total = Math.max(1, ...groups.map((g) => g.rows.reduce((s, f) => s + f.visits, 0)));
    const palette = { village: '#81c784', township: '#4caf50', county: '#1e88e5', city: '#fb8c00', provincial: '#e53935', national: '#8e24aa' };
    const id = 'ind-flow-title';
    return h('figure', { class: 'chart ind-chart' },
      svg('svg', { viewBox: `0 0 ${W} ${groups.length * rowH + 40}`, role: 'img', 'aria-labelledby': id, 'data-test': 'flow' },
        svg('title', { id }, t('ind.flow_title')),
        groups.map((g, k) => {
          let at = L;
          const yy = 8 + k * rowH;
          return svg('g', {}, svg('text', { x: L - 8, y: yy + 18, 'text-anchor': 'end' }, g.label),
            tiers.map((tier) => {
              const n = g.rows.filter((f) => f.tier === tier).reduce((s, f) => s + f.visits, 0);
              if (!n) return null;
              const w = Math.max(1, (n * barW) / total); const x0 = at; at += w;
              return svg('rect', { x: x0, y: yy, width: w, height: rowH - 10, fill: palette[tier] },
                svg('title', {}, t('tier.' + tier) + ': ' + n));
            }));
        }),
        tiers.map((tier, k) => svg('g', {}, svg('rect', { x: L + k * 80, y: groups.length * rowH + 14, width: 12, height: 12, fill: palette[tier] }),
          svg('text', { x: L + k * 80 + 16, y: groups.length * rowH + 24 }, t('tier.' + tier))))),
      h('figcaption', {}, t('ind.flow_title')));
  }

  /** Download what an API path answers (the bearer token goes with it), as `name`. */
  async function download(path, name, open) {
    const tok = sessionStorage.getItem('tiercare.token') || '';
    const resp = await fetch(path, { headers: { authorization: 'Bearer ' + tok } });
    if (!resp.ok) throw new Error('HTTP ' + resp.status);
    const url = URL.createObjectURL(await resp.blob());
    if (open) { window.open(url, '_blank'); return; }
    const a = h('a', { href: url, download: name }); document.body.append(a); a.click(); a.remove();
  }

  async function viewIndicators(params) {
    const cs = await communities();
    const mine = (await window.tiercare.kit.facilities()).find((f) => me() && f.id === me().facility_id);
    const month = chinaToday().slice(0, 7);
    const state = {
      community: params.get('community') || (mine && mine.community_id) || (cs[0] && cs[0].id) || '',
      from: params.get('from') || month.slice(0, 4) + '-01',
      to: params.get('to') || month,
    };
    const picked = params.get('indicator');
    const commSel = h('select', { name: 'community' }, cs.map((c) => h('option', { value: c.id, selected: c.id === state.community }, c.name)));
    const fromIn = h('input', { name: 'from', type: 'month', value: state.from, placeholder: 'YYYY-MM' });
    const toIn = h('input', { name: 'to', type: 'month', value: state.to, placeholder: 'YYYY-MM' });
    const form = h('form', { class: 'card', role: 'search', 'aria-label': t('ind.title'), novalidate: true },
      field(t('ind.community'), commSel), field(t('ind.from'), fromIn), field(t('ind.to'), toIn),
      h('button', { type: 'submit', class: 'primary' }, t('ind.show')));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); go({ community: commSel.value, from: fromIn.value.trim(), to: toIn.value.trim() }); });
    const out = h('div', { 'aria-live': 'polite' }, t('ind.loading'));
    page(t('ind.title'), form, out);
    if (!state.community) { out.replaceChildren(alertBox('info', t('ind.no_community'))); return; }
    try {
      const card = await api('GET', '/api/v1/indicators/scorecard?' + query(state));
      const actions = h('p', { class: 'no-print' },
        h('button', { type: 'button', class: 'secondary', onclick: () => download('/api/v1/indicators/export.csv?' + query(state), `indicators-${state.from}-${state.to}.csv`).catch((e) => out.prepend(alertBox('error', errText(e)))) }, t('ind.csv')),
        h('button', { type: 'button', class: 'secondary', onclick: () => download(`/api/v1/indicators/sheet?community_id=${state.community}&month=${state.to}`, 'sheet.html', true).catch((e) => out.prepend(alertBox('error', errText(e)))) }, t('ind.sheet', { month: state.to })));
      const rows = card.indicators.map((i) => {
        const link = h('a', { href: '#/indicators?' + new URLSearchParams({ community: state.community, from: state.from, to: state.to, indicator: i.id }) }, nameOf(i));
        return [link, { cell: shown(i.unit, i.value), cls: 'num' }, i.denominator == null ? String(i.numerator) : `${i.numerator} / ${i.denominator}`,
          targetText(i), shown(i.unit, i.year_earlier), ragBadge(i.rag)];
      });
      const parts = [h('h2', {}, t('ind.scorecard', { name: card.scope.community.name, from: state.from, to: state.to })), actions,
        table('ind-scorecard', [t('ind.col.indicator'), t('ind.col.value'), t('ind.col.parts'), t('ind.col.target'), t('ind.col.year_earlier'), t('ind.col.rating')], rows, t('ind.scorecard_caption'))];
      out.replaceChildren(...parts);
      if (picked) await drill(state, picked, params, out);
      const [cmp, flow] = await Promise.all([
        api('GET', '/api/v1/indicators/comparison?' + query(state)),
        api('GET', '/api/v1/indicators/flow?' + query(state)),
      ]);
      out.append(h('h2', {}, t('ind.comparison')),
        cmp.townships.length ? table('ind-comparison', [t('ind.col.township'), t('ind.col.visits'), t('ind.col.share'),
          ...cmp.townships[0].indicators.map((i) => nameOf(i))], cmp.townships.map((tw) => [tw.name, { cell: String(tw.visits), cls: 'num' },
          { cell: shown('percent', tw.visit_share), cls: 'num' }, ...tw.indicators.map((i) => h('span', {}, shown(i.unit, i.value), ' ', ragBadge(i.rag)))]))
          : alertBox('info', t('ind.no_township')),
        h('h2', {}, t('ind.flow')), flowChart(flow.flows),
        table('ind-flow', [t('ind.col.group'), t('ind.col.tier'), t('ind.col.visits'), t('ind.col.stays')], flow.flows.map((f) =>
          [t(f.resident ? (f.in_area ? 'ind.flow.resident_in' : 'ind.flow.resident_out') : 'ind.flow.visitors_in'), t('tier.' + f.tier),
            { cell: String(f.visits), cls: 'num' }, { cell: String(f.stays), cls: 'num' }])));
    } catch (e) { out.replaceChildren(alertBox('error', errText(e))); }
  }

  /** The chosen indicator: its trend, each facility's part, a facility's months and a month's records. */
  async function drill(state, id, params, out) {
    const facility = params.get('facility');
    const extra = facility ? { facility_id: facility } : {};
    const tr = await api('GET', '/api/v1/indicators/trend?' + query(state, { indicator: id, ...extra }));
    const def = tr.indicator;
    const sec = h('section', { 'aria-labelledby': 'ind-drill-h' }, h('h2', { id: 'ind-drill-h' }, nameOf(def)),
      h('p', { class: 'hint' }, def.source), trendChart(def, tr.months));
    out.append(sec);
    if (!facility) {
      const dd = await api('GET', '/api/v1/indicators/drilldown?' + query(state, { indicator: id }));
      sec.append(table('ind-drilldown', [t('ind.col.facility'), t('ind.col.tier'), t('ind.col.parts'), t('ind.col.value')], dd.facilities.map((f) => [
        h('a', { href: '#/indicators?' + new URLSearchParams({ community: state.community, from: state.from, to: state.to, indicator: id, facility: f.facility_id }) }, f.name),
        t('tier.' + f.tier), f.denominator == null ? String(f.numerator) : `${f.numerator} / ${f.denominator}`, { cell: shown(def.unit, f.value), cls: 'num' }]),
      t('ind.drill_caption')));
      return;
    }
    const monthLink = (m) => h('a', { href: '#/indicators?' + new URLSearchParams({ community: state.community, from: state.from, to: state.to, indicator: id, facility, month: m }) }, m);
    sec.append(table('ind-months', [t('ind.col.month'), t('ind.col.parts'), t('ind.col.value'), t('ind.col.rating')], tr.months.map((m) =>
      [monthLink(m.month), m.denominator == null ? String(m.numerator) : `${m.numerator} / ${m.denominator}`, shown(def.unit, m.value), ragBadge(m.rag)])));
    const month = params.get('month');
    if (!month) return;
    const recs = await api('GET', `/api/v1/indicators/records?${new URLSearchParams({ community_id: state.community, facility_id: facility, month, limit: '200' })}`);
    sec.append(h('h3', {}, t('ind.records', { month })), recs.records.length ? table('ind-records', [t('ind.col.source'), t('ind.col.kind'), t('ind.col.time'), t('ind.col.home'), t('ind.col.amount')],
      recs.records.map((r) => [t('ind.src.' + r.source), r.kind, dateTime(new Date(r.at_ms).toISOString()), r.home_region, { cell: '¥' + (r.amount_fen / 100).toFixed(2), cls: 'num' }]))
      : alertBox('info', t('ind.no_records')));
  }

  const zh = {
    'nav.indicators': '考核指标', 'ind.title': '医共体考核指标', 'ind.loading': '加载中…', 'ind.community': '医共体', 'ind.from': '起始月份', 'ind.to': '截止月份',
    'ind.show': '查看', 'ind.no_community': '尚无医共体。', 'ind.scorecard': '{name} 考核指标（{from} 至 {to}）', 'ind.scorecard_caption': '指标与目标：绿色达标，黄色接近，红色未达标',
    'ind.col.indicator': '指标', 'ind.col.value': '数值', 'ind.col.parts': '分子 / 分母', 'ind.col.target': '目标', 'ind.col.year_earlier': '去年同期', 'ind.col.rating': '评价',
    'ind.rag.green': '达标', 'ind.rag.amber': '接近', 'ind.rag.red': '未达标', 'ind.rag.none': '—', 'ind.rising': '上升', 'ind.falling': '下降', 'ind.target': '目标',
    'ind.csv': '导出 CSV', 'ind.sheet': '打印 {month} 月度考核表', 'ind.trend_of': '{name}：逐月趋势', 'ind.drill_caption': '各机构所占分子与分母',
    'ind.col.facility': '机构', 'ind.col.tier': '层级', 'ind.col.month': '月份', 'ind.records': '{month} 的原始记录', 'ind.no_records': '该月没有记录。',
    'ind.col.source': '来源', 'ind.col.kind': '类别', 'ind.col.time': '时间', 'ind.col.home': '患者户籍地', 'ind.col.amount': '金额',
    'ind.src.encounter': '就诊', 'ind.src.settlement': '结算', 'ind.src.referral': '转诊',
    'ind.comparison': '乡镇对比', 'ind.no_township': '本地区没有乡镇卫生院。', 'ind.col.township': '乡镇卫生院', 'ind.col.visits': '门急诊人次', 'ind.col.share': '占全县门急诊',
    'ind.flow': '患者流向', 'ind.flow_title': '本地区居民在哪里就诊（门急诊人次，按层级）', 'ind.flow.resident_in': '居民·县域内', 'ind.flow.resident_out': '居民·县域外',
    'ind.flow.visitors_in': '外地患者·县域内', 'ind.col.group': '人群', 'ind.col.stays': '住院人次',
  };
  const en = {
    'nav.indicators': 'Indicators', 'ind.title': 'Community assessment indicators', 'ind.loading': 'Loading…', 'ind.community': 'Community', 'ind.from': 'From month',
    'ind.to': 'To month', 'ind.show': 'Show', 'ind.no_community': 'No community yet.', 'ind.scorecard': '{name}: indicators ({from} to {to})',
    'ind.scorecard_caption': 'Indicators against targets: green met, amber close, red missed', 'ind.col.indicator': 'Indicator', 'ind.col.value': 'Value',
    'ind.col.parts': 'Numerator / denominator', 'ind.col.target': 'Target', 'ind.col.year_earlier': 'A year earlier', 'ind.col.rating': 'Rating',
    'ind.rag.green': 'Met', 'ind.rag.amber': 'Close', 'ind.rag.red': 'Missed', 'ind.rag.none': '—', 'ind.rising': 'rising', 'ind.falling': 'falling', 'ind.target': 'Target',
    'ind.csv': 'Export CSV', 'ind.sheet': 'Print the {month} assessment sheet', 'ind.trend_of': '{name}: month by month', 'ind.drill_caption': 'Each facility\'s numerator and denominator',
    'ind.col.facility': 'Facility', 'ind.col.tier': 'Tier', 'ind.col.month': 'Month', 'ind.records': 'The records of {month}', 'ind.no_records': 'No records that month.',
    'ind.col.source': 'Source', 'ind.col.kind': 'Kind', 'ind.col.time': 'Time', 'ind.col.home': 'Patient\'s home county', 'ind.col.amount': 'Amount',
    'ind.src.encounter': 'Encounter', 'ind.src.settlement': 'Settlement', 'ind.src.referral': 'Referral',
    'ind.comparison': 'Townships compared', 'ind.no_township': 'No township health centre in this area.', 'ind.col.township': 'Township health centre',
    'ind.col.visits': 'Visits', 'ind.col.share': 'Share of the county\'s visits', 'ind.flow': 'Patient flow',
    'ind.flow_title': 'Where the area\'s residents were treated (visits, by tier)', 'ind.flow.resident_in': 'Residents, in county',
    'ind.flow.resident_out': 'Residents, out of county', 'ind.flow.visitors_in': 'Non-residents, in county', 'ind.col.group': 'Who', 'ind.col.stays': 'Stays',
  };
  window.tiercare.define({
    dict: { zh, en },
    pages: [
      // a String object: the shell's route table compares hashes with ===, and only a
      // page it does not find that way is handed to its `view` (matched by `pattern`)
      // eslint-disable-next-line no-new-wrappers
      { hash: '#/indicators', key: 'nav.indicators', before: '#/directory', allowed: () => hasAny(ROLES), view: viewIndicators },
    ],
  });
})();
