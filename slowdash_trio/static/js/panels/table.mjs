// "table" and "tree" panels: the latest value of a channel as a table (a table object's
// columns and rows, or a list of a scalar channel's recent values) or as a tree of nested,
// collapsible key: value lists. A value's `attr` (color, background, href per cell or per tree
// leaf, in the shape of the data) is applied. The value's time is shown small underneath.

import { el } from '../api.mjs';
import { format, formatTime, formatValue } from '../format.mjs';
import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { asObject, metricChannel, numberOr, setData } from './plot-util.mjs';

const ATTR_KEYS = new Set(['color', 'background', 'href']);
const OPEN_DEPTH = 3;          // tree branches deeper than this start collapsed

function isBranch(value) {
    return value !== null && typeof value === 'object'
        && (!Array.isArray(value) || value.some((v) => v !== null && typeof v === 'object'));
}

/** A link target that is safe to follow (no javascript: and the like). */
function safeHref(href) {
    const text = String(href ?? '').trim();
    if (!text) return null;
    try {
        const url = new URL(text, window.location.href);
        return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? text : null;
    } catch {
        return null;
    }
}

/** An attribute set {color, background, href}, or null when `attr` is not one. */
function attrSet(attr) {
    if (!attr || typeof attr !== 'object' || Array.isArray(attr)) return null;
    const keys = Object.keys(attr);
    return keys.length && keys.every((k) => ATTR_KEYS.has(k)) ? attr : null;
}

function applyAttr(element, attr) {
    const set = attrSet(attr);
    if (!set) return;
    if (set.color) element.style.color = String(set.color);
    if (set.background) element.style.background = String(set.background);
}

/** Cell / leaf text: numbers through `spec` (or 6 significant digits), the rest as text. */
function cellText(value, spec) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'number' && spec) return format(spec, value);
    if (Array.isArray(value)) return `[${value.map((v) => cellText(v, spec)).join(', ')}]`;
    return formatValue(value);
}

function content(value, attr, spec) {
    const text = cellText(value, spec);
    const href = safeHref(attrSet(attr)?.href);
    if (!href) return text;
    return el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, text);
}

export class TablePanel extends Panel {
    static addable = { label: 'Table (table objects, value lists)', channels: 'one' };

    static newConfig(type, channels) { return { type: 'table', channel: channels[0] ?? '' }; }

    build() {
        this.channel = metricChannel(this.config.channel);
        this.view = el('div', { class: 'sd-table-view' });
        this.time = el('div', { class: 'sd-table-time' });
        this.body.classList.add('sd-table-body');
        this.body.replaceChildren(el('div', { class: 'sd-table-panel' }, this.view, this.time));
        this.shown = null;
        this.collapsed = new Map();   // tree path -> open (true/false), as the user left it
        this.view.replaceChildren(el('div', { class: 'sd-panel-message' }, this.channel ? 'no data' : 'no channel configured'));
    }

    title() { return super.title() || String(this.config.channel ?? ''); }

    /** A list of the channel's values: asked for, or found (a scalar channel's latest value). */
    get valueList() { return this.config.data_type === 'value_table' || this.scalar === true; }

    valueChannels() { return this.channel && !this.valueList ? [this.channel] : []; }

    seriesChannels() { return this.channel && this.valueList ? [this.channel] : []; }

    update(feed) {
        if (!this.channel) return;
        if (this.valueList) {
            const series = feed.series(this.channel);
            const key = series ? `list|${series.t.length}|${series.t.at(-1)}` : 'none';
            if (key === this.shown) return;
            this.shown = key;
            if (series?.t.length) this.renderList(series);
            else this.noData();
            return;
        }
        const latest = feed.latest(this.channel);
        if (!latest) {
            if (this.shown !== 'none') this.noData();
            this.shown = 'none';
            return;
        }
        const value = asObject(latest.x) ?? latest.x;
        if ((value === null || typeof value !== 'object') && this.config.data_type === undefined) {
            this.scalar = true;   // a scalar channel: show its recent values instead
            feed.refresh();
            return;
        }
        const key = `${latest.t}|${typeof value === 'object' ? JSON.stringify(value) : String(value)}`;
        if (key === this.shown) return;
        this.shown = key;
        if (value && typeof value === 'object' && Array.isArray(value.table)) this.renderTable(value);
        else if (value && typeof value === 'object' && value.tree && typeof value.tree === 'object') this.renderTree(value);
        else this.renderList({ t: [latest.t], x: [latest.x] });
        this.time.textContent = formatTime(latest.t);
        setData(this.body, { time: latest.t });
    }

    noData() {
        this.view.replaceChildren(el('div', { class: 'sd-panel-message' }, 'no data'));
        this.time.textContent = '';
        setData(this.body, { rows: null, leaves: null, kind: 'none', time: null });
    }

    renderTable(value) {
        const spec = this.config.format || '';
        const columns = Array.isArray(value.columns) ? value.columns : null;
        const attrs = Array.isArray(value.attr) ? value.attr : [];
        let rows = value.table.map((row, k) => ({ row: Array.isArray(row) ? row : [row], attr: attrs[k] }));
        if (this.config.reversed) rows = rows.reverse();
        const limit = Math.trunc(numberOr(this.config.max_lines, 0));
        const more = limit > 0 && rows.length > limit ? rows.length - limit : 0;
        if (more) rows = rows.slice(0, limit);
        const table = el('table', { class: 'sd-data-table' },
            columns ? el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, cellText(c))))) : null,
            el('tbody', {}, rows.map(({ row, attr }) => el('tr', {}, row.map((cell, i) => {
                const cellAttr = Array.isArray(attr) ? attr[i] : null;
                const td = el('td', { class: typeof cell === 'number' ? 'sd-number' : null }, content(cell, cellAttr, spec));
                applyAttr(td, cellAttr);
                return td;
            })))),
            more ? el('tfoot', {}, el('tr', {}, el('td', { colspan: columns?.length ?? 1 }, `… ${more} more rows`))) : null);
        this.view.replaceChildren(table);
        setData(this.body, { kind: 'table', rows: rows.length, columns: columns?.length ?? rows[0]?.row.length ?? 0, leaves: null });
    }

    /** A scalar channel's values: time and value per row (newest first unless reversed: false). */
    renderList(series) {
        const spec = this.config.format || '';
        const limit = Math.trunc(numberOr(this.config.max_lines, 100)) || 100;
        const order = series.t.map((_, i) => i);
        if (this.config.reversed !== false) order.reverse();
        const shown = order.slice(0, limit);
        const table = el('table', { class: 'sd-data-table' },
            el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Time'), el('th', { scope: 'col' }, this.channel))),
            el('tbody', {}, shown.map((i) => el('tr', {},
                el('td', { class: 'sd-table-timecell' }, formatTime(series.t[i])),
                el('td', { class: typeof series.x[i] === 'number' ? 'sd-number' : null }, cellText(series.x[i], spec))))),
            order.length > limit ? el('tfoot', {}, el('tr', {}, el('td', { colspan: 2 }, `… ${order.length - limit} more rows`))) : null);
        this.view.replaceChildren(table);
        this.time.textContent = formatTime(series.t.at(-1));
        setData(this.body, { kind: 'list', rows: shown.length, columns: 2, leaves: null, time: series.t.at(-1) });
    }

    renderTree(value) {
        const spec = this.config.format || '';
        let leaves = 0;
        const build = (node, attr, path) => {
            const list = el('ul', { class: 'sd-tree' });
            const entries = Array.isArray(node) ? node.map((v, i) => [String(i), v]) : Object.entries(node);
            for (const [key, child] of entries) {
                const childAttr = attr && typeof attr === 'object' ? attr[key] : undefined;
                const here = [...path, key];
                if (isBranch(child)) {
                    const id = JSON.stringify(here);
                    const open = this.collapsed.has(id) ? this.collapsed.get(id) : here.length <= OPEN_DEPTH;
                    const summary = el('summary', {}, el('span', { class: 'sd-tree-key' }, key),
                        el('span', { class: 'sd-tree-count' }, `${Array.isArray(child) ? child.length : Object.keys(child).length}`));
                    const ownAttr = attrSet(childAttr) && !Object.keys(child).some((k) => ATTR_KEYS.has(k)) ? childAttr : null;
                    applyAttr(summary, ownAttr);
                    const details = el('details', { open }, summary, build(child, ownAttr ? undefined : childAttr, here));
                    details.addEventListener('toggle', () => this.collapsed.set(id, details.open));
                    list.appendChild(el('li', { class: 'sd-tree-branch', 'data-key': key }, details));
                } else {
                    leaves += 1;
                    const valueSpan = el('span', { class: 'sd-tree-value' }, content(child, childAttr, spec));
                    const item = el('li', { class: 'sd-tree-leaf', 'data-key': key },
                        el('span', { class: 'sd-tree-key' }, key), el('span', { class: 'sd-tree-sep' }, ': '), valueSpan);
                    applyAttr(item, childAttr);
                    list.appendChild(item);
                }
            }
            return list;
        };
        const tree = build(value.tree, value.attr, []);
        tree.classList.add('sd-tree-root');
        this.view.replaceChildren(tree);
        setData(this.body, { kind: 'tree', leaves, rows: null, columns: null });
    }
}

export class TreePanel extends TablePanel {
    static addable = { label: 'Tree (key: value, nested)', channels: 'one' };

    static newConfig(type, channels) { return { type: 'tree', channel: channels[0] ?? '' }; }
}

registerPanel(['table'], TablePanel);
registerPanel(['tree'], TreePanel);
