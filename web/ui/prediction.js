// taskgate page: the prediction cards, one per task of a predict() result, drawn from the
// shape of each prediction (so any task kind shows): coloured tags per word (`tags`), values
// (`values`), the labels and probability bars (`labels` + `scores`), the label and its bars
// (`label`, `scores` when given), generated text (`text`, and its `beams` with their scores
// when beam search ran), else the prediction's JSON.

import { el, inModelOrder } from './dom.js';

/** The kind of task `name` (from the model summary's tasks, else guessed from the result `p`). */
function taskKind(name, p, tasks) {
  const t = tasks?.find((x) => x.name === name);
  if (t) return t.kind;
  if ('text' in p) return 'generation';
  return 'tags' in p ? 'token_classification' : 'values' in p ? 'regression' : 'labels' in p ? 'multilabel' : 'classification';
}

function bars(scores, best, threshold) {
  return Object.entries(scores).map(([name, p]) =>
    el(
      'div',
      { class: `bar-row${best(name) ? ' top' : ''}`, title: `${name}: ${p}` },
      el('span', { class: 'name' }, name),
      el('span', { class: 'bar' }, el('span', { style: `width:${(Math.max(0, Math.min(1, p)) * 100).toFixed(1)}%` }), threshold ? el('i', { class: 'threshold' }) : null),
      el('span', { class: 'num' }, `${(p * 100).toFixed(1)}%`),
    ),
  );
}

function tagColor(tag) {
  if (tag == null) return '#c6ccd8';
  let h = 0;
  for (const c of tag) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 42%)`;
}

/** Fills `box` with the cards of the parsed predict() JSON `r`; `tasks` is the model summary's. */
export function showPrediction(box, r, tasks) {
  box.replaceChildren();
  for (const [name, p] of inModelOrder(Object.entries(r.predictions), tasks)) {
    const kind = taskKind(name, p, tasks);
    const card = el('div', { class: `task-result${Array.isArray(p.tags) ? ' wide' : ''}` });
    card.append(el('h4', {}, name, el('span', { class: 'kind' }, kind.replaceAll('_', ' '))));
    if (Array.isArray(p.values)) {
      card.append(el('div', { class: 'answer' }, p.values.map((v) => v.toFixed(4)).join(', ')));
    } else if (Array.isArray(p.labels)) {
      card.append(
        el('div', { class: 'answer' }, p.labels.length ? p.labels.join(', ') : '(no label ≥ 0.5)'),
        ...bars(p.scores ?? {}, (n) => p.labels.includes(n), true),
      );
    } else if (typeof p.text === 'string') {
      card.append(el('div', { class: 'answer generated' }, p.text || '(empty)'));
      for (const b of (p.beams ?? []).slice(1)) {
        card.append(el('div', { class: 'beam' }, el('span', { class: 'num' }, b.score.toFixed(3)), ` ${b.text}`));
      }
    } else if (typeof p.label === 'string') {
      card.append(el('div', { class: 'answer' }, p.label), ...bars(p.scores ?? {}, (n) => n === p.label));
    } else if (!Array.isArray(p.tags)) {
      card.append(el('pre', { class: 'answer' }, JSON.stringify(p)));
    } else {
      card.append(
        el(
          'div',
          { class: 'tagged' },
          (p.words ?? r.words).map((w, i) => {
            const tag = p.tags[i];
            return el(
              'span',
              { class: 'w' },
              w,
              el('span', { class: `t${tag == null ? ' none' : ''}`, style: `background:${tagColor(tag)}` }, tag ?? '–'),
            );
          }),
        ),
      );
    }
    box.append(card);
  }
}
