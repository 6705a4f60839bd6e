// taskgate page: drag-and-drop zones: a zone highlights while files hover over it and hands
// the dropped files (one level into dropped folders) to a callback.

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

/** Makes `zone` a drop target: onFiles(File[]) on a drop, onError(err) if reading them fails. */
export function dropZone(zone, onFiles, onError) {
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
      onError(err);
    }
  });
}
