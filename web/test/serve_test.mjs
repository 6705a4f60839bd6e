// Test of web/serve.mjs (Node 20, no dependencies; run by .ci/run): requests whose Host
// header does not name this machine are refused (DNS rebinding), --allow-host admits a name,
// and no spelling of a path reaches web/test/ or leaves the served folders.
//   node web/test/serve_test.mjs      exit 0 = pass, 1 = fail

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../serve.mjs';

/** GET `pathname` from `url`'s server with the raw Host header `host`; -> status code. */
function get(url, pathname, host) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path: pathname, method: 'GET', headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An HTTP/1.0 request without a Host header; -> status code. */
function getWithoutHost(url, pathname) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.write(`GET ${pathname} HTTP/1.0\r\n\r\n`));
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('end', () => resolve(Number(text.split(' ')[1])));
    socket.on('error', reject);
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'serve-test-'));
writeFileSync(path.join(dir, 'model.safetensors'), 'weights');
writeFileSync(path.join(dir, 'train.jsonl'), '{"text": "x"}\n');
const failures = [];
const servers = [];
try {
  const open = await startServer({ port: 0, model: dir, data: path.join(dir, 'train.jsonl') });
  const lan = await startServer({ port: 0, model: dir, allowHosts: ['Taskgate.LAN', 'box.lan:8080', 'fe80::1'] });
  servers.push(open, lan);
  const port = new URL(open.url).port;
  const cases = [
    // [server, path, Host header, expected status]
    [open, '/', `127.0.0.1:${port}`, 200],
    [open, '/model/model.safetensors', `localhost:${port}`, 200],
    [open, '/demo/train.jsonl', `[::1]:${port}`, 200],
    [open, '/model/model.safetensors', `LOCALHOST:${port}`, 200],
    [open, '/', `evil.example:${port}`, 403],
    [open, '/model/model.safetensors', `evil.example:${port}`, 403],
    [open, '/demo/train.jsonl', 'evil.example', 403],
    [open, '/model/model.safetensors', `127.0.0.1.evil.example:${port}`, 403],
    [lan, '/model/model.safetensors', 'taskgate.lan:8080', 200],
    [lan, '/model/model.safetensors', 'other.lan:8080', 403],
    [lan, '/model/model.safetensors', 'box.lan:9999', 200],
    [lan, '/model/model.safetensors', '[fe80::1]:8080', 200],
    [open, '/test./run.sh', `127.0.0.1:${port}`, 404],
    [open, '/test%20/run.sh', `127.0.0.1:${port}`, 404],
    [open, '/test/run.sh', `127.0.0.1:${port}`, 404],
    [open, '//test/run.sh', `127.0.0.1:${port}`, 404],
    [open, '/./test/run.sh', `127.0.0.1:${port}`, 404],
    [open, '/TEST/run.sh', `127.0.0.1:${port}`, 404],
    [open, '/test%2frun.sh', `127.0.0.1:${port}`, 404],
    [open, '/%2e%2e/Cargo.toml', `127.0.0.1:${port}`, 404],
    [open, '/ui/../../Cargo.toml', `127.0.0.1:${port}`, 404],
    [open, '/model/../serve.mjs', `127.0.0.1:${port}`, 404],
    [open, '/model//model.safetensors', `127.0.0.1:${port}`, 200],
    [open, '/serve.mjs', `127.0.0.1:${port}`, 200],
  ];
  const bare = await getWithoutHost(open.url, '/model/model.safetensors');
  if (bare !== 403) failures.push(`a request without a Host header -> ${bare}, expected 403`);
  else console.log('serve test: a request without a Host header -> 403');
  for (const [server, pathname, host, want] of cases) {
    const got = await get(server.url, pathname, host);
    const line = `${pathname} (Host: ${JSON.stringify(host)}) -> ${got}`;
    if (got !== want) failures.push(`${line}, expected ${want}`);
    else console.log(`serve test: ${line}`);
  }
} finally {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`serve test: FAILED\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('serve test: passed');
