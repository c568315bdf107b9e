// A table that stays usable at 10,000+ rows: only the rows in view (plus a margin) are in the DOM
// (virtual scrolling, fixed row height), headers sort on click, rows can be selected.
import { compareCells, h } from "./util.js";

const ROW_H = 26;      // px; must match `.vt td` height in style.css
const OVERSCAN = 12;   // rows rendered above and below the visible window

/**
 * @typedef {Object} Column
 * @property {string} key        the row's field (also the `data-col` of its cells)
 * @property {string} label      header text
 * @property {(row: Object) => (Node|string)} [render]   cell content (default: the value as text)
 * @property {(row: Object) => *} [value]   what sorting compares (default: row[key])
 * @property {boolean} [num]     right-aligned
 * @property {number} [width]    width in characters (default: from header and values)
 */

export class VirtualTable {
  /**
   * @param {Object} opts
   * @param {Column[]} opts.columns
   * @param {(row: Object) => string} [opts.rowKey]   identity of a row (for the selection)
   * @param {boolean} [opts.selectable]               a checkbox column, and click selects
   * @param {(keys: Set<string>) => void} [opts.onSelect]
   * @param {(row: Object) => string} [opts.rowClass]
   * @param {number} [opts.maxHeight]                 px of the scrolling box
   */
  constructor(opts) {
    this.opts = opts;
    this.rows = [];
    this.view = [];        // rows in display order (sorted)
    this.sort = null;      // {key, desc}
    this.selected = new Set();
    this.el = h("div.vt-box");
    this.scroller = h("div.vt-scroll");
    this.scroller.style.maxHeight = `${opts.maxHeight || 520}px`;
    this.table = h("table.vt");
    this.colgroup = h("colgroup");
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.table.append(this.colgroup, this.thead, this.tbody);
    this.scroller.append(this.table);
    this.footer = h("div.vt-foot");
    this.el.append(this.scroller, this.footer);
    this.scroller.addEventListener("scroll", () => this.renderWindow());
    this.setColumns(opts.columns);
  }

  /** Replace the columns (keeps rows, sort when its column remains, and the selection). */
  setColumns(columns) {
    this.columns = columns;
    if (this.sort && !columns.some((c) => c.key === this.sort.key)) this.sort = null;
    this.renderHead();
    this.sizeColumns();
    this.applySort();
  }

  /** Replace the rows; the scroll position and the selection stay. */
  setRows(rows) {
    this.rows = rows;
    this.sizeColumns();
    this.applySort();
  }

  setSelected(keys) {
    this.selected = new Set(keys);
    this.renderWindow(true);
  }

  rowKey(row) {
    return this.opts.rowKey ? this.opts.rowKey(row) : String(this.rows.indexOf(row));
  }

  renderHead() {
    const cells = [];
    if (this.opts.selectable) {
      const all = h("input", { type: "checkbox", title: "select all / none", onchange: () => {
        this.selected = all.checked ? new Set(this.view.map((r) => this.rowKey(r))) : new Set();
        this.changed();
      } });
      this.selectAll = all;
      cells.push(h("th.sel", all));
    }
    for (const col of this.columns) {
      const mark = this.sort && this.sort.key === col.key ? (this.sort.desc ? " ▼" : " ▲") : "";
      cells.push(h(`th${col.num ? ".num" : ""}`, {
        title: `sort by ${col.label}`, dataset: { col: col.key },
        onclick: () => this.toggleSort(col.key),
      }, col.label + mark));
    }
    this.thead.replaceChildren(h("tr", cells));
  }

  /** Fixed column widths (table-layout: fixed), so that columns do not jump while scrolling. */
  sizeColumns() {
    const sample = this.rows.length > 200 ? this.rows.filter((_, i) => i % Math.ceil(this.rows.length / 200) === 0) : this.rows;
    const cols = [];
    if (this.opts.selectable) cols.push(h("col", { width: "30" }));
    for (const col of this.columns) {
      let chars = col.width || Math.max(4, col.label.length + 2);
      if (!col.width) {
        for (const row of sample) {
          const text = col.text ? col.text(row) : row[col.key];
          chars = Math.max(chars, String(text ?? "").length + 1);
        }
      }
      cols.push(h("col", { width: String(Math.min(48, chars) * 8 + 14) }));
    }
    this.colgroup.replaceChildren(...cols);
  }

  toggleSort(key) {
    if (this.sort && this.sort.key === key) this.sort = this.sort.desc ? null : { key, desc: true };
    else this.sort = { key, desc: false };
    this.renderHead();
    this.applySort();
    if (this.opts.onSort) this.opts.onSort(this.sort);
  }

  applySort() {
    this.view = this.rows.slice();
    if (this.sort) {
      const col = this.columns.find((c) => c.key === this.sort.key);
      const get = col && col.value ? col.value : (r) => r[this.sort.key];
      const sign = this.sort.desc ? -1 : 1;
      // missing values stay last in either direction
      this.view.sort((a, b) => {
        const va = get(a), vb = get(b);
        const missA = va === null || va === undefined || Number.isNaN(va);
        const missB = vb === null || vb === undefined || Number.isNaN(vb);
        if (missA || missB) return missA === missB ? 0 : missA ? 1 : -1;
        return sign * compareCells(va, vb);
      });
    }
    this.renderWindow(true);
  }

  renderWindow(force = false) {
    const n = this.view.length;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 520;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    if (!force && first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    const span = this.columns.length + (this.opts.selectable ? 1 : 0);
    const rows = [];
    if (first > 0) rows.push(spacer(first * ROW_H, span));
    for (let i = first; i < last; i++) rows.push(this.renderRow(this.view[i]));
    if (last < n) rows.push(spacer((n - last) * ROW_H, span));
    this.tbody.replaceChildren(...rows);
    if (this.selectAll) this.selectAll.checked = n > 0 && this.selected.size >= n;
    this.footer.textContent = `${n} row${n === 1 ? "" : "s"}` + (this.selected.size ? `, ${this.selected.size} selected` : "");
  }

  renderRow(row) {
    const key = this.rowKey(row);
    const selected = this.selected.has(key);
    const cells = [];
    if (this.opts.selectable) {
      cells.push(h("td.sel", h("input", { type: "checkbox", checked: selected, title: "select" })));
    }
    for (const col of this.columns) {
      const content = col.render ? col.render(row) : row[col.key];
      cells.push(h(`td${col.num ? ".num" : ""}`, { dataset: { col: col.key } }, content));
    }
    const extra = this.opts.rowClass ? this.opts.rowClass(row) : "";
    const tr = h("tr", { dataset: { key } }, cells);
    if (selected) tr.classList.add("selected");
    if (extra) tr.classList.add(extra);
    if (this.opts.selectable) {
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("a")) return;  // the run link navigates, it does not select
        if (this.selected.has(key)) this.selected.delete(key);
        else this.selected.add(key);
        this.changed();
      });
    }
    return tr;
  }

  changed() {
    this.renderWindow(true);
    if (this.opts.onSelect) this.opts.onSelect(new Set(this.selected));
  }
}

function spacer(px, span) {
  const td = h("td", { colSpan: span });
  const tr = h("tr.vt-spacer", td);
  tr.style.height = `${px}px`;
  return tr;
}
