// Sweep page (#/sweep/<id>): the results table (per run or grouped, built by the server with the
// code of `hpctrack table`), curves, parallel coordinates and per-job status; live while it runs.
import { VirtualTable } from "./table.js";
import { curvesPanel } from "./curves.js";
import { statusPanel } from "./status.js";
import { parallelCoords } from "./chart.js";
import {
  STATES, add, api, apiUrl, apiWithNote, enc, fill, fmt, fmtDuration, h, hashState, headerText, pollStamp,
  viewWriter, showError, stateBadge,
} from "./util.js";

const STATS = ["last", "min", "max", "mean", "argmin", "argmax", "count", "last_step"];

/** Up to this many runs, the curves are asked for at the same time as the table. */
const CURVES_WITH_TABLE = 2000;

export async function sweepPage(root, crumbs, ref) {
  const setHashState = viewWriter();  // taken now: this page's URL, before anything is awaited
  const saved = hashState();  // the view as the URL left it (a reload, a bookmark)
  let info = await api(`sweeps/${enc(ref)}`);
  const id = info.id;
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ", h("span", info.name || id));
  const seedKeys = info.seed_keys || ["seed"];
  const swept = info.swept_keys || [];
  const savedSort = saved.get("sort");
  const st = {
    groupBy: saved.get("group") ? saved.get("group").split(",").filter(Boolean) : [],  // swept keys, or ["all"]
    metrics: saved.getAll("m"),  // "key:stat" column specs; empty: the CLI's default columns
    filter: saved.get("filter") || "",
    sort: savedSort ? { key: savedSort.replace(/^-/, ""), desc: savedSort.startsWith("-") } : null,
    includeIncomplete: saved.get("incomplete") === "1",
    selected: new Set(),  // job indices (per run) or group labels (grouped), as strings
    runRows: [],          // the per-run table (parallel coordinates, group membership, curves)
    runRowsKey: null,     // the options runRows were fetched with (group-by aside)
    valid: true,          // false while the table's options are refused (a bad filter)
    bestRow: null,        // the best group's row (grouped), as `hpctrack table` marks it
  };

  // -- header -------------------------------------------------------------------------------------
  const head = h("div.sweep-head");
  function renderHead(d) {
    const chips = STATES.filter((s) => (d.states || {})[s]).map((s) => h(`span.chip.state-${s}`, `${d.states[s]} ${s}`));
    fill(head, 
      h("h1", d.name || d.id, " ", h("span.muted.mono", d.id)),
      // the script by its file name; its full path on hover
      h("p", `created ${d.created} · ${d.backend} · ${d.store} · `,
        d.script ? h("span.script", { title: d.script }, d.script.split("/").pop()) : "-", ` · ${d.n_jobs} jobs `, chips),
      d.note ? h("p.note", d.note) : null,
      Object.keys(d.tags || {}).length ? h("p.tags", Object.entries(d.tags).map(([k, v]) => h("span.tag", v ? `${k}=${v}` : k))) : null,
    );
  }
  renderHead(info);

  // -- table controls ----------------------------------------------------------------------------
  const gmode = st.groupBy[0] === "all" ? "all" : st.groupBy.length ? "keys" : "none";
  const groupBox = h("span.group-by", "group by: ",
    h("label", h("input", { type: "radio", name: "gmode", value: "none", checked: gmode === "none" }), "none"),
    h("label", { title: `every swept key but ${seedKeys.join(", ")}` }, h("input", { type: "radio", name: "gmode", value: "all", checked: gmode === "all" }), "grouped"),
    h("label", h("input", { type: "radio", name: "gmode", value: "keys", checked: gmode === "keys" }), "keys:"),
    ...swept.map((k) => h("label", h("input.gkey", { type: "checkbox", value: k, checked: gmode === "keys" && st.groupBy.includes(k) }), k)),
  );
  const incomplete = h("input#include-incomplete", { type: "checkbox", checked: st.includeIncomplete });
  const incompleteBox = h("label", { title: "aggregate runs that did not complete too (--include-incomplete)" }, incomplete, "include incomplete runs");
  // metrics (a statistic of the logged curve) and summary values (one number per run, no statistic)
  const metricKey = h("select.col-metric", { "aria-label": "column" });
  const metricStat = h("select.col-stat", { "aria-label": "statistic" }, h("option", { value: "" }, "(default)"), ...STATS.map((s) => h("option", { value: s }, s)));
  function fillColumnChoices() {
    const keep = metricKey.value;
    const summary = (info.summary_keys || []).filter((k) => !(info.metrics || []).includes(k));
    fill(metricKey, ...(info.metrics || []).map((m) => h("option", { value: m, dataset: { kind: "metric" } }, m)),
      summary.length ? h("optgroup", { label: "summary values" }, ...summary.map((k) => h("option", { value: k, dataset: { kind: "summary" } }, k))) : null);
    if (keep && [...metricKey.options].some((o) => o.value === keep)) metricKey.value = keep;
    metricStat.disabled = isSummary();
  }
  const isSummary = () => metricKey.selectedOptions[0]?.dataset.kind === "summary";
  metricKey.addEventListener("change", () => { metricStat.disabled = isSummary(); });
  fillColumnChoices();
  const metricChips = h("span.metric-chips");
  const addMetric = h("button.add-col", { type: "button", onclick: () => {
    const spec = metricKey.value + (metricStat.value && !isSummary() ? `:${metricStat.value}` : "");
    if (metricKey.value && !st.metrics.includes(spec)) { st.metrics.push(spec); renderMetricChips(); loadTable(); }
  } }, "add column");
  const filterIn = h("input.filter", { type: "text", placeholder: "filter, e.g. optimizer.lr < 0.1 and state == 'COMPLETED'", "aria-label": "filter", value: st.filter });
  const filterErr = h("div.error.oneline");
  filterErr.hidden = true;
  const tableNote = h("div.note#table-note");
  tableNote.hidden = true;
  const csv = h("a.button", { href: "#", download: "" }, "CSV");
  const table = new VirtualTable({
    columns: [], selectable: true, rowKey: (r) => rowKey(r),
    onSelect: (keys) => { st.selected = keys; selectionChanged(); },
    onSort: (s) => { st.sort = s; updateCsv(); saveView(); },
    maxHeight: 460,
  });
  table.el.id = "results";
  if (st.sort) table.sort = st.sort;

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
      seed_keys: seedKeys.join(","), include_incomplete: st.groupBy.length && st.includeIncomplete ? "1" : null, ...extra,
    };
  }

  const sortText = () => (st.sort ? `${st.sort.desc ? "-" : ""}${st.sort.key}` : null);

  function updateCsv() {
    const grouped = st.groupBy.length > 0;
    csv.href = apiUrl(`sweeps/${enc(id)}/table`, tableParams({ format: "csv", sort: sortText() }));
    // the grouped table is another file than the per-run one (the server names it so too)
    const name = (info.name || id).replace(/[^\w.-]/g, "_");
    csv.setAttribute("download", `${name}-table${grouped ? "-grouped" : ""}.csv`);
  }

  /** The view into the URL (`#/sweep/<id>?group=...&m=...`): reload and bookmarks keep it. */
  function saveView() {
    setHashState({
      group: st.groupBy.join(","), m: st.metrics, filter: st.filter, sort: sortText(),
      incomplete: st.includeIncomplete && st.groupBy.length ? "1" : null, ...curves.viewState(),
    });
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
  incomplete.addEventListener("change", () => { st.includeIncomplete = incomplete.checked; loadTable(); });
  filterIn.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { st.filter = filterIn.value.trim(); loadTable(); } });
  filterIn.addEventListener("change", () => { if (filterIn.value.trim() !== st.filter) { st.filter = filterIn.value.trim(); loadTable(); } });

  // -- curves, parallel coordinates, status ------------------------------------------------------
  const curves = curvesPanel({
    sweep: id, metrics: info.metrics || [], seedKeys, swept, getSelected: () => selectedForCurves(),
    getFilter: () => curveFilter(), saved, onChange: () => saveView(),
  });
  const pcMetric = h("select", { "aria-label": "metric of the parallel coordinates" });
  const pcCanvas = h("canvas.parcoords", { id: "parcoords" });
  const pcBox = h("div.pc-box", pcCanvas);
  const status = statusPanel(id);
  renderMetricChips();  // columns restored from the URL

  add(root, 
    head,
    h("section", h("h2", "Results"),
      h("div.controls", groupBox, incompleteBox),
      h("div.controls", "columns: ", metricKey, metricStat, addMetric, metricChips),
      h("div.controls", filterIn, csv),
      filterErr, tableNote, table.el),
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
    if (st.bestRow) {  // `hpctrack table`'s marker of the best group, first: a wide table hides its last columns
      const mark = (r) => (r === st.bestRow ? "* best" : "");
      cols.unshift({ key: "best", label: "", render: (r) => (r === st.bestRow ? h("span.best-mark", "* best") : ""), text: mark, value: (r) => (r === st.bestRow ? 0 : 1) });
    }
    return cols;
  }

  /** The group `hpctrack table` marks `* best`, as the server names it (its position and why), or [null, ""]. */
  function bestGroup(rows, headers) {
    const at = headers.get("X-Hpctrack-Best-Row");
    const row = at !== null && at !== "" ? rows[Number(at)] : undefined;
    return row ? [row, `* best: ${headerText(headers, "X-Hpctrack-Best-By") || ""}`] : [null, ""];
  }

  let tableSeq = 0;
  /**
   * The table as asked: one request, then (grouped) the per-run rows the groups are made of, only
   * when their options changed and only once the first is answered, so a refused filter is one 400.
   * `fresh`: fetch the per-run rows again anyway (the sweep changed).
   */
  async function loadTable(fresh = false) {
    const mine = ++tableSeq;
    updateCsv();
    saveView();
    const grouped = st.groupBy.length > 0;
    let rows, note, headers, runRows = null;
    const runKey = JSON.stringify(tableParams({ group_by: null, include_incomplete: null }));
    try {
      ({ body: rows, note, headers } = await apiWithNote(`sweeps/${enc(id)}/table`, tableParams()));
      if (grouped && mine === tableSeq) {
        runRows = !fresh && st.runRowsKey === runKey ? st.runRows
          : await api(`sweeps/${enc(id)}/table`, tableParams({ group_by: null, include_incomplete: null }));
      }
    } catch (err) {
      if (mine !== tableSeq) return;
      // rows of other options would read as the answer to these: none is shown under the error
      showError(filterErr, err.message);
      st.valid = false;
      st.runRows = [];
      st.runRowsKey = null;
      st.bestRow = null;
      showNote(null, "");
      table.setRows([]);
      table.footer.textContent = "no rows: the table's options above were refused";
      drawPc();
      syncCurves();
      return;
    }
    if (mine !== tableSeq) return;
    showError(filterErr, "");
    st.valid = true;
    st.runRows = runRows || rows;
    st.runRowsKey = runKey;
    st.groupCols = grouped ? groupCols(rows) : [];
    const [bestRow, bestLine] = grouped ? bestGroup(rows, headers) : [null, ""];
    st.bestRow = bestRow;
    showNote(note, bestLine);
    table.setColumns(columnsFor(rows, grouped));
    table.setRows(rows);
    table.setSelected(st.selected);
    fillPcMetrics();
    drawPc();
    syncCurves();
  }

  /** The curves again when the runs the table shows changed (a filter, a refused filter). */
  function syncCurves() {
    const key = JSON.stringify(curveFilter());
    if (key === st.curvesFor) return;
    st.curvesFor = key;
    curves.load();
  }

  /** What `hpctrack table` says beside the table: its stderr note (runs left out...) and the best marker's rule. */
  function showNote(note, bestLine) {
    const text = (note || "").replace(/include them with --include-incomplete/, "tick \u201cinclude incomplete runs\u201d to include them");
    fill(tableNote, text ? h("div", `note: ${text}`) : null, bestLine ? h("div.muted.small", bestLine) : null);
    tableNote.hidden = !text && !bestLine;
    tableNote.classList.toggle("plain", !text);
  }

  /**
   * The table's filter for the curves (the server keeps the runs the table would show, by the
   * table's code; the columns it may name come with it); {} without a filter, null while refused.
   */
  function curveFilter() {
    if (!st.valid) return null;
    if (!st.filter) return {};
    return { filter: st.filter, metrics: st.metrics.join(","), seed_keys: seedKeys.join(",") };
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
  curves.setGroupBy(curveGroupKeys(), false);

  // The curves read every run's store: beside the table on a sweep of up to CURVES_WITH_TABLE runs
  // (the server applies the table's filter to them itself; syncCurves takes them down if the table
  // refuses its options), after it on a larger one, whose rows they would hold back (10,000 runs: 5 s, not 2.7 s).
  if ((info.n_jobs || 0) <= CURVES_WITH_TABLE) syncCurves();
  await loadTable();
  status.load();

  async function refresh() {
    try {
      info = await api(`sweeps/${enc(id)}`);
      renderHead(info);
      // metrics and summary values appear in the index as runs end: the choosers follow
      fillColumnChoices();
      curves.setMetrics(info.metrics || []);
    } catch (err) { /* the next tick tries again */ }
    await Promise.all([loadTable(true), curves.liveLoad(), status.load()]);
  }
  const stop = pollStamp(id, refresh);
  window.addEventListener("resize", drawPc);
  return { stop: () => { stop(); curves.destroy(); status.stop(); window.removeEventListener("resize", drawPc); } };
}
