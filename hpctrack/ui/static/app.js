// The dashboard's single page: hash routing between the sweeps, sweep, run and compare views.
// Every URL is relative (api/..., static/...): the app may be served under a prefix.
import { add, fill, h } from "./util.js";
import { sweepsPage } from "./page-sweeps.js";
import { sweepPage } from "./page-sweep.js";
import { runPage } from "./page-run.js";
import { comparePage } from "./page-compare.js";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
let current = null;  // the page shown: {stop()} ends its polling and charts

/** `#/sweep/<ref>` and friends -> [page, args]. */
function parse(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  switch (parts[0]) {
    case "sweep": return parts[1] ? [sweepPage, [parts[1]]] : null;
    case "run": return parts[1] && parts[2] !== undefined ? [runPage, [parts[1], parts[2]]] : null;
    case "compare": return parts[1] ? [comparePage, [parts[1].split(",").filter(Boolean)]] : null;
    case "": return [sweepsPage, []];
    default: return null;
  }
}

async function route() {
  if (current && current.stop) current.stop();
  current = null;
  window.scrollTo(0, 0);
  const found = parse(location.hash || "#/");
  const root = h("div.page");
  fill(app, root);
  if (!found) {
    fill(crumbs);
    add(root, h("p.error", `No such page: ${location.hash}`), h("a", { href: "#/" }, "all sweeps"));
    return;
  }
  const [page, args] = found;
  try {
    current = await page(root, crumbs, ...args);
  } catch (err) {
    fill(root, h("p.error", err.message), h("a", { href: "#/" }, "all sweeps"));
  }
}

window.addEventListener("hashchange", route);
route();
