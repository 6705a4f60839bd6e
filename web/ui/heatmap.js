// taskgate page: the gate heatmap, an HTML table of tasks × tokens coloured by each gate value
// (viridis). Gates of one task often differ by a few hundredths, so each row's colours span
// that row's own range (shown beside the task; numbers in the cells and tooltips give the
// values); a task without a gate gets a row saying so. A colour legend sits below.

import { el, inModelOrder } from './dom.js';

// viridis, sampled at 0, 0.25, 0.5, 0.75, 1
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** The colour of x (clamped to 0..1) on the scale, and whether text on it should be white. */
function scaleColor(x) {
  const at = Math.max(0, Math.min(1, x)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(at));
  const f = at - i;
  const [r, g, b] = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
  return { css: `rgb(${r},${g},${b})`, dark: 0.299 * r + 0.587 * g + 0.114 * b < 140 };
}

/** The range a row's colours span: its lowest to highest gate, at least 0.02 wide, in 0..1. */
function rowRange(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 0.02) {
    const mid = (lo + hi) / 2;
    lo = Math.max(0, mid - 0.01);
    hi = Math.min(1, lo + 0.02);
    lo = Math.min(lo, hi - 0.02);
  }
  return [lo, hi];
}

const fmt = (g) => g.toFixed(2).replace(/^0\./, '.').replace(/^1\.00$/, '1');

/** Fills `box` with the gates of the parsed predict() JSON `r`; `tasks` is the model summary's. */
export function showHeatmap(box, r, tasks) {
  const rows = inModelOrder(Object.entries(r.gates ?? {}), tasks);
  const ungated = (tasks ?? []).filter((t) => t.gate === 'none' && !(t.name in (r.gates ?? {})));
  if (!rows.length) {
    box.className = 'heatmap muted';
    box.textContent = 'No task of this model has a gate: every head reads the encoder output as it is.';
    return;
  }
  box.className = 'heatmap';
  const tokens = rows[0][1].map((x) => x.token);
  // shrink the cells of long inputs so the whole row fits; tiny cells drop their numbers
  const cell = Math.max(12, Math.min(28, Math.floor((box.clientWidth - 250) / tokens.length) - 1));
  const numbers = cell >= 24;
  const head = el('tr', {}, el('th', {}), el('th', {}), tokens.map((t, i) => el('th', { class: 'tok', title: `token ${i}: ${t}` }, el('div', {}, t))));
  const body = rows.map(([task, gates]) => {
    const mode = tasks?.find((t) => t.name === task)?.gate;
    const [lo, hi] = rowRange(gates.map((g) => g.gate));
    return el(
      'tr',
      {},
      el('th', { class: 'task' }, task, mode ? el('span', { class: 'muted small' }, ` (${mode})`) : null),
      el('th', { class: 'range', title: `the colours of this row span ${lo.toFixed(3)}–${hi.toFixed(3)}` }, `${fmt(lo)}–${fmt(hi)}`),
      gates.map(({ token, gate }, i) => {
        const c = scaleColor((gate - lo) / (hi - lo));
        return el(
          'td',
          {
            style: `background:${c.css};color:${c.dark ? '#fff' : '#111'};width:${cell}px;min-width:${cell}px`,
            title: `${task} · ${token} (#${i}): gate ${gate.toFixed(4)}`,
          },
          numbers ? fmt(gate) : '',
        );
      }),
    );
  });
  const none = ungated.map((t) =>
    el(
      'tr',
      { class: 'ungated' },
      el('th', { class: 'task' }, t.name, el('span', { class: 'muted small' }, ' (none)')),
      el('th', {}),
      el('td', { colspan: tokens.length, class: 'muted small' }, 'no gate: the head reads every token as the encoder gives it'),
    ),
  );
  const stops = VIRIDIS.map((c, i) => `rgb(${c}) ${(i / (VIRIDIS.length - 1)) * 100}%`).join(',');
  box.replaceChildren(
    el('table', { class: `gates${numbers ? '' : ' dense'}` }, head, body, none),
    el(
      'div',
      { class: 'legend' },
      'each row: its lowest gate',
      el('span', { class: 'scale', style: `background:linear-gradient(to right,${stops})` }),
      'its highest',
      el('span', {}, ' — a gate near 0 closes a token to the task, near 1 opens it; the cells give the values'),
    ),
  );
}
