// Sweeps page (#/): every sweep under the root, newest first, with job counts by state, the best
// value of a chosen metric, a server-side text search, and live updates.
import { STATES, add, api, debounce, enc, fill, fmt, h, hashState, pollStamp, showError, viewWriter } from "./util.js";

export async function sweepsPage(root, crumbs) {
  fill(crumbs, h("span", "sweeps"));
  const saved = hashState();
  const setHashState = viewWriter();
  // mode "": the server's default for the metric (lowest for a loss or an error, else highest)
  const state = { q: saved.get("q") || "", metric: saved.get("metric") || "", mode: saved.get("mode") || "", picked: new Set() };
  const search = h("input.search", { type: "search", placeholder: "search names, ids, tags, notes, params", "aria-label": "search sweeps", value: state.q });
  const metricSel = h("select.best-metric", { "aria-label": "metric for the best value" }, h("option", { value: "" }, "best of: (no metric)"));
  const modeSel = h("select.best-mode", { "aria-label": "best is max or min" },
    h("option", { value: "" }, "by its name"), h("option", { value: "max" }, "max"), h("option", { value: "min" }, "min"));
  modeSel.value = state.mode;
  const modeUsed = h("span.muted.small#best-mode");
  const compareBtn = h("button", { type: "button", disabled: true, onclick: () => {
    location.hash = `#/compare/${[...state.picked].map(enc).join(",")}`;
  } }, "compare selected");
  const error = h("p.error");
  error.hidden = true;
  const body = h("tbody");
  const note = h("p.muted");
  add(root, 
    h("h1", "Sweeps"),
    h("div.controls", search, metricSel, modeSel, modeUsed, compareBtn),
    error,
    h("table.list", { id: "sweeps" }, h("thead", h("tr",
      h("th.sel", ""), h("th", "name"), h("th", "id"), h("th", "created"), h("th", "backend"),
      h("th", "jobs"), h("th.num", "best"))), body),
    note,
  );

  let seq = 0;
  async function load() {
    const mine = ++seq;
    let data;
    try {
      data = await api("sweeps", { q: state.q, metric: state.metric, mode: state.metric ? state.mode : null });
      setHashState({ q: state.q, metric: state.metric, mode: state.mode });
    } catch (err) {
      showError(error, err.message);
      return;
    }
    if (mine !== seq) return;  // a newer search answered first
    showError(error, "");
    fillMetrics(data.metrics || []);
    modeUsed.textContent = state.metric && data.mode ? `best: ${data.mode === "min" ? "lowest" : "highest"} (${data.mode}${state.mode ? "" : ", by the name"})` : "";
    fill(body, ...data.sweeps.map(row));
    const skipped = data.skipped || [];
    note.textContent = `${data.sweeps.length} sweep${data.sweeps.length === 1 ? "" : "s"}` +
      (skipped.length ? `; skipped: ${skipped.join("; ")}` : "");
    if (!data.sweeps.length) add(body, h("tr", h("td.muted", { colSpan: 7 }, state.q ? "no sweep matches" : "no sweeps under this root yet")));
  }

  function fillMetrics(metrics) {
    const have = [...metricSel.options].map((o) => o.value).slice(1);
    if (have.join("\n") === metrics.join("\n")) return;
    fill(metricSel, h("option", { value: "" }, "best of: (no metric)"),
      ...metrics.map((m) => h("option", { value: m, selected: m === state.metric }, `best of: ${m}`)));
  }

  function row(s) {
    const pick = h("input", { type: "checkbox", title: "pick for compare", checked: state.picked.has(s.id), onchange: () => {
      if (pick.checked) state.picked.add(s.id); else state.picked.delete(s.id);
      compareBtn.disabled = state.picked.size < 2;
    } });
    const chips = STATES.filter((st) => (s.states || {})[st]).map((st) => h(`span.chip.state-${st}`, { title: st }, `${s.states[st]} ${st}`));
    if (s.unconfirmed) chips.push(h("span.chip.unconfirmed", { title: "jobs whose state only the scheduler can confirm" }, `${s.unconfirmed} unconfirmed`));
    const best = s.best ? h("a", { href: `#/run/${s.best.run.split("/").map(enc).join("/")}` }, fmt(s.best.value)) : "";
    return h("tr", { dataset: { id: s.id } },
      h("td.sel", pick),
      h("td", h("a.sweep-link", { href: `#/sweep/${enc(s.id)}` }, s.name || s.id),
        s.note ? h("div.muted.small", s.note) : null,
        Object.keys(s.tags || {}).length ? h("div.tags", Object.entries(s.tags).map(([k, v]) => h("span.tag", v ? `${k}=${v}` : k))) : null),
      h("td.mono", s.id), h("td", s.created), h("td", s.backend),
      // the count once: the chips say it when every job is in one state
      h("td.jobs", chips.length > 1 ? h("span.muted", `${s.n_jobs}: `) : null, chips), h("td.num.best", best));
  }

  search.addEventListener("input", debounce(() => { state.q = search.value.trim(); load(); }, 250));
  metricSel.addEventListener("change", () => { state.metric = metricSel.value; load(); });
  modeSel.addEventListener("change", () => { state.mode = modeSel.value; load(); });
  await load();
  const stop = pollStamp(null, load);
  return { stop };
}
