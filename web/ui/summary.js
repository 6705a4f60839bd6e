// taskgate page: the two information panels: the WebGPU adapter (name, backend, limits,
// features) and the loaded model's summary (encoder, parameter count, one table row per task).

import { el, fmtBytes, fmtCount, kv } from './dom.js';

/** Fills `box` with the parsed adapterInfo() JSON `info`. */
export function showAdapter(box, info) {
  const a = info.adapter ?? {};
  const lim = info.limits ?? {};
  const sg = info.subgroup_size ?? [];
  // the features a compute workload cares about stand out; the rest are listed plainly
  const KEY = /^(subgroups?|shader[-_]f16|timestamp[-_]query)$/i;
  const list = (names) =>
    el('div', { class: 'features' }, (names ?? []).flatMap((f, i) => [i ? ', ' : '', KEY.test(f) ? el('b', {}, f) : f]));
  box.className = '';
  box.replaceChildren(
    kv([
      ['name', a.name || '(unnamed)'],
      ['backend', a.backend ?? '?'],
      ['device type', a.device_type ?? '?'],
      ['driver', [a.driver, a.driver_info].filter(Boolean).join(' ') || '—'],
      ['max storage binding', lim.max_storage_buffer_binding_size != null ? fmtBytes(lim.max_storage_buffer_binding_size) : '?'],
      ['max buffer', lim.max_buffer_size != null ? fmtBytes(lim.max_buffer_size) : '?'],
      ['workgroup storage', lim.max_compute_workgroup_storage_size != null ? fmtBytes(lim.max_compute_workgroup_storage_size) : '?'],
      ['subgroup sizes', sg.length ? `${sg[0]}–${sg[1]}` : '?'],
    ]),
    el('h3', {}, `features (${info.features?.length ?? 0})`),
    list(info.features),
    ...(info.missing_features?.length ? [el('h3', {}, 'missing features'), el('div', { class: 'missing' }, list(info.missing_features))] : []),
  );
}

/** Fills `box` with the parsed loadModel() summary `s` of a model loaded from `from`. */
export function showSummary(box, s, from) {
  const enc = s.encoder ?? {};
  const labels = (t) => {
    if (t.kind === 'generation') return 'text';
    if (!t.labels) return t.outputs != null ? `${t.outputs} value${t.outputs === 1 ? '' : 's'}` : '—';
    const shown = t.labels.slice(0, 12).join(', ');
    return t.labels.length > 12 ? `${shown}, … (${t.labels.length})` : shown;
  };
  const table = el(
    'table',
    { class: 'tasks' },
    el('tr', {}, ['task', 'kind', 'labels / outputs', 'gate'].map((h) => el('th', {}, h))),
    (s.tasks ?? []).map((t) => el('tr', {}, el('td', {}, el('b', {}, t.name)), el('td', {}, t.kind), el('td', {}, labels(t)), el('td', {}, t.gate))),
  );
  box.className = '';
  box.replaceChildren(
    kv([
      ['from', from],
      ['encoder', `${enc.layers} layers, hidden ${enc.hidden}, ${enc.heads} heads, vocabulary ${enc.vocab_size}, max length ${enc.max_length}`],
      ['parameters', s.parameters != null ? `${fmtCount(s.parameters)} (${Number(s.parameters).toLocaleString('en')})` : '?'],
    ]),
    table,
  );
}
