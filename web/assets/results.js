// tiercare web app: Results and mutual recognition (issue 5). Pages defined through the shell's
// `tiercare.define` (see app.js, "capability parts"); strings in zh and en.
//
// - #/results/<patient id>: the patient's results, trend charts (SVG) of numeric items, and the
//   order-check dialog (which results can be reused here, and a reason for each repeat);
// - #/results-savings: tests avoided and money saved per facility and month.
// The pages are reached from links (the patient record, the referral page); the navigation
// lists a page only while it is open (the shell has no "no nav entry" flag yet).
'use strict';
(function () {
  const { t, h, page, api, table, field, alertBox, announce, word, timeEl, moneyEl, money, modal, svg, barChart, fieldErrors, hasAny, chinaToday } = window.tiercare.kit;

  const CLINICIANS = ['village_doctor', 'township_clinician', 'referral_centre', 'specialist'];
  const READERS = ['village_doctor', 'township_clinician', 'referral_centre', 'specialist', 'lab', 'settlement_clerk', 'insurance_officer'];
  const REPORTERS = ['insurance_officer', 'community_admin', 'system_admin'];
  const RESULTS_RE = /^#\/results\/([0-9a-fA-F-]{36})$/;
  const SAVINGS_RE = /^#\/results-savings$/;

  const zh = {
    'nav.results': '检验检查结果', 'nav.results_savings': '互认节约报表',
    'res.title': '检验检查结果', 'res.none': '暂无检验检查结果。', 'res.trends': '数值趋势',
    'res.col.item': '项目', 'res.col.value': '结果', 'res.col.flag': '提示', 'res.col.time': '采样/检查时间',
    'res.col.where': '检验检查机构', 'res.col.mark': '互认标识', 'res.col.here': '本机构可互认', 'res.col.valid': '有效期至',
    'res.here.yes': '可互认', 'res.here.no': '不可互认', 'res.unmarked': '无', 'res.back': '返回患者档案',
    'res.order': '开检查单（互认查询）', 'res.chart': '{item}（{unit}）趋势，共 {n} 次', 'res.range': '参考范围 {low}–{high}',
    'flag.normal': '正常', 'flag.low': '偏低 ↓', 'flag.high': '偏高 ↑', 'flag.abnormal': '异常', 'flag.critical': '危急值',
    'why.expired': '已过有效期', 'why.lab_not_qualified': '检验机构当时未获互认资质', 'why.no_mark': '无互认标识',
    'why.scope_does_not_cover': '互认范围不含本机构', 'why.lower_tier': '来自下级机构', 'why.not_yet_reported': '尚未出报告',
    'oc.title': '检查互认查询', 'oc.pick': '选择要开的检验检查项目', 'oc.check': '查询可互认结果', 'oc.record': '记录检查单',
    'oc.recognised': '有可互认结果', 'oc.not_recognised': '无可互认结果', 'oc.unknown_item': '不在互认目录',
    'oc.result': '{where}，{time}：{value}，有效期至 {until}（{mark}）', 'oc.why': '原因：{why}', 'oc.no_prior': '无既往结果',
    'oc.choice': '{item} 处理', 'oc.reuse': '采用已有结果（不再检查）', 'oc.perform': '重新检查', 'oc.reason': '{item} 重复检查理由',
    'oc.reason_choose': '请选择理由', 'oc.saved': '已记录检查单：避免重复检查 {n} 项，节约 {money}。', 'oc.pick_one': '请至少选择一个项目。',
    'oc.reusable': '可互认项目合计 {money}',
    'reason.condition_changed': '病情变化', 'reason.changes_fast': '检验结果随病情进展变化快', 'reason.major_decision': '重大诊疗决策（手术、输血等）',
    'reason.emergency': '急诊、急救', 'reason.forensic_or_disability': '司法鉴定、伤残鉴定', 'reason.other_clinical_need': '其他临床必需',
    'reason.patient_request': '患者要求', 'reason.lab_failed_external_qa': '出具机构室间质评不合格', 'reason.result_too_old': '结果时间过久',
    'sav.title': '检验检查互认节约报表', 'sav.from': '起始月份', 'sav.to': '截止月份', 'sav.show': '查询',
    'sav.col.month': '月份', 'sav.col.facility': '开单机构', 'sav.col.reused': '避免重复检查（项）', 'sav.col.saved': '节约金额',
    'sav.col.repeated': '重复检查（项）', 'sav.col.reasons': '重复理由', 'sav.col.performed': '新开检查（项）',
    'sav.total': '合计：避免重复检查 {n} 项，节约 {money}', 'sav.chart': '各机构节约金额', 'sav.none': '该期间无检查单记录。',
    'err.recognition.repeat_reason_required': '该项目有可互认结果，重复检查须选择理由。',
    'err.recognition.nothing_to_reuse': '该项目没有可互认的结果，请重新检查。', 'err.recognition.unknown_item': '该项目不在互认目录中。',
    'err.results.order_items': '请选择 1 至 50 个项目。',
    'rr.title': '可互认的检验检查结果', 'rr.none': '该患者暂无本机构可互认的结果。', 'rr.total': '可免重复检查，合计 {money}', 'rr.all': '查看全部检验检查结果',
  };
  const en = {
    'nav.results': 'Results', 'nav.results_savings': 'Recognition savings',
    'res.title': 'Lab and imaging results', 'res.none': 'No results yet.', 'res.trends': 'Trends',
    'res.col.item': 'Item', 'res.col.value': 'Result', 'res.col.flag': 'Flag', 'res.col.time': 'Specimen / exam time',
    'res.col.where': 'Performed at', 'res.col.mark': 'Recognition mark', 'res.col.here': 'Recognised here', 'res.col.valid': 'Valid until',
    'res.here.yes': 'Recognised', 'res.here.no': 'Not recognised', 'res.unmarked': 'none', 'res.back': 'Back to the patient record',
    'res.order': 'Order tests (recognition check)', 'res.chart': '{item} ({unit}) trend, {n} results', 'res.range': 'Reference range {low}–{high}',
    'flag.normal': 'Normal', 'flag.low': 'Low ↓', 'flag.high': 'High ↑', 'flag.abnormal': 'Abnormal', 'flag.critical': 'Critical',
    'why.expired': 'expired', 'why.lab_not_qualified': 'the lab was not qualified then', 'why.no_mark': 'no recognition mark',
    'why.scope_does_not_cover': 'the mark does not cover this facility', 'why.lower_tier': 'from a lower-level facility', 'why.not_yet_reported': 'not reported yet',
    'oc.title': 'Order-time recognition check', 'oc.pick': 'Items to order', 'oc.check': 'Check for recognisable results', 'oc.record': 'Record the order',
    'oc.recognised': 'Recognisable result', 'oc.not_recognised': 'No recognisable result', 'oc.unknown_item': 'Not in the recognition catalogue',
    'oc.result': '{where}, {time}: {value}, valid until {until} ({mark})', 'oc.why': 'Why: {why}', 'oc.no_prior': 'no earlier result',
    'oc.choice': '{item}: decision', 'oc.reuse': 'Use the existing result (no test)', 'oc.perform': 'Test again', 'oc.reason': '{item}: reason to repeat',
    'oc.reason_choose': 'Choose a reason', 'oc.saved': 'Order recorded: {n} tests avoided, {money} saved.', 'oc.pick_one': 'Choose at least one item.',
    'oc.reusable': 'Recognisable items worth {money}',
    'reason.condition_changed': 'The condition has changed', 'reason.changes_fast': 'The result changes fast as the disease evolves',
    'reason.major_decision': 'A major decision (surgery, transfusion)', 'reason.emergency': 'Emergency',
    'reason.forensic_or_disability': 'Forensic or disability assessment', 'reason.other_clinical_need': 'Other clinical need',
    'reason.patient_request': 'The patient asks', 'reason.lab_failed_external_qa': 'The issuing lab failed external quality assessment',
    'reason.result_too_old': 'The result is too old',
    'sav.title': 'Result recognition savings', 'sav.from': 'From month', 'sav.to': 'To month', 'sav.show': 'Show',
    'sav.col.month': 'Month', 'sav.col.facility': 'Ordering facility', 'sav.col.reused': 'Tests avoided', 'sav.col.saved': 'Money saved',
    'sav.col.repeated': 'Repeated', 'sav.col.reasons': 'Repeat reasons', 'sav.col.performed': 'Newly performed',
    'sav.total': 'Total: {n} tests avoided, {money} saved', 'sav.chart': 'Money saved per facility', 'sav.none': 'No orders recorded in this period.',
    'err.recognition.repeat_reason_required': 'A recognisable result exists: choose a reason to repeat the test.',
    'err.recognition.nothing_to_reuse': 'No recognisable result to reuse: test again.', 'err.recognition.unknown_item': 'Not an item of the recognition catalogue.',
    'err.results.order_items': 'Choose 1 to 50 items.',
    'rr.title': 'Recognisable results', 'rr.none': 'No result of this patient is recognisable here.', 'rr.total': 'No need to repeat them: worth {money}', 'rr.all': 'All results of the patient',
  };

  let catalogue = null;
  async function loadCatalogue() { if (!catalogue) catalogue = await api('GET', '/api/v1/results/catalogue'); return catalogue; }
  const itemName = (code) => { const i = catalogue && catalogue.items.find((x) => x.code === code); return i ? i.name : code; };
  const num = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : String(Math.round(v * 100) / 100));

  // ---------------------------------------------------------------- trend chart
  /** A line chart of one numeric item over time, the reference range shaded; the table carries the same values. */
  function trendChart(series) {
    const pts = series.points;
    const W = 520; const H = 180; const L = 52; const R = 12; const T = 14; const B = 34;
    const times = pts.map((p) => Date.parse(p.t));
    const vals = pts.map((p) => p.v);
    const ref = series.reference;
    let lo = Math.min(...vals, ref ? ref.low : Infinity); let hi = Math.max(...vals, ref ? ref.high : -Infinity);
    if (hi === lo) { hi += 1; lo -= 1; }
    const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    const t0 = Math.min(...times); const t1 = Math.max(...times);
    const x = (ts) => (t1 === t0 ? L + (W - L - R) / 2 : L + ((ts - t0) * (W - L - R)) / (t1 - t0));
    const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
    const title = t('res.chart', { item: series.item_name || series.item_code, unit: series.unit || '', n: pts.length });
    const id = 'trend-' + series.item_code;
    const day = (ts) => new Date(ts + 8 * 3600e3).toISOString().slice(0, 10);
    return h('figure', { class: 'chart trend', 'data-item': series.item_code },
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': id, width: '100%' },
        svg('title', { id }, title + (ref ? '；' + t('res.range', { low: ref.low, high: ref.high }) : '')),
        ref ? svg('rect', { x: L, y: y(ref.high), width: W - L - R, height: Math.max(0, y(ref.low) - y(ref.high)), fill: '#dafbe1', class: 'ref-band' }) : null,
        svg('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#8c959f' }),
        svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#8c959f' }),
        svg('text', { x: L - 6, y: y(hi - pad) + 4, 'text-anchor': 'end', 'font-size': 11 }, num(hi - pad)),
        svg('text', { x: L - 6, y: y(lo + pad) + 4, 'text-anchor': 'end', 'font-size': 11 }, num(lo + pad)),
        svg('text', { x: L, y: H - B + 16, 'font-size': 11 }, day(t0)),
        svg('text', { x: W - R, y: H - B + 16, 'text-anchor': 'end', 'font-size': 11 }, day(t1)),
        svg('polyline', { points: pts.map((p, i) => `${x(times[i]).toFixed(1)},${y(vals[i]).toFixed(1)}`).join(' '), fill: 'none', stroke: '#0969da', 'stroke-width': 2 }),
        pts.map((p, i) => svg('circle', { cx: x(times[i]).toFixed(1), cy: y(vals[i]).toFixed(1), r: 4, class: 'point', fill: p.flag === 'high' || p.flag === 'low' ? '#cf222e' : '#0969da' },
          svg('title', {}, `${day(times[i])}：${p.v}${series.unit ? ' ' + series.unit : ''}${p.flag ? ' ' + word('flag', p.flag) : ''}`)))),
      h('figcaption', {}, title));
  }

  // ---------------------------------------------------------------- the patient's results
  async function viewResults(params, match) {
    const id = match[1];
    await loadCatalogue();
    const data = await api('GET', '/api/v1/patients/' + id + '/results');
    const rows = data.results.map((r) => [
      [h('span', {}, r.item_name || r.item_code), ' ', h('span', { class: 'tag code' }, r.item_code)],
      r.category === 'imaging' && r.imaging ? [h('strong', {}, r.value), h('br', {}), h('span', { class: 'hint' }, r.imaging.findings)] : [r.value, r.unit ? ' ' + r.unit : ''],
      r.flag ? h('span', { class: 'tag flag-' + r.flag }, word('flag', r.flag)) : '',
      timeEl(r.specimen_time),
      r.facility_name || '',
      r.mark_label || t('res.unmarked'),
      r.recognisable_here ? t('res.here.yes') : [t('res.here.no'), r.reasons && r.reasons.length ? ' (' + r.reasons.map((x) => word('why', x)).join('、') + ')' : ''],
      r.valid_until ? timeEl(r.valid_until) : '—',
    ]);
    const orderBtn = hasAny(CLINICIANS) ? h('button', { type: 'button', class: 'primary', onclick: () => orderDialog(id) }, t('res.order')) : null;
    const charts = data.trends.filter((s) => s.points.length >= 2).map(trendChart);
    page(t('res.title'),
      h('p', {}, h('a', { href: '#/patients/' + id }, t('res.back'))),
      orderBtn ? h('div', { class: 'buttons' }, orderBtn) : null,
      h('div', { id: 'order-outcome' }),
      charts.length ? [h('h2', {}, t('res.trends')), h('div', { class: 'trends' }, charts)] : null,
      rows.length ? table('results', [t('res.col.item'), t('res.col.value'), t('res.col.flag'), t('res.col.time'), t('res.col.where'), t('res.col.mark'),
        t('res.col.here'), t('res.col.valid')], rows) : h('p', {}, t('res.none')));
  }

  // ---------------------------------------------------------------- the order-check dialog
  function answerText(a) {
    const ans = a.answer;
    if (ans.outcome === 'recognised') {
      return t('oc.result', { where: ans.facility_name || '', time: new Date(ans.specimen_time).toLocaleString(), value: ans.value + (ans.unit ? ' ' + ans.unit : ''),
        until: new Date(ans.valid_until).toLocaleString(), mark: ans.mark_label });
    }
    if (ans.outcome === 'unknown_item') return t('oc.unknown_item');
    const why = [...new Set(ans.rejected.flatMap((r) => r.reasons))].map((x) => word('why', x)).join('、');
    return why ? t('oc.why', { why }) : t('oc.no_prior');
  }

  function orderDialog(patientId) {
    const box = h('div', {});
    const picks = catalogue.items.map((i) => {
      const cb = h('input', { type: 'checkbox', name: 'item', value: i.code });
      return h('label', { class: 'check' }, cb, ' ' + i.name + ' ', h('span', { class: 'tag code' }, i.code), ' ', moneyEl(i.price_fen));
    });
    const pickSet = h('fieldset', {}, h('legend', {}, t('oc.pick')), picks);
    box.append(pickSet);
    let answers = null;
    const decisions = [];
    const { dlg, errors } = modal(t('oc.title'), box, t('oc.check'), async () => {
      if (!answers) {
        const items = Array.from(pickSet.querySelectorAll('input:checked')).map((x) => x.value);
        if (!items.length) { errors.show([{ field: '', code: 'results.order_items', message: t('oc.pick_one') }]); return false; }
        const r = await api('POST', '/api/v1/results/order-check', { patient_id: patientId, items });
        answers = r.items;
        renderAnswers(r);
        dlg.querySelector('button[type=submit]').textContent = t('oc.record');
        return false;
      }
      const items = decisions.map((d) => {
        const choice = d.choice ? d.choice() : 'perform';
        const reason = d.reason && choice === 'perform' ? d.reason.value || undefined : undefined;
        return { code: d.code, choice, repeat_reason: reason };
      });
      const r = await api('POST', '/api/v1/results/orders', { patient_id: patientId, items });
      const n = r.items.filter((x) => x.outcome === 'reused').length;
      const msg = t('oc.saved', { n, money: money(r.saved_fen) });
      const out = document.getElementById('order-outcome');
      if (out) out.replaceChildren(alertBox('success', msg));
      announce(msg);
      return true;
    });
    function renderAnswers(r) {
      pickSet.hidden = true;
      const list = h('div', { class: 'answers' });
      r.items.forEach((a, i) => {
        const name = a.item_name || a.ordered_code;
        const ok = a.answer.outcome === 'recognised';
        const row = h('div', { class: 'card answer', 'data-item': a.item_code || a.ordered_code },
          h('h3', {}, name, ' ', h('span', { class: 'tag ' + (ok ? 'green' : '') }, ok ? t('oc.recognised') : t('oc.not_recognised'))),
          h('p', {}, answerText(a)));
        const d = { code: a.ordered_code };
        if (ok) {
          const reuse = h('input', { type: 'radio', name: 'choice-' + i, value: 'reuse', checked: true });
          const perform = h('input', { type: 'radio', name: 'choice-' + i, value: 'perform' });
          const sel = h('select', { name: 'reason-' + i }, h('option', { value: '' }, t('oc.reason_choose')),
            catalogue.repeat_reasons.map((x) => h('option', { value: x.code }, word('reason', x.code))));
          const reasonField = field(t('oc.reason', { item: name }), sel);
          reasonField.hidden = true;
          const sync = () => { reasonField.hidden = !perform.checked; };
          reuse.addEventListener('change', sync); perform.addEventListener('change', sync);
          row.append(h('fieldset', {}, h('legend', {}, t('oc.choice', { item: name })),
            h('label', { class: 'check' }, reuse, ' ' + t('oc.reuse')), h('label', { class: 'check' }, perform, ' ' + t('oc.perform'))), reasonField);
          errors.register('items[' + i + '].repeat_reason', sel);
          errors.register('items[' + i + '].choice', reuse);
          d.choice = () => (perform.checked ? 'perform' : 'reuse');
          d.reason = sel;
        }
        decisions.push(d);
        list.append(row);
      });
      box.append(h('p', {}, t('oc.reusable', { money: money(r.reusable_value_fen) })), list);
    }
  }

  // ---------------------------------------------------------------- savings report
  async function viewSavings(params) {
    const month = chinaToday().slice(0, 7);
    const from = params.get('from') || month.slice(0, 4) + '-01';
    const to = params.get('to') || month;
    const fromIn = h('input', { name: 'from', type: 'month', value: from, placeholder: 'YYYY-MM' });
    const toIn = h('input', { name: 'to', type: 'month', value: to, placeholder: 'YYYY-MM' });
    const summary = h('div', {});
    const errs = fieldErrors(summary);
    const form = h('form', { class: 'card', role: 'search', 'aria-label': t('sav.title'), novalidate: true },
      field(t('sav.from'), fromIn), field(t('sav.to'), toIn), summary, h('button', { type: 'submit', class: 'primary' }, t('sav.show')));
    errs.register('from', fromIn); errs.register('to', toIn);
    const out = h('div', {});
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      location.hash = '#/results-savings?from=' + encodeURIComponent(fromIn.value) + '&to=' + encodeURIComponent(toIn.value);
    });
    page(t('sav.title'), form, out);
    let data;
    try { data = await api('GET', '/api/v1/results/savings?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to)); } catch (e) { errs.show(e); return; }
    if (!data.rows.length) { out.replaceChildren(h('p', {}, t('sav.none'))); return; }
    const rows = data.rows.map((r) => [r.month, r.facility_name || r.facility_id, String(r.reused), moneyEl(r.saved_fen), String(r.repeated),
      Object.entries(r.repeat_reasons || {}).map(([k, n]) => word('reason', k) + ' ' + n).join('；') || '—', String(r.performed)]);
    const byFacility = new Map();
    for (const r of data.rows) byFacility.set(r.facility_name || r.facility_id, (byFacility.get(r.facility_name || r.facility_id) || 0) + r.saved_fen);
    out.replaceChildren(
      h('p', { class: 'total' }, t('sav.total', { n: data.total.reused, money: money(data.total.saved_fen) })),
      barChart(t('sav.chart'), Array.from(byFacility, ([label, value]) => ({ label, value }))),
      table('savings', [t('sav.col.month'), t('sav.col.facility'), t('sav.col.reused'), t('sav.col.saved'), t('sav.col.repeated'), t('sav.col.reasons'),
        t('sav.col.performed')], rows));
  }

  // ---------------------------------------------------------------- for the shell's pages
  /** The patient's results recognisable at the user's facility, as a card (the referral page); null when unreadable. */
  async function recognisableCard(patientId) {
    let data;
    try { data = await api('GET', '/api/v1/patients/' + encodeURIComponent(patientId) + '/results/recognisable'); } catch (e) { return null; }
    const rows = data.results.map((r) => [r.item_name || r.item_code, r.value + (r.unit ? ' ' + r.unit : ''), timeEl(r.specimen_time), r.facility_name || '',
      r.mark_label || '', timeEl(r.valid_until)]);
    return h('section', { class: 'card recognisable', 'aria-labelledby': 'rr-h' }, h('h2', { id: 'rr-h' }, t('rr.title')),
      rows.length ? [table('recognisable', [t('res.col.item'), t('res.col.value'), t('res.col.time'), t('res.col.where'), t('res.col.mark'), t('res.col.valid')], rows),
        h('p', {}, t('rr.total', { money: money(data.reusable_value_fen) }))] : h('p', {}, t('rr.none')),
      h('p', {}, h('a', { href: '#/results/' + patientId }, t('rr.all'))));
  }
  /** A link to the patient's results page (the patient record). */
  function resultsLink(patientId) { return h('a', { href: '#/results/' + patientId, class: 'results-link' }, t('nav.results')); }
  window.tiercare.results = { recognisableCard, resultsLink };

  window.tiercare.define({
    dict: { zh, en },
    pages: [
      // a patient's results are reached from the patient record and the referral page
      { hash: '#/results', key: 'nav.results', nav: false, pattern: RESULTS_RE, allowed: () => hasAny(READERS), view: viewResults },
      { hash: '#/results-savings', key: 'nav.results_savings', before: '#/policies', pattern: SAVINGS_RE, allowed: () => hasAny(REPORTERS), view: viewSavings },
    ],
  });
})();
