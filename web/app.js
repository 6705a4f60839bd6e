// taskgate in the browser: the page's logic (ES module, no framework, no build step).
// Drives the wasm-bindgen module in ./pkg/ (TaskgateWeb): load a model, predict with gate
// heatmaps, train with live loss curves, download the trained weights.
// State for tests and the console lives in window.taskgateApp.

const $ = (id) => document.getElementById(id);

const app = (window.taskgateApp = {
  ready: null, // Promise: wasm + WebGPU device ready (rejects on failure)
  adapter: null, // parsed adapterInfo()
  modelLoaded: false,
  modelSummary: null, // parsed loadModel() summary
  predictions: 0, // how many predictions have finished (a test waits for it to grow)
  lastPrediction: null, // parsed predict() JSON
  dataInfo: null, // parsed setTrainingData() summary
  history: [], // parsed trainStep() JSON, one per step
  trainingState: 'idle', // 'idle' | 'training' | 'done' | 'error'
  pending: 0, // calls into the wasm module queued or running
  errors: [], // every error message shown
});

let tg = null; // the TaskgateWeb instance
let stopRequested = false;

// ---------- status and errors ----------

function setStatus(text, kind = 'busy') {
  const el = $('status');
  el.textContent = text;
  el.className = `status ${kind}`;
}

function report(context, e) {
  const message = `${context}: ${e?.message ?? e}`;
  app.errors.push(message);
  console.error(message, e);
  setStatus(message, 'error');
}

// The wasm object is not re-entrant: run every call into it one after another.
let queue = Promise.resolve();
function serial(fn) {
  app.pending++;
  const run = queue.then(fn).finally(() => app.pending--);
  queue = run.catch(() => {});
  return run;
}

// ---------- small DOM helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) node.append(c instanceof Node ? c : String(c));
  return node;
}

function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

const fmtBytes = (n) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
const fmtCount = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));
const fmtNum = (x) => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(1) : Math.abs(x) >= 0.01 ? x.toFixed(4) : x.toExponential(2));

// ---------- start-up ----------

async function start() {
  setStatus('Loading the wasm module…');
  let mod;
  try {
    mod = await import('./pkg/taskgate_web.js');
  } catch (e) {
    throw new Error(`could not load ./pkg/taskgate_web.js (build it with web/build.sh): ${e.message}`);
  }
  await mod.default();
  setStatus('Opening a WebGPU device…');
  if (!navigator.gpu) {
    throw new Error(
      'WebGPU not available in this browser (navigator.gpu is missing): use a recent Chrome or Edge, ' +
        'or a browser with WebGPU enabled, over http://localhost or https',
    );
  }
  try {
    tg = await mod.TaskgateWeb.create();
  } catch (e) {
    throw new Error(`WebGPU not available: ${e?.message ?? e}`);
  }
  app.adapter = JSON.parse(tg.adapterInfo());
  showAdapter(app.adapter);
  setBusy(false);
}

function showAdapter(info) {
  const a = info.adapter ?? {};
  const lim = info.limits ?? {};
  const sg = info.subgroup_size ?? [];
  // the features a compute workload cares about stand out; the rest are listed plainly
  const KEY = /^(subgroups?|shader[-_]f16|timestamp[-_]query)$/i;
  const list = (names) =>
    el('div', { class: 'features' }, (names ?? []).flatMap((f, i) => [i ? ', ' : '', KEY.test(f) ? el('b', {}, f) : f]));
  const box = $('adapter');
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

// ---------- model ----------

const MODEL_FILES = ['taskgate.toml', 'model.safetensors', 'tokenizer.json'];

async function fetchBytes(url, label) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body || !total) return new Uint8Array(await res.arrayBuffer());
  const out = new Uint8Array(total);
  const reader = res.body.getReader();
  let got = 0;
  let lastShown = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.length > total) throw new Error(`${url}: more bytes than its content-length`);
    out.set(value, got);
    got += value.length;
    if (got - lastShown > 4 * 2 ** 20) {
      lastShown = got;
      setStatus(`Fetching ${label}: ${fmtBytes(got)} of ${fmtBytes(total)}…`);
    }
  }
  return got === total ? out : out.subarray(0, got);
}

async function loadFromServer() {
  try {
    setStatus('Fetching the model from ./model/…');
    const [toml, weights, tokenizer] = await Promise.all(MODEL_FILES.map((f) => fetchBytes(`./model/${f}`, f)));
    await loadModel(new TextDecoder().decode(toml), weights, tokenizer, './model/');
  } catch (e) {
    report('loading the model', e);
  }
}

async function loadFromFiles(files) {
  try {
    const byName = new Map(files.map((f) => [f.name, f]));
    const pick = (name, ext) => byName.get(name) ?? files.find((f) => f.name.endsWith(ext));
    const toml = pick('taskgate.toml', '.toml');
    const weights = pick('model.safetensors', '.safetensors');
    const tokenizer = pick('tokenizer.json', 'tokenizer.json');
    const missing = [[toml, 'taskgate.toml'], [weights, 'model.safetensors'], [tokenizer, 'tokenizer.json']]
      .filter(([f]) => !f)
      .map(([, n]) => n);
    if (missing.length) throw new Error(`missing ${missing.join(', ')} (got ${files.map((f) => f.name).join(', ') || 'nothing'})`);
    setStatus('Reading the model files…');
    await loadModel(
      await toml.text(),
      new Uint8Array(await weights.arrayBuffer()),
      new Uint8Array(await tokenizer.arrayBuffer()),
      'the dropped files',
    );
  } catch (e) {
    report('loading the model', e);
  }
}

async function loadModel(configToml, weights, tokenizer, from) {
  if (app.trainingState === 'training') throw new Error('wait for training to finish');
  setStatus(`Loading the model (${fmtBytes(weights.length)} of weights) onto the GPU…`);
  setBusy(true);
  try {
    const summary = JSON.parse(await serial(() => tg.loadModel(configToml, weights, tokenizer)));
    app.modelSummary = summary;
    app.modelLoaded = true;
    app.history = [];
    app.trainingState = 'idle';
    app.dataInfo = null; // training data is tokenized for one model: choose it again
    $('data-summary').textContent = 'No training data yet.';
    $('download').disabled = true;
    $('progress').textContent = 'Not trained yet.';
    drawCurves();
    showSummary(summary, from);
    setStatus(`Model loaded from ${from}: ${summary.tasks?.length ?? '?'} tasks, ${fmtCount(summary.parameters ?? 0)} parameters.`, 'ok');
  } finally {
    setBusy(false);
  }
  await predict();
}

function showSummary(s, from) {
  const enc = s.encoder ?? {};
  const labels = (t) => {
    if (!t.labels) return t.kind === 'regression' ? `${t.outputs} value${t.outputs === 1 ? '' : 's'}` : '—';
    const shown = t.labels.slice(0, 12).join(', ');
    return t.labels.length > 12 ? `${shown}, … (${t.labels.length})` : shown;
  };
  const table = el(
    'table',
    { class: 'tasks' },
    el('tr', {}, ['task', 'kind', 'labels / outputs', 'gate'].map((h) => el('th', {}, h))),
    (s.tasks ?? []).map((t) => el('tr', {}, el('td', {}, el('b', {}, t.name)), el('td', {}, t.kind), el('td', {}, labels(t)), el('td', {}, t.gate))),
  );
  const box = $('model-summary');
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

function setBusy(busy) {
  const training = app.trainingState === 'training';
  $('load-server').disabled = busy || training || !tg;
  $('model-files').disabled = busy || training;
  $('predict').disabled = busy || !app.modelLoaded;
  $('train').disabled = busy || training || !app.modelLoaded || !app.dataInfo;
  $('use-demo-data').disabled = busy || training || !app.modelLoaded;
  $('train-file').disabled = busy || training || !app.modelLoaded;
}

// ---------- predict ----------

async function predict() {
  const text = $('text').value;
  if (!app.modelLoaded) return setStatus('Load a model first.', 'error');
  try {
    const result = JSON.parse(await serial(() => tg.predict(text)));
    app.lastPrediction = result;
    app.predictions++;
    showPrediction(result);
    if (app.trainingState !== 'training') setStatus(`Predicted ${result.tokens.length} tokens.`, 'ok');
  } catch (e) {
    report('predict', e);
  }
}

function taskKind(name, p) {
  const t = app.modelSummary?.tasks?.find((x) => x.name === name);
  if (t) return t.kind;
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

function showPrediction(r) {
  const box = $('results');
  box.replaceChildren();
  const tagNames = [];
  for (const [name, p] of Object.entries(r.predictions)) {
    const kind = taskKind(name, p);
    const card = el('div', { class: `task-result${kind === 'token_classification' ? ' wide' : ''}` });
    card.append(el('h4', {}, name, el('span', { class: 'kind' }, kind.replace('_', ' '))));
    if (kind === 'classification') {
      card.append(el('div', { class: 'answer' }, p.label), ...bars(p.scores, (n) => n === p.label));
    } else if (kind === 'multilabel') {
      card.append(
        el('div', { class: 'answer' }, p.labels.length ? p.labels.join(', ') : '(no label ≥ 0.5)'),
        ...bars(p.scores, (n) => p.labels.includes(n), true),
      );
    } else if (kind === 'regression') {
      card.append(el('div', { class: 'answer' }, p.values.map((v) => v.toFixed(4)).join(', ')));
    } else {
      for (const t of p.tags) if (t != null && !tagNames.includes(t)) tagNames.push(t);
      card.append(
        el(
          'div',
          { class: 'tagged' },
          r.words.map((w, i) => {
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
  showHeatmap(r);
}

function tagColor(tag) {
  if (tag == null) return '#c6ccd8';
  let h = 0;
  for (const c of tag) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 42%)`;
}

// ---------- gate heatmap ----------

// viridis, sampled at 0, 0.25, 0.5, 0.75, 1
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

function gateColor(g) {
  const x = Math.max(0, Math.min(1, g)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const [r, gg, b] = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
  return { css: `rgb(${r},${gg},${b})`, dark: 0.299 * r + 0.587 * gg + 0.114 * b < 140 };
}

function showHeatmap(r) {
  const box = $('heatmap');
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
    const mode = app.modelSummary?.tasks?.find((t) => t.name === task)?.gate;
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

// ---------- training data ----------

function useTrainingData(text, from) {
  try {
    app.dataInfo = null;
    const info = JSON.parse(tg.setTrainingData(text, from)); // `from` names the file in errors
    app.dataInfo = { ...info, from };
    const per = Object.entries(info.per_task ?? {})
      .map(([t, n]) => `${t} ${n}`)
      .join(', ');
    $('data-summary').textContent = `${info.examples} examples from ${from} (${per}).`;
    setStatus(`Training data ready: ${info.examples} examples.`, 'ok');
  } catch (e) {
    $('data-summary').textContent = 'No training data.';
    report(`training data (${from})`, e);
  }
  setBusy(false);
}

async function useDemoData() {
  try {
    const res = await fetch('./demo/train.jsonl', { cache: 'no-store' });
    if (res.status === 404) throw new Error('no demo data is served here (start web/serve.mjs with --data FILE.jsonl)');
    if (!res.ok) throw new Error(`./demo/train.jsonl: HTTP ${res.status}`);
    await serial(async () => useTrainingData(await res.text(), './demo/train.jsonl'));
  } catch (e) {
    report('demo data', e);
  }
}

// ---------- training ----------

function readOptions() {
  const num = (id) => Number($(id).value);
  const opts = { steps: num('steps'), lr: num('lr'), batch_size: num('batch-size'), warmup: 0.1, seed: 1 };
  if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new Error('steps must be a whole number ≥ 1');
  if (!(opts.lr > 0)) throw new Error('the learning rate must be > 0');
  if (!Number.isInteger(opts.batch_size) || opts.batch_size < 1) throw new Error('batch size must be a whole number ≥ 1');
  return opts;
}

async function train() {
  if (app.trainingState === 'training') return;
  let opts;
  try {
    opts = readOptions();
  } catch (e) {
    return report('training options', e);
  }
  app.history = [];
  app.trainingState = 'training';
  stopRequested = false;
  $('download').disabled = true;
  $('stop').disabled = false;
  setBusy(false);
  drawCurves();
  const t0 = performance.now();
  try {
    await serial(() => tg.startTraining(JSON.stringify(opts)));
    setStatus(`Training ${opts.steps} steps…`);
    for (;;) {
      const r = JSON.parse(await serial(() => tg.trainStep()));
      app.history.push(r);
      showProgress(r, t0);
      scheduleDraw();
      if (r.step >= r.steps || stopRequested) break;
      await new Promise((res) => setTimeout(res, 0)); // let the page breathe between steps
    }
    app.trainingState = 'done';
    const last = app.history.at(-1);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    setStatus(
      stopRequested
        ? `Training stopped at step ${last?.step ?? 0} (${secs} s). The model now has those weights.`
        : `Trained ${last.step} steps in ${secs} s; final loss ${fmtNum(last.loss)}.`,
      'ok',
    );
    $('download').disabled = false;
  } catch (e) {
    app.trainingState = 'error';
    report('training', e);
  } finally {
    $('stop').disabled = true;
    setBusy(false);
    drawCurves();
  }
}

function showProgress(r, t0) {
  const secs = (performance.now() - t0) / 1000;
  const per = Object.entries(r.task_losses ?? {})
    .map(([t, v]) => `${t} ${fmtNum(v)}`)
    .join(' · ');
  $('progress').textContent =
    `step ${r.step}/${r.steps} · loss ${fmtNum(Number(r.loss))} (${per}) · lr ${Number(r.lr).toExponential(2)} · ` +
    `grad norm ${fmtNum(Number(r.grad_norm))}${r.skipped ? ' · SKIPPED' : ''} · ${(r.step / secs).toFixed(2)} steps/s`;
  $('progress').className = 'progress-line';
  $('progress-bar').value = r.step / r.steps;
}

async function download() {
  try {
    setStatus('Reading the weights back from the GPU…');
    const bytes = await serial(() => tg.exportSafetensors());
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = el('a', { href: url, download: 'model.safetensors', style: 'display:none' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setStatus(`Downloaded model.safetensors (${fmtBytes(bytes.length)}).`, 'ok');
  } catch (e) {
    report('download', e);
  }
}

// ---------- loss curves ----------

const COLORS = ['#3456c7', '#d9480f', '#2b8a3e', '#ae3ec9', '#c92a2a', '#1098ad', '#e67700', '#5c940d'];
let drawQueued = false;

function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawCurves();
  });
}

/** Points per series: each task's losses plus the overall loss, x = step. */
function series() {
  const tasks = new Map();
  for (const name of app.modelSummary?.tasks?.map((t) => t.name) ?? []) tasks.set(name, []);
  const total = [];
  for (const r of app.history) {
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

function drawCurves() {
  const canvas = $('curves');
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
  const all = series();
  const pad = { l: 56, r: 16, t: 34, b: 40 };
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
  const steps = app.history.at(-1)?.steps ?? 1;
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

  // legend, top right
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const labels = all.map((s) => `${s.name}  ${s.last != null ? fmtNum(s.last) : ''}`);
  const lw = Math.max(...labels.map((l) => ctx.measureText(l).width)) + 34;
  const lx = pad.l + pw - lw - 6;
  ctx.fillStyle = 'rgba(255,255,255,0.9)';
  ctx.strokeStyle = '#d9dde5';
  ctx.fillRect(lx, pad.t + 6, lw, all.length * 18 + 8);
  ctx.strokeRect(lx + 0.5, pad.t + 6.5, lw, all.length * 18 + 8);
  all.forEach((s, i) => {
    const y = pad.t + 18 + i * 18;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [5, 4] : []);
    ctx.beginPath();
    ctx.moveTo(lx + 8, y);
    ctx.lineTo(lx + 24, y);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#1d2330';
    ctx.fillText(labels[i], lx + 30, y);
  });
}

// ---------- drop zones ----------

/** Files of a drop, one level into dropped folders. */
async function droppedFiles(dt) {
  const entries = [...(dt.items ?? [])].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dt.files];
  const fileOf = (entry) => new Promise((res, rej) => entry.file(res, rej));
  const out = [];
  for (const entry of entries) {
    if (entry.isFile) out.push(await fileOf(entry));
    else if (entry.isDirectory) {
      const children = await new Promise((res, rej) => entry.createReader().readEntries(res, rej));
      for (const c of children) if (c.isFile) out.push(await fileOf(c));
    }
  }
  return out;
}

function dropZone(zone, onFiles) {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    try {
      onFiles(await droppedFiles(e.dataTransfer));
    } catch (err) {
      report('reading the dropped files', err);
    }
  });
}

// ---------- wiring ----------

function wire() {
  $('load-server').addEventListener('click', loadFromServer);
  $('model-files').addEventListener('change', (e) => {
    loadFromFiles([...e.target.files]);
    e.target.value = '';
  });
  dropZone($('model-drop'), loadFromFiles);
  $('predict').addEventListener('click', predict);
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !$('predict').disabled) predict();
  });
  const trainFile = async (file) => {
    if (!file) return;
    const text = await file.text();
    await serial(async () => useTrainingData(text, file.name));
  };
  $('train-file').addEventListener('change', (e) => {
    trainFile(e.target.files[0]).catch((err) => report('training data', err));
    e.target.value = '';
  });
  dropZone($('train-drop'), (files) => trainFile(files[0]));
  $('use-demo-data').addEventListener('click', useDemoData);
  $('train').addEventListener('click', train);
  $('stop').addEventListener('click', () => {
    stopRequested = true;
    setStatus('Stopping after this step…');
  });
  $('download').addEventListener('click', download);
  window.addEventListener('resize', scheduleDraw);
  drawCurves();
}

async function autoLoad() {
  let res;
  try {
    res = await fetch('./model/taskgate.toml', { method: 'HEAD', cache: 'no-store' });
  } catch {
    res = null;
  }
  if (res?.ok) return loadFromServer();
  setStatus(
    "Ready. No model is served at ./model/: drop a model directory's three files " +
      '(taskgate.toml, model.safetensors, tokenizer.json) above.',
    'ok',
  );
}

wire();
app.ready = start();
app.ready.then(autoLoad, (e) => {
  $('adapter').textContent = 'No WebGPU device: see the message above.';
  report('start-up', e);
});
