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
      { key: "heartbeat_age_s", label: "heartbeat", num: true, render: (r) => heartbeat(r) },
      { key: "flags", label: "flags", value: (r) => flags(r), render: (r) => flags(r), text: (r) => flags(r) },
      { key: "node", label: "node", render: (r) => r.node || "" },
      { key: "job_id", label: "job id", render: (r) => r.job_id || "" },
      { key: "error", label: "error", width: 48, render: (r) => h("span", { title: r.error || "" }, r.error || r.note || "") },
    ],
  });
  table.el.id = "jobs";
  const errors = h("div.job-errors");
  const el = h("div.status", summary, notes, error, h("label", all, "all jobs (else only those needing attention)"), table.el, errors);
  let data = null;
  let fetchedAt = 0;  // ms: heartbeat ages are as of the answer, and grow until the next one

  function heartbeat(r) {
    if (r.heartbeat_age_s === null || r.heartbeat_age_s === undefined) return "";
    const age = r.heartbeat_age_s + (r.state === "RUNNING" ? (Date.now() - fetchedAt) / 1000 : 0);
    return `${fmtDuration(age)} ago`;
  }
  const ticker = setInterval(() => {
    if (data && (data.jobs || []).some((r) => r.state === "RUNNING" && r.heartbeat_age_s !== null)) table.renderWindow(true);
  }, 1000);
  function flags(r) {
    const out = [];
    if (r.possibly_hung) out.push("possibly hung");
    if (r.stalled) out.push("stalled");
    if (r.data_lost) out.push("data lost");
    return out.join(", ");
  }

  /** Ended otherwise than completed, flagged, failed before, or retried: waiting and running jobs are not trouble. */
  function needsAttention(r) {
    return !["COMPLETED", "PENDING", "RUNNING"].includes(r.state) || r.possibly_hung || r.stalled || r.error || r.data_lost || r.attempt > 1;
  }

  function render() {
    if (!data) return;
    summary.textContent = data.summary || "";
    const lines = [];
    const incomplete = Object.entries(data.incomplete || {});
    const lost = Object.entries(data.lost || {});
    // `hpctrack status`'s words: configs without a completed run (resume submits them)
    if (incomplete.length) {
      lines.push(`without a completed run: ${incomplete.length} of ${(data.jobs || []).length} configs: `
        + `${incomplete.map(([j, why]) => `${j} (${why})`).join(", ")}; `
        + (data.resumable === false ? "a plain script run: run the script again"
          : `\`hpctrack resume ${data.name || data.sweep}\` submits them`));
    }
    if (lost.length) lines.push(`lost: ${lost.map(([j, why]) => `${j} (${why})`).join("; ")}`);
    if ((data.stalled || []).length) lines.push(`stalled: ${data.stalled.join(", ")}`);
    if (data.note) lines.push(`note: ${data.note}`);
    fill(notes, ...lines.map((l) => h("p.warn-line", l)));
    const jobs = data.jobs || [];
    const shown = all.checked ? jobs : jobs.filter(needsAttention);
    table.setRows(shown);
    if (!all.checked && !shown.length) {
      const waiting = jobs.filter((r) => r.state === "PENDING" || r.state === "RUNNING").length;
      table.footer.textContent = waiting ? `no job needs attention (${waiting} of ${jobs.length} pending or running)`
        : `all ${jobs.length} jobs completed without trouble`;
    }
    // errors in full, wrapped (the table's column shows their start)
    const withError = shown.filter((r) => r.error);
    fill(errors, withError.length ? h("h3", "errors") : null,
      withError.slice(0, 100).map((r) => h("p.job-error", h("a", { href: `#/run/${enc(sweep)}/${r.job}` }, `job ${r.job}`), `: ${r.error}`)),
      withError.length > 100 ? h("p.muted", `… ${withError.length - 100} more (all jobs: hpctrack status)`) : null);
  }

  all.addEventListener("change", render);
  return {
    el,
    async load() {
      try {
        data = await api(`sweeps/${enc(sweep)}/status`);
        fetchedAt = Date.now();
        showError(error, "");
      } catch (err) {
        showError(error, err.message);
        return;
      }
      render();
    },
    stop() { clearInterval(ticker); },
  };
}
