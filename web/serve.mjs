// Tiny static server for taskgate's browser page (Node 20, no dependencies).
//   node web/serve.mjs [--host 127.0.0.1] [--port 8080] [--model DIR] [--data FILE.jsonl] [--pkg DIR]
// Serves web/ at /, the regular files directly in the model DIR at /model/<name>,
// FILE at /demo/train.jsonl and (with --pkg) another wasm-bindgen output at /pkg/<name>.
// Also importable: startServer({host, port, model, data, pkg}) -> {url, close()}.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const WEB_ROOT = path.dirname(fileURLToPath(import.meta.url));

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'text/plain; charset=utf-8',
  '.toml': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** Resolves `rel` (already URL-decoded, '/'-separated) inside `root`; null if it escapes. */
function inside(root, rel) {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..' || p.includes('\\') || p.includes('\0'))) return null;
  const full = path.resolve(root, ...parts);
  const base = path.resolve(root);
  return full === base || full.startsWith(base + path.sep) ? full : null;
}

/** Maps a URL path to a file on disk (or null). */
function route(pathname, { model, data, pkg }) {
  if (pathname.startsWith('/model/')) {
    if (!model) return null;
    const name = pathname.slice('/model/'.length);
    // only files directly in DIR: one plain path segment
    if (!name || name.includes('/') || name.startsWith('.')) return null;
    return inside(model, name);
  }
  if (pathname === '/demo/train.jsonl' && data) return path.resolve(data);
  if (pkg && pathname.startsWith('/pkg/')) return inside(pkg, pathname.slice('/pkg/'.length));
  const rel = pathname.endsWith('/') ? pathname + 'index.html' : pathname;
  // test/ (node_modules, mocks) is not part of the page
  if (rel.startsWith('/test/')) return null;
  return inside(WEB_ROOT, rel);
}

function send(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

async function handle(req, res, opts) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
  let pathname;
  try {
    if (!req.url.startsWith('/')) throw new Error('not a path');
    pathname = decodeURIComponent(req.url.split(/[?#]/)[0]);
  } catch {
    return send(res, 400, 'bad request\n');
  }
  const file = route(pathname, opts);
  let info = null;
  if (file) info = await stat(file).catch(() => null);
  if (!info || !info.isFile()) return send(res, 404, 'not found\n');
  res.writeHead(200, {
    'content-type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'no-store',
  });
  if (req.method === 'HEAD') return res.end();
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

export function startServer({ host = '127.0.0.1', port = 8080, model = null, data = null, pkg = null } = {}) {
  const opts = {
    model: model && path.resolve(model),
    data: data && path.resolve(data),
    pkg: pkg && path.resolve(pkg),
  };
  const server = createServer((req, res) => {
    handle(req, res, opts).catch((e) => {
      if (!res.headersSent) send(res, 500, `error: ${e.message}\n`);
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${h}:${addr.port}/`,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8080, model: null, data: null, pkg: null };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || argv[i] === key || i + 1 >= argv.length) {
      throw new Error(`usage: node web/serve.mjs [--host H] [--port P] [--model DIR] [--data FILE.jsonl] [--pkg DIR] (bad argument ${argv[i]})`);
    }
    opts[key] = argv[++i];
  }
  opts.port = Number(opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`bad --port ${opts.port}`);
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    const { url } = await startServer(parseArgs(process.argv.slice(2)));
    console.log(`serving ${url}`);
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
}
