// Headless-Chromium test of taskgate's browser page (web/index.html + the wasm in web/pkg/).
//   node web/test/browser_test.mjs --model DIR --data FILE.jsonl --expected NATIVE.jsonl \
//        --screenshot OUT.png [--steps 30] [--timeout 600] [--pkg DIR] [--self-check-page-error]
//        [--predict-only]
// Drives the real UI: checks predictions against the native CLI's (`taskgate predict DIR
// --input S.jsonl --gates --logits` wrote NATIVE.jsonl: logits and gates, and for generation
// tasks the generated text and beams), trains on FILE, checks the loss fell, screenshots the
// page and checks the downloaded model.safetensors. With --predict-only it stops after the
// predictions (and a screenshot). Any page error, console
// error or taskgateApp.errors entry fails the run at once. Exit 0 = pass, 1 = fail, 2 = usage.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../serve.mjs';

const TOL = 1e-3;
// Beam scores (summed log-probabilities over a few steps, f32 logits read back and searched in
// f64) agree to about 1e-7 between the page and native; their input-to-input differences on
// the test's tiny untrained model are about 1e-4, which TOL would not tell apart.
const SCORE_TOL = 1e-5;
const log = (msg) => console.log(`browser test: ${msg}`);

// ---------- arguments ----------

function parseArgs(argv) {
  const o = { steps: 30, timeout: 600, pkg: null, selfCheckPageError: false, predictOnly: false };
  const usage =
    'usage: node web/test/browser_test.mjs --model DIR --data FILE.jsonl --expected NATIVE.jsonl ' +
    '--screenshot OUT.png [--steps 30] [--timeout 600] [--pkg DIR] [--native-training FILE.jsonl] ' +
    '[--self-check-page-error] [--predict-only]';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--self-check-page-error') o.selfCheckPageError = true;
    else if (a === '--predict-only') o.predictOnly = true;
    else if (['--model', '--data', '--expected', '--screenshot', '--steps', '--timeout', '--pkg', '--native-training'].includes(a) && i + 1 < argv.length)
      o[a.slice(2).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = argv[++i]; // --native-training -> nativeTraining
    else throw new Error(`${usage}\n(bad argument: ${a})`);
  }
  for (const k of ['model', 'data', 'expected', 'screenshot']) if (!o[k]) throw new Error(`${usage}\n(--${k} is required)`);
  o.steps = Number(o.steps);
  o.timeout = Number(o.timeout);
  if (!Number.isInteger(o.steps) || o.steps < 3) throw new Error('--steps must be a whole number ≥ 3');
  if (!(o.timeout > 0)) throw new Error('--timeout must be > 0 (seconds)');
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(e.message);
  process.exit(2);
}

// ---------- fail fast ----------

// One shared promise that rejects on the first page error / console error / app error;
// every wait below is raced against it (and against its own timeout).
let failWith;
const failure = new Promise((_, reject) => (failWith = reject));
failure.catch(() => {});
let failedBecause = null;
function fail(message) {
  if (failedBecause) return;
  failedBecause = message;
  failWith(new Error(message));
}

async function within(what, ms, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s: ${what}`)), ms);
  });
  Promise.resolve(promise).catch(() => {}); // it may lose the race and reject later
  try {
    return await Promise.race([promise, failure, timeout]);
  } catch (e) {
    if (e.message.startsWith('timed out') || e.message === failedBecause) throw e;
    throw new Error(`${what}: ${firstLines(e.message)}`);
  } finally {
    clearTimeout(timer);
  }
}

const firstLines = (s, n = 6) => String(s).split('\n').slice(0, n).join('\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmpdirPath = mkdtempSync(path.join(tmpdir(), 'taskgate-browser-test-'));
const watchdog = setTimeout(() => {
  console.error(`browser test: FAILED: the whole test ran past --timeout ${opts.timeout} s; killing it`);
  rmSync(tmpdirPath, { recursive: true, force: true });
  process.exit(1); // playwright kills the browser it launched on exit
}, opts.timeout * 1000);
watchdog.unref();

// ---------- page helpers ----------

/** Waits until pred(taskgateApp) is truthy in the page; fails at once on an app error. */
function waitApp(page, what, ms, pred) {
  const expr = `(() => {
    const app = window.taskgateApp;
    if (!app) return false;
    if (app.errors.length) return { error: app.errors.join(' | ') };
    return (${pred})(app) ? { ok: true } : false;
  })()`;
  const p = page.waitForFunction(expr, undefined, { timeout: ms + 1000, polling: 100 }).then(async (h) => {
    const v = await h.jsonValue();
    if (v.error) fail(`taskgateApp.errors: ${v.error}`);
    return v;
  });
  return within(what, ms, p);
}

const appValue = (page, fn, what = 'reading window.taskgateApp') => within(what, 60_000, page.evaluate(fn));

// ---------- comparisons ----------

function maxAbsDiff(got, want, where) {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length)
      throw new Error(`${where}: expected an array of ${want.length}, got ${Array.isArray(got) ? `an array of ${got.length}` : JSON.stringify(got)}`);
    return want.reduce((m, w, i) => Math.max(m, maxAbsDiff(got[i], w, `${where}[${i}]`)), 0);
  }
  if (typeof want !== 'number' || typeof got !== 'number' || !Number.isFinite(got))
    throw new Error(`${where}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  return Math.abs(got - want);
}

function comparePrediction(got, want) {
  const problems = [];
  const report = [];
  if (!want.logits) throw new Error('the expected line has no "logits" (write it with taskgate predict --gates --logits)');
  // every task predicts; generation tasks have text (and beams) where the others have logits
  const tasks = Object.keys(want.predictions ?? {});
  if (!tasks.length) throw new Error('the expected line has no "predictions"');
  const extra = Object.keys(got.predictions ?? {}).filter((t) => !tasks.includes(t));
  if (extra.length) problems.push(`tasks in the browser but not native: ${extra.join(', ')}`);
  for (const task of tasks) {
    try {
      let line = `${task}:`;
      if (task in want.logits) {
        const d = maxAbsDiff(got.logits?.[task], want.logits[task], `logits.${task}`);
        line += ` logits max |diff| ${d.toExponential(2)}`;
        if (d > TOL) problems.push(`${task}: logits differ by ${d.toExponential(3)} > ${TOL}`);
      } else if (got.logits?.[task]) problems.push(`${task}: the browser has logits, native has none`);
      const wg = want.gates?.[task];
      if (wg) {
        const gg = got.gates?.[task];
        if (!Array.isArray(gg) || gg.length !== wg.length) {
          problems.push(`${task}: expected ${wg.length} gates, got ${gg?.length ?? 'none'}`);
        } else {
          const toks = wg.map((x, i) => [x.token, gg[i].token]).filter(([a, b]) => a !== b);
          if (toks.length) problems.push(`${task}: gate tokens differ, e.g. native ${JSON.stringify(toks[0][0])} vs browser ${JSON.stringify(toks[0][1])}`);
          const gd = maxAbsDiff(gg.map((x) => x.gate), wg.map((x) => x.gate), `gates.${task}`);
          line += ` gates max |diff| ${gd.toExponential(2)}`;
          if (gd > TOL) problems.push(`${task}: gates differ by ${gd.toExponential(3)} > ${TOL}`);
        }
      } else if (got.gates?.[task]) problems.push(`${task}: the browser has gates, native has none`);
      const text = compareText(task, got.predictions?.[task], want.predictions?.[task]);
      if (text.line) line += ` ${text.line}`;
      report.push(line);
      problems.push(...text.problems);
      problems.push(...compareLabels(task, got.predictions?.[task], want.predictions?.[task]));
    } catch (e) {
      problems.push(e.message);
    }
  }
  return { problems, report };
}

/** Generated text: the same text and, with beam search, the same beams in the same order,
 * their scores within SCORE_TOL (a beam's score is its length-normalised log-probability). */
function compareText(task, got, want) {
  if (!want || !('text' in want)) return { problems: [] };
  if (!got) return { problems: [`${task}: no prediction in the browser`] };
  const problems = [];
  if (got.text !== want.text) problems.push(`${task}: text ${JSON.stringify(got.text)}, native ${JSON.stringify(want.text)}`);
  const [gb, wb] = [got.beams ?? [], want.beams ?? []];
  if (gb.length !== wb.length) {
    problems.push(`${task}: ${gb.length} beams in the browser, ${wb.length} native`);
    return { problems, line: `text ${JSON.stringify(got.text)}` };
  }
  const texts = wb.map((b, i) => [b.text, gb[i].text]).filter(([a, b]) => a !== b);
  if (texts.length) problems.push(`${task}: beams differ, e.g. native ${JSON.stringify(texts[0][0])} vs browser ${JSON.stringify(texts[0][1])}`);
  const d = wb.length ? maxAbsDiff(gb.map((b) => b.score), wb.map((b) => b.score), `${task}.beams`) : 0;
  if (d > SCORE_TOL) problems.push(`${task}: beam scores differ by ${d.toExponential(3)} > ${SCORE_TOL}`);
  const line = `text ${JSON.stringify(got.text)}` + (wb.length ? `, ${wb.length} beams, scores max |diff| ${d.toExponential(2)}` : '');
  return { problems, line };
}

function compareLabels(task, got, want) {
  if (!want) return [];
  if (!got) return [`${task}: no prediction in the browser`];
  if ('label' in want && got.label !== want.label) {
    // a near tie may go either way within the tolerance
    const margin = Math.abs((want.scores?.[want.label] ?? 1) - (want.scores?.[got.label] ?? 0));
    if (margin > TOL) return [`${task}: label ${JSON.stringify(got.label)}, native ${JSON.stringify(want.label)}`];
  }
  if ('tags' in want && JSON.stringify(got.tags) !== JSON.stringify(want.tags))
    return [`${task}: tags ${JSON.stringify(got.tags)}, native ${JSON.stringify(want.tags)}`];
  if ('labels' in want && JSON.stringify(got.labels) !== JSON.stringify(want.labels)) {
    const nearHalf = Object.values(want.scores ?? {}).some((p) => Math.abs(p - 0.5) < TOL);
    if (!nearHalf) return [`${task}: labels ${JSON.stringify(got.labels)}, native ${JSON.stringify(want.labels)}`];
  }
  return [];
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const thirds = (xs) => {
  const n = Math.max(1, Math.floor(xs.length / 3));
  return [mean(xs.slice(0, n)), mean(xs.slice(-n))];
};

// ---------- the test ----------

async function predictOnce(page, text) {
  const before = await appValue(page, () => window.taskgateApp.predictions);
  await within('filling #text', 30_000, page.fill('#text', text));
  await within('clicking #predict', 60_000, page.click('#predict'));
  await waitApp(page, `the prediction of ${JSON.stringify(text.slice(0, 40))}`, 180_000, `(app) => app.predictions > ${before} && app.lastPrediction?.text === ${JSON.stringify(text)}`);
  return appValue(page, () => window.taskgateApp.lastPrediction);
}

async function run(page, url, passed) {
  await within(`opening ${url}`, 60_000, page.goto(url));
  await waitApp(page, 'window.taskgateApp', 30_000, '() => true');
  await within('taskgateApp.ready (wasm + WebGPU device)', 120_000, page.evaluate(() => window.taskgateApp.ready.then(() => true)));
  const info = await appValue(page, () => window.taskgateApp.adapter);
  const a = info?.adapter ?? {};
  log(`adapter: ${a.name} (${a.backend}, ${a.device_type}); subgroup sizes ${JSON.stringify(info?.subgroup_size)}; ` +
    `max storage binding ${info?.limits?.max_storage_buffer_binding_size}; features ${(info?.features ?? []).join(' ') || '(none)'}` +
    (info?.missing_features?.length ? `; missing ${info.missing_features.join(' ')}` : ''));
  passed.push('start-up');

  if (opts.selfCheckPageError) {
    log('self-check: throwing an error in the page; this run must now fail within 10 s');
    const t0 = Date.now();
    await page.evaluate("setTimeout(() => { throw new Error('boom') })");
    try {
      await within('self-check', 15_000, sleep(10_000));
    } catch (e) {
      if (e.message !== failedBecause) throw e;
      log(`self-check: failed after ${((Date.now() - t0) / 1000).toFixed(2)} s, as it must`);
      throw e;
    }
    throw new Error('self-check: the injected page error was NOT detected within 10 s');
  }

  // model (auto-loaded from /model/), and whatever the page does right after
  let t0 = Date.now();
  await waitApp(page, 'the model to load from /model/', 300_000, '(app) => app.modelLoaded && app.pending === 0');
  const summary = await appValue(page, () => window.taskgateApp.modelSummary);
  log(`model loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${summary.parameters} parameters, tasks ` +
    summary.tasks.map((t) => `${t.name} (${t.kind}, gate ${t.gate})`).join(', '));
  passed.push('model load');

  // parity with the native CLI
  const expected = readFileSync(opts.expected, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  if (!expected.length) throw new Error(`${opts.expected} has no lines`);
  const worst = {};
  const problems = [];
  for (const want of expected) {
    const got = await predictOnce(page, want.text);
    const r = comparePrediction(got, want);
    log(`predict ${JSON.stringify(want.text.length > 50 ? want.text.slice(0, 47) + '...' : want.text)}: ${r.report.join('; ')}`);
    problems.push(...r.problems.map((p) => `${JSON.stringify(want.text.slice(0, 40))}: ${p}`));
    for (const line of r.report) {
      const [task] = line.split(':');
      const d = Math.max(...[...line.matchAll(/\|diff\| ([0-9.e+-]+)/g)].map((m) => Number(m[1])));
      worst[task] = Math.max(worst[task] ?? 0, d);
    }
  }
  log(`max |browser - native| per task: ${Object.entries(worst).map(([t, d]) => `${t} ${d.toExponential(2)}`).join(', ')}`);
  if (problems.length) throw new Error(`predictions differ from native (tolerance ${TOL}):\n  ${problems.join('\n  ')}`);
  passed.push('native parity');
  if (opts.predictOnly) {
    await within('the screenshot', 60_000, page.screenshot({ path: opts.screenshot, fullPage: true }));
    log(`screenshot: ${opts.screenshot}`);
    return;
  }

  // training on the demo data
  await within('setting #steps', 30_000, page.fill('#steps', String(opts.steps)));
  // (web/test/run.sh gives native fine-tuning the same settings; the page adds warmup 0.1, seed 1)
  await within('setting #lr', 30_000, page.fill('#lr', '0.003'));
  await within('setting #batch-size', 30_000, page.fill('#batch-size', '16'));
  await within('clicking #use-demo-data', 60_000, page.click('#use-demo-data'));
  await waitApp(page, 'the training data to load', 120_000, '(app) => app.dataInfo != null');
  const data = await appValue(page, () => window.taskgateApp.dataInfo);
  log(`training data: ${data.examples} examples (${JSON.stringify(data.per_task)})`);
  await within('clicking #train', 60_000, page.click('#train'));
  t0 = Date.now();
  const trainMs = Math.max(120_000, opts.steps * 30_000);
  let lastShown = 0;
  for (;;) {
    const s = await appValue(page, () => {
      const app = window.taskgateApp;
      return { state: app.trainingState, n: app.history.length, last: app.history.at(-1), errors: app.errors };
    }, 'reading the training state');
    if (s.errors.length) fail(`taskgateApp.errors: ${s.errors.join(' | ')}`);
    if (s.state === 'error') throw new Error('trainingState is "error"');
    if (s.state === 'done') break;
    if (Date.now() - t0 > trainMs) throw new Error(`timed out after ${trainMs / 1000} s: training (at step ${s.n})`);
    if (s.last && Date.now() - lastShown > 10_000) {
      lastShown = Date.now();
      log(`training step ${s.last.step}/${s.last.steps}, loss ${Number(s.last.loss).toFixed(4)}`);
    }
    await within('training', 60_000, sleep(500));
  }
  const history = await appValue(page, () => window.taskgateApp.history);
  const secs = (Date.now() - t0) / 1000;
  log(`trained ${history.length} steps in ${secs.toFixed(1)} s (${(history.length / secs).toFixed(2)} steps/s)`);
  checkTraining(history);
  if (opts.nativeTraining) checkTrainingParity(history);
  passed.push('training');

  // one more prediction with the trained weights, then the screenshot
  const first = expected[0].text;
  const trained = await predictOnce(page, first);
  await within('the screenshot', 60_000, page.screenshot({ path: opts.screenshot, fullPage: true }));
  log(`screenshot: ${opts.screenshot}`);

  // download
  const [download] = await within('the download of model.safetensors', 300_000, Promise.all([
    page.waitForEvent('download', { timeout: 300_000 }),
    page.click('#download'),
  ]));
  const saved = path.join(tmpdirPath, 'downloaded.safetensors');
  await within('saving the download', 60_000, download.saveAs(saved));
  const bytes = readFileSync(saved);
  const want = statSync(path.join(opts.model, 'model.safetensors')).size;
  if (bytes.length !== want) throw new Error(`downloaded model.safetensors has ${bytes.length} bytes; ${opts.model}/model.safetensors has ${want}`);
  const header = bytes.length >= 8 ? bytes.readBigUInt64LE(0) : -1n;
  if (header < 0n || 8n + header >= BigInt(bytes.length)) throw new Error(`downloaded model.safetensors: bad header length ${header}`);
  JSON.parse(bytes.subarray(8, 8 + Number(header)).toString('utf8'));
  log(`download: ${download.suggestedFilename()}, ${bytes.length} bytes, header ${header} bytes`);
  passed.push('download');

  // the downloaded weights hold the training: they differ from the served ones, and loaded
  // back through the page's file input (what a drop does) with the model's other two files,
  // they predict exactly what the page predicted after training
  if (bytes.equals(readFileSync(path.join(opts.model, 'model.safetensors')))) {
    throw new Error('the downloaded model.safetensors equals the untrained one');
  }
  const chosen = path.join(tmpdirPath, 'chosen');
  mkdirSync(chosen);
  for (const f of ['taskgate.toml', 'tokenizer.json']) copyFileSync(path.join(opts.model, f), path.join(chosen, f));
  copyFileSync(saved, path.join(chosen, 'model.safetensors'));
  const files = ['taskgate.toml', 'model.safetensors', 'tokenizer.json'].map((f) => path.join(chosen, f));
  await within('choosing the model files', 60_000, page.setInputFiles('#model-files', files));
  await waitApp(page, 'the model to load from the chosen files', 300_000,
    "(app) => app.modelLoaded && app.trainingState === 'idle' && app.history.length === 0 && app.pending === 0");
  const again = comparePrediction(await predictOnce(page, first), trained);
  log(`downloaded model from files, predict ${JSON.stringify(first.slice(0, 40))} vs the page after training: ${again.report.join('; ')}`);
  if (again.problems.length) throw new Error(`the downloaded model, loaded from files, predicts differently from the trained page:\n  ${again.problems.join('\n  ')}`);
  passed.push('model from files');
}

function checkTraining(history) {
  if (history.length !== opts.steps) throw new Error(`history has ${history.length} steps, expected ${opts.steps}`);
  const bad = history.find((r) => !Number.isFinite(r.loss) || Object.values(r.task_losses ?? {}).some((v) => !Number.isFinite(v)));
  if (bad) throw new Error(`a loss is not finite at step ${bad.step}: ${JSON.stringify(bad)}`);
  const skipped = history.filter((r) => r.skipped).length;
  const [first, last] = thirds(history.map((r) => r.loss));
  log(`overall loss: first third ${first.toFixed(4)}, last third ${last.toFixed(4)}${skipped ? ` (${skipped} steps skipped)` : ''}`);
  const perTask = {};
  for (const r of history) for (const [t, v] of Object.entries(r.task_losses ?? {})) (perTask[t] ??= []).push(v);
  const rose = [];
  let judged = 0;
  for (const [t, xs] of Object.entries(perTask)) {
    if (xs.length < 3) {
      log(`  ${t}: only ${xs.length} losses, not judged`);
      continue;
    }
    judged++;
    const [a, b] = thirds(xs);
    log(`  ${t}: ${xs.length} losses, first third ${a.toFixed(4)}, last third ${b.toFixed(4)}${b < a ? ' (fell)' : ' (did not fall)'}`);
    if (!(b < a)) rose.push(t);
  }
  if (!(last < first)) throw new Error(`the overall loss did not fall (${first} -> ${last})`);
  if (!judged) throw new Error('no task had enough training steps to judge its loss');
  if (rose.length) throw new Error(`the loss of ${rose.join(', ')} did not fall from the first third of training to the last`);
}

// The page's losses, step by step, against native taskgate's on the same model, data and
// settings (examples/finetune_session.rs): the same kernels forward and backward, the same
// seeded batches and dropout masks, on two adapters.
const TRAIN_TOL = 1e-3; // relative
function checkTrainingParity(history) {
  const native = readFileSync(opts.nativeTraining, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  if (native.length !== history.length) throw new Error(`${opts.nativeTraining} has ${native.length} steps, the page made ${history.length}`);
  let worst = 0;
  let worstStep = 0;
  for (let i = 0; i < native.length; i++) {
    const [a, b] = [history[i], native[i]];
    if (a.task !== b.task) throw new Error(`step ${i + 1}: the page trained ${a.task}, native ${b.task}`);
    for (const key of ['loss', 'grad_norm', 'lr']) {
      const rel = Math.abs(a[key] - b[key]) / Math.max(1e-6, Math.abs(b[key]));
      if (rel > worst) [worst, worstStep] = [rel, i + 1];
      if (!(rel <= TRAIN_TOL)) throw new Error(`step ${i + 1}: ${key} ${a[key]} in the page, ${b[key]} natively (relative difference ${rel.toExponential(2)} > ${TRAIN_TOL})`);
    }
  }
  log(`training matches native over ${native.length} steps (loss, grad norm, lr): worst relative difference ${worst.toExponential(2)} at step ${worstStep}`);
}

// ---------- main ----------

const passed = [];
let server = null;
let context = null;
let code = 1;
try {
  server = await startServer({ host: '127.0.0.1', port: 0, model: opts.model, data: opts.data, pkg: opts.pkg });
  log(`serving ${server.url} (model ${opts.model}, data ${opts.data}${opts.pkg ? `, pkg ${opts.pkg}` : ''})`);
  context = await within('launching /usr/bin/chromium', 60_000, chromium.launchPersistentContext(path.join(tmpdirPath, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
    viewport: { width: 1280, height: 900 },
  }));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (e) => fail(`page error: ${e.name ? `${e.name}: ` : ''}${e.message}${e.stack ? `\n${firstLines(e.stack, 12)}` : ''}`));
  let logged = 0;
  page.on('console', (m) => {
    const text = m.text();
    const where = m.location()?.url ? ` (${m.location().url})` : '';
    if (m.type() === 'error') fail(`console error in the page: ${text}${where}`);
    else if (['warning', 'log', 'info'].includes(m.type()) && ++logged <= 200) {
      console.log(`  [page ${m.type()}] ${firstLines(text, 3)}${logged === 200 ? ' (further page logs not shown)' : ''}`);
    }
  });
  page.on('crash', () => fail('the page crashed'));
  context.on('close', () => fail('the browser closed'));
  await run(page, server.url, passed);
  log(`PASS (${passed.join(', ')})`);
  code = 0;
} catch (e) {
  console.error(`browser test: FAILED: ${e.message}`);
} finally {
  console.log(`browser_test: ${passed.length} passed, ${code === 0 ? 0 : 1} failed`);
  failedBecause ??= 'closing'; // closing the browser must not report itself as a failure
  if (context) await Promise.race([context.close().catch(() => {}), sleep(10_000)]);
  if (server) await Promise.race([server.close(), sleep(5_000)]);
  rmSync(tmpdirPath, { recursive: true, force: true });
}
process.exit(code);
