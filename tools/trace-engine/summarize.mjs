// tools/trace-engine/summarize.mjs TRACE.json
//
// Parses a trace with Chrome DevTools' own trace engine (the Performance
// panel's parser, @paulirish/trace_engine, pinned in package.json) and prints
// what it made of it as one JSON object: processes, threads with their slices,
// the flows it bound to slices, its warnings. tests/export/chrome_trace.py
// compares that with what the flightrec CLI says about the same dump. Exits
// non-zero if the engine throws.
import fs from 'node:fs';

import * as Trace from '@paulirish/trace_engine';

// The engine targets browsers and recent Node; supply the two globals it uses
// that older Node (Debian 12 ships 18) lacks.
if (typeof URL.parse !== 'function') {
  URL.parse = (url, base) => {
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  };
}
if (typeof globalThis.DOMRect !== 'function') {
  globalThis.DOMRect = class DOMRect {
    constructor(x = 0, y = 0, width = 0, height = 0) {
      Object.assign(this, {x, y, width, height});
    }
  };
}

const file = process.argv[2];
if (!file) {
  console.error('usage: summarize.mjs TRACE.json');
  process.exit(2);
}
const json = JSON.parse(fs.readFileSync(file, 'utf8'));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(json.traceEvents);
const parsed = model.parsedTrace();
if (!parsed) {
  throw new Error('the engine returned no parsed trace');
}
const data = parsed.data;

const brief = e => ({ph: e.ph, cat: e.cat, name: e.name, pid: e.pid, tid: e.tid, ts: e.ts,
                     dur: e.dur, result: e.args?.result ?? null});

const threads = Trace.Handlers.Threads.threadsInTrace(data).map(t => {
  const byCat = {};
  let polls = 0;
  for (const e of t.entries) {
    const key = `${e.ph}:${e.cat}`;
    byCat[key] = (byCat[key] ?? 0) + 1;
    if (e.ph === 'X' && e.args?.result !== undefined) {
      polls++;
    }
  }
  return {pid: t.pid, tid: t.tid, name: t.name, entries: t.entries.length, polls, byCat,
          tree_roots: t.tree ? t.tree.roots.size : null};
});

const processes = {};
for (const [pid, ev] of data.Meta.processNames) {
  processes[pid] = ev.args?.name ?? null;
}

const pkg = JSON.parse(fs.readFileSync(
    new URL('./node_modules/@paulirish/trace_engine/package.json', import.meta.url), 'utf8'));

console.log(JSON.stringify({
  node: process.version,
  engine: pkg.version,
  generic: data.Meta.traceIsGeneric,
  bounds: data.Meta.traceBounds,
  processes,
  threads,
  flows: data.Flows.flows.map(f => f.map(brief).sort((a, b) => a.ts - b.ts)),
  warnings: [...data.Warnings.perWarning.keys()],
}));
