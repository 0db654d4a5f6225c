/*
 * decoder/report/report.js - draws the page of `flightrec report` from the
 * JSON in #frd-data, written by decoder/render_html.c. Its shape:
 *
 *   dump       {path, whole, reason, trigger, signal_name, written, pid,
 *               executable, cmdline[], host, flightrec_version, window_ns,
 *               events, tasks, threads, errors[], errors_all}
 *   thresholds {starvation_ns, long_poll_ns, hang_ns}; limits {max_polls, max_tasks}
 *   crash      null | {signal_name, code, fault_addr, origin, at_ns, tid, lane, thread,
 *               task_id, chain: [{id, row, name}], backtrace: [{ip, function,
 *               file, line, module, offset}]}
 *   findings   [{kind, row, task: {id, row, name} | null, lane, at_ns,
 *               duration_ns, message, cycle_rows? (deadlock: the rows of its
 *               cycle, each waiting for a lock the next one holds)}]; findings_total
 *   lanes      [{tid, name, events, first_ns, last_ns, busy_ns, covered_from_ns?,
 *               polls_total, polls_shown, polls: flat, 7 numbers a poll:
 *               [row, name, begin, end, result, ready, wake_lane],
 *               parks_total, parks_shown, parks: flat [begin, end]}]
 *   tasks      [[id, name, parent_row, state, first, last, spawn, drop, npolls,
 *               parent_id]]; tasks_total
 *   lock_waits flat, 4 numbers a wait: [row, lock name, begin, end]
 *   names      [string]: every `name` above is an index here, -1 for none
 *
 * Times are ns from the start of the recording window, -1 for none; `row` is
 * an index into tasks (-1: not on the page), `lane` into lanes. Text from the
 * dump is hostile: it reaches the page only through textContent and fillText.
 *
 * When it has drawn everything it sets <body data-rendered="ok">; the address
 * fragment #finding=N selects finding N as a click on it would.
 */
'use strict';
(function () {
  const D = JSON.parse(document.getElementById('frd-data').textContent);
  const PS = 7; // numbers per poll in lanes[].polls
  const RESULT = ['pending', 'ready', 'running at the end'];
  const LABEL_W = 190, AXIS_H = 26, LANE_H = 30, LANE_GAP = 4, SEP_H = 22, ROW_H = 16;

  /* ---- small helpers -------------------------------------------------- */

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function dur(ns) {
    const a = Math.abs(ns);
    if (a >= 1e9) return (ns / 1e9).toFixed(1) + ' s';
    if (a >= 1e7) return (ns / 1e6).toFixed(1) + ' ms';
    if (a >= 1e4) return (ns / 1e6).toFixed(3) + ' ms';
    return (ns / 1e3).toFixed(1) + ' \u00b5s';
  }
  const at = (ns) => (ns / 1e6).toFixed(3) + ' ms';
  const nameText = (i) => (i >= 0 && i < D.names.length ? D.names[i] : null);
  function taskText(id, name) {
    return name === null || name === undefined ? 'task ' + id : 'task ' + id + ' "' + name + '"';
  }
  const laneName = (l) => (l >= 0 && D.lanes[l] ? D.lanes[l].name || 'tid ' + D.lanes[l].tid : '?');

  /* A colour per task name: the FNV-1a hash of the name picks a slot in a
   * palette of distinct colours (no red: findings are red; no grey: parked),
   * the next free one when taken, names taken in sorted order so that the
   * same names get the same colours; past the palette, a hashed hue. */
  const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7',
    '#9c755f', '#17becf', '#bcbd22', '#6b6ecf', '#2ca02c', '#9467bd', '#e377c2', '#8c6d31',
    '#3182bd', '#637939', '#ad494a'];
  function fnv(s) {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
    return h;
  }
  const colours = D.names.map(() => null);
  {
    const taken = new Set();
    const order = D.names.map((n, i) => i).sort((a, b) => (D.names[a] < D.names[b] ? -1 : D.names[a] > D.names[b] ? 1 : 0));
    for (const i of order) {
      const h = fnv(D.names[i]);
      let slot = -1;
      for (let k = 0; k < PALETTE.length && slot < 0; k++) {
        const c = (h + k) % PALETTE.length;
        if (!taken.has(c)) slot = c;
      }
      if (slot >= 0) taken.add(slot);
      colours[i] = slot >= 0 ? PALETTE[slot] : 'hsl(' + (h % 360) + ',60%,' + (42 + ((h >>> 9) % 18)) + '%)';
    }
  }
  const colour = (nameIdx) => (nameIdx >= 0 && colours[nameIdx]) || '#9aa3b2';

  /* ---- summary, notes, crash ----------------------------------------- */

  function summary() {
    const d = D.dump;
    const exe = d.executable || '(no PROCESS section)';
    document.title = 'flightrec: ' + exe.split('/').pop() + ' (pid ' + d.pid + ')';
    $('title').textContent = 'flightrec report: ' + exe.split('/').pop() + ', pid ' + d.pid;
    let why = 'dump "' + d.reason + '" (' + d.trigger + (d.signal_name ? ', ' + d.signal_name : '') + ')';
    $('summary').textContent = [exe, why, 'written ' + d.written, dur(d.window_ns) + ' of history',
      d.events + ' events', d.tasks + ' task instances', d.threads + ' threads',
      d.host ? 'host ' + d.host : null, d.flightrec_version ? 'flightrec ' + d.flightrec_version : null]
      .filter((x) => x).join(' \u00b7 ');
    if (d.cmdline) $('cmdline').textContent = d.cmdline.join(' ');

    const notes = [];
    if (!d.whole) {
      notes.push(['damage', 'This dump is damaged; everything that was whole is shown.']);
      for (const e of d.errors) notes.push(['damage', e]);
      if (d.errors_all > d.errors.length) notes.push(['damage', '... and ' + (d.errors_all - d.errors.length) + ' more problems']);
    }
    for (const l of D.lanes) {
      if (l.polls_shown < l.polls_total)
        notes.push(['', laneName(D.lanes.indexOf(l)) + ': ' + l.polls_shown + ' of ' + l.polls_total +
          ' polls shown (those findings are about, long ones and the crashing task\'s, then the latest; --max-polls)']);
      if (l.parks_shown < l.parks_total)
        notes.push(['', laneName(D.lanes.indexOf(l)) + ': the latest ' + l.parks_shown + ' of ' +
          l.parks_total + ' parked spans shown']);
    }
    if (D.tasks.length < D.tasks_total)
      notes.push(['', D.tasks.length + ' of ' + D.tasks_total + ' task instances have a row ' +
        '(those with findings and the crashing chain, then the latest; --max-tasks)']);
    if (D.findings.length < D.findings_total)
      notes.push(['', D.findings.length + ' of ' + D.findings_total + ' findings listed (the most severe)']);
    for (const [cls, text] of notes) $('notes').appendChild(el('li', cls, text));
    $('notes-box').hidden = notes.length === 0;
  }

  function crash() {
    const box = $('crash'), c = D.crash;
    if (!c) {
      box.appendChild(el('p', null, 'No crash: dumped on ' + D.dump.trigger +
        ' ("' + D.dump.reason + '").'));
      return;
    }
    box.appendChild(el('p', 'headline', c.signal_name + ' (code ' + c.code + '), ' +
      c.origin + ', at ' + at(c.at_ns)));
    box.appendChild(el('p', null, 'thread ' + c.tid + (c.thread ? ' "' + c.thread + '"' : '')));
    const chain = el('p', 'chain');
    if (c.chain.length) {
      chain.appendChild(document.createTextNode('task '));
      c.chain.forEach((t, i) => {
        if (i) chain.appendChild(document.createTextNode(' \u2190 '));
        const a = el('a', null, t.id + (t.name !== null ? ' "' + t.name + '"' : ''));
        if (t.row >= 0) a.addEventListener('click', () => selectTask(t.row, true));
        chain.appendChild(a);
      });
      chain.appendChild(document.createTextNode('  (async call chain, innermost first)'));
    } else {
      chain.textContent = c.task_id !== '0' ? 'task ' + c.task_id + ' (no events of it left)' :
        'no task was being polled on the crashing thread';
    }
    box.appendChild(chain);
    const t = el('table', 'mono');
    t.id = 'backtrace';
    c.backtrace.forEach((f, i) => {
      const tr = el('tr', 'frame');
      tr.appendChild(el('td', null, '#' + i));
      tr.appendChild(el('td', null, f.function || f.ip));
      tr.appendChild(el('td', null, f.file ? f.file + ':' + f.line :
        f.module ? f.module.split('/').pop() + '+' + f.offset : ''));
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  function findings() {
    const ol = $('findings');
    $('findings-count').textContent = '(' + D.findings_total + ')';
    if (!D.findings.length) ol.appendChild(el('li', null, 'No findings.'));
    D.findings.forEach((f, i) => {
      const li = el('li', 'finding k-' + f.kind);
      li.dataset.index = i;
      li.tabIndex = 0;
      li.appendChild(el('span', 'kind', f.kind));
      if (f.task) li.appendChild(el('span', 'task', taskText(f.task.id, f.task.name)));
      li.appendChild(el('span', 'when', 'at ' + at(f.at_ns) + ' for ' + dur(f.duration_ns)));
      li.appendChild(el('p', 'msg', f.message));
      li.addEventListener('click', () => selectFinding(i));
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter') selectFinding(i); });
      ol.appendChild(li);
    });
  }

  function lanesTable() {
    const t = $('lanes');
    const head = el('tr');
    for (const h of ['tid', 'name', 'events', 'polls', 'parked', 'busy', 'holds (ms)']) head.appendChild(el('th', null, h));
    t.appendChild(head);
    D.lanes.forEach((l) => {
      const tr = el('tr', 'lane');
      tr.dataset.tid = l.tid;
      const span = Math.max(1, l.last_ns - l.first_ns);
      for (const v of [l.tid, l.name || '', l.events,
        l.polls_total + (l.polls_shown < l.polls_total ? ' (' + l.polls_shown + ' shown)' : ''),
        l.parks_total, l.polls_total ? Math.round(100 * l.busy_ns / span) + ' %' : '-',
        (l.first_ns / 1e6).toFixed(1) + ' .. ' + (l.last_ns / 1e6).toFixed(1)]) tr.appendChild(el('td', null, v));
      t.appendChild(tr);
    });
  }

  function namesList() {
    const used = new Map();
    for (const t of D.tasks) used.set(t[1], (used.get(t[1]) || 0) + 1);
    const ul = $('names');
    $('names-count').textContent = '(' + used.size + ')';
    [...used.keys()].sort((a, b) => used.get(b) - used.get(a)).forEach((n) => {
      const li = el('li', 'name');
      const sw = el('span', 'swatch');
      sw.style.background = colour(n);
      li.appendChild(sw);
      li.appendChild(document.createTextNode((nameText(n) === null ? '(no name)' : nameText(n)) + ' \u00d7' + used.get(n)));
      ul.appendChild(li);
    });
  }

  /* ---- timeline model ------------------------------------------------- */

  const rowPolls = D.tasks.map(() => []); // per row: [lane, poll index]
  D.lanes.forEach((l, li) => {
    for (let i = 0; i < l.polls.length; i += PS) if (l.polls[i] >= 0) rowPolls[l.polls[i]].push([li, i]);
  });
  // Rows on screen: tasks with findings and the crashing chain first.
  const flagged = new Set(D.findings.map((f) => f.row).filter((r) => r >= 0));
  for (const f of D.findings) for (const r of f.cycle_rows || []) if (r >= 0) flagged.add(r);
  if (D.crash) for (const t of D.crash.chain) if (t.row >= 0) flagged.add(t.row);
  const order = [...flagged].sort((a, b) => a - b);
  D.tasks.forEach((t, r) => { if (!flagged.has(r)) order.push(r); });
  const pos = new Array(D.tasks.length);
  order.forEach((r, i) => { pos[r] = i; });
  const findingsByRow = new Map(); // row -> indices into D.findings
  const inCycle = new Set(); // rows of tasks in a deadlock
  D.findings.forEach((f, i) => {
    for (const r of new Set([f.row, ...(f.cycle_rows || [])])) {
      if (r < 0) continue;
      if (!findingsByRow.has(r)) findingsByRow.set(r, []);
      findingsByRow.get(r).push(i);
      if (f.cycle_rows) inCycle.add(r);
    }
  });
  const rowLocks = D.tasks.map(() => []); // per row: [name, begin, end] of its lock waits
  const LW = D.lock_waits || [];
  for (let i = 0; i + 3 < LW.length; i += 4) if (LW[i] >= 0 && LW[i] < rowLocks.length) rowLocks[LW[i]].push([LW[i + 1], LW[i + 2], LW[i + 3]]);
  const W_END = Math.max(1, D.dump.window_ns);
  const view = { t0: 0, t1: W_END };
  let sel = null; // {finding: i} | {row: r} | null
  let selRow = -1;

  const cv = $('tl-canvas'), box = $('tl'), space = $('tl-space'), tip = $('tip');
  const ctx = cv.getContext('2d');
  const lanesH = AXIS_H + D.lanes.length * (LANE_H + LANE_GAP) + SEP_H;
  const laneY = (l) => AXIS_H + l * (LANE_H + LANE_GAP);
  let W = 0, H = 0;

  function layout() {
    const contentH = lanesH + D.tasks.length * ROW_H + 4;
    H = Math.max(200, Math.min(contentH, 620));
    W = Math.max(400, box.clientWidth);
    const dpr = window.devicePixelRatio || 1;
    cv.style.height = H + 'px';
    cv.width = Math.round(W * dpr);
    cv.height = Math.round(H * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    box.style.height = H + 'px';
    space.style.height = Math.max(0, contentH - H) + 'px';
  }

  const xOf = (ns) => LABEL_W + (ns - view.t0) / (view.t1 - view.t0) * (W - LABEL_W);
  const nsOf = (x) => view.t0 + (x - LABEL_W) / (W - LABEL_W) * (view.t1 - view.t0);

  /* First poll of lane @l ending at or after @ns: a worker runs one poll at a
   * time, so a lane's polls are ordered by begin and by end alike. */
  function firstPoll(l, ns) {
    const p = D.lanes[l].polls;
    let lo = 0, hi = p.length / PS;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (p[mid * PS + 3] < ns) lo = mid + 1; else hi = mid;
    }
    return lo * PS;
  }

  function clampX(x) { return Math.max(LABEL_W, Math.min(W + 2, x)); }

  function span(y, h, b, e, fill) {
    let x0 = xOf(b), x1 = xOf(e);
    if (x1 < LABEL_W || x0 > W) return;
    x0 = clampX(x0);
    x1 = clampX(x1);
    ctx.fillStyle = fill;
    ctx.fillRect(x0, y, Math.max(1, x1 - x0), h);
  }

  function arrow(x0, y0, x1, y1) {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    if (y0 === y1) ctx.quadraticCurveTo((x0 + x1) / 2, y0 - 14, x1, y1);
    else ctx.lineTo(x1, y1);
    ctx.stroke();
    const a = y0 === y1 ? Math.atan2(14, (x1 - x0) / 2) : Math.atan2(y1 - y0, x1 - x0);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - 6 * Math.cos(a - 0.45), y1 - 6 * Math.sin(a - 0.45));
    ctx.lineTo(x1 - 6 * Math.cos(a + 0.45), y1 - 6 * Math.sin(a + 0.45));
    ctx.closePath();
    ctx.fill();
  }

  /* ---- drawing -------------------------------------------------------- */

  /* Time ticks 1, 2 or 5 x 10^k ns apart, about 8 to 10 in view. */
  function ticks() {
    const span = view.t1 - view.t0;
    let step = Math.pow(10, Math.floor(Math.log10(span / 8)));
    for (const m of [1, 2, 5, 10]) if (span / (step * m) <= 10) { step *= m; break; }
    const out = [];
    for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) out.push(t);
    return { step, out };
  }

  function drawGrid() {
    ctx.strokeStyle = '#e7eaef';
    for (const t of ticks().out) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, AXIS_H);
      ctx.lineTo(x, H);
      ctx.stroke();
    }
  }

  function drawAxis() {
    ctx.fillStyle = '#f3f5f8';
    ctx.fillRect(0, 0, W, AXIS_H);
    const { step, out } = ticks();
    ctx.fillStyle = '#5d6677';
    ctx.strokeStyle = '#c9ced8';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / 1e6))));
    for (const t of out) {
      const x = Math.round(xOf(t)) + 0.5;
      if (x < LABEL_W) continue;
      ctx.fillText((t / 1e6).toFixed(digits) + ' ms', x + 3, AXIS_H / 2);
      ctx.beginPath();
      ctx.moveTo(x, AXIS_H - 6);
      ctx.lineTo(x, AXIS_H);
      ctx.stroke();
    }
  }

  function drawLanes() {
    let arrows = [];
    D.lanes.forEach((l, li) => {
      const y = laneY(li);
      ctx.fillStyle = 'rgba(29,35,48,.03)';
      ctx.fillRect(LABEL_W, y, W - LABEL_W, LANE_H);
      if (l.covered_from_ns !== undefined) span(y, LANE_H, 0, l.covered_from_ns, '#eceff3');
      for (let i = 0; i < l.parks.length; i += 2) {
        if (l.parks[i + 1] < view.t0 || l.parks[i] > view.t1) continue;
        span(y + 4, LANE_H - 8, l.parks[i], l.parks[i + 1], '#e3e6eb');
      }
      const p = l.polls;
      for (let i = firstPoll(li, view.t0); i < p.length && p[i + 2] <= view.t1; i += PS) {
        const mine = selRow >= 0 && p[i] === selRow;
        span(y + 2, LANE_H - 4, p[i + 2], p[i + 3], colour(p[i + 1]));
        if (mine) {
          ctx.strokeStyle = '#111';
          ctx.lineWidth = 2;
          ctx.strokeRect(clampX(xOf(p[i + 2])), y + 1, Math.max(2, clampX(xOf(p[i + 3])) - clampX(xOf(p[i + 2]))), LANE_H - 2);
          ctx.lineWidth = 1;
        }
        if (p[i + 6] >= 0 && p[i + 5] >= 0) arrows.push([p[i + 6], p[i + 5], li, p[i + 2], mine]);
      }
    });
    // findings on the lanes of their threads
    // (a band over the selected one; a mark where each other one starts)
    D.findings.forEach((f, i) => {
      if (f.lane < 0) return;
      const y = laneY(f.lane), x = xOf(f.at_ns);
      if (sel && sel.finding === i) {
        span(y, LANE_H, f.at_ns, f.at_ns + Math.max(f.duration_ns, 1), 'rgba(198,40,40,.35)');
        ctx.strokeStyle = '#c62828';
        ctx.lineWidth = 2;
        ctx.strokeRect(clampX(x), y, Math.max(2, clampX(xOf(f.at_ns + f.duration_ns)) - clampX(x)), LANE_H);
        ctx.lineWidth = 1;
      }
      span(y, 3, f.at_ns, f.at_ns + Math.max(f.duration_ns, 1), 'rgba(198,40,40,.55)');
      if (x < LABEL_W || x > W) return;
      ctx.fillStyle = '#c62828';
      ctx.beginPath();
      ctx.moveTo(x - 5, y);
      ctx.lineTo(x + 5, y);
      ctx.lineTo(x, y + 8);
      ctx.closePath();
      ctx.fill();
    });
    // wake arrows: all of them when few are in view, else the selected task's
    const inView = arrows.filter((a) => a[3] >= view.t0 && a[1] <= view.t1);
    const all = inView.length <= 300;
    ctx.strokeStyle = 'rgba(29,35,48,.7)';
    ctx.fillStyle = 'rgba(29,35,48,.8)';
    for (const [wl, wns, li, bns, mine] of inView) {
      if (!all && !mine) continue;
      arrow(xOf(wns), laneY(wl) + LANE_H / 2, xOf(bns), laneY(li) + (wl === li ? 2 : wl < li ? 2 : LANE_H - 2));
    }
    $('detail').dataset.arrows = all ? 'all' : 'selected';
    // labels
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, AXIS_H, LABEL_W, lanesH - AXIS_H);
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    D.lanes.forEach((l, li) => {
      ctx.fillStyle = '#1d2330';
      ctx.fillText(clip(laneName(li), LABEL_W - 70), 8, laneY(li) + LANE_H / 2);
      ctx.fillStyle = '#5d6677';
      ctx.fillText(String(l.tid), LABEL_W - 58, laneY(li) + LANE_H / 2);
    });
    ctx.fillStyle = '#f3f5f8';
    ctx.fillRect(0, lanesH - SEP_H, W, SEP_H);
    ctx.fillStyle = '#5d6677';
    ctx.fillText('task instances (' + D.tasks.length + (flagged.size ? '; the ' + flagged.size + ' with findings or in the crash first' : '') + ')' + (all ? '' : '   \u2014 zoom in to see every wake arrow'),
      8, lanesH - SEP_H / 2);
  }

  function clip(s, px) {
    if (ctx.measureText(s).width <= px) return s;
    while (s.length > 1 && ctx.measureText(s + '\u2026').width > px) s = s.slice(0, -1);
    return s + '\u2026';
  }

  function drawRows() {
    const top = box.scrollTop;
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, lanesH, W, H - lanesH);
    ctx.clip();
    const r0 = Math.max(0, Math.floor(top / ROW_H)), r1 = Math.min(D.tasks.length, Math.ceil((top + H - lanesH) / ROW_H) + 1);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (let k = r0; k < r1; k++) {
      const r = order[k], t = D.tasks[r], y = lanesH + k * ROW_H - top, mid = y + ROW_H / 2;
      if (k === flagged.size && k > 0) {
        ctx.fillStyle = '#c9ced8';
        ctx.fillRect(0, y - 1, W, 1);
      }
      if (r === selRow || k % 2) {
        ctx.fillStyle = r === selRow ? 'rgba(31,95,191,.12)' : 'rgba(29,35,48,.025)';
        ctx.fillRect(0, y, W, ROW_H);
      }
      const born = t[6] >= 0 ? t[6] : t[4];
      const gone = t[7] >= 0 ? t[7] : t[5];
      span(mid - 0.5, 1, born, gone, '#9aa3b2');
      if (t[7] < 0 && t[3] !== 'ready') { // still alive at the end
        ctx.setLineDash([3, 3]);
        ctx.strokeStyle = '#9aa3b2';
        ctx.beginPath();
        ctx.moveTo(clampX(xOf(gone)), mid + 0.5);
        ctx.lineTo(clampX(xOf(W_END)), mid + 0.5);
        ctx.stroke();
        ctx.setLineDash([]);
      }
      for (const i of findingsByRow.get(r) || []) {
        const f = D.findings[i];
        span(y, ROW_H, f.at_ns, f.at_ns + Math.max(f.duration_ns, 1), sel && sel.finding === i ? 'rgba(198,40,40,.45)' : 'rgba(198,40,40,.18)');
      }
      for (const [li, i] of rowPolls[r]) {
        const p = D.lanes[li].polls;
        if (p[i + 3] < view.t0 || (p[i + 5] >= 0 ? p[i + 5] : p[i + 2]) > view.t1) continue;
        if (p[i + 5] >= 0 && p[i + 5] < p[i + 2])
          span(mid - 1.5, 3, p[i + 5], p[i + 2], p[i + 2] - p[i + 5] > D.thresholds.starvation_ns ? '#e0752d' : '#f0b35b');
        span(y + 3, ROW_H - 6, p[i + 2], p[i + 3], colour(p[i + 1]));
      }
      // lock waits: a band under the polls, red in a deadlock
      for (const [, b, e] of rowLocks[r]) span(y + ROW_H - 4, 3, b, e, inCycle.has(r) ? '#c62828' : '#7b3fa0');
      if (t[6] >= 0) span(y + 2, ROW_H - 4, t[6], t[6], '#1d2330');
      if (t[7] >= 0) span(y + 2, ROW_H - 4, t[7], t[7], '#6b7280');
      ctx.fillStyle = r === selRow ? '#e8f0fc' : '#fff';
      ctx.fillRect(0, y, LABEL_W, ROW_H);
      ctx.fillStyle = colour(t[1]);
      ctx.fillRect(6, y + 4, 8, ROW_H - 8);
      ctx.fillStyle = '#1d2330';
      const n = nameText(t[1]);
      ctx.fillText(clip(t[0] + ' ' + (n === null ? '' : n), LABEL_W - 70), 18, mid);
      ctx.fillStyle = '#5d6677';
      ctx.fillText(t[3], LABEL_W - 50, mid);
    }
    ctx.restore();
  }

  function drawCrash() {
    if (!D.crash) return;
    const x = xOf(D.crash.at_ns);
    if (x < LABEL_W || x > W) return;
    ctx.strokeStyle = '#c62828';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, H);
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = '#c62828';
    ctx.font = 'bold 11px system-ui, sans-serif';
    ctx.fillText(D.crash.signal_name, x - ctx.measureText(D.crash.signal_name).width - 4, AXIS_H / 2);
  }

  let pending = false;
  /* The selected deadlock's cycle: an arrow from each task to the holder of
   * the lock it waits for, beside the finding's start. */
  function drawCycle() {
    const f = sel && sel.finding !== undefined ? D.findings[sel.finding] : null;
    if (!f || !f.cycle_rows || f.cycle_rows.some((r) => r < 0)) return;
    const top = box.scrollTop, x = clampX(xOf(f.at_ns)) + 8;
    const yOf = (r) => lanesH + pos[r] * ROW_H - top + ROW_H / 2;
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, lanesH, W, H - lanesH);
    ctx.clip();
    ctx.strokeStyle = ctx.fillStyle = '#c62828';
    ctx.lineWidth = 1.5;
    const n = f.cycle_rows.length;
    f.cycle_rows.forEach((r, k) => {
      const to = f.cycle_rows[(k + 1) % n];
      const dx = k === n - 1 ? 14 : 0; // the arrow that closes the cycle, set apart
      arrow(x + dx, yOf(r), x + dx, yOf(to) + (yOf(to) > yOf(r) ? -4 : 4));
    });
    ctx.restore();
  }

  function draw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(drawNow);
  }
  function drawNow() {
    pending = false;
    ctx.clearRect(0, 0, W, H);
    drawGrid();
    drawRows();
    drawLanes();
    drawAxis();
    drawCrash();
    drawCycle();
    ctx.strokeStyle = '#d8dce3';
    ctx.beginPath();
    ctx.moveTo(LABEL_W + 0.5, AXIS_H);
    ctx.lineTo(LABEL_W + 0.5, H);
    ctx.stroke();
  }

  /* ---- selection ------------------------------------------------------ */

  function setView(t0, t1) {
    const minSpan = 1000;
    if (t1 - t0 < minSpan) { const c = (t0 + t1) / 2; t0 = c - minSpan / 2; t1 = c + minSpan / 2; }
    const pad = W_END * 0.05, s = t1 - t0;
    if (s > W_END + 2 * pad) { t0 = -pad; t1 = W_END + pad; }
    if (t0 < -pad) { t1 += -pad - t0; t0 = -pad; }
    if (t1 > W_END + pad) { t0 -= t1 - W_END - pad; t1 = W_END + pad; }
    view.t0 = t0;
    view.t1 = t1;
    draw();
  }

  function showRow(r) {
    if (r < 0) return;
    const visible = H - lanesH;
    const y = pos[r] * ROW_H;
    if (y < box.scrollTop || y + ROW_H > box.scrollTop + visible) box.scrollTop = Math.max(0, y - visible / 2);
  }

  function markList(i) {
    for (const li of document.querySelectorAll('.finding.selected')) li.classList.remove('selected');
    if (i === undefined) return;
    const li = document.querySelector('.finding[data-index="' + i + '"]');
    if (li) {
      li.classList.add('selected');
      const ol = $('findings');
      if (li.offsetTop < ol.scrollTop || li.offsetTop > ol.scrollTop + ol.clientHeight - 20) ol.scrollTop = li.offsetTop - ol.offsetTop;
    }
  }

  function selectFinding(i) {
    const f = D.findings[i];
    if (!f) return;
    sel = { finding: i };
    selRow = f.row;
    const d = Math.max(f.duration_ns, 1e5), pad = Math.max(d * 0.3, 2e5);
    setView(f.at_ns - pad, f.at_ns + d + pad);
    showRow(f.row);
    markList(i);
    document.body.dataset.selected = String(i);
    $('detail').textContent = f.kind + (f.task ? ' \u2014 ' + taskText(f.task.id, f.task.name) : '') +
      (f.lane >= 0 ? ' on ' + laneName(f.lane) : '') + ', at ' + at(f.at_ns) + ' for ' + dur(f.duration_ns) + '\n' + f.message;
    box.scrollIntoView({ block: 'nearest' });
    draw();
  }

  function taskDetail(r) {
    const t = D.tasks[r];
    const parent = t[2] >= 0 ? taskText(D.tasks[t[2]][0], nameText(D.tasks[t[2]][1])) : t[9] !== '0' ? 'task ' + t[9] : 'none';
    return taskText(t[0], nameText(t[1])) + ': ' + t[3] + ' at the end, ' + t[8] + ' polls' +
      (t[6] >= 0 ? ', spawned at ' + at(t[6]) : ', first seen at ' + at(t[4])) +
      (t[7] >= 0 ? ', dropped at ' + at(t[7]) : '') + ', parent ' + parent;
  }

  function selectTask(r, zoom) {
    sel = { row: r };
    selRow = r;
    markList();
    delete document.body.dataset.selected;
    $('detail').textContent = taskDetail(r);
    if (zoom) {
      const t = D.tasks[r], b = t[6] >= 0 ? t[6] : t[4], e = t[7] >= 0 ? t[7] : W_END;
      setView(b - (e - b) * 0.1, e + (e - b) * 0.1);
    }
    showRow(r);
    draw();
  }

  /* What is under (x, y) on the canvas: {row, lane, poll} (poll: index or -1). */
  function hit(x, y) {
    if (x < LABEL_W && y >= lanesH) {
      const r = order[Math.floor((y - lanesH + box.scrollTop) / ROW_H)];
      return r !== undefined ? { row: r, lane: -1, poll: -1 } : null;
    }
    if (x < LABEL_W || y < AXIS_H) return null;
    const ns = nsOf(x), slop = (view.t1 - view.t0) / (W - LABEL_W) * 2;
    if (y < lanesH - SEP_H) {
      const li = Math.floor((y - AXIS_H) / (LANE_H + LANE_GAP));
      if (li < 0 || li >= D.lanes.length) return null;
      const p = D.lanes[li].polls;
      for (let i = firstPoll(li, ns - slop); i < p.length && p[i + 2] <= ns + slop; i += PS)
        return { row: p[i], lane: li, poll: i };
      return { row: -1, lane: li, poll: -1 };
    }
    if (y < lanesH) return null;
    const r = order[Math.floor((y - lanesH + box.scrollTop) / ROW_H)];
    if (r === undefined) return null;
    for (const [li, i] of rowPolls[r]) {
      const p = D.lanes[li].polls;
      if (p[i + 2] <= ns + slop && p[i + 3] >= ns - slop) return { row: r, lane: li, poll: i };
    }
    return { row: r, lane: -1, poll: -1 };
  }

  function pollText(li, i) {
    const p = D.lanes[li].polls;
    let s = taskText(p[i] >= 0 ? D.tasks[p[i]][0] : '?', nameText(p[i + 1])) + '\npoll on ' + laneName(li) +
      ' at ' + at(p[i + 2]) + ' for ' + dur(p[i + 3] - p[i + 2]) + ', ' + RESULT[p[i + 4]];
    if (p[i + 5] >= 0) s += '\nrunnable ' + dur(p[i + 2] - p[i + 5]) + ' before' +
      (p[i + 6] >= 0 ? ' (woken on ' + laneName(p[i + 6]) + ')' : '');
    return s;
  }

  /* ---- interaction ---------------------------------------------------- */

  function zoomAt(x, factor) {
    const c = nsOf(Math.max(LABEL_W, x));
    setView(c - (c - view.t0) * factor, c + (view.t1 - c) * factor);
  }

  function wire() {
    cv.addEventListener('wheel', (e) => {
      e.preventDefault();
      zoomAt(e.offsetX, Math.pow(1.0015, e.deltaY));
    }, { passive: false });
    let drag = null;
    cv.addEventListener('mousedown', (e) => {
      drag = { x: e.clientX, y: e.clientY, t0: view.t0, t1: view.t1, top: box.scrollTop, moved: false };
      cv.classList.add('dragging');
    });
    window.addEventListener('mousemove', (e) => {
      if (drag) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        const dt = dx / (W - LABEL_W) * (drag.t1 - drag.t0);
        setView(drag.t0 - dt, drag.t1 - dt);
        box.scrollTop = drag.top - dy;
        tip.style.display = 'none';
        return;
      }
      if (e.target !== cv) { tip.style.display = 'none'; return; }
      const h = hit(e.offsetX, e.offsetY);
      if (!h || (h.poll < 0 && h.row < 0)) { tip.style.display = 'none'; return; }
      tip.textContent = h.poll >= 0 ? pollText(h.lane, h.poll) : taskDetail(h.row);
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 470) + 'px';
      tip.style.top = (e.clientY + 14) + 'px';
      tip.style.display = 'block';
    });
    window.addEventListener('mouseup', (e) => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      cv.classList.remove('dragging');
      if (moved || e.target !== cv) return;
      const h = hit(e.offsetX, e.offsetY);
      if (h && h.row >= 0) selectTask(h.row, false);
    });
    cv.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
    box.addEventListener('scroll', draw);
    $('zoom-in').addEventListener('click', () => zoomAt((W + LABEL_W) / 2, 0.5));
    $('zoom-out').addEventListener('click', () => zoomAt((W + LABEL_W) / 2, 2));
    $('zoom-fit').addEventListener('click', () => setView(0, W_END));
    window.addEventListener('resize', () => { layout(); draw(); });
  }

  /* ---- go ------------------------------------------------------------- */

  try {
    summary();
    crash();
    findings();
    lanesTable();
    namesList();
    layout();
    setView(0, W_END);
    wire();
    const m = /^#finding=(\d+)$/.exec(location.hash);
    if (m) selectFinding(Number(m[1]));
    drawNow();
    $('status').textContent = 'Rendered ' + D.lanes.length + ' thread lanes, ' + D.tasks.length +
      ' task rows, ' + D.findings.length + ' findings.';
    document.body.dataset.rendered = 'ok';
  } catch (e) {
    $('status').className = 'error';
    $('status').textContent = 'The report failed to draw: ' + e;
    document.body.dataset.rendered = 'error';
    throw e;
  }
})();
