// Per-job status of a sweep (what `hpctrack status --format json` says): attempts, errors, hung
// and stalled runs. The jobs needing attention come first; "all jobs" shows the rest.
import { VirtualTable } from "./table.js";
import { api, enc, fill, fmt, fmtDuration, h, showError, stateBadge } from "./util.js";

export function statusPanel(sweep) {
  const summary = h("p.status-summary");
  const notes = h("div.status-notes");
  const error = h("div.error.oneline");
  error.hidden = true;
  const all = h("input", { type: "checkbox" });
  const table = new VirtualTable({
    rowKey: (r) => String(r.job),
    rowClass: (r) => (r.possibly_hung || r.stalled ? "warn" : ""),
    maxHeight: 360,
    columns: [
      { key: "job", label: "job", num: true, render: (r) => h("a", { href: `#/run/${enc(sweep)}/${r.job}` }, String(r.job)) },
      { key: "state", label: "state", render: (r) => stateBadge(r.state), text: (r) => r.state },
      { key: "attempt", label: "attempt", num: true, render: (r) => fmt(r.attempt) },
      { key: "last_step", label: "last step", num: true, render: (r) => fmt(r.last_step) },
      { key: "runtime_s", label: "runtime", num: true, render: (r) => fmtDuration(r.runtime_s), text: (r) => fmtDuration(r.runtime_s) },
      { key: "heartbeat_age_s", label: "heartbeat", num: true, render: (r) => (r.heartbeat_age_s === null ? "" : `${fmtDuration(r.heartbeat_age_s)} ago`) },
      { key: "flags", label: "flags", value: (r) => flags(r), render: (r) => flags(r), text: (r) => flags(r) },
      { key: "node", label: "node", render: (r) => r.node || "" },
      { key: "job_id", label: "job id", render: (r) => r.job_id || "" },
      { key: "error", label: "error", width: 48, render: (r) => h("span", { title: r.error || "" }, r.error || r.note || "") },
    ],
  });
  table.el.id = "jobs";
  const el = h("div.status", summary, notes, error, h("label", all, "all jobs (else only those needing attention)"), table.el);
  let data = null;

  function flags(r) {
    const out = [];
    if (r.possibly_hung) out.push("possibly hung");
    if (r.stalled) out.push("stalled");
    if (r.data_lost) out.push("data lost");
    return out.join(", ");
  }

  function needsAttention(r) {
    return r.state !== "COMPLETED" || r.possibly_hung || r.stalled || r.error || r.data_lost || r.attempt > 1;
  }

  function render() {
    if (!data) return;
    summary.textContent = data.summary || "";
    const lines = [];
    const incomplete = Object.entries(data.incomplete || {});
    const lost = Object.entries(data.lost || {});
    if (incomplete.length) lines.push(`incomplete: ${incomplete.map(([j, why]) => `${j} (${why})`).join("; ")}`);
    if (lost.length) lines.push(`lost: ${lost.map(([j, why]) => `${j} (${why})`).join("; ")}`);
    if ((data.stalled || []).length) lines.push(`stalled: ${data.stalled.join(", ")}`);
    if (data.note) lines.push(`note: ${data.note}`);
    fill(notes, ...lines.map((l) => h("p.warn-line", l)));
    const jobs = data.jobs || [];
    const shown = all.checked ? jobs : jobs.filter(needsAttention);
    table.setRows(shown);
    if (!all.checked && !shown.length) table.footer.textContent = `all ${jobs.length} jobs completed without trouble`;
  }

  all.addEventListener("change", render);
  return {
    el,
    async load() {
      try {
        data = await api(`sweeps/${enc(sweep)}/status`);
        showError(error, "");
      } catch (err) {
        showError(error, err.message);
        return;
      }
      render();
    },
  };
}
