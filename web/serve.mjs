// Tiny static server for taskgate's browser page (Node 20, no dependencies).
//   node web/serve.mjs [--host 127.0.0.1] [--port 8080] [--model DIR] [--data FILE.jsonl] [--pkg DIR]
//                      [--allow-host NAME]...
// Serves web/ at /, the regular files directly in the model DIR at /model/<name>,
// FILE at /demo/train.jsonl and (with --pkg) another wasm-bindgen output at /pkg/<name>.
// Only requests whose Host header names this machine (127.0.0.1, localhost, [::1], or the
// --host it listens on) are answered: a web page elsewhere cannot reach the model or the data
// by pointing its own domain name at 127.0.0.1 (DNS rebinding). --allow-host NAME adds a
// name ('*': any). web/test/ is never served.
// Also importable: startServer({host, port, model, data, pkg, allowHosts}) -> {url, close()}.

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

/** The segments of a URL path (already decoded), without empty and '.' ones; null when one
 * could leave the served folder ('..', a backslash, a NUL). `//a/./b/` -> ['a', 'b']. */
function segments(pathname) {
  const parts = pathname.split('/').filter((p) => p !== '' && p !== '.');
  // (Windows drops a trailing dot or space: 'test.' would name the folder test)
  if (parts.some((p) => p === '..' || p.includes('\\') || p.includes('\0') || /[. ]$/.test(p))) return null;
  return parts;
}

/** `parts` resolved inside `root`; null if they escape it. */
function inside(root, parts) {
  const full = path.resolve(root, ...parts);
  const base = path.resolve(root);
  return full === base || full.startsWith(base + path.sep) ? full : null;
}

/** Maps a URL path to a file on disk (or null). */
function route(pathname, { model, data, pkg }) {
  const parts = segments(pathname);
  if (!parts) return null;
  // (case-insensitive: on macOS and Windows /TEST/ is the folder test/)
  const first = (parts[0] ?? '').toLowerCase();
  if (first === 'model') {
    // only files directly in DIR: one plain path segment
    if (!model || parts.length !== 2 || parts[1].startsWith('.')) return null;
    return inside(model, parts.slice(1));
  }
  if (first === 'demo' && parts.length === 2 && parts[1] === 'train.jsonl') return data ? path.resolve(data) : null;
  if (first === 'pkg' && pkg) return inside(pkg, parts.slice(1));
  // test/ (node_modules, mocks, scripts) is not part of the page
  if (first === 'test') return null;
  if (parts.length === 0 || pathname.endsWith('/')) parts.push('index.html');
  return inside(WEB_ROOT, parts);
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/** The host name of a Host header or an --allow-host value (`name`, `name:port`, `[v6]:port`,
 * a bare IPv6 address), lower case, IPv6 in brackets; null if absent. */
function hostName(header) {
  if (!header) return null;
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  if (h.split(':').length > 2) return `[${h}]`; // a bare IPv6 address
  return h.split(':')[0];
}

function send(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

async function handle(req, res, opts) {
  const host = hostName(req.headers.host);
  if (!opts.anyHost && !opts.allowHosts.has(host)) {
    return send(res, 403, `host ${JSON.stringify(req.headers.host ?? '')} is not served here (start web/serve.mjs with --allow-host NAME to allow it)\n`);
  }
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

export function startServer({ host = '127.0.0.1', port = 8080, model = null, data = null, pkg = null, allowHosts = [] } = {}) {
  const names = [...LOOPBACK_NAMES, ...allowHosts.map(hostName)];
  // the address it listens on, unless that is every address
  if (!['0.0.0.0', '::', ''].includes(host)) names.push(hostName(host));
  const opts = {
    model: model && path.resolve(model),
    data: data && path.resolve(data),
    pkg: pkg && path.resolve(pkg),
    allowHosts: new Set(names),
    anyHost: allowHosts.includes('*'),
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
  const opts = { host: '127.0.0.1', port: 8080, model: null, data: null, pkg: null, allowHosts: [] };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    const known = (key in opts && key !== 'allowHosts') || key === 'allow-host';
    if (!known || argv[i] === key || i + 1 >= argv.length) {
      throw new Error(`usage: node web/serve.mjs [--host H] [--port P] [--model DIR] [--data FILE.jsonl] [--pkg DIR] [--allow-host NAME]... (bad argument ${argv[i]})`);
    }
    if (key === 'allow-host') opts.allowHosts.push(argv[++i]);
    else opts[key] = argv[++i];
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
