// The dashboard's single page: hash routing between the sweeps, sweep, run, compare and models views.
// Every URL is relative (api/..., static/...): the app may be served under a prefix.
import { add, fill, h, pageWords, setPagePath } from "./util.js";
import { sweepsPage } from "./page-sweeps.js";
import { sweepPage } from "./page-sweep.js";
import { runPage } from "./page-run.js";
import { comparePage } from "./page-compare.js";
import { modelPage, modelsPage } from "./page-models.js";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
let current = null;  // the page shown: {stop()} ends its polling and charts

/** `#/sweep/<ref>` and friends -> [page, args]. */
function parse(hash) {
  const parts = hash.split("?")[0].replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  switch (parts[0]) {
    case "sweep": return parts[1] ? [sweepPage, [parts[1]]] : null;
    case "run": return parts[1] && parts[2] !== undefined ? [runPage, [parts[1], parts[2]]] : null;
    case "compare": return parts[1] ? [comparePage, [parts[1].split(",").filter(Boolean)]] : null;
    case "models": return [modelsPage, []];
    case "model": return parts[1] ? [modelPage, [parts[1]]] : null;
    case "": return [sweepsPage, []];
    default: return null;
  }
}

let routed = 0;  // which route() call is the newest: a page still loading when another is asked for is stopped

async function route() {
  const mine = ++routed;
  if (current && current.stop) current.stop();
  current = null;
  setPagePath((location.hash || "#/").split("?")[0]);
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
    const shown = await page(root, crumbs, ...args);
    if (mine === routed) current = shown;
    else if (shown && shown.stop) shown.stop();  // left while it loaded: no polling, no URL writes
  } catch (err) {
    if (mine === routed) fill(root, h("p.error", pageWords(err.message)), h("a", { href: "#/" }, "all sweeps"));
  }
}

window.addEventListener("hashchange", route);
route();
