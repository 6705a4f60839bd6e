// Writes the "native" predictions of the MOCK model (what `taskgate predict --gates --logits`
// would print for a real one), so browser_test.mjs can be tried end to end with the mock:
//   node web/test/mock/make_expected.mjs web/test/sentences.jsonl > /tmp/mock_expected.jsonl

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import init, { TaskgateWeb } from './pkg/taskgate_web.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const model = process.argv[3] ?? path.join(here, "model");
Object.defineProperty(globalThis, 'navigator', {
  configurable: true,
  value: { gpu: { requestAdapter: async () => ({ info: {}, features: new Set(), limits: {} }) } },
});

await init();
const tg = await TaskgateWeb.create();
await tg.loadModel(
  readFileSync(path.join(model, 'taskgate.toml'), 'utf8'),
  new Uint8Array(readFileSync(path.join(model, 'model.safetensors'))),
  new Uint8Array(readFileSync(path.join(model, 'tokenizer.json'))),
);
for (const line of readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const p = JSON.parse(await tg.predict(JSON.parse(line).text));
  console.log(JSON.stringify({ text: p.text, predictions: p.predictions, gates: p.gates, logits: p.logits }));
}
