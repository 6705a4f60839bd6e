// MOCK of the wasm-bindgen module web/pkg/taskgate_web.js, for testing the page and
// web/test/browser_test.mjs without a Rust build: same API (TaskgateWeb), fake but
// deterministic numbers (a hash of task, token and position), no real model.
// Served only with `serve.mjs --pkg web/test/mock/pkg` / `browser_test.mjs --pkg ...`.

export default async function init() {}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function hash(str) {
  let h = 2166136261;
  for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 16777619);
  return ((h >>> 0) % 100000) / 100000; // [0, 1)
}

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The handful of taskgate.toml keys the mock needs. */
function parseToml(text) {
  const encoder = {};
  const tasks = [];
  let section = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    if (line === '[[task]]') {
      section = { gate: 'none' };
      tasks.push(section);
    } else if (line.startsWith('[')) {
      section = line === '[encoder]' ? encoder : {};
    } else {
      const m = line.match(/^([\w.]+)\s*=\s*(.+)$/);
      if (!m) throw new Error(`taskgate.toml: cannot read line "${raw}"`);
      if (section) section[m[1]] = JSON.parse(m[2].replace(/'/g, '"'));
    }
  }
  if (!tasks.length) throw new Error('taskgate.toml: no [[task]]');
  return { encoder, tasks };
}

const softmax = (xs) => {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};
const sigmoid = (x) => 1 / (1 + Math.exp(-x));
const WANTED = { 'shader-f16': 'SHADER_F16', subgroups: 'SUBGROUP', 'timestamp-query': 'TIMESTAMP_QUERY' };

export class TaskgateWeb {
  static async create() {
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) throw new Error('no navigator.gpu');
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error('requestAdapter() returned null');
    const t = new TaskgateWeb();
    t.adapter = adapter;
    return t;
  }

  adapterInfo() {
    const a = this.adapter;
    const lim = a.limits ?? {};
    return JSON.stringify({
      adapter: {
        name: `MOCK ${a.info?.vendor ?? ''} ${a.info?.architecture ?? ''}`.trim(),
        backend: 'BrowserWebGpu',
        device_type: 'Cpu',
        driver: '',
        driver_info: '',
        vendor_id: 0,
        device_id: 0,
      },
      subgroup_size: [a.info?.subgroupMinSize ?? 4, a.info?.subgroupMaxSize ?? 64],
      limits: {
        max_buffer_size: lim.maxBufferSize ?? 268435456,
        max_storage_buffer_binding_size: lim.maxStorageBufferBindingSize ?? 134217728,
        max_compute_workgroup_storage_size: lim.maxComputeWorkgroupStorageSize ?? 16384,
        max_compute_invocations_per_workgroup: lim.maxComputeInvocationsPerWorkgroup ?? 256,
      },
      // like wgpu's report: the optional features taskgate wants, got and missing
      features: Object.keys(WANTED).filter((f) => a.features?.has(f)).map((f) => WANTED[f]),
      missing_features: Object.keys(WANTED).filter((f) => !a.features?.has(f)).map((f) => WANTED[f]),
    });
  }

  async loadModel(configToml, safetensors, tokenizerJson) {
    await sleep(50);
    const { encoder, tasks } = parseToml(configToml);
    if (!(safetensors instanceof Uint8Array) || safetensors.length < 8) throw new Error('model.safetensors: too short');
    const headerLen = Number(new DataView(safetensors.buffer, safetensors.byteOffset, 8).getBigUint64(0, true));
    if (8 + headerLen > safetensors.length) throw new Error('model.safetensors: bad header length');
    JSON.parse(new TextDecoder().decode(tokenizerJson)); // must be JSON
    this.weights = safetensors.slice();
    this.encoder = encoder;
    this.tasks = tasks.map((t) => ({
      name: t.name,
      kind: t.kind,
      labels: t.labels ?? null,
      gate: t.gate ?? 'none',
      outputs: t.labels ? t.labels.length : t.outputs ?? 1,
    }));
    // grows with training, so predictions change after it; a downloaded model carries it in
    // its first value (1000 + shift), the served one does not
    const first = new DataView(safetensors.buffer, safetensors.byteOffset + 8 + headerLen, 4).getFloat32(0, true);
    this.shift = first >= 999 && first < 1001 ? first - 1000 : 0;
    return JSON.stringify({
      tasks: this.tasks,
      encoder: {
        hidden: encoder.hidden,
        layers: encoder.layers,
        heads: encoder.heads,
        vocab_size: encoder.vocab_size,
        max_length: encoder.max_length,
      },
      parameters: Math.floor((safetensors.length - 8 - headerLen) / 4),
    });
  }

  tokenize(text) {
    const words = text.trim().split(/\s+/).filter(Boolean);
    const tokens = ['[CLS]'];
    const wordOfToken = [null];
    words.forEach((w, wi) => {
      for (const piece of w.toLowerCase().match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? []) {
        const parts = piece.length > 8 ? [piece.slice(0, 6), '##' + piece.slice(6)] : [piece];
        for (const p of parts) {
          tokens.push(p);
          wordOfToken.push(wi);
        }
      }
    });
    const max = Math.min(this.encoder.max_length ?? 512, 512);
    tokens.length = Math.min(tokens.length, max - 1);
    wordOfToken.length = tokens.length;
    tokens.push('[SEP]');
    wordOfToken.push(null);
    return { words, tokens, wordOfToken };
  }

  async predict(text) {
    if (!this.tasks) throw new Error('no model loaded');
    await sleep(20);
    const { words, tokens, wordOfToken } = this.tokenize(text);
    const predictions = {};
    const gates = {};
    const logits = {};
    for (const t of this.tasks) {
      const w = t.outputs;
      const tokLogits = tokens.map((tok, i) =>
        Array.from({ length: w }, (_, k) => 4 * hash(`${t.name}|${tok}|${k}`) - 2 + 0.3 * hash(`${i}|${k}`) + this.shift * (k === 0 ? 1 : -0.5)),
      );
      if (t.gate !== 'none') gates[t.name] = tokens.map((tok, i) => ({ token: tok, gate: sigmoid(6 * hash(`gate|${t.name}|${tok}`) - 3 + 0.2 * i * 0) }));
      if (t.kind === 'token_classification') {
        logits[t.name] = tokLogits;
        const tags = words.map((_, wi) => {
          const i = wordOfToken.indexOf(wi);
          if (i < 0) return null;
          const row = tokLogits[i];
          return t.labels[row.indexOf(Math.max(...row))];
        });
        predictions[t.name] = { tags };
        continue;
      }
      const pooled = Array.from({ length: w }, (_, k) => tokLogits.reduce((s, r) => s + r[k], 0) / tokLogits.length);
      logits[t.name] = pooled;
      if (t.kind === 'classification') {
        const p = softmax(pooled);
        const best = p.indexOf(Math.max(...p));
        predictions[t.name] = { label: t.labels[best], scores: Object.fromEntries(t.labels.map((l, k) => [l, p[k]])) };
      } else if (t.kind === 'multilabel') {
        const p = pooled.map(sigmoid);
        predictions[t.name] = {
          labels: t.labels.filter((_, k) => p[k] >= 0.5),
          scores: Object.fromEntries(t.labels.map((l, k) => [l, p[k]])),
        };
      } else {
        predictions[t.name] = { values: pooled };
      }
    }
    return JSON.stringify({ text, tokens, words, predictions, gates, logits });
  }

  setTrainingData(jsonlText, name = 'train.jsonl') {
    if (!this.tasks) throw new Error('load a model first');
    const names = new Set(this.tasks.map((t) => t.name));
    const perTask = Object.fromEntries(this.tasks.map((t) => [t.name, 0]));
    let examples = 0;
    jsonlText.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      let v;
      try {
        v = JSON.parse(line);
      } catch (e) {
        throw new Error(`${name} line ${i + 1}: not valid JSON (${e.message})`);
      }
      if (typeof v.text !== 'string') throw new Error(`${name} line ${i + 1}: no "text" string`);
      for (const t of Object.keys(v.labels ?? {})) {
        if (!names.has(t)) throw new Error(`${name} line ${i + 1}: unknown task "${t}"`);
        perTask[t]++;
      }
      examples++;
    });
    if (!examples) throw new Error('training data: no examples');
    this.perTask = perTask;
    return JSON.stringify({ examples, per_task: perTask });
  }

  startTraining(optionsJson) {
    if (!this.perTask) throw new Error('set training data first');
    const o = { steps: 200, lr: 1e-3, batch_size: 16, warmup: 0.1, seed: 1, ...JSON.parse(optionsJson) };
    if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`bad steps ${o.steps}`);
    this.opts = o;
    this.step = 0;
    this.rand = mulberry32(o.seed);
    this.labelled = Object.keys(this.perTask).filter((t) => this.perTask[t] > 0);
  }

  async trainStep() {
    const o = this.opts;
    if (!o) throw new Error('call startTraining first');
    if (this.step >= o.steps) throw new Error('training is over');
    await sleep(15);
    const k = ++this.step;
    const frac = k / o.steps;
    const warm = Math.max(1, Math.round(o.warmup * o.steps));
    // taskgate's schedule: the decay reaches 0 one step after the last
    const lr = k <= warm ? (o.lr * k) / warm : (o.lr * (o.steps - k + 1)) / Math.max(1, o.steps - warm);
    const task = this.labelled[(k - 1) % this.labelled.length];
    const task_losses = {};
    this.labelled.forEach((t, i) => {
      if (t === task || this.rand() < 0.3) {
        const base = 0.6 + 0.5 * i;
        task_losses[t] = base * (0.25 + 0.75 * Math.exp(-3 * frac)) * (0.8 + 0.4 * this.rand());
      }
    });
    const vals = Object.values(task_losses);
    this.shift = 0.5 * frac;
    return JSON.stringify({
      step: k,
      steps: o.steps,
      lr,
      loss: vals.reduce((a, b) => a + b, 0) / vals.length,
      task,
      task_losses,
      grad_norm: 1 + this.rand(),
      skipped: false,
    });
  }

  /** The loaded file with the training (`shift`) recorded in its first value. */
  async exportSafetensors() {
    await sleep(30);
    const out = this.weights.slice();
    const headerLen = Number(new DataView(out.buffer, 0, 8).getBigUint64(0, true));
    new DataView(out.buffer, 8 + headerLen, 4).setFloat32(0, 1000 + this.shift, true);
    return out;
  }
}
