// taskgate in the browser: the page's driver (ES modules, no framework, no build step).
// Drives the wasm-bindgen module in ./pkg/ (TaskgateWeb) through a serial call queue: start-up,
// load a model, predict, train, download the trained weights; wires the controls. The views
// live in ui/. State for tests and the console lives in window.taskgateApp.

import { $, el, fmtBytes, fmtCount, fmtNum, setStatus } from './ui/dom.js';
import { showAdapter, showSummary } from './ui/summary.js';
import { showPrediction } from './ui/prediction.js';
import { showHeatmap } from './ui/heatmap.js';
import { drawCurves as drawCurvesOn, frameScheduler } from './ui/curves.js';
import { dropZone } from './ui/drop.js';

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

// ---------- errors and the call queue ----------

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
  showAdapter($('adapter'), app.adapter);
  setBusy(false);
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
    showSummary($('model-summary'), summary, from);
    setStatus(`Model loaded from ${from}: ${summary.tasks?.length ?? '?'} tasks, ${fmtCount(summary.parameters ?? 0)} parameters.`, 'ok');
  } finally {
    setBusy(false);
  }
  await predict();
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
    showPrediction($('results'), result, app.modelSummary?.tasks);
    showHeatmap($('heatmap'), result, app.modelSummary?.tasks);
    if (app.trainingState !== 'training') setStatus(`Predicted ${result.tokens.length} tokens.`, 'ok');
  } catch (e) {
    report('predict', e);
  }
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

function drawCurves() {
  drawCurvesOn($('curves'), app.history, app.modelSummary?.tasks?.map((t) => t.name));
}
const scheduleDraw = frameScheduler(drawCurves);

// ---------- wiring ----------

const onDropError = (err) => report('reading the dropped files', err);

function wire() {
  $('load-server').addEventListener('click', loadFromServer);
  $('model-files').addEventListener('change', (e) => {
    loadFromFiles([...e.target.files]);
    e.target.value = '';
  });
  dropZone($('model-drop'), loadFromFiles, onDropError);
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
  dropZone($('train-drop'), (files) => trainFile(files[0]), onDropError);
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
