// Sweep page (#/sweep/<id>): the results table (per run or grouped, built by the server with the
// code of `hpctrack table`), curves, parallel coordinates and per-job status; live while it runs.
import { VirtualTable } from "./table.js";
import { curvesPanel } from "./curves.js";
import { statusPanel } from "./status.js";
import { parallelCoords } from "./chart.js";
import { STATES, add, api, apiUrl, enc, fill, fmt, fmtDuration, h, pollStamp, showError, stateBadge } from "./util.js";

const STATS = ["last", "min", "max", "mean", "argmin", "argmax", "count", "last_step"];

export async function sweepPage(root, crumbs, ref) {
  const info = await api(`sweeps/${enc(ref)}`);
  const id = info.id;
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ", h("span", info.name || id));
  const seedKeys = info.seed_keys || ["seed"];
  const swept = info.swept_keys || [];
  const st = {
    groupBy: [],          // swept keys, or ["all"] for every swept key but the seeds
    metrics: [],          // "key:stat" column specs; empty: the CLI's default columns
    filter: "",
    sort: null,
    selected: new Set(),  // job indices (per run) or group labels (grouped), as strings
    runRows: [],          // the per-run table (parallel coordinates and group membership)
  };

  // -- header -------------------------------------------------------------------------------------
  const head = h("div.sweep-head");
  function renderHead(d) {
    const chips = STATES.filter((s) => (d.states || {})[s]).map((s) => h(`span.chip.state-${s}`, `${d.states[s]} ${s}`));
    fill(head, 
      h("h1", d.name || d.id, " ", h("span.muted.mono", d.id)),
      h("p", `created ${d.created} · ${d.backend} · ${d.store} · ${d.script || ""} · ${d.n_jobs} jobs `, chips),
      d.note ? h("p.note", d.note) : null,
      Object.keys(d.tags || {}).length ? h("p.tags", Object.entries(d.tags).map(([k, v]) => h("span.tag", v ? `${k}=${v}` : k))) : null,
    );
  }
  renderHead(info);

  // -- table controls ----------------------------------------------------------------------------
  const groupBox = h("span.group-by", "group by: ",
    h("label", h("input", { type: "radio", name: "gmode", value: "none", checked: true }), "none"),
    h("label", { title: `every swept key but ${seedKeys.join(", ")}` }, h("input", { type: "radio", name: "gmode", value: "all" }), "grouped"),
    h("label", h("input", { type: "radio", name: "gmode", value: "keys" }), "keys:"),
    ...swept.map((k) => h("label", h("input.gkey", { type: "checkbox", value: k }), k)),
  );
  const metricKey = h("select", { "aria-label": "metric" }, ...(info.metrics || []).map((m) => h("option", { value: m }, m)));
  const metricStat = h("select", { "aria-label": "statistic" }, h("option", { value: "" }, "(default)"), ...STATS.map((s) => h("option", { value: s }, s)));
  const metricChips = h("span.metric-chips");
  const addMetric = h("button", { type: "button", onclick: () => {
    const spec = metricKey.value + (metricStat.value ? `:${metricStat.value}` : "");
    if (metricKey.value && !st.metrics.includes(spec)) { st.metrics.push(spec); renderMetricChips(); loadTable(); }
  } }, "add column");
  const filterIn = h("input.filter", { type: "text", placeholder: "filter, e.g. optimizer.lr < 0.1 and state == 'COMPLETED'", "aria-label": "filter" });
  const filterErr = h("div.error.oneline");
  filterErr.hidden = true;
  const csv = h("a.button", { href: "#", download: "" }, "CSV");
  const table = new VirtualTable({
    columns: [], selectable: true, rowKey: (r) => rowKey(r),
    onSelect: (keys) => { st.selected = keys; selectionChanged(); },
    onSort: (s) => { st.sort = s; updateCsv(); },
    maxHeight: 460,
  });
  table.el.id = "results";

  function renderMetricChips() {
    fill(metricChips, ...st.metrics.map((m) => h("span.chip.metric", m, h("button.x", { type: "button", title: `remove ${m}`, onclick: () => {
      st.metrics = st.metrics.filter((x) => x !== m); renderMetricChips(); loadTable();
    } }, "×"))));
  }

  function groupParam() {
    if (!st.groupBy.length) return null;
    return st.groupBy[0] === "all" ? "all" : st.groupBy.join(",");
  }

  function tableParams(extra = {}) {
    return {
      group_by: groupParam(), metrics: st.metrics.join(","), filter: st.filter,
      seed_keys: seedKeys.join(","), ...extra,
    };
  }

  function updateCsv() {
    const sort = st.sort ? `${st.sort.desc ? "-" : ""}${st.sort.key}` : null;
    csv.href = apiUrl(`sweeps/${enc(id)}/table`, tableParams({ format: "csv", sort }));
  }

  groupBox.addEventListener("change", (ev) => {
    const keys = [...groupBox.querySelectorAll("input.gkey:checked")].map((i) => i.value);
    if (ev.target.classList.contains("gkey")) {  // ticking a key means grouping by the keys ticked
      groupBox.querySelector(`input[name=gmode][value=${keys.length ? "keys" : "none"}]`).checked = true;
    }
    const mode = groupBox.querySelector("input[name=gmode]:checked").value;
    if (mode === "keys" && !keys.length) return;  // waits for a key to be ticked
    st.groupBy = mode === "all" ? ["all"] : mode === "keys" ? keys : [];
    st.selected = new Set();
    loadTable();
    curves.setGroupBy(curveGroupKeys());
  });
  filterIn.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { st.filter = filterIn.value.trim(); loadTable(); } });
  filterIn.addEventListener("change", () => { if (filterIn.value.trim() !== st.filter) { st.filter = filterIn.value.trim(); loadTable(); } });

  // -- curves, parallel coordinates, status ------------------------------------------------------
  const curves = curvesPanel({ sweep: id, metrics: info.metrics || [], seedKeys, swept, getSelected: () => selectedForCurves() });
  const pcMetric = h("select", { "aria-label": "metric of the parallel coordinates" });
  const pcCanvas = h("canvas.parcoords", { id: "parcoords" });
  const pcBox = h("div.pc-box", pcCanvas);
  const status = statusPanel(id);

  add(root, 
    head,
    h("section", h("h2", "Results"),
      h("div.controls", groupBox),
      h("div.controls", "columns: ", metricKey, metricStat, addMetric, metricChips),
      h("div.controls", filterIn, csv),
      filterErr, table.el),
    h("section", h("h2", "Curves"), curves.el),
    h("section", h("h2", "Parameters vs metric"), h("div.controls", "colour and last axis: ", pcMetric), pcBox),
    h("section", h("h2", "Jobs"), status.el),
  );

  function rowKey(r) {
    if (!st.groupBy.length) return String(r.job);
    return groupLabel(r);
  }

  function groupCols(rows) {
    if (!rows.length) return [];
    const keys = Object.keys(rows[0]);
    return keys.slice(0, keys.indexOf("n"));
  }

  function groupLabel(r) {
    return JSON.stringify(st.groupCols.map((k) => r[k]));
  }

  function columnsFor(rows, grouped) {
    const keys = rows.length ? Object.keys(rows[0]) : [];
    if (!grouped) {
      return keys.map((k) => {
        if (k === "job") return { key: k, label: "job", num: true, render: (r) => h("a.run-link", { href: `#/run/${enc(id)}/${r.job}`, title: `run ${id}/${r.job}` }, String(r.job)) };
        if (k === "state") return { key: k, label: k, render: (r) => stateBadge(r.state) };
        if (k === "runtime_s") return { key: k, label: k, num: true, render: (r) => fmtDuration(r.runtime_s), text: (r) => fmtDuration(r.runtime_s) };
        return { key: k, label: k, num: true, render: (r) => fmt(r[k]), text: (r) => fmt(r[k]) };
      });
    }
    const cols = [];
    const metricsSeen = [];
    for (const k of keys) {
      const m = k.match(/^(.*) (mean|std|count|sem|min|max|ci95)$/);
      if (!m) { cols.push({ key: k, label: k, num: true, render: (r) => fmt(r[k]), text: (r) => fmt(r[k]) }); continue; }
      const [, metric, agg] = m;
      if (agg === "std" || agg === "count") continue;  // shown with the mean, as the CLI does
      if (agg === "mean") {
        metricsSeen.push(metric);
        const text = (r) => {
          const mean = fmt(r[`${metric} mean`]), sd = fmt(r[`${metric} std`]);
          return !mean ? "" : sd ? `${mean} ± ${sd}` : mean;
        };
        cols.push({ key: k, label: `${metric} (mean ± std)`, num: true, render: text, text, value: (r) => r[k] });
      } else {
        cols.push({ key: k, label: k, num: true, render: (r) => fmt(r[k]), text: (r) => fmt(r[k]) });
      }
    }
    return cols;
  }

  let tableSeq = 0;
  async function loadTable() {
    const mine = ++tableSeq;
    updateCsv();
    const grouped = st.groupBy.length > 0;
    let rows, runRows;
    try {
      [rows, runRows] = await Promise.all([
        api(`sweeps/${enc(id)}/table`, tableParams()),
        grouped ? api(`sweeps/${enc(id)}/table`, tableParams({ group_by: null })) : null,
      ]);
    } catch (err) {
      if (mine !== tableSeq) return;
      showError(filterErr, err.message);
      return;
    }
    if (mine !== tableSeq) return;
    showError(filterErr, "");
    st.runRows = runRows || rows;
    st.groupCols = grouped ? groupCols(rows) : [];
    table.setColumns(columnsFor(rows, grouped));
    table.setRows(rows);
    table.setSelected(st.selected);
    fillPcMetrics();
    drawPc();
  }

  function fillPcMetrics() {
    const sample = st.runRows[0] || {};
    const skip = new Set(["job", "state", ...swept]);
    const options = Object.keys(sample).filter((k) => !skip.has(k) && st.runRows.some((r) => typeof r[k] === "number"));
    const keep = options.includes(pcMetric.value) ? pcMetric.value : options.find((k) => k.startsWith(info.metrics?.[0] || "\u0000")) || options[0];
    fill(pcMetric, ...options.map((k) => h("option", { value: k, selected: k === keep }, k)));
  }

  function drawPc() {
    const metric = pcMetric.value;
    const axes = swept.filter((k) => st.runRows.some((r) => r[k] !== undefined));
    const selectedJobs = new Set([...selectedForCurves().jobs].map(String));
    parallelCoords(pcCanvas, st.runRows, metric ? [...axes, metric] : [], { selected: selectedJobs });
  }
  pcMetric.addEventListener("change", drawPc);

  /** What the curves highlight: the jobs selected, or every job of the groups selected. */
  function selectedForCurves() {
    if (!st.groupBy.length) return { jobs: new Set([...st.selected].map(Number)), groups: new Set() };
    const jobs = new Set();
    const groups = new Set();
    for (const r of st.runRows) {
      const label = JSON.stringify(st.groupCols.map((k) => r[k]));
      if (st.selected.has(label)) jobs.add(r.job);
    }
    for (const label of st.selected) groups.add(label);
    return { jobs, groups, groupCols: st.groupCols };
  }

  function selectionChanged() {
    curves.highlight();
    drawPc();
  }

  /** Group keys for the group-mean curves: the table's, else every swept key but the seeds. */
  function curveGroupKeys() {
    if (st.groupBy.length && st.groupBy[0] !== "all") return st.groupBy;
    return swept.filter((k) => !seedKeys.includes(k));
  }
  curves.setGroupBy(curveGroupKeys());

  await loadTable();
  curves.load();
  status.load();

  async function refresh() {
    try { renderHead(await api(`sweeps/${enc(id)}`)); } catch (err) { /* the next tick tries again */ }
    await Promise.all([loadTable(), curves.load(), status.load()]);
  }
  const stop = pollStamp(id, refresh);
  window.addEventListener("resize", drawPc);
  return { stop: () => { stop(); curves.destroy(); window.removeEventListener("resize", drawPc); } };
}
