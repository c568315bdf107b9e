// Compare page (#/compare/<id1>,<id2>,...): the sweeps side by side on their common params (what
// `hpctrack compare --format json` prints, with the notes it prints), and one metric's curves
// overlaid: a colour per group (the same settings in every sweep), a dash per sweep.
import { curvesChart } from "./chart.js";
import { add, api, apiWithNote, colour, enc, fill, fmt, h, plural, showError } from "./util.js";

/** Line styles per sweep: uPlot's dash pattern, and the CSS border style that looks like it. */
const DASHES = [{ dash: null, css: "solid" }, { dash: [8, 4], css: "dashed" }, { dash: [2, 3], css: "dotted" },
  { dash: [12, 3, 3, 3], css: "double" }];
const dashOf = (i) => DASHES[i % DASHES.length];

export async function comparePage(root, crumbs, refs) {
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ", h("span", "compare"));
  if (refs.length < 2) throw new Error("compare needs two or more sweeps: #/compare/<id1>,<id2>");
  const infos = await Promise.all(refs.map((r) => api(`sweeps/${enc(r)}`)));
  const common = infos.map((i) => new Set(i.metrics || [])).reduce((a, b) => new Set([...a].filter((m) => b.has(m))));
  const metrics = [...common];
  const metricSel = h("select", { "aria-label": "metric" }, ...metrics.map((m) => h("option", { value: m }, m)));
  const statSel = h("select", { "aria-label": "statistic" }, ...["(default)", "last", "min", "max", "mean"].map((s) => h("option", { value: s === "(default)" ? "" : s }, s)));
  const curveMode = h("select", { "aria-label": "curves" }, h("option", { value: "groups" }, "mean of each sweep's groups"), h("option", { value: "runs" }, "every run"));
  const error = h("div.error.oneline");
  error.hidden = true;
  const tableBox = h("div", { id: "compare-table" });
  const chartBox = h("div.chart", { id: "compare-curves" });
  const legend = h("div.legend#compare-legend");
  const infoLine = h("p.muted.small#compare-curves-info");
  const note = h("div.note#compare-note");
  note.hidden = true;
  let chart = null;
  add(root, 
    h("h1", "Compare"),
    h("ul.sweep-list", infos.map((info, i) => {
      const sample = h("span.dash-sample");
      sample.style.borderTopStyle = dashOf(i).css;
      return h("li", sample, h("a", { href: `#/sweep/${enc(info.id)}` }, info.name || info.id), " ", h("span.muted.mono", info.id), ` · ${info.jobs}`);
    })),
    metrics.length ? null : h("p.error", "these sweeps share no metric"),
    h("div.controls", "metric: ", metricSel, statSel, curveMode),
    error, note, tableBox, h("h2", "Curves"), legend, chartBox, infoLine,
  );

  let tableSeq = 0, curveSeq = 0;  // a slower, older answer never replaces a newer one
  async function loadTable() {
    const spec = metricSel.value + (statSel.value ? `:${statSel.value}` : "");
    const mine = ++tableSeq;
    let rows, notes;
    try {
      ({ body: rows, note: notes } = await apiWithNote("compare", { sweeps: infos.map((i) => i.id).join(","), metrics: spec }));
      if (mine !== tableSeq) return;
    } catch (err) {
      if (mine !== tableSeq) return;
      showError(error, err.message);
      fill(tableBox);
      fill(note);
      note.hidden = true;
      return;
    }
    showError(error, "");
    // what `hpctrack compare` prints as `note: ...` (settings each sweep held fixed that differ, ...)
    fill(note, ...(notes ? notes.split(/\n+/).filter(Boolean).map((line) => h("div", line.startsWith("note:") ? line : `note: ${line}`)) : []));
    note.hidden = !notes;
    const keys = rows.length ? Object.keys(rows[0]) : [];
    const labels = infos.map((i) => i.name || i.id);
    // columns "n <label>" mark where the group keys end; the rest are per-sweep aggregates
    const firstN = keys.findIndex((k) => k.startsWith("n "));
    const groupKeys = keys.slice(0, firstN < 0 ? keys.length : firstN);
    const cols = [...groupKeys.map((k) => ({ label: k, text: (r) => fmt(r[k]) }))];
    labels.forEach((label) => {
      const suffix = ` mean ${label}`;
      const bases = keys.filter((k) => k.endsWith(suffix)).map((k) => k.slice(0, -suffix.length));
      cols.push({ label: `n ${label}`, text: (r) => fmt(r[`n ${label}`]) });
      for (const base of bases) {
        const mean = `${base} mean ${label}`, std = `${base} std ${label}`;
        cols.push({ label: `${base} ${label}`, text: (r) => (fmt(r[mean]) ? `${fmt(r[mean])}${fmt(r[std]) ? ` ± ${fmt(r[std])}` : ""}` : "") });
      }
      for (const base of bases) {
        const delta = `${base} delta ${label}`, beyond = `${base} beyond spread ${label}`;
        if (keys.includes(delta)) cols.push({ label: `Δ ${base} ${label}`, text: (r) => `${fmt(r[delta])}${r[beyond] ? " *" : ""}` });
      }
    });
    fill(tableBox, h("table.list", h("thead", h("tr", cols.map((c) => h("th", c.label)))),
      h("tbody", rows.map((r) => h("tr", cols.map((c) => h("td.num", c.text(r))))))),
      h("p.muted.small", "* the delta is beyond the seed-to-seed spread (larger than both sweeps' std)"));
  }

  async function loadCurves() {
    const metric = metricSel.value;
    if (!metric) return;
    const groups = curveMode.value === "groups";
    const mine = ++curveSeq;
    let results;
    try {
      results = await Promise.all(infos.map((info) => {
        // "all": every swept key but the seeds; a sweep of seeds is one group of all its runs
        return api(`sweeps/${enc(info.id)}/history`, {
          metric, runs: "all", points: 1000,
          group_by: groups ? "all" : null, seed_keys: groups ? (info.seed_keys || ["seed"]).join(",") : null,
          band: groups ? "std" : null,
        });
      }));
    } catch (err) {
      if (mine === curveSeq) showError(error, err.message);
      return;
    }
    if (mine !== curveSeq) return;
    // a colour per group: the same settings get the same colour in every sweep
    const groupIndex = new Map();
    const groupOf = (label) => {
      if (!groupIndex.has(label)) groupIndex.set(label, groupIndex.size);
      return groupIndex.get(label);
    };
    const lines = [];
    results.forEach((data, i) => {
      const name = infos[i].name || infos[i].id;
      const seeds = infos[i].seed_keys || ["seed"];
      const { dash } = dashOf(i);
      for (const g of data.groups || []) {
        const label = g.label || "all runs";
        lines.push({ label: `${name} ${label}`, x: g.x, y: g.mean, colour: colour(groupOf(label)), width: 1.75, dash });
      }
      for (const r of data.runs || []) {
        const label = Object.entries(r.params || {}).filter(([k]) => !seeds.includes(k)).map(([k, v]) => `${k}=${v}`).join(" ") || "all runs";
        lines.push({ label: `${name} ${r.job} ${label}`, x: r.x, y: r.y, colour: colour(groupOf(label), 0.75), width: 1.1, dash });
      }
    });
    fill(legend,
      ...[...groupIndex.keys()].map((label) => {
        const sw = h("span.swatch");
        sw.style.background = colour(groupIndex.get(label));
        return h("span.legend-item.legend-group", sw, label);
      }),
      h("br"),
      ...infos.map((info, i) => {
        const sample = h("span.dash-sample");
        sample.style.borderTopStyle = dashOf(i).css;
        return h("span.legend-item.legend-sweep", sample, info.name || info.id);
      }));
    infoLine.textContent = `${metric}: ` + results.map((data, i) => `${infos[i].name || infos[i].id}: ` +
      (data.groups ? `${plural(data.groups.length, "group")} of ${plural(data.n_runs, "run")}` : plural((data.runs || []).length, "run")),
    ).join("; ");
    if (chart) chart.destroy();
    chart = lines.length ? curvesChart(chartBox, lines, { xLabel: "step", legend: false }) : null;
    if (!lines.length) fill(chartBox, h("p.muted", `no points of ${metric}`));
  }

  metricSel.addEventListener("change", () => { loadTable(); loadCurves(); });
  statSel.addEventListener("change", loadTable);
  curveMode.addEventListener("change", loadCurves);
  if (metrics.length) await Promise.all([loadTable(), loadCurves()]);
  return { stop: () => { if (chart) chart.destroy(); } };
}
