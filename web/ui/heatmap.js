// taskgate page: the gate heatmap, an HTML table of tasks × tokens coloured by each gate value
// (viridis scale, 0 closed … 1 open), with a colour legend below.

import { el } from './dom.js';

// viridis, sampled at 0, 0.25, 0.5, 0.75, 1
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** The colour of gate value g (clamped to 0..1), and whether text on it should be white. */
function gateColor(g) {
  const x = Math.max(0, Math.min(1, g)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const [r, gg, b] = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
  return { css: `rgb(${r},${gg},${b})`, dark: 0.299 * r + 0.587 * gg + 0.114 * b < 140 };
}

/** Fills `box` with the gates of the parsed predict() JSON `r`; `tasks` is the model summary's. */
export function showHeatmap(box, r, tasks) {
  const rows = Object.entries(r.gates ?? {});
  if (!rows.length) {
    box.className = 'heatmap muted';
    box.textContent = 'No task of this model has a gate.';
    return;
  }
  box.className = 'heatmap';
  const tokens = rows[0][1].map((x) => x.token);
  // shrink the cells of long inputs so the whole row fits; tiny cells drop their numbers
  const cell = Math.max(12, Math.min(28, Math.floor((box.clientWidth - 190) / tokens.length) - 1));
  const numbers = cell >= 24;
  const head = el('tr', {}, el('th', {}), tokens.map((t, i) => el('th', { class: 'tok', title: `token ${i}: ${t}` }, el('div', {}, t))));
  const body = rows.map(([task, gates]) => {
    const mode = tasks?.find((t) => t.name === task)?.gate;
    return el(
      'tr',
      {},
      el('th', { class: 'task' }, task, mode ? el('span', { class: 'muted small' }, ` (${mode})`) : null),
      gates.map(({ token, gate }, i) => {
        const c = gateColor(gate);
        return el(
          'td',
          {
            style: `background:${c.css};color:${c.dark ? '#fff' : '#111'};width:${cell}px;min-width:${cell}px`,
            title: `${task} · ${token} (#${i}): gate ${gate.toFixed(4)}`,
          },
          numbers ? gate.toFixed(2).replace(/^0\./, '.').replace(/^1\.00$/, '1') : '',
        );
      }),
    );
  });
  const stops = VIRIDIS.map((c, i) => `rgb(${c}) ${(i / (VIRIDIS.length - 1)) * 100}%`).join(',');
  box.replaceChildren(
    el('table', { class: `gates${numbers ? '' : ' dense'}` }, head, body),
    el(
      'div',
      { class: 'legend' },
      'gate 0',
      el('span', { class: 'scale', style: `background:linear-gradient(to right,${stops})` }),
      '1',
      el('span', {}, ' — 0 closed (the task ignores the token), 1 open'),
    ),
  );
}
