// The model registry, read-only: every model (#/models) and one model's versions, aliases and
// history (#/model/<name>). Nothing here registers, moves an alias or deletes.
import { add, api, enc, fill, fmt, fmtTime, h } from "./util.js";

export async function modelsPage(root, crumbs) {
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ", h("span", "models"));
  const data = await api("models");
  const body = h("tbody");
  add(root, h("h1", "Models"), h("table.list", { id: "models" }, h("thead", h("tr",
    h("th", "name"), h("th.num", "versions"), h("th.num", "latest"), h("th", "aliases"))), body));
  fill(body, ...data.models.map((m) => h("tr", { dataset: { name: m.name } },
    h("td", h("a.model-link", { href: `#/model/${enc(m.name)}` }, m.name)),
    h("td.num", String(m.versions) + (m.deleted ? ` (+${m.deleted} deleted)` : "")),
    h("td.num", m.latest === null ? "" : String(m.latest)),
    h("td", h("div.tags", Object.entries(m.aliases).map(([a, v]) => h("span.tag", `${a}=${v}`))),
      ...(m.problems || []).map((p) => h("div.warn-line", p))))));
  if (!data.models.length) add(body, h("tr", h("td.muted", { colSpan: 4 }, "no models registered yet (hpctrack models register)")));
  return {};
}

function eventWords(e) {
  switch (e.kind) {
    case "register": return `registered version ${e.version}`;
    case "alias": return `${e.alias}: ${e.old === null ? "-" : e.old} → ${e.new}`;
    case "unalias": return `${e.alias}: ${e.old} → removed`;
    case "tag": return `tags of version ${e.version} changed`;
    case "delete": return `deleted version ${e.version}`;
    case "purge": return `purged the files of version ${e.version}`;
    default: return e.kind;
  }
}

export async function modelPage(root, crumbs, name) {
  fill(crumbs, h("a", { href: "#/" }, "sweeps"), " / ", h("a", { href: "#/models" }, "models"), " / ", h("span", name));
  const m = await api(`models/${enc(name)}`);
  const metrics = [...new Set(m.versions.flatMap((v) => Object.keys(v.metrics)))].filter((k) => !k.endsWith(":last_step")).sort();
  const versions = h("tbody");
  fill(versions, ...m.versions.map((v) => {
    const [sweep, job] = (v.run || "").split("/");
    return h(`tr${v.deleted ? ".deleted" : ""}`, { dataset: { version: String(v.version) } },
      h("td.num", String(v.version)),
      h("td", h("div.tags", v.aliases.map((a) => h("span.tag", a)))),
      h("td", fmtTime(v.created)), h("td", v.by),
      h("td.mono", v.run ? h("a", { href: `#/run/${enc(sweep)}/${enc(job)}` }, v.run) : ""),
      h("td", h("div.tags", Object.entries(v.tags).map(([k, t]) => h("span.tag", `${k}=${t}`)))),
      h("td", v.deleted ? (v.purged ? "deleted, purged" : "deleted") : ""),
      ...metrics.map((k) => h("td.num", k in v.metrics ? fmt(v.metrics[k]) : "")));
  }));
  const events = h("tbody");
  fill(events, ...[...m.history].reverse().map((e) => h("tr",
    h("td", fmtTime(e.time)), h("td", eventWords(e)), h("td", `${e.by}@${e.host}` + (e.job ? ` (job ${e.job})` : "")),
    h("td", e.reason || ""))));
  add(root,
    h("h1", `Model ${name}`),
    ...(m.problems || []).map((p) => h("p.warn-line", p)),
    h("p", h("div.tags", Object.entries(m.aliases).map(([a, v]) => h("span.tag", `${a} → ${v}`)))),
    h("h2", "Versions"),
    h("table.list", { id: "versions" }, h("thead", h("tr", h("th.num", "version"), h("th", "aliases"), h("th", "registered"),
      h("th", "by"), h("th", "run"), h("th", "tags"), h("th", "state"), ...metrics.map((k) => h("th.num", k)))), versions),
    h("h2", "History"),
    h("table.list", { id: "history" }, h("thead", h("tr", h("th", "when"), h("th", "change"), h("th", "who"), h("th", "reason"))), events),
  );
  return {};
}
