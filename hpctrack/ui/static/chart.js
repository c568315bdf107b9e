// Curves (uPlot, vendored as a classic script: window.uPlot) and a hand-drawn parallel-coordinates
// canvas. The server has already downsampled every curve to about the chart's pixel width.
import { add, colour, fill, fmt, h } from "./util.js";

const uPlot = window.uPlot;
/** Above this many distinct x values the curves are put on a common grid of this many points. */
const MAX_X = 4000;
/** Tick spacings of a step axis: whole steps only (never a tick at step 2.5). */
const STEP_INCRS = [];
for (let m = 1; m <= 1e12; m *= 10) STEP_INCRS.push(m, 2 * m, 5 * m);

/**
 * Align curves with their own x arrays on one shared x array (uPlot's data model); a curve has
 * null where it has no point, and spanGaps draws across. Union of x values, snapped to a grid of
 * MAX_X points when runs do not share x (x = time).
 * @param {{x: number[], ys: (number|null)[][]}[]} curves  each: its x and one or more y arrays
 * @returns {(number|null)[][]} [x, y1, y2, ...] in the order of the curves' ys
 */
export function align(curves) {
  let xs = new Set();
  for (const c of curves) for (const v of c.x) if (v !== null) xs.add(v);
  xs = Float64Array.from(xs).sort();
  let snap = null;
  if (xs.length > MAX_X) {
    const lo = xs[0], hi = xs[xs.length - 1], step = (hi - lo) / (MAX_X - 1) || 1;
    snap = (v) => Math.round((v - lo) / step);
    xs = Float64Array.from({ length: MAX_X }, (_, i) => lo + i * step);
  }
  const pos = new Map();
  if (!snap) xs.forEach((v, i) => pos.set(v, i));
  const out = [Array.from(xs)];
  for (const c of curves) {
    for (const y of c.ys) {
      const col = new Array(xs.length).fill(null);
      for (let i = 0; i < c.x.length; i++) {
        const j = snap ? snap(c.x[i]) : pos.get(c.x[i]);
        if (j !== undefined && y[i] !== null && y[i] !== undefined) col[j] = y[i];
      }
      out.push(col);
    }
  }
  return out;
}

/**
 * A curves chart in `box`. `lines`: [{label, x, y, colour, width, dim, band: {lo, hi}}]. Returns
 * {plot, destroy}. Hover shows x and the values of the lines nearest the cursor (a legend of
 * thousands of rows would be unreadable).
 */
export function curvesChart(box, lines, { xLabel = "step", logY = false, height = 320, title = "", legend = true } = {}) {
  const width = Math.max(320, box.clientWidth || 800);
  const curves = [];
  const series = [{ label: xLabel }];
  const bands = [];
  const meta = [];  // per uPlot series (after x): {line, role}
  for (const line of lines) {
    const clean = (arr) => arr.map((v) => (v === null || (logY && v <= 0) ? null : v));
    const ys = [clean(line.y)];
    if (line.band) ys.push(clean(line.band.hi), clean(line.band.lo));
    curves.push({ x: line.x, ys });
    const stroke = line.colour;
    series.push({ label: line.label, stroke, width: line.width || 1.25, spanGaps: true, points: { show: false }, ...(line.dash ? { dash: line.dash } : {}) });
    meta.push({ line, role: "y" });
    if (line.band) {
      const base = series.length;  // index of hi (lo follows)
      series.push({ label: `${line.label} hi`, stroke: "transparent", width: 0, spanGaps: true, points: { show: false } });
      series.push({ label: `${line.label} lo`, stroke: "transparent", width: 0, spanGaps: true, points: { show: false } });
      meta.push({ line, role: "hi" }, { line, role: "lo" });
      bands.push({ series: [base, base + 1], fill: line.bandFill || "rgba(0,0,0,0.1)" });
    }
  }
  const data = align(curves);
  const hover = h("div.hover");
  hover.hidden = true;
  const opts = {
    title,
    width,
    height,
    series,
    bands,
    legend: { show: false },
    cursor: { points: { show: false }, drag: { x: true, y: false } },
    // log y: the data's own range, not whole powers of 10 (data peaking at 1.2 is not drawn up to 10)
    scales: { x: { time: false }, y: logY ? { distr: 3, range: logRange } : {} },
    axes: [
      { label: xLabel, ...(xLabel === "step" ? { incrs: STEP_INCRS, values: (u, vals) => vals.map((v) => fmt(v)) } : {}) },
      { values: logY ? logLabels : (u, vals) => vals.map((v) => fmt(v)), size: 60 },
    ],
    hooks: { setCursor: [(u) => showHover(u, hover, meta, xLabel)] },
  };
  fill(box);
  const wrap = h("div.chart-wrap");
  add(box, wrap);
  const plot = new uPlot(opts, data, wrap);
  add(wrap, hover);
  if (legend && lines.length > 1 && lines.length <= 12) {  // few lines: a legend under the chart; many: the hover names them
    add(box, h("div.legend", lines.map((line) => {
      const sw = h("span.swatch");
      sw.style.background = line.colour;
      return h("span.legend-item", sw, line.label);
    })));
  }
  return { plot, destroy: () => plot.destroy() };
}

/** A log axis's labels: 1, 2 and 5 times a power of 10 (its grid has more lines); all when none is. */
function logLabels(u, vals) {
  const nice = (v) => {
    if (!(v > 0)) return false;
    const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9);
    return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6 * k);
  };
  const any = vals.some(nice);
  return vals.map((v) => (!any || nice(v) ? fmt(v) : ""));
}

/** A log axis's range: the data's, with a little room (uPlot's own rounds out to whole powers of 10). */
function logRange(u, min, max) {
  if (min === null || max === null || !(min > 0)) return [0.1, 1];
  if (min === max) return [min / 2, max * 2];
  return [min / 1.08, max * 1.08];
}

function showHover(u, hover, meta, xLabel) {
  const idx = u.cursor.idx;
  if (idx === null || idx === undefined || u.cursor.left < 0) {
    hover.hidden = true;
    return;
  }
  const x = u.data[0][idx];
  const cursorY = u.posToVal(u.cursor.top, "y");
  const rows = [];
  for (let s = 1; s < u.data.length; s++) {
    const m = meta[s - 1];
    if (m.role !== "y") continue;
    const y = u.data[s][idx];
    if (y === null || y === undefined) continue;
    const band = m.line.band ? [u.data[s + 1][idx], u.data[s + 2][idx]] : null;
    rows.push({ m, y, band, sel: m.line.selected ? 1 : 0, d: Math.abs(y - cursorY) });
  }
  rows.sort((a, b) => b.sel - a.sel || a.d - b.d);  // selected runs first, then the nearest
  const shown = rows.slice(0, 8);
  fill(hover, 
    h("div.hover-x", `${xLabel} ${fmt(x)}`),
    ...shown.map((r) => h("div.hover-row",
      h("span.swatch"),
      `${r.m.line.label}: ${fmt(r.y)}` + (r.band && r.band[0] !== null ? ` [${fmt(r.band[1])}, ${fmt(r.band[0])}]` : ""))),
    rows.length > shown.length ? h("div.hover-more", `+${rows.length - shown.length} more`) : null,
  );
  hover.querySelectorAll(".swatch").forEach((sw, i) => { sw.style.background = shown[i].m.line.colour; });
  hover.hidden = false;
  const left = u.cursor.left + u.over.offsetLeft;
  hover.style.left = `${left + 14}px`;
  hover.style.top = `${u.over.offsetTop + 4}px`;
  if (left + 14 + hover.offsetWidth > u.root.clientWidth) hover.style.left = `${Math.max(0, left - 14 - hover.offsetWidth)}px`;
}

/** Colours for runs: selected ones strong, the others dimmed when anything is selected. */
export function runStyle(i, n, selected, anySelected) {
  if (!anySelected) return { colour: colour(i, n > 50 ? 0.5 : 0.9), width: 1.25 };
  return selected ? { colour: colour(i, 1), width: 2.5 } : { colour: "rgba(140,140,140,0.25)", width: 1 };
}

/**
 * Parallel coordinates on a canvas: one vertical axis per key in `axes` (numbers scaled to their
 * range, text spread evenly), one polyline per row, coloured by the last axis (the metric).
 */
export function parallelCoords(canvas, rows, axes, { selected = new Set(), rowKey = (r) => String(r.job) } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(320, canvas.parentElement ? canvas.parentElement.clientWidth : 800);
  const height = 300;
  canvas.width = width * dpr;
  canvas.height = height * dpr;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  if (!axes.length || !rows.length) {
    ctx.fillStyle = "#666";
    ctx.font = "13px sans-serif";
    ctx.fillText("nothing to draw: choose a metric with values", 12, 24);
    return;
  }
  const padX = 60, legendW = 90, top = 36, bottom = height - 28;
  const gap = axes.length > 1 ? (width - 2 * padX - legendW) / (axes.length - 1) : 0;
  const scales = axes.map((key) => axisScale(rows.map((r) => r[key])));
  const metricScale = scales[scales.length - 1];
  // values sit inside the axis, not on the frame's edge: 8 % padding at either end
  const yOf = (t) => bottom - (0.08 + 0.84 * t) * (bottom - top);
  const y = (a, v) => {
    const t = scales[a].pos(v);
    return t === null ? null : yOf(t);
  };
  const anySel = selected.size > 0;
  const order = anySel ? rows.slice().sort((a, b) => selected.has(rowKey(a)) - selected.has(rowKey(b))) : rows;
  ctx.lineWidth = rows.length > 500 ? 0.6 : 1.2;
  for (const row of order) {
    const isSel = selected.has(rowKey(row));
    const t = metricScale.pos(row[axes[axes.length - 1]]);
    ctx.strokeStyle = anySel && !isSel ? "rgba(150,150,150,0.25)" : ramp(t, rows.length > 500 ? 0.35 : 0.8);
    ctx.lineWidth = isSel ? 2.5 : rows.length > 500 ? 0.6 : 1.2;
    ctx.beginPath();
    let pen = false;
    axes.forEach((key, a) => {
      const py = y(a, row[key]);
      if (py === null) { pen = false; return; }
      const px = padX + a * gap;
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    });
    ctx.stroke();
  }
  ctx.fillStyle = "#222";
  ctx.strokeStyle = "#444";
  ctx.lineWidth = 1;
  ctx.font = "12px sans-serif";
  ctx.textAlign = "center";
  axes.forEach((key, a) => {
    const px = padX + a * gap;
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, bottom);
    ctx.stroke();
    ctx.fillText(key, px, 16);
    ctx.textAlign = "right";
    for (const [text, t] of scales[a].ticks) {
      const ty = yOf(t);
      ctx.beginPath();
      ctx.moveTo(px - 3, ty);
      ctx.lineTo(px + 3, ty);
      ctx.stroke();
      ctx.fillText(text, px - 5, ty + 4);
    }
    ctx.textAlign = "center";
  });
  colourLegend(ctx, width - legendW + 24, top, bottom, axes[axes.length - 1], metricScale, rows.length > 500 ? 0.35 : 0.8);
}

/** The colour ramp of the last axis (the metric), with its low and high values. */
function colourLegend(ctx, x, top, bottom, key, scale, alpha) {
  const span = bottom - top;
  for (let i = 0; i <= 50; i++) {
    ctx.fillStyle = ramp(i / 50, alpha);
    ctx.fillRect(x, bottom - (i / 50) * span - span / 50, 12, span / 50 + 1);
  }
  ctx.fillStyle = "#222";
  ctx.textAlign = "left";
  ctx.font = "11px sans-serif";
  const ends = scale.numeric ? [scale.lo, scale.hi] : null;
  ctx.fillText(ends ? fmt(ends[1]) : "high", x + 16, top + 8);
  ctx.fillText(ends ? fmt(ends[0]) : "low", x + 16, bottom);
  ctx.save();
  ctx.translate(x - 4, (top + bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(`colour: ${key}`, 0, 0);
  ctx.restore();
}

function axisScale(values) {
  const nums = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (nums.length && nums.length === values.filter((v) => v !== null && v !== undefined).length) {
    const lo = Math.min(...nums), hi = Math.max(...nums);
    const num = (v) => typeof v === "number" && Number.isFinite(v);
    if (lo === hi) {  // one value: in the middle, labelled as it is (no made-up range around it)
      return { pos: (v) => (num(v) ? 0.5 : null), ticks: [[fmt(lo), 0.5]], numeric: true, lo, hi };
    }
    return { pos: (v) => (num(v) ? (v - lo) / (hi - lo) : null), ticks: [[fmt(lo), 0], [fmt(hi), 1]], numeric: true, lo, hi };
  }
  const cats = [...new Set(values.filter((v) => v !== null && v !== undefined).map(String))].sort();
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return {
    pos: (v) => (v === null || v === undefined ? null : at(cats.indexOf(String(v)))),
    ticks: cats.length <= 12 ? cats.map((c, i) => [c, at(i)]) : [[cats[0], 0], [cats[cats.length - 1], 1]],
  };
}

/** Blue (low) to orange (high). */
function ramp(t, alpha) {
  if (t === null) return `rgba(120,120,120,${alpha})`;
  const hue = 220 - 190 * t;
  return `hsla(${hue.toFixed(0)}, 75%, 45%, ${alpha})`;
}
