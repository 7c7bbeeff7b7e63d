/* hog report: draws the timeline (one row per slot) and GPU-slot use on canvases.
   The data is the JSON in #hog-data: columns of bars sorted by (lane, start), times
   in seconds since the sweep's first start. After drawing, a summary of what was
   drawn goes into #hog-rendered (read by tests and handy when debugging). */
(function () {
  "use strict";
  var started = performance.now();
  var D = JSON.parse(document.getElementById("hog-data").textContent);

  // ------------------------------------------------------------------ unpacking
  // columns come packed (see hog/views/report/pack.py): a list, {n, c} (all c),
  // {n, c, i, v} (c but at positions i, as steps, which hold v), {d} (differences)
  function expand(p) {
    if (Array.isArray(p)) return p;
    var out, k, pos = 0, prev = 0;
    if (p.d) {
      out = new Array(p.d.length);
      for (k = 0; k < p.d.length; k++) { prev += p.d[k]; out[k] = prev; }
      return out;
    }
    out = new Array(p.n);
    for (k = 0; k < p.n; k++) out[k] = p.c;
    if (p.i) for (k = 0; k < p.i.length; k++) { pos += p.i[k]; out[pos] = p.v[k]; }
    return out;
  }
  function expandTexts(p) {       // patterns p[k] with numbers between their parts
    var keys = expand(p.k), nums = expand(p.n), last = {}, at = 0, out = new Array(keys.length);
    for (var i = 0; i < keys.length; i++) {
      var lits = p.p[keys[i]], text = lits[0];
      if (lits.length > 1) {
        var prev = last[keys[i]], mine = [];
        for (var j = 1; j < lits.length; j++) {
          var v = nums[at++] + (prev ? prev[j - 1] : 0);
          mine.push(v);
          text += v + lits[j];
        }
        last[keys[i]] = mine;
      }
      out[i] = text;
    }
    return out;
  }
  function unpackBars(p) {
    var n = 0, l, i;
    for (l = 0; l < p.perLane.length; l++) n += p.perLane[l];
    var lane = new Int32Array(n), s = new Float64Array(n), e = new Float64Array(n);
    var k = 0;
    for (l = 0; l < p.perLane.length; l++) for (i = 0; i < p.perLane[l]; i++) lane[k++] = l;
    var ms = expand(p.s), d = expand(p.d);
    for (i = 0; i < n; i++) { s[i] = ms[i] / 1000; e[i] = (ms[i] + d[i]) / 1000; }
    return { lane: lane, s: s, e: e, job: expand(p.job), st: expand(p.st), att: expand(p.att),
             x: expand(p.x), sig: expand(p.sig), gpus: expand(p.gpus), flags: expand(p.flags) };
  }
  function usageOf(B, lanes, cap) {
    // GPU slots busy (a job counts each of its GPUs), CPU slots busy and GPU slots
    // offered, as step functions: a point wherever one of them changes
    var n = B.s.length, times = [], kind = [], delta = [], i;
    for (i = 0; i < n; i++) {
      if (B.flags[i] & 2) continue;                 // another GPU of a job counted already
      var cpu = lanes[B.lane[i]].cpu, k = cpu ? 1 : (B.gpus[i] ? B.gpus[i].split(",").length : 1);
      times.push(Math.round(B.s[i] * 1000), Math.round(B.e[i] * 1000));
      kind.push(cpu ? 1 : 0, cpu ? 1 : 0); delta.push(k, -k);
    }
    for (i = 0; i < cap.t.length; i++) { times.push(cap.t[i]); kind.push(2); delta.push(cap.n[i]); }
    var order = new Int32Array(times.length);
    for (i = 0; i < order.length; i++) order[i] = i;
    order.sort(function (a, b) { return times[a] - times[b]; });
    var U = { t: [], busy: [], cap: [], cpu: [] }, now = [0, 0, 0];
    for (var q = 0; q < order.length; q++) {
      var ev = order[q];
      now[kind[ev]] += delta[ev];
      if (q + 1 < order.length && times[order[q + 1]] === times[ev]) continue;
      U.t.push(times[ev] / 1000); U.busy.push(now[0]); U.cpu.push(now[1]); U.cap.push(now[2]);
    }
    return U;
  }

  var LANES = D.lanes, B = unpackBars(D.bars), J = D.jobs;
  J = { id: expand(J.id), name: expandTexts(J.name), cmd: expandTexts(J.cmd), attempts: expand(J.attempts),
        cpu: J.cpu && expand(J.cpu), rss: J.rss && expand(J.rss), gmem: J.gmem && expand(J.gmem),
        gutil: J.gutil && expand(J.gutil) };
  var U = usageOf(B, LANES, D.capacity);
  var N = B.s.length, NL = LANES.length;
  var SPAN = Math.max(D.span, 0.001);
  var view = { a: 0, b: SPAN };
  var LABEL_W = 118, PAD_R = 16, AXIS_H = 24, GROUP_H = 20;
  var USAGE_PLOT_H = 120, USAGE_AXIS_H = 22;
  var C = { busy: "#3d6fb6", idle: "#f6cfc4", offered: "#323f4b", cpu: "#8d6cc4",
            grid: "#e4e7eb", text: "#1f2933", muted: "#7b8794", band: "#f7f9fb", now: "#e63946" };
  var FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif';
  var dpr = window.devicePixelRatio || 1;
  var rendered = { errors: window.hogErrors || [], lanes: NL, laneLabels: [], bars: N,
                   byStatus: {}, earlier: 0, parts: 0, running: 0, failedBars: 0,
                   failedVisible: 0, usagePoints: U.t.length, histogramBars: 0, failures: 0,
                   draws: 0, renderMs: 0 };

  function color(i) { return D.colors[D.statuses[i]] || "#999"; }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function dur(s) {
    if (s == null || !isFinite(s)) return "?";
    if (s < 10) return (Math.round(s * 100) / 100) + "s";
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    function two(v) { return (v < 10 ? "0" : "") + v; }
    return h ? h + "h" + two(m) + "m" + two(x) + "s" : (m ? m + "m" + two(x) + "s" : x + "s");
  }
  function clock(rel) {
    var d = new Date((D.t0 + rel) * 1000);
    function two(v) { return (v < 10 ? "0" : "") + v; }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }
  function relLabel(t, step) {
    if (step < 1) return t.toFixed(step < 0.1 ? 2 : 1) + "s";
    t = Math.round(t);
    var d = Math.floor(t / 86400), h = Math.floor((t % 86400) / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    function two(v) { return (v < 10 ? "0" : "") + v; }
    var hm = (d ? d + "d " + two(h) : h) + ":" + two(m);
    if (step >= 60) return hm;
    return (d || h ? hm + ":" : m + ":") + two(s);
  }
  var STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
               1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  function ticks(a, b, px) {
    var want = Math.max(2, Math.floor(px / 95)), step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) {
      if ((b - a) / STEPS[i] <= want) { step = STEPS[i]; break; }
    }
    var out = [];
    for (var t = Math.ceil(a / step) * step; t <= b + 1e-9; t += step) out.push(t);
    return { list: out, step: step };
  }

  // ------------------------------------------------------------------ layout
  var laneFirst = new Int32Array(NL + 1);      // bars of lane l: [laneFirst[l], laneFirst[l+1])
  (function () {
    var l = 0;
    for (var i = 0; i <= N; i++) {
      var lane = i < N ? B.lane[i] : NL;
      while (l <= lane && l <= NL) { laneFirst[l] = i; l++; }
    }
    while (l <= NL) { laneFirst[l++] = N; }
  })();
  var RH = NL <= 6 ? 30 : NL <= 12 ? 25 : NL <= 32 ? 19 : 14;
  var laneY = [], groups = [], y = AXIS_H;
  for (var l = 0; l < NL; l++) {
    if (LANES[l].group && (l === 0 || LANES[l].group !== LANES[l - 1].group)) {
      groups.push({ y: y, text: LANES[l].group });
      y += GROUP_H;
    }
    laneY.push(y);
    y += RH;
    rendered.laneLabels.push(LANES[l].label + " " + LANES[l].slot);
  }
  var GANTT_H = y + 6;

  function setup(canvas, height) {
    var w = canvas.parentNode.clientWidth || 800;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.height = height + "px";
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, height);
    return { ctx: ctx, w: w, plotW: Math.max(50, w - LABEL_W - PAD_R) };
  }
  function X(t, g) { return LABEL_W + (t - view.a) / (view.b - view.a) * g.plotW; }
  function T(x, g) { return view.a + (x - LABEL_W) / g.plotW * (view.b - view.a); }

  var patterns = {};
  function hatch(ctx, col) {
    if (!patterns[col]) {
      var p = document.createElement("canvas");
      p.width = p.height = 6;
      var c = p.getContext("2d");
      c.fillStyle = "#ffffff"; c.fillRect(0, 0, 6, 6);
      c.globalAlpha = 0.35; c.fillStyle = col; c.fillRect(0, 0, 6, 6);
      c.globalAlpha = 1; c.strokeStyle = col; c.lineWidth = 2;
      c.beginPath(); c.moveTo(-1, 7); c.lineTo(7, -1); c.moveTo(5, 7); c.lineTo(7, 5);
      c.moveTo(-1, 1); c.lineTo(1, -1); c.stroke();
      patterns[col] = ctx.createPattern(p, "repeat");
    }
    return patterns[col];
  }

  // ------------------------------------------------------------------ timeline
  var gantt = document.getElementById("gantt"), G = null;
  function drawGantt() {
    var g = G = setup(gantt, GANTT_H), ctx = g.ctx, right = LABEL_W + g.plotW;
    ctx.font = "12px " + FONT;
    ctx.textBaseline = "middle";
    for (var l = 0; l < NL; l++) {                      // bands and slot labels
      if (l % 2 === 0) { ctx.fillStyle = C.band; ctx.fillRect(0, laneY[l], right, RH); }
      ctx.fillStyle = C.text; ctx.font = "600 12px " + FONT;
      ctx.fillText(LANES[l].label, 8, laneY[l] + RH / 2);
      var lw = ctx.measureText(LANES[l].label).width;
      ctx.fillStyle = C.muted; ctx.font = "11px " + FONT;
      ctx.fillText(LANES[l].cpu ? LANES[l].slot : "slot " + LANES[l].slot, 14 + lw, laneY[l] + RH / 2);
    }
    for (var k = 0; k < groups.length; k++) {
      ctx.fillStyle = C.text; ctx.font = "600 12px " + FONT;
      ctx.fillText(groups[k].text, 8, groups[k].y + GROUP_H / 2 + 1);
      ctx.fillStyle = C.grid; ctx.fillRect(0, groups[k].y, right, 1);
    }
    var tk = ticks(view.a, view.b, g.plotW);              // time axis
    ctx.font = "11px " + FONT; ctx.fillStyle = C.muted;
    ctx.fillText("from " + clock(0), 8, AXIS_H / 2 - 1);
    ctx.textAlign = "center";
    for (var i = 0; i < tk.list.length; i++) {
      var x = Math.round(X(tk.list[i], g)) + 0.5;
      ctx.fillStyle = C.grid; ctx.fillRect(x - 0.5, AXIS_H - 4, 1, GANTT_H - AXIS_H);
      ctx.fillStyle = C.muted; ctx.fillText(relLabel(tk.list[i], tk.step), x, AXIS_H / 2 - 1);
    }
    ctx.textAlign = "left";
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL_W, 0, g.plotW, GANTT_H); ctx.clip();
    var count = {}, failedCol = D.colors.failed, failedIdx = D.statuses.indexOf("failed");
    var centres = [];
    // a row with more attempts in view than pixel columns is drawn binned: each device
    // pixel column in the colour of the attempts it holds, failures first
    var base = Math.floor(LABEL_W * dpr), cols = Math.ceil(g.plotW * dpr) + 2, dense = [];
    var anyDense = false;
    for (var l2 = 0; l2 < NL; l2++) {
      var inView = 0;
      for (var i2 = laneFirst[l2]; i2 < laneFirst[l2 + 1]; i2++) {
        if (!(B.e[i2] < view.a || B.s[i2] > view.b)) inView++;
      }
      dense.push(inView > g.plotW ? { rank: new Int8Array(cols), st: new Int8Array(cols) } : null);
      anyDense = anyDense || inView > g.plotW;
    }
    function rank(st) { return D.statuses[st] === "succeeded" ? 1 : (st === failedIdx ? 30 : 20 - st); }
    // succeeded first, then everything else on top, so failures are never hidden
    for (var pass = 0; pass < 2; pass++) {
      for (var b = 0; b < N; b++) {
        var st = B.st[b], ok = D.statuses[st] === "succeeded";
        if ((pass === 0) !== ok) continue;
        var s = B.s[b], e = B.e[b];
        if (e < view.a || s > view.b) continue;
        // whole device pixels, at least one CSS pixel: a short job keeps its true colour
        var x0 = Math.floor(X(s, g) * dpr) / dpr, x1 = Math.round(X(e, g) * dpr) / dpr;
        var w = Math.max(1, x1 - x0);
        if (w >= 4) w -= w >= 12 ? 2 : 1;                // a gap between consecutive jobs
        var yb = laneY[B.lane[b]] + 3, h = RH - 6, f = B.flags[b];
        var col = color(st), bins = dense[B.lane[b]];
        if (bins) {                                      // its pixel columns, by rank
          var c0 = Math.round(x0 * dpr) - base, c1 = c0 + Math.max(Math.round(dpr), Math.round(x1 * dpr) - Math.round(x0 * dpr));
          var r = rank(st);
          for (var c = Math.max(0, c0); c < Math.min(cols, c1); c++) {
            if (r > bins.rank[c]) { bins.rank[c] = r; bins.st[c] = st; }
          }
        } else {
          ctx.fillStyle = (f & 1) ? hatch(ctx, col) : col;
          ctx.globalAlpha = (f & 2) ? 0.5 : 1;
          ctx.fillRect(x0, yb, w, h);
        }
        if (f & 4) {                                     // running: a bright right edge
          ctx.fillStyle = "#9ec1ee"; ctx.fillRect(Math.max(x0, x0 + w - 3), yb, 3, h);
        }
        ctx.globalAlpha = 1;
        var name = D.statuses[st];
        count[name] = (count[name] || 0) + 1;
        if (st === failedIdx && !(f & 3)) centres.push([x0 + w / 2, yb + h / 2]);
      }
    }
    for (var l3 = 0; l3 < NL; l3++) {                   // the binned rows, a run at a time
      var bb = dense[l3];
      if (!bb) continue;
      for (var a3 = 0; a3 < cols;) {
        var e3 = a3 + 1;
        while (e3 < cols && bb.rank[e3] === bb.rank[a3] && bb.st[e3] === bb.st[a3]) e3++;
        if (bb.rank[a3]) {
          ctx.fillStyle = color(bb.st[a3]);
          ctx.fillRect((base + a3) / dpr, laneY[l3] + 3, (e3 - a3) / dpr, RH - 6);
        }
        a3 = e3;
      }
    }
    rendered.ganttMode = anyDense ? "binned" : "bars";
    ctx.restore();
    rendered.byStatus = count;
    rendered.failedBars = centres.length;
    rendered.failedVisible = visible(ctx, centres, failedCol);
    ctx.save();                                          // names on bars wide enough
    ctx.beginPath(); ctx.rect(LABEL_W, 0, g.plotW, GANTT_H); ctx.clip();
    ctx.font = "11px " + FONT; ctx.fillStyle = "#ffffff";
    for (var b2 = 0; b2 < N; b2++) {
      if (B.flags[b2] & 3) continue;
      var a0 = Math.max(X(B.s[b2], g), LABEL_W), a1 = Math.min(X(B.e[b2], g), LABEL_W + g.plotW);
      if (a1 - a0 < 40) continue;
      var label = J.name[B.job[b2]];
      ctx.save();
      ctx.beginPath(); ctx.rect(a0, laneY[B.lane[b2]], a1 - a0 - 4, RH); ctx.clip();
      ctx.fillText(label, a0 + 4, laneY[B.lane[b2]] + RH / 2 + 0.5);
      ctx.restore();
    }
    ctx.restore();
    if (D.now != null && D.now >= view.a && D.now <= view.b) {   // runners still active
      var xn = Math.round(X(D.now, g)) + 0.5;
      ctx.strokeStyle = C.now; ctx.setLineDash([4, 3]); ctx.beginPath();
      ctx.moveTo(xn, AXIS_H - 4); ctx.lineTo(xn, GANTT_H); ctx.stroke(); ctx.setLineDash([]);
      ctx.fillStyle = C.now; ctx.font = "600 11px " + FONT; ctx.textAlign = "right";
      ctx.fillText("now", xn - 3, AXIS_H - 8); ctx.textAlign = "left";
    }
  }

  function visible(ctx, points, hex) {
    // how many of these points show the given colour (checks the drawing itself)
    if (!points.length) return 0;
    var want = [parseInt(hex.substr(1, 2), 16), parseInt(hex.substr(3, 2), 16), parseInt(hex.substr(5, 2), 16)];
    var img = ctx.getImageData(0, 0, ctx.canvas.width, ctx.canvas.height), n = 0;
    for (var i = 0; i < points.length; i++) {
      var px = Math.floor(points[i][0] * dpr), py = Math.floor(points[i][1] * dpr);
      var o = (py * ctx.canvas.width + px) * 4, d = img.data;
      if (Math.abs(d[o] - want[0]) < 8 && Math.abs(d[o + 1] - want[1]) < 8 && Math.abs(d[o + 2] - want[2]) < 8) n++;
    }
    return n;
  }

  // ------------------------------------------------------------------ GPU slots in use
  var usageCanvas = document.getElementById("usage"), UG = null;
  var hasCpu = U.cpu.some(function (v) { return v > 0; });
  if (!hasCpu) { var ck = document.querySelector(".cpu-key"); if (ck) ck.style.display = "none"; }
  var ymax = 1;
  for (var q = 0; q < U.t.length; q++) ymax = Math.max(ymax, U.cap[q], U.busy[q], U.cpu[q]);

  function firstIndex(t) {          // last point at or before t
    var lo = 0, hi = U.t.length - 1;
    if (hi < 0 || U.t[0] > t) return 0;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (U.t[mid] <= t) lo = mid; else hi = mid - 1; }
    return lo;
  }
  function stepPath(ctx, g, values, base) {
    var Y = function (v) { return base - v / ymax * USAGE_PLOT_H; };
    var i = firstIndex(view.a), n = U.t.length;
    ctx.moveTo(X(view.a, g), base);
    var prev = values[i] || 0;
    ctx.lineTo(X(view.a, g), Y(prev));
    for (i = i + 1; i < n && U.t[i] <= view.b; i++) {
      var x = X(U.t[i], g);
      ctx.lineTo(x, Y(prev)); ctx.lineTo(x, Y(values[i])); prev = values[i];
    }
    ctx.lineTo(X(view.b, g), Y(prev));
  }
  function columnMeans(g) {
    // time-weighted mean of busy / offered / CPU over each pixel column: what a step
    // chart would show if it had more pixels than the sweep has slot changes
    var cols = Math.max(1, Math.floor(g.plotW)), n = U.t.length, dt = (view.b - view.a) / cols;
    var out = { busy: new Float64Array(cols), cap: new Float64Array(cols), cpu: new Float64Array(cols) };
    var i = firstIndex(view.a);
    for (var c = 0; c < cols; c++) {
      var t = view.a + c * dt, end = t + dt, sb = 0, sc = 0, su = 0;
      while (i + 1 < n && U.t[i + 1] <= t) i++;
      while (t < end) {
        var next = i + 1 < n ? Math.min(U.t[i + 1], end) : end;
        if (U.t[i] <= t) { sb += U.busy[i] * (next - t); sc += U.cap[i] * (next - t); su += U.cpu[i] * (next - t); }
        t = next;
        if (t < end) i++;
      }
      out.busy[c] = sb / dt; out.cap[c] = sc / dt; out.cpu[c] = su / dt;
    }
    return out;
  }
  function pointsInView() {
    return firstIndex(view.b) - firstIndex(view.a);
  }
  function drawMeans(ctx, g, base) {
    var m = columnMeans(g), Y = function (v) { return base - v / ymax * USAGE_PLOT_H; };
    ctx.fillStyle = C.idle;
    for (var c = 0; c < m.cap.length; c++) {
      if (m.cap[c] > m.busy[c]) ctx.fillRect(LABEL_W + c, Y(m.cap[c]), 1, Y(m.busy[c]) - Y(m.cap[c]));
    }
    ctx.fillStyle = C.busy;
    for (c = 0; c < m.busy.length; c++) {
      if (m.busy[c] > 0) ctx.fillRect(LABEL_W + c, Y(m.busy[c]), 1, base - Y(m.busy[c]));
    }
    function line(values, col, dash) {
      ctx.beginPath();
      for (var k = 0; k < values.length; k++) ctx.lineTo(LABEL_W + k + 0.5, Y(values[k]));
      ctx.strokeStyle = col; ctx.lineWidth = 1.5; ctx.setLineDash(dash); ctx.stroke(); ctx.setLineDash([]);
    }
    line(m.cap, C.offered, []);
    if (hasCpu) line(m.cpu, C.cpu, [5, 3]);
    rendered.usageMode = "column means";
  }
  function drawUsage() {
    var H = 8 + USAGE_PLOT_H + USAGE_AXIS_H;
    var g = UG = setup(usageCanvas, H), ctx = g.ctx, base = 8 + USAGE_PLOT_H, right = LABEL_W + g.plotW;
    ctx.font = "11px " + FONT; ctx.textBaseline = "middle";
    var ystep = Math.max(1, Math.ceil(ymax / 4));
    for (var v = 0; v <= ymax; v += ystep) {                  // horizontal grid, slot counts
      var yy = Math.round(base - v / ymax * USAGE_PLOT_H) + 0.5;
      ctx.fillStyle = C.grid; ctx.fillRect(LABEL_W, yy - 0.5, g.plotW, 1);
      ctx.fillStyle = C.muted; ctx.textAlign = "right"; ctx.fillText(String(v), LABEL_W - 8, yy);
    }
    ctx.textAlign = "left"; ctx.fillStyle = C.text; ctx.font = "600 12px " + FONT;
    ctx.fillText("GPU slots", 8, 8 + USAGE_PLOT_H / 2);
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL_W, 0, g.plotW, H); ctx.clip();
    if (U.t.length && pointsInView() > g.plotW / 2) {
      drawMeans(ctx, g, base);
    } else if (U.t.length) {
      rendered.usageMode = "steps";
      ctx.beginPath(); stepPath(ctx, g, U.cap, base); ctx.lineTo(X(view.b, g), base); ctx.closePath();
      ctx.fillStyle = C.idle; ctx.fill();
      ctx.beginPath(); stepPath(ctx, g, U.busy, base); ctx.lineTo(X(view.b, g), base); ctx.closePath();
      ctx.fillStyle = C.busy; ctx.fill();
      ctx.beginPath(); stepPath(ctx, g, U.cap, base);
      ctx.strokeStyle = C.offered; ctx.lineWidth = 1.5; ctx.stroke();
      if (hasCpu) {
        ctx.beginPath(); stepPath(ctx, g, U.cpu, base);
        ctx.strokeStyle = C.cpu; ctx.setLineDash([5, 3]); ctx.lineWidth = 1.5; ctx.stroke(); ctx.setLineDash([]);
      }
    }
    ctx.restore();
    var tk = ticks(view.a, view.b, g.plotW);
    ctx.textAlign = "center"; ctx.fillStyle = C.muted; ctx.font = "11px " + FONT;
    for (var i = 0; i < tk.list.length; i++) {
      var x = Math.round(X(tk.list[i], g)) + 0.5;
      ctx.fillStyle = C.grid; ctx.fillRect(x - 0.5, base, 1, 4);
      ctx.fillStyle = C.muted; ctx.fillText(relLabel(tk.list[i], tk.step), x, base + 13);
    }
    ctx.textAlign = "left";
  }

  function draw() {
    drawGantt();
    drawUsage();
    rendered.draws++;
    rendered.view = [view.a, view.b];
    publish();
  }
  function publish() {
    rendered.renderMs = rendered.renderMs || Math.round(performance.now() - started);
    document.getElementById("hog-rendered").textContent = JSON.stringify(rendered);
  }
  function setView(a, b) {          // the shown time range, kept in the URL (#t=A-B)
    a = Math.max(0, a); b = Math.min(SPAN, b);
    if (b - a < 0.01) b = Math.min(SPAN, a + 0.01);
    view = { a: a, b: b };
    var whole = a <= 0 && b >= SPAN;
    try {
      history.replaceState(null, "", whole ? location.pathname + location.search
                                           : "#t=" + a.toFixed(3) + "-" + b.toFixed(3));
    } catch (e) { /* some browsers refuse it for file: pages; the view still changes */ }
    draw();
  }

  // ------------------------------------------------------------------ hover
  var tip = document.getElementById("tip");
  function showTip(ev, html) {
    tip.innerHTML = html;
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14, r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - 14;
    if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - 14;
    tip.style.left = Math.max(4, x) + "px"; tip.style.top = Math.max(4, y) + "px";
  }
  function hideTip() { tip.hidden = true; }
  function laneAt(y) {
    for (var l = 0; l < NL; l++) if (y >= laneY[l] && y < laneY[l] + RH) return l;
    return -1;
  }
  function barAt(lane, t, slack) {
    var lo = laneFirst[lane], hi = laneFirst[lane + 1], best = -1, bestD = Infinity;
    for (var i = lo; i < hi; i++) {                  // bars of a lane are few per pixel
      if (B.s[i] - slack > t) break;
      var d = t < B.s[i] ? B.s[i] - t : (t > B.e[i] ? t - B.e[i] : 0);
      if (d <= slack && d <= bestD) { best = i; bestD = d; }
    }
    return best;
  }
  function barTip(i) {
    var j = B.job[i], st = D.statuses[B.st[i]], f = B.flags[i];
    var how = B.sig[i] ? "killed by " + B.sig[i] : (B.x[i] != null ? "exit code " + B.x[i] : "");
    var lane = LANES[B.lane[i]];
    var lines = [
      "<b>" + esc(J.name[j]) + "</b> <span class=\"st\" style=\"background:" + color(B.st[i]) + "\">" +
        esc(f & 4 ? "running" : st) + "</span>" + (how ? " " + esc(how) : ""),
      (f & 4 ? "running for " : "took ") + dur(B.e[i] - B.s[i]) + " <span class=\"dim\">" +
        clock(B.s[i]) + " &rarr; " + (f & 4 ? "now" : clock(B.e[i])) + "</span>",
      (lane.cpu ? "CPU slot " + esc(lane.slot) : "GPU " + esc(B.gpus[i] || lane.label.slice(4)) +
        " &middot; slot " + esc(lane.slot)) + " &middot; " + esc(D.prefix + J.id[j]) +
        (J.attempts[j] > 1 ? " &middot; attempt " + B.att[i] + " of " + J.attempts[j] : ""),
    ];
    if (f & 1) lines.push("<span class=\"dim\">an earlier attempt; the job ran again</span>");
    if (f & 2) lines.push("<span class=\"dim\">this slot was one of the job's GPUs</span>");
    var used = [];                                   // what the job's latest attempt used
    if (J.cpu && J.cpu[j] != null) used.push("CPU " + J.cpu[j] + " s");
    if (J.rss && J.rss[j] != null) used.push("peak RSS " + (J.rss[j] / 1048576).toFixed(0) + " MiB");
    if (J.gmem && J.gmem[j] != null) used.push("GPU memory " + (J.gmem[j] / 1073741824).toFixed(2) + " GiB");
    if (J.gutil && J.gutil[j] != null) used.push("GPU util " + J.gutil[j] + " %" + (J.gutil[j] < 5 ? " (barely used)" : ""));
    if (used.length) lines.push("<span class=\"dim\">" + esc(used.join(" \u00b7 ")) + "</span>");
    lines.push("<code>" + esc(J.cmd[j]) + "</code>");
    return lines.join("<br>");
  }
  gantt.addEventListener("mousemove", function (ev) {
    if (drag) return;
    var r = gantt.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    var lane = laneAt(y);
    if (lane < 0 || x < LABEL_W) { hideTip(); return; }
    var slack = 3 / G.plotW * (view.b - view.a);
    var i = barAt(lane, T(x, G), slack);
    if (i < 0) { hideTip(); return; }
    showTip(ev, barTip(i));
  });
  usageCanvas.addEventListener("mousemove", function (ev) {
    if (drag) return;
    var r = usageCanvas.getBoundingClientRect(), x = ev.clientX - r.left;
    if (x < LABEL_W || !U.t.length) { hideTip(); return; }
    var t = T(x, UG), i = firstIndex(t);
    showTip(ev, "<b>" + relLabel(t, 1) + "</b> <span class=\"dim\">" + clock(t) + "</span><br>" +
      U.busy[i] + " of " + U.cap[i] + " GPU slots busy" + (hasCpu ? "<br>" + U.cpu[i] + " CPU slot(s) busy" : ""));
  });
  gantt.addEventListener("mouseleave", hideTip);
  usageCanvas.addEventListener("mouseleave", hideTip);

  // ------------------------------------------------------------------ zoom
  var drag = null;
  function startDrag(canvas, ev) {
    if (ev.button !== 0) return;
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left;
    if (x < LABEL_W) return;
    drag = { canvas: canvas, x0: x, x1: x, sel: canvas.parentNode.querySelector(".sel") };
    hideTip();
    ev.preventDefault();
  }
  [gantt, usageCanvas].forEach(function (c) {
    c.addEventListener("mousedown", function (ev) { startDrag(c, ev); });
    c.addEventListener("dblclick", function () { setView(0, SPAN); });
  });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var r = drag.canvas.getBoundingClientRect(), g = drag.canvas === gantt ? G : UG;
    drag.x1 = Math.max(LABEL_W, Math.min(LABEL_W + g.plotW, ev.clientX - r.left));
    var a = Math.min(drag.x0, drag.x1), b = Math.max(drag.x0, drag.x1);
    drag.sel.style.display = "block"; drag.sel.style.left = a + "px"; drag.sel.style.width = (b - a) + "px";
  });
  window.addEventListener("mouseup", function () {
    if (!drag) return;
    var d = drag, g = d.canvas === gantt ? G : UG;
    drag = null;
    d.sel.style.display = "none";
    if (Math.abs(d.x1 - d.x0) < 5) return;
    setView(T(Math.min(d.x0, d.x1), g), T(Math.max(d.x0, d.x1), g));
  });
  document.getElementById("zoom-reset").addEventListener("click", function () { setView(0, SPAN); });
  document.getElementById("zoom-out").addEventListener("click", function () {
    var w = (view.b - view.a) * 2, mid = (view.a + view.b) / 2;
    var b = Math.min(SPAN, Math.max(0, mid - w / 2) + w);
    setView(Math.max(0, b - w), b);
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 100);
  });

  // ------------------------------------------------------------------ go
  var linked = /^#t=([0-9.]+)-([0-9.]+)$/.exec(location.hash);
  if (linked && +linked[2] > +linked[1]) {
    view = { a: Math.max(0, +linked[1]), b: Math.min(SPAN, +linked[2]) };
    if (view.b - view.a < 0.01) view = { a: 0, b: SPAN };
  }
  for (var b3 = 0; b3 < N; b3++) {
    if (B.flags[b3] & 1) rendered.earlier++;
    if (B.flags[b3] & 2) rendered.parts++;
    if (B.flags[b3] & 4) rendered.running++;
  }
  rendered.histogramBars = document.querySelectorAll("svg.hist rect.bin").length;
  rendered.failures = document.querySelectorAll("details.failure").length;
  draw();                           // renderMs: from parsing the data to the first drawing
  rendered.sinceNavigationMs = Math.round(performance.now());
  publish();
})();
