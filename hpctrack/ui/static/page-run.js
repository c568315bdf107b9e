// Run page (#/run/<sweep>/<job>): what `hpctrack show` says (params, summary, tags, attempts,
// provenance, checkpoint), the run's files with previews, every metric's curve, and the log tails.
import { curvesChart } from "./chart.js";
import { add, api, apiUrl, enc, fill, fmt, fmtBytes, fmtDuration, fmtTime, h, pollStamp, stateBadge } from "./util.js";

export async function runPage(root, crumbs, ref, job) {
  const base = `runs/${enc(ref)}/${enc(job)}`;
  const d = await api(base);
  const sweep = d.sweep || {};
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ",
    h("a", { href: `#/sweep/${enc(sweep.id)}` }, sweep.name || sweep.id), " / ", h("span", `run ${d.job.index}`));
  const charts = [];
  const sections = {
    head: h("div"), params: h("section"), attempts: h("section"), provenance: h("section"),
    files: h("section"), curves: h("section"), logs: h("section"),
  };
  add(root, ...Object.values(sections));

  function renderInfo(d) {
    const job = d.job || {};
    fill(sections.head, 
      h("h1", `run ${d.run_id} `, stateBadge(job.state)),
      h("p", (job.overrides || []).join(" ")),
      job.error || d.error ? h("p.error", job.error || d.error) : null,
      d.status ? h("p#run-status", runStatus(d.status)) : null,
      h("p.muted", `directory ${d.run_dir}`),
    );
    fill(sections.params, 
      h("div.cols",
        h("div", h("h2", "Params"), h("pre.yaml#config", d.config_yaml || "")),
        h("div", h("h2", "Summary"), kv(d.summary),
          h("h2", "Tags"), kv(d.tags),
          h("h2", "Metrics"), metricsTable(d.metrics || {}))),
    );
    fill(sections.attempts, h("h2", "Attempts"), attemptsTable(d.attempts || []),
      d.checkpoint ? h("p", `newest checkpoint: ${d.checkpoint.path} (step ${fmt(d.checkpoint.step)}, attempt ${d.checkpoint.attempt}, ${fmtTime(d.checkpoint.time)})`) : h("p.muted", "no checkpoint"));
    fill(sections.provenance, h("h2", "Provenance"), provenance(d.provenance || {}, d.slurm, d));
  }

  /** As `hpctrack show` says it: started, ended, runtime, last step. */
  function runStatus(s) {
    const last = s.last_step !== null && s.last_step !== undefined && s.last_step >= 0 ? fmt(s.last_step) : "none (nothing logged)";
    return `started ${fmtTime(s.start_time) || "-"} · ended ${fmtTime(s.end_time) || "-"} · runtime ${fmtDuration(s.runtime_s) || "-"} · last step ${last}`;
  }

  function kv(obj) {
    const entries = Object.entries(obj || {});
    if (!entries.length) return h("p.muted", "none");
    return h("table.kv", h("tbody", entries.map(([k, v]) => h("tr", h("th", k), h("td", typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v))))));
  }

  function metricsTable(metrics) {
    const entries = Object.entries(metrics);
    if (!entries.length) return h("p.muted", "none logged");
    return h("table.kv#run-metrics", h("thead", h("tr", h("th", "metric"), h("th.num", "last"), h("th.num", "min"), h("th.num", "max"), h("th.num", "points"), h("th.num", "last step"))),
      h("tbody", entries.map(([k, m]) => h("tr", { dataset: { metric: k } }, h("th", k), h("td.num", fmt(m.last)), h("td.num", fmt(m.min)), h("td.num", fmt(m.max)), h("td.num", fmt(m.count)), h("td.num.last-step", fmt(m.last_step))))));
  }

  function attemptsTable(attempts) {
    if (!attempts.length) return h("p.muted", "not started");
    const extra = new Set();
    for (const a of attempts) for (const k of Object.keys(a)) if (!["attempt", "start", "end", "host", "pid", "job_id", "outcome", "outcome_from", "code"].includes(k)) extra.add(k);
    const more = [...extra];
    // how an attempt's end is known when it could not record it (kill -9): said beside the outcome
    const from = (a) => (a.outcome_from ? h("span.muted.small", ` (from the ${a.outcome_from})`) : null);
    return h("table.list#attempts", h("thead", h("tr", ["attempt", "outcome", "start", "end", "duration", "host", "pid", "job id", ...more.map((k) => k.replace(/_/g, " "))].map((c) => h("th", c)))),
      h("tbody", attempts.map((a) => h("tr",
        h("td", String(a.attempt)), h("td", h(`span.outcome.outcome-${a.outcome || "running"}`, a.outcome || "(running)"), from(a)),
        h("td", fmtTime(a.start)), h("td", fmtTime(a.end)), h("td", a.end && a.start ? fmtDuration(a.end - a.start) : ""),
        h("td", a.host || ""), h("td", a.pid ?? ""), h("td", a.job_id || ""),
        ...more.map((k) => h("td", a[k] === undefined || a[k] === null ? "" : typeof a[k] === "object" ? JSON.stringify(a[k]) : String(a[k])))))));
  }

  /** Where the job ran, as `hpctrack show` says it: Hydra's output directory when it changed into it. */
  function jobCwd(startedIn, hydra) {
    if (hydra && hydra.chdir && hydra.output_dir && hydra.output_dir !== startedIn) {
      return `${hydra.output_dir} (hydra.job.chdir; started in ${startedIn || "-"})`;
    }
    return startedIn || "";
  }

  function provenance(p, slurm, d) {
    const git = p.git || {};
    const rows = [
      ["git commit", git.commit ? h("span.mono#git-commit", git.commit) : h("span.muted", git.available === false ? "not a git checkout" : "unknown")],
      ["branch", git.branch || ""], ["remote", git.remote || ""],
      ["dirty", git.commit ? (git.dirty ? `yes${git.untracked_count ? ` (${git.untracked_count} untracked)` : ""}` : "no") : ""],
      ["script", p.script || ""], ["launched", ((d.sweep || {}).launched_with || []).join(" ")],
      ["command", (p.command || []).join(" ")], ["cwd", jobCwd(p.cwd, d.hydra)],
      ["host", p.hostname || ""], ["platform", p.platform || ""],
      ["python", p.python ? `${p.python.version} (${p.python.implementation}) ${p.python.executable}` : ""],
      ["CPUs", p.cpus_usable ? `${p.cpus_usable} usable of ${p.cpu_count}` : fmt(p.cpu_count)],
      ["code snapshot", p.code_snapshot ? `${p.code_snapshot.digest} (${p.code_snapshot.source})` : ""],
    ];
    const out = [h("table.kv#provenance", h("tbody", rows.filter(([, v]) => v !== "").map(([k, v]) => h("tr", h("th", k), h("td", v)))))];
    if (slurm) out.push(h("h3", "SLURM"), kv(slurm));
    if (git.diff) out.push(h("details", h("summary", `diff${git.diff_truncated ? " (truncated)" : ""}`), h("pre.diff", git.diff)));
    if ((git.untracked || []).length) out.push(h("details", h("summary", `untracked files (${git.untracked_count ?? git.untracked.length})`), h("pre", git.untracked.join("\n"))));
    if ((p.packages || []).length) out.push(h("details", h("summary", `packages (${p.packages.length})`), h("pre.packages", p.packages.join("\n"))));
    if (p.environment) out.push(h("details", h("summary", "environment"), kv(p.environment)));
    if (p.not_captured && Object.keys(p.not_captured).length) out.push(h("p.muted", `not captured: ${Object.entries(p.not_captured).map(([k, v]) => `${k}: ${v}`).join("; ")}`));
    return out;
  }

  const previews = new Set();  // paths whose preview is open: kept open when the list is drawn again

  async function renderFiles() {
    let files = [];
    try {
      ({ files } = await api(`${base}/artifacts`));
    } catch (err) {
      fill(sections.files, h("h2", "Files"), h("p.error", err.message));
      return;
    }
    const list = (items) => h("table.list.files", h("thead", h("tr", h("th", "path"), h("th.num", "size"), h("th", "kind"), h("th", ""))),
      h("tbody", items.map((f) => {
        const tr = h("tr", { dataset: { path: f.path } },
          h("td.mono", f.path), h("td.num", fmtBytes(f.size)), h("td", f.kind),
          h("td.actions", h("a.button.small", { href: apiUrl(`${base}/file`, { path: f.path, download: "1" }), download: f.path.split("/").pop() }, "download"),
            f.kind === "image" || f.kind === "text" ? h("button.small", { type: "button", onclick: () => togglePreview(tr, f) }, "preview") : null));
        if (previews.has(f.path)) queueMicrotask(() => togglePreview(tr, f, true));
        return tr;
      })));
    const internal = files.filter((f) => !f.checkpoint && isInternal(f));
    const artifacts = files.filter((f) => !f.checkpoint && !isInternal(f));
    const checkpoints = files.filter((f) => f.checkpoint);
    fill(sections.files,
      h("h2", "Artifacts"), artifacts.length ? list(artifacts) : h("p.muted", "none"),
      h("h2", "Checkpoints"), checkpoints.length ? list(checkpoints) : h("p.muted", "none"),
      internal.length ? h("details#internal-files", h("summary", `the run's own files (${internal.length}: its store, job logs, Hydra's config)`), list(internal)) : null);
  }

  /** hpctrack's and the launcher's files in the run directory, beside what the run saved itself. */
  function isInternal(f) {
    const p = f.path;
    return f.kind === "store" || /^run(\.\d+)?\.(h5|zarr)(\/|$)/.test(p) || /^(logs|\.hydra|\.hpctrack)\//.test(p)
      || /^(end\.json|.*\.lock|.*\.pkl|recovery[^/]*)$/.test(p);
  }

  /** A preview in a row right under the file's row; a second click closes it. */
  async function togglePreview(tr, f, reopen = false) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("preview-row")) {
      if (reopen) return;
      next.remove();
      previews.delete(f.path);
      return;
    }
    previews.add(f.path);
    const cell = h("td.preview", { colSpan: 4 });
    tr.after(h("tr.preview-row", cell));
    const url = apiUrl(`${base}/file`, { path: f.path });
    if (f.kind === "image") {
      fill(cell, h("img.preview-img", { src: url, alt: f.path }));
      return;
    }
    const response = await fetch(url);
    const text = await response.text();
    const cap = 200000;
    fill(cell, h("pre.preview-text", text.length > cap ? `${text.slice(0, cap)}\n… (${fmtBytes(text.length - cap)} more: download it)` : text));
  }

  async function renderCurves(d) {
    if (!d.status) {  // no record yet (pending, starting): no store to read curves from
      while (charts.length) charts.pop().destroy();
      fill(sections.curves, h("h2", "Curves"), h("p.muted", "the run has not started: nothing logged yet"));
      return;
    }
    let data;
    try {
      data = await api(`${base}/history`, { points: 1000 });
    } catch (err) {
      fill(sections.curves, h("h2", "Curves"), h("p.error", err.message));
      return;
    }
    while (charts.length) charts.pop().destroy();
    const grid = h("div.chart-grid");
    fill(sections.curves, h("h2", "Curves"), grid);
    const entries = Object.entries(data.metrics || {});
    if (!entries.length) add(grid, h("p.muted", "no metric logged"));
    for (const [key, curve] of entries) {
      const cell = h("div.chart-cell");
      add(grid, cell);
      if (!curve.x || !curve.x.length) { add(cell, h("h3", key), h("p.muted", "no points")); continue; }
      charts.push(curvesChart(cell, [{ label: key, x: curve.x, y: curve.y, colour: "hsl(210, 70%, 40%)", width: 1.5 }], { title: key, height: 220 }));
    }
  }

  async function renderLogs(d) {
    const parts = [h("h2", "Output")];
    if (!d.status || (d.job || {}).state === "PENDING") {  // no log is recorded before the job starts
      fill(sections.logs, ...parts, h("p.muted", "the job has not started: no output yet"));
      return;
    }
    for (const stream of ["stdout", "stderr"]) {
      try {
        const log = await api(`${base}/log`, { stream, tail: 65536 });
        parts.push(h("h3", `${stream}${log.truncated ? " (last 64 KiB)" : ""}`), h("pre.log", { dataset: { stream } }, log.text || "(empty)"));
      } catch (err) {
        parts.push(h("h3", stream), h("p.muted", err.message));
      }
    }
    fill(sections.logs, ...parts);
  }

  renderInfo(d);
  await Promise.all([renderFiles(), renderCurves(d), renderLogs(d)]);
  // live while the run's sweep changes (a running job's end, a requeue)
  // the run's own stamp: it moves as the run writes (steps, heartbeats), not only when it ends
  const stop = pollStamp(sweep.id, async () => {
    let now;
    try { now = await api(base); } catch (err) { return; }
    renderInfo(now);
    await Promise.all([renderFiles(), renderCurves(now), renderLogs(now)]);
  }, 2500, d.job.index);
  return { stop: () => { stop(); while (charts.length) charts.pop().destroy(); } };
}
