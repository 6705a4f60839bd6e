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

let tg = null; // the TaskgateWeb instance, set once start-up has finished
let startupError = null; // why start-up failed, once it has
let stopRequested = false;
const MAX_BATCH_SIZE = 4096; // the Rust side rejects larger batches too

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

/** Lets the browser paint (the status line) before a synchronous wasm call blocks the thread.
 *  requestAnimationFrame stalls in a background tab, so a timer bounds the wait. */
function nextPaint() {
  return new Promise((resolve) => {
    requestAnimationFrame(() => setTimeout(resolve, 0));
    setTimeout(resolve, 100);
  });
}

/** Throws unless start-up has finished and the WebGPU device is usable. */
function requireDevice() {
  if (startupError) throw new Error(`the WebGPU device is not ready: start-up failed (${startupError})`);
  if (!tg) throw new Error('the WebGPU device is not ready: start-up has not finished yet, try again in a moment');
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
  let created;
  try {
    created = await mod.TaskgateWeb.create();
  } catch (e) {
    throw new Error(`WebGPU not available: ${e?.message ?? e}`);
  }
  app.adapter = JSON.parse(created.adapterInfo());
  await nameAdapter(app.adapter);
  showAdapter($('adapter'), app.adapter);
  tg = created; // only now may the controls call into the wasm
  setBusy(false);
}

/**
 * Browsers give wgpu no adapter name; WebGPU's own GPUAdapterInfo has a vendor, an
 * architecture and sometimes a description. Fills `info.adapter.name` from those when empty.
 */
async function nameAdapter(info) {
  const a = info.adapter ?? (info.adapter = {});
  if (a.name) return;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    const gi = adapter?.info ?? (await adapter?.requestAdapterInfo?.());
    const parts = [gi?.description, [gi?.vendor, gi?.architecture, gi?.device].filter(Boolean).join(' ')];
    a.name = parts.find((p) => p && p.trim()) ?? '';
  } catch {
    // keep it empty: the panel says the browser does not name it
  }
  if (!a.name) a.name = '(not named by the browser)';
}

// ---------- model ----------

const MODEL_FILES = ['taskgate.toml', 'model.safetensors', 'tokenizer.json'];

async function fetchBytes(url, label) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  // A compressed response's content-length counts the encoded bytes, not the decoded ones the
  // body yields: without a trustworthy length there is no progress to show.
  if (!res.body || !total || res.headers.get('content-encoding')) return new Uint8Array(await res.arrayBuffer());
  let out = new Uint8Array(total);
  const reader = res.body.getReader();
  let got = 0;
  let lastShown = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.length > out.length) {
      // more than content-length said (a proxy re-encoded it?): grow rather than fail
      const bigger = new Uint8Array(Math.max(out.length * 2, got + value.length));
      bigger.set(out.subarray(0, got));
      out = bigger;
    }
    out.set(value, got);
    got += value.length;
    if (got - lastShown > 4 * 2 ** 20) {
      lastShown = got;
      setStatus(`Fetching ${label}: ${fmtBytes(got)}${got <= total ? ` of ${fmtBytes(total)}` : ''}…`);
    }
  }
  return got === out.length ? out : out.subarray(0, got);
}

async function loadFromServer() {
  try {
    requireDevice();
    setStatus('Fetching the model from ./model/…');
    const [toml, weights, tokenizer] = await Promise.all(MODEL_FILES.map((f) => fetchBytes(`./model/${f}`, f)));
    await loadModel(new TextDecoder().decode(toml), weights, tokenizer, './model/');
  } catch (e) {
    report('loading the model', e);
  }
}

async function loadFromFiles(files) {
  try {
    requireDevice();
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
    let summary;
    try {
      summary = JSON.parse(
        await serial(async () => {
          await nextPaint(); // tg.loadModel blocks the thread: show the status first
          return tg.loadModel(configToml, weights, tokenizer);
        }),
      );
    } catch (e) {
      // A file that does not parse leaves the old model in the wasm, a failed upload does
      // not: the page cannot tell which happened, so it forgets the model either way.
      forgetModel(e?.message ?? String(e));
      throw e;
    }
    app.modelSummary = summary;
    app.modelLoaded = true;
    resetTraining();
    showSummary($('model-summary'), summary, from);
    setStatus(`Model loaded from ${from}: ${summary.tasks?.length ?? '?'} tasks, ${fmtCount(summary.parameters ?? 0)} parameters.`, 'ok');
  } finally {
    setBusy(false);
  }
  await predict();
}

/** Training state that belongs to one model: history, data (tokenized for it), download. */
function resetTraining() {
  app.history = [];
  app.trainingState = 'idle';
  app.dataInfo = null; // training data is tokenized for one model: choose it again
  $('data-summary').textContent = 'No training data yet.';
  $('download').disabled = true;
  $('progress').textContent = 'Not trained yet.';
  $('progress').className = 'progress-line muted';
  $('progress-bar').value = 0;
  drawCurves();
}

/** After a failed load: no model, no data, no results; Predict and Train disabled. */
function forgetModel(why) {
  app.modelLoaded = false;
  app.modelSummary = null;
  app.lastPrediction = null;
  resetTraining();
  const summary = $('model-summary');
  summary.className = 'muted';
  summary.textContent = `No model loaded (the last load failed: ${why}).`;
  $('results').replaceChildren();
  const heatmap = $('heatmap');
  heatmap.className = 'heatmap muted';
  heatmap.textContent = 'Load a model and predict to see the gates.';
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
    // (a model load queued before this call may have failed meanwhile)
    const json = await serial(() => (app.modelLoaded ? tg.predict(text) : null));
    if (json == null) return;
    const result = JSON.parse(json);
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

/** Throws unless new training data may be given to the wasm now. */
function checkCanSetData() {
  requireDevice();
  if (app.trainingState === 'training') throw new Error('training is running: stop it (or wait for it to finish) before choosing new training data');
  if (!app.modelLoaded) throw new Error('load a model first (training data is tokenized for the loaded model)');
}

/** Runs inside serial(): tokenizes `text` for the loaded model. */
async function useTrainingData(text, from) {
  try {
    checkCanSetData();
  } catch (e) {
    return report(`training data (${from})`, e); // the current data stays
  }
  setStatus(`Reading the training data from ${from}…`);
  setBusy(true);
  await nextPaint(); // tg.setTrainingData blocks the thread: show the status first
  try {
    checkCanSetData(); // (the state may have changed while the page painted)
  } catch (e) {
    setBusy(false);
    return report(`training data (${from})`, e);
  }
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
    const text = await res.text();
    await serial(() => useTrainingData(text, './demo/train.jsonl'));
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
  if (!Number.isInteger(opts.batch_size) || opts.batch_size < 1 || opts.batch_size > MAX_BATCH_SIZE)
    throw new Error(`batch size must be a whole number from 1 to ${MAX_BATCH_SIZE}`);
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
    const done = app.history.at(-1)?.step ?? 0;
    if (done > 0) {
      // the model keeps the weights of the steps that finished: they can still be saved
      $('download').disabled = false;
      report(`training (stopped by an error after step ${done}; Download saves the weights trained so far)`, e);
    } else {
      report('training', e);
    }
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
    try {
      checkCanSetData(); // refuse before reading the file (useTrainingData checks again)
      const text = await file.text();
      await serial(() => useTrainingData(text, file.name));
    } catch (e) {
      report(`training data (${file.name})`, e);
    }
  };
  $('train-file').addEventListener('change', (e) => {
    trainFile(e.target.files[0]);
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
app.ready = start().catch((e) => {
  startupError = e?.message ?? String(e);
  throw e;
});
app.ready.then(autoLoad, (e) => {
  $('adapter').textContent = 'No WebGPU device: see the message above.';
  report('start-up', e);
});
