// taskgate page: small DOM helpers shared by the ui/ modules and app.js: $ (element by id),
// el (build an element), kv (a definition list), task order, number and byte formatters, the
// status line.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) node.append(c instanceof Node ? c : String(c));
  return node;
}

/** `[name, value]` entries in the order of the model's `tasks` (a JSON object's keys come
 * sorted); names the model does not list go last. */
export function inModelOrder(entries, tasks) {
  const order = (tasks ?? []).map((t) => t.name);
  const rank = (name) => (order.includes(name) ? order.indexOf(name) : order.length);
  return [...entries].sort((a, b) => rank(a[0]) - rank(b[0]));
}

export function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

export const fmtBytes = (n) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
export const fmtCount = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));
export const fmtNum = (x) => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(1) : Math.abs(x) >= 0.01 ? x.toFixed(4) : x.toExponential(2));

/** Shows `text` in the status line; kind is 'busy', 'ok' or 'error' (a CSS class). */
export function setStatus(text, kind = 'busy') {
  const box = $('status');
  box.textContent = text;
  box.className = `status ${kind}`;
}
