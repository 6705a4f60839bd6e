// taskgate page: the training loss curves on a canvas: one series per task plus the overall
// loss (raw points and a smoothed line), ticked axes, a legend; frameScheduler coalesces redraws.

import { fmtNum } from './dom.js';

const COLORS = ['#3456c7', '#d9480f', '#2b8a3e', '#ae3ec9', '#c92a2a', '#1098ad', '#e67700', '#5c940d'];

/** Returns a function that runs `draw` once at the next animation frame, however often called. */
export function frameScheduler(draw) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };
}

/** Points per series: each task's losses plus the overall loss, x = step. */
function series(history, taskNames) {
  const tasks = new Map();
  for (const name of taskNames ?? []) tasks.set(name, []);
  const total = [];
  for (const r of history) {
    total.push([r.step, r.loss]);
    for (const [t, v] of Object.entries(r.task_losses ?? {})) {
      if (!tasks.has(t)) tasks.set(t, []);
      tasks.get(t).push([r.step, v]);
    }
  }
  const out = [...tasks].filter(([, pts]) => pts.length).map(([name, pts], i) => ({ name, pts, color: COLORS[i % COLORS.length] }));
  if (total.length) out.push({ name: 'overall', pts: total, color: '#555', dashed: true });
  return out;
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
  return ticks;
}

/**
 * Draws the loss curves of `history` (parsed trainStep() results) on `canvas`, one series per
 * task (`taskNames` first, in that order) plus the overall loss; a hint when there is nothing yet.
 */
export function drawCurves(canvas, history, taskNames) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth;
  const H = canvas.clientHeight;
  if (!W || !H) return;
  canvas.width = Math.round(W * dpr);
  canvas.height = Math.round(H * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  ctx.font = '12px system-ui, sans-serif';
  const all = series(history, taskNames);
  // The legend sits beside the plot (below it on narrow canvases), never over a curve.
  const legendRows = all.length;
  const pad = { l: 56, r: 16, t: 34, b: 40 };
  let legendWidth = 0;
  if (all.length) {
    ctx.font = '12px system-ui, sans-serif';
    legendWidth = Math.max(...all.map((s) => ctx.measureText(`${s.name}  0.000`).width)) + 34;
  }
  const beside = W - pad.l - pad.r - legendWidth - 12 >= 240;
  if (all.length && beside) pad.r += legendWidth + 12;
  else if (all.length) pad.b += 12 + Math.ceil(legendRows / 2) * 18;
  const pw = W - pad.l - pad.r;
  const ph = H - pad.t - pad.b;

  ctx.fillStyle = '#1d2330';
  ctx.font = '600 13px system-ui, sans-serif';
  ctx.fillText('training loss per task', pad.l, 20);
  ctx.font = '12px system-ui, sans-serif';
  if (!all.length) {
    ctx.fillStyle = '#667085';
    ctx.fillText('Train to see the loss curves here.', pad.l + 10, pad.t + ph / 2);
    return;
  }
  const steps = history.at(-1)?.steps ?? 1;
  const ys = all.flatMap((s) => s.pts.map((p) => p[1])).filter(Number.isFinite);
  const yMax = Math.max(...ys, 1e-6) * 1.05;
  const yMin = Math.min(0, ...ys);
  const X = (x) => pad.l + ((x - 1) / Math.max(1, steps - 1)) * pw;
  const Y = (y) => pad.t + (1 - (y - yMin) / (yMax - yMin)) * ph;

  // grid, axes and tick labels
  ctx.strokeStyle = '#eceef2';
  ctx.fillStyle = '#667085';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of niceTicks(yMin, yMax, 6)) {
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(t) + 0.5);
    ctx.lineTo(pad.l + pw, Y(t) + 0.5);
    ctx.stroke();
    ctx.fillText(String(t), pad.l - 6, Y(t));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const t of niceTicks(1, steps, 8).filter((t) => t >= 1)) {
    ctx.beginPath();
    ctx.moveTo(X(t) + 0.5, pad.t);
    ctx.lineTo(X(t) + 0.5, pad.t + ph);
    ctx.stroke();
    ctx.fillText(String(t), X(t), pad.t + ph + 5);
  }
  ctx.strokeStyle = '#8a93a6';
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, pad.t + ph);
  ctx.lineTo(pad.l + pw, pad.t + ph);
  ctx.stroke();
  ctx.fillStyle = '#1d2330';
  ctx.fillText('step', pad.l + pw / 2, pad.t + ph + 22);
  ctx.save();
  ctx.translate(14, pad.t + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('loss', 0, -6);
  ctx.restore();

  // raw points, then a smoothed line (exponential moving average) per series
  for (const s of all) {
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 0.35;
    for (const [x, y] of s.pts) if (Number.isFinite(y)) ctx.fillRect(X(x) - 1.5, Y(y) - 1.5, 3, 3);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.dashed ? 1.5 : 2;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    let ema = null;
    const alpha = Math.min(0.5, 8 / s.pts.length + 0.05);
    s.pts.forEach(([x, y], i) => {
      if (!Number.isFinite(y)) return;
      ema = ema == null ? y : ema + alpha * (y - ema);
      if (i === 0) ctx.moveTo(X(x), Y(ema));
      else ctx.lineTo(X(x), Y(ema));
    });
    ctx.stroke();
    ctx.setLineDash([]);
    s.last = ema;
  }

  // legend: beside the plot, or in two columns under it; each series with its last
  // smoothed value
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const labels = all.map((s) => `${s.name}  ${s.last != null ? fmtNum(s.last) : ''}`);
  all.forEach((s, i) => {
    const x = beside ? pad.l + pw + 12 : pad.l + (i % 2) * (pw / 2);
    const y = beside ? pad.t + 10 + i * 18 : pad.t + ph + 44 + Math.floor(i / 2) * 18;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 16, y);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#1d2330';
    ctx.fillText(labels[i], x + 22, y);
  });
}
