// The curves of a sweep's metric: per run, or the mean of each group with a std / CI band. The server
// downsamples (min/max per pixel bucket) and smooths; "full data" asks for every point.
import { curvesChart, runStyle } from "./chart.js";
import { api, colour, debounce, enc, fill, h, plural, showError } from "./util.js";

/** Live changes of a running sweep redraw its curves at most this often (ms). */
const LIVE_CURVES_MS = 10000;

/**
 * The curves panel of a sweep page. `getFilter()`: the table's filter as history parameters ({}:
 * none; null: refused, nothing is drawn), so the curves draw the runs the table lists; `saved`: the view's URL state to start from; `onChange()`:
 * called when an option changes (the page keeps the URL up to date).
 */
export function curvesPanel({ sweep, metrics, seedKeys, swept, getSelected, getFilter = () => ({}), saved = new URLSearchParams(), onChange = () => {} }) {
  const st = { data: null, groupBy: [], chart: null };
  const metricSel = h("select.curve-metric", { "aria-label": "metric to plot" });
  const modeSel = h("select", { "aria-label": "curves per run or per group" },
    h("option", { value: "runs" }, "per run"), h("option", { value: "groups" }, "group mean"));
  const bandSel = h("select", { "aria-label": "band" }, h("option", { value: "std" }, "± std"), h("option", { value: "ci" }, "95% CI"));
  const xSel = h("select", { "aria-label": "x axis" }, h("option", { value: "step" }, "x: step"), h("option", { value: "time" }, "x: time (s)"));
  const logY = h("input", { type: "checkbox" });
  const smooth = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", "aria-label": "smoothing" });
  const smoothOut = h("span.mono", "0.00");
  const full = h("input", { type: "checkbox" });
  const info = h("div.muted.small");
  const error = h("div.error.oneline");
  error.hidden = true;
  const box = h("div.chart", { id: "curves" });
  setMetrics(metrics, saved.get("curve"));
  for (const [sel, key] of [[modeSel, "cmode"], [bandSel, "band"], [xSel, "x"]]) {
    if (saved.get(key) && [...sel.options].some((o) => o.value === saved.get(key))) sel.value = saved.get(key);
  }
  logY.checked = saved.get("logy") === "1";
  full.checked = saved.get("full") === "1";
  if (saved.get("smooth")) { smooth.value = saved.get("smooth"); smoothOut.textContent = Number(smooth.value).toFixed(2); }

  /** The metric choices (they grow as runs end); the one chosen stays chosen. */
  function setMetrics(list, want = metricSel.value) {
    const have = [...metricSel.options].map((o) => o.value);
    if (have.join("\n") === list.join("\n")) return false;
    fill(metricSel, ...list.map((m) => h("option", { value: m }, m)));
    if (want && list.includes(want)) metricSel.value = want;
    return true;
  }
  const el = h("div.curves",
    h("div.controls", metricSel, modeSel, bandSel, xSel,
      h("label", logY, "log y"),
      h("label", "smoothing ", smooth, smoothOut),
      h("label", { title: "every point, no downsampling" }, full, "full data")),
    error, box, info);

  function params(filter) {
    const groups = modeSel.value === "groups";
    return {
      ...filter, metric: metricSel.value, x: xSel.value, runs: "all",
      points: Math.max(200, Math.min(10000, Math.round(box.clientWidth || 1000))),
      smooth: Number(smooth.value) > 0 ? smooth.value : null,
      full: full.checked ? "1" : null,
      // no table keys: "all", every swept key but the seeds, which is one group of all runs in a sweep of seeds
      group_by: groups ? (st.groupBy.length ? st.groupBy.join(",") : "all") : null,
      seed_keys: groups ? seedKeys.join(",") : filter.seed_keys,
      band: groups ? bandSel.value : null,
    };
  }

  let seq = 0;
  let lastLoad = 0;
  let liveTimer = null;
  async function load() {
    lastLoad = Date.now();
    clearTimeout(liveTimer);
    liveTimer = null;
    onChange();
    if (!metricSel.value) { info.textContent = "no metric logged yet"; return; }
    const mine = ++seq;
    const filter = getFilter();
    if (filter === null) {  // the table's filter is refused: no rows there, no curves here
      if (st.chart) st.chart.destroy();
      st.chart = null;
      st.data = null;
      showError(error, "");
      fill(box, h("p.muted", "no run in the table: nothing to draw"));
      info.textContent = `${metricSel.value}: 0 runs`;
      return;
    }
    const p = params(filter);
    let data;
    try {
      data = await api(`sweeps/${enc(sweep)}/history`, p);
    } catch (err) {
      if (mine === seq) showError(error, err.message);
      return;
    }
    if (mine !== seq) return;
    showError(error, "");
    st.data = data;
    draw();
  }

  function draw() {
    const data = st.data;
    if (!data) return;
    const sel = getSelected();
    const anySel = sel.jobs.size > 0 || sel.groups.size > 0;
    const lines = [];
    if (data.groups) {
      data.groups.forEach((g, i) => {
        const label = sel.groupCols ? JSON.stringify(sel.groupCols.map((k) => g.key[k])) : null;
        const selected = (label !== null && sel.groups.has(label)) || (g.jobs || []).some((j) => sel.jobs.has(j));
        const dim = anySel && !selected;
        lines.push({
          label: `${g.label} (n=${g.n})`, x: g.x, y: g.mean, band: { lo: g.lo, hi: g.hi },
          colour: dim ? "rgba(140,140,140,0.4)" : colour(i), width: selected ? 3 : 1.75, selected, dim,
          bandFill: dim ? "rgba(140,140,140,0.08)" : colour(i, 0.15),
        });
      });
    } else {
      const runs = data.runs || [];
      runs.forEach((r, i) => {
        const selected = sel.jobs.has(r.job);
        const s = runStyle(i, runs.length, selected, anySel);
        const params = Object.entries(r.params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
        lines.push({ label: `${r.job}${params ? ` ${params}` : ""}`, x: r.x, y: r.y, colour: s.colour, width: s.width, selected, dim: anySel && !selected });
      });
      lines.sort((a, b) => a.selected - b.selected);  // selected runs drawn last, on top
    }
    if (st.chart) st.chart.destroy();
    st.chart = null;
    if (!lines.length || lines.every((l) => !l.x.length)) {
      fill(box, h("p.muted", `no points of ${data.metric} yet`));
    } else {
      st.chart = curvesChart(box, lines, { xLabel: data.x === "time" ? "time (s)" : "step", logY: logY.checked });
    }
    const skipped = Object.entries(data.skipped || {});
    const n = data.groups ? `${plural(data.groups.length, "group")} of ${plural(data.n_runs, "run")}` : plural((data.runs || []).length, "run");
    info.textContent = `${data.metric}: ${n}; ${data.downsampled ? `downsampled to ${data.points} points per run (tick "full data" for all)` : "every point"}` +
      (skipped.length ? `; skipped: ${skipped.map(([j, why]) => `${j}: ${why}`).join("; ")}` : "");
  }

  for (const c of [metricSel, modeSel, bandSel, xSel, full]) c.addEventListener("change", load);
  logY.addEventListener("change", () => { onChange(); draw(); });
  const smoothLater = debounce(load, 300);
  smooth.addEventListener("input", () => { smoothOut.textContent = Number(smooth.value).toFixed(2); smoothLater(); });
  const onResize = debounce(() => draw(), 200);
  window.addEventListener("resize", onResize);

  /**
   * A reload for a live change: at most once per LIVE_CURVES_MS (a running sweep's stamp moves at every
   * flush of every run, and each reload is every run's curve: megabytes through an ssh tunnel); the
   * last change is always drawn, at the end of the wait.
   */
  function liveLoad() {
    const wait = lastLoad + LIVE_CURVES_MS - Date.now();
    if (wait <= 0) return load();
    if (!liveTimer) liveTimer = setTimeout(load, wait);
    return Promise.resolve();
  }

  return {
    el,
    load,
    liveLoad,
    highlight: draw,
    /** New metric choices; the curves are loaded when there was none chosen before. */
    setMetrics(list) {
      const before = metricSel.value;
      if (setMetrics(list) && !before && metricSel.value) load();
    },
    setGroupBy(keys, reload = true) {
      st.groupBy = keys;
      if (reload && modeSel.value === "groups") load();
    },
    /** The options as URL state (`curve`, `cmode`, ...), defaults left out. */
    viewState() {
      return {
        curve: metricSel.value && metricSel.value !== metricSel.options[0]?.value ? metricSel.value : null,
        cmode: modeSel.value !== "runs" ? modeSel.value : null, band: bandSel.value !== "std" ? bandSel.value : null,
        x: xSel.value !== "step" ? xSel.value : null, logy: logY.checked ? "1" : null, full: full.checked ? "1" : null,
        smooth: Number(smooth.value) > 0 ? smooth.value : null,
      };
    },
    destroy() {
      clearTimeout(liveTimer);
      window.removeEventListener("resize", onResize);
      if (st.chart) st.chart.destroy();
    },
  };
}
