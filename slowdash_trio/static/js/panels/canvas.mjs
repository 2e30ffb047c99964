// Canvas panels: a slowdash-NAME.json drawing (the original's format) as SVG.
//
// Layout config: {"type": "canvas", "config_name": NAME} loads
// ./api/config/content/slowdash-NAME.json, or {"type": "canvas", "content": {...}} draws the
// given document. The document: {"view_box": "0 0 W H", "items": [...], "forms": {...}}.
//
// Item: {"type": box | circle | valve | solenoid | invisible | text | button | image | grid |
// plot | micro_plot, "attr": {x, y, width, height, label, text, href, ...}, "metric":
// {channel, format, "active-above", "active-below", "tolerable-gap" (s, default 60)},
// "action": {open: URL} | {submit: {name: "task.f()"}} | {form: NAME}}.
// A metric colours the item (active / inactive; dead when there is no value or the latest one
// is older than tolerable-gap: then a warning sign shows) and, with a format, shows the value.
// Forms: {NAME: {title, initial: {...}, inputs: [{name, label, type, step, initial}],
// buttons: [{name, label}]}}; a button POSTs {BUTTON: true, ...initial, ...inputs} to
// ./api/control.

import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { el, getJSON, notify, notifyError } from '../api.mjs';
import { format, formatValue, formatTime, formatDuration } from '../format.mjs';
import { sendCommand, outcomeText, commandName, refreshAfterCommand } from './html.mjs';

const SVG_NS = 'http://www.w3.org/2000/svg';
const DEFAULT_VIEW_BOX = '0 0 1024 768';
const DEFAULT_GAP = 60;



/** An SVG element with attributes (null/undefined skipped) and children. */
function svg(tag, attributes = {}, ...children) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes)) {
        if (value === null || value === undefined || value === false) continue;
        element.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
        if (child === null || child === undefined) continue;
        element.append(child instanceof Node ? child : String(child));
    }
    return element;
}

// user attributes passed to the SVG shapes as they are
const PRESENTATION = ['stroke', 'stroke-width', 'stroke-dasharray', 'stroke-linecap',
    'stroke-linejoin', 'stroke-opacity', 'fill', 'fill-opacity', 'opacity', 'rx', 'ry',
    'font-family', 'font-size', 'font-weight', 'font-style', 'transform'];

function presentation(attr, skip = []) {
    const out = {};
    for (const key of PRESENTATION) {
        if (!skip.includes(key) && attr[key] !== undefined && attr[key] !== null) out[key] = attr[key];
    }
    return out;
}

const num = (value, fallback) => (Number.isFinite(Number(value)) && value !== null && value !== '' ? Number(value) : fallback);

// ---------------------------------------------------------------------------------------
// items

class Item {
    static defaults = {};

    constructor(config, panel) {
        this.config = config;
        this.panel = panel;
        const attr = { ...this.constructor.defaults, ...(config.attr ?? {}) };
        attr.x = num(attr.x, num(attr.y, 100));
        attr.y = num(attr.y, attr.x);
        attr.width = num(attr.width, num(attr.height, 100));
        attr.height = num(attr.height, attr.width);
        this.attr = attr;
        this.metric = config.metric && typeof config.metric === 'object' ? config.metric : null;
        this.action = config.action && typeof config.action === 'object' ? config.action : null;
        this.channel = this.metric?.channel ? String(this.metric.channel) : null;
        this.group = svg('g', {
            class: `sd-canvas-item sd-canvas-${config.type}`, 'data-channel': this.channel,
        });
        this.valueText = null;
        this.warning = null;
    }

    /** Channels whose whole series the item draws (plots). */
    get seriesChannel() { return null; }

    build() {
        this.draw(this.group);
        const tip = this.attr.help ?? this.channel ?? this.action?.open ?? null;
        if (tip) this.group.appendChild(this.tooltip = svg('title', {}, tip));
        if (this.action || this.channel) {
            this.group.setAttribute('data-clickable', '');
            this.group.addEventListener('click', (event) => this.panel.onItemClick(this, event));
        }
        if (this.channel) this.show(undefined, 'dead', { missing: true, waiting: true });
        return this.group;
    }

    /** Add the item's shapes to `g`. */
    draw(g) {}

    /** A transparent rectangle over the item's box: clicks anywhere in it count. */
    hitBox() {
        const { x, y, width, height } = this.attr;
        return svg('rect', { x, y, width, height, fill: 'transparent', class: 'sd-canvas-hit' });
    }

    labelText() {
        const a = this.attr;
        if (a.label === null || a.label === undefined || a.label === '') return null;
        return svg('text', {
            class: 'sd-canvas-label',
            x: a.x + num(a['label-dx'], a.width / 2), y: a.y + num(a['label-dy'], a.height / 2),
            'font-family': a['label-font-family'] ?? 'sans-serif',
            'font-weight': a['label-font-weight'] ?? 'normal',
            'font-size': a['label-font-size'] ?? '12pt',
            'dominant-baseline': a['label-dominant-baseline'] ?? 'central',
            'text-anchor': a['label-text-anchor'] ?? 'middle',
            style: a['label-color'] ? `fill: ${a['label-color']}` : null,
        }, String(a.label));
    }

    /** The value text (only with a metric format, as the original). */
    dataText() {
        if (!this.metric?.format) return null;
        const a = this.attr;
        const placed = a['data-dx'] !== undefined || a['data-dy'] !== undefined;
        this.valueText = svg('text', {
            class: 'sd-canvas-value',
            x: a.x + num(a['data-dx'], placed ? 0 : a.width * 0.75),
            y: a.y + num(a['data-dy'], placed ? 0 : a.height),
            'font-family': a['data-font-family'] ?? 'sans-serif',
            'font-weight': a['data-font-weight'] ?? 'normal',
            'font-size': a['data-font-size'] ?? '11pt',
            'dominant-baseline': a['data-dominant-baseline'] ?? (placed ? 'auto' : 'hanging'),
            'text-anchor': a['data-text-anchor'] ?? 'start',
            style: a['data-color'] ? `fill: ${a['data-color']}` : null,
        }, '---');
        return this.valueText;
    }

    /** A warning triangle at the item's top-left corner, shown for stale or missing data. */
    warningSign(x = this.attr.x, y = this.attr.y) {
        const r = 13;
        this.warning = svg('g', { class: 'sd-canvas-warning', visibility: 'hidden' },
            svg('polygon', {
                points: `${x},${y - r} ${x + r * 1.1},${y + r * 0.8} ${x - r * 1.1},${y + r * 0.8}`,
                'stroke-linejoin': 'round',
            }),
            svg('text', {
                x, y: y + r * 0.35, 'text-anchor': 'middle', 'dominant-baseline': 'central',
                'font-size': r * 1.2, 'font-family': 'sans-serif', 'font-weight': 'bold',
            }, '!'));
        return this.warning;
    }

    /** New data: {t, x} or undefined; `now`: the time data are judged against. */
    update(latest, now, feed) {
        if (!this.channel) return;
        const gap = num(this.metric['tolerable-gap'], DEFAULT_GAP);
        if (!latest || latest.x === null || latest.x === undefined) {
            this.show(undefined, 'dead', { missing: true, waiting: !feed.fetchCount });
            return;
        }
        const age = now - latest.t;
        const stale = age > gap;
        let status = 'none';
        const value = Number(latest.x);
        if (stale) status = 'dead';
        else if (this.metric['active-above'] !== undefined) {
            status = value >= Number(this.metric['active-above']) ? 'active' : 'inactive';
        } else if (this.metric['active-below'] !== undefined) {
            status = value < Number(this.metric['active-below']) ? 'active' : 'inactive';
        }
        this.show(latest, status, { stale, age, gap });
    }

    text(latest) {
        if (!latest) return '---';
        return this.metric?.format ? format(this.metric.format, latest.x) : formatValue(latest.x);
    }

    show(latest, status, { missing = false, stale = false, waiting = false, age = 0, gap = 0 } = {}) {
        const g = this.group;
        const text = this.text(latest);
        if (status === 'none') g.removeAttribute('data-status');
        else g.setAttribute('data-status', status);
        g.setAttribute('data-stale', String(stale));
        g.setAttribute('data-value', latest ? text : '');
        if (this.valueText && this.valueText.textContent !== text) this.valueText.textContent = text;
        const warn = (stale || missing) && !waiting;
        if (this.warning) {
            this.warning.setAttribute('visibility', warn ? 'visible' : 'hidden');
            this.warning.setAttribute('data-reason', stale ? 'stale' : (warn ? 'no data' : ''));
        }
        if (this.tooltip) {
            let tip = this.channel;
            if (stale) tip += `: no new value for ${formatDuration(age)} (tolerable gap ${gap} s)`;
            else if (missing && !waiting) tip += ': no data';
            else if (latest) tip += ` = ${text} (${formatTime(latest.t)})`;
            this.tooltip.textContent = tip;
        }
    }
}

class ShapeItem extends Item {
    static defaults = { width: 30, height: 30 };

    draw(g) {
        g.append(this.hitBox());
        const shape = this.shape();
        shape.classList.add('sd-canvas-shape');
        g.append(shape);
        const label = this.labelText();
        if (label) g.append(label);
        const data = this.dataText();
        if (data) g.append(data);
        if (this.channel) g.append(this.warningSign());
    }

    shapeAttributes(extra = {}) {
        return { stroke: 'currentColor', fill: 'none', ...presentation(this.attr), ...extra };
    }
}

class BoxItem extends ShapeItem {
    shape() {
        const { x, y, width, height } = this.attr;
        return svg('rect', this.shapeAttributes({ x, y, width, height }));
    }
}

class CircleItem extends ShapeItem {
    shape() {
        const { x, y, width, height } = this.attr;
        return svg('ellipse', this.shapeAttributes({
            cx: x + width / 2, cy: y + height / 2, rx: width / 2, ry: height / 2,
        }));
    }
}

class ValveItem extends ShapeItem {
    static defaults = { width: 30, height: 30, orientation: 'horizontal' };

    shape() {
        const { x, y, width, height } = this.attr;
        const [x1, y1] = [x + width, y + height];
        const vertical = String(this.attr.orientation ?? '').startsWith('v');
        // two triangles meeting at the centre: a bow tie along the flow direction
        const points = vertical
            ? `${x},${y} ${x1},${y} ${x},${y1} ${x1},${y1} ${x},${y}`
            : `${x},${y} ${x},${y1} ${x1},${y} ${x1},${y1} ${x},${y}`;
        return svg('polyline', this.shapeAttributes({ points, 'stroke-linejoin': 'round' }));
    }
}

class SolenoidItem extends ShapeItem {
    static defaults = { width: 50, height: 30, turns: 12, 'stroke-width': 3 };

    shape() {
        const { x, y, width, height } = this.attr;
        const turns = Math.max(1, Math.round(num(this.attr.turns, 12)));
        let d = '';
        for (let i = 0; i < turns; i++) {
            const x0 = x + (i * width) / turns;
            d += `M ${x0} ${y + height} L ${x0 + width / turns} ${y} `;
        }
        return svg('path', this.shapeAttributes({ d, fill: 'none' }));
    }
}

class InvisibleItem extends ShapeItem {
    shape() { return svg('g'); }
}

class TextItem extends Item {
    static defaults = { text: '' };

    draw(g) {
        const a = this.attr;
        this.valueText = svg('text', {
            class: this.channel ? 'sd-canvas-value' : 'sd-canvas-text', x: a.x, y: a.y,
            'font-family': a['font-family'] ?? 'sans-serif', 'font-size': a['font-size'] ?? '11pt',
            'font-weight': a['font-weight'] ?? 'normal',
            'dominant-baseline': a['dominant-baseline'], 'text-anchor': a['text-anchor'],
            style: this.channel && a['data-color'] ? `fill: ${a['data-color']}`
                : (a.fill ? `fill: ${a.fill}` : null),
        }, this.channel ? '---' : String(a.text ?? ''));
        g.append(this.valueText);
        if (this.channel) {
            g.append(this.warningSign(a.x - 16, a.y - 8));
        }
    }
}

class ButtonItem extends Item {
    static defaults = { width: 120, height: 30, rx: 5, ry: 5, label: '' };

    draw(g) {
        const a = this.attr;
        g.append(svg('rect', {
            class: 'sd-canvas-frame', x: a.x, y: a.y, width: a.width, height: a.height,
            rx: a.rx, ry: a.ry, ...presentation(a, ['rx', 'ry', 'font-size', 'font-family', 'font-weight']),
        }));
        g.append(svg('text', {
            class: 'sd-canvas-label', x: a.x + a.width / 2, y: a.y + a.height / 2,
            'dominant-baseline': 'central', 'text-anchor': 'middle',
            'font-family': a['font-family'] ?? 'sans-serif', 'font-size': a['font-size'] ?? '11pt',
            'font-weight': a['font-weight'] ?? 'normal',
        }, String(a.label ?? '')));
        g.setAttribute('role', 'button');
    }
}

class ImageItem extends Item {
    static defaults = { href: null };

    draw(g) {
        const { x, y, width, height, href } = this.attr;
        if (!href) return;
        const negate = this.panel.negate.has(String(href));
        g.append(svg('image', {
            x, y, width, height, href: `./api/config/file/${encodeURIComponent(href)}`,
            preserveAspectRatio: this.attr.preserveAspectRatio ?? 'xMidYMid meet',
            style: negate ? 'filter: invert(1) hue-rotate(180deg)' : null,
        }));
    }
}

class GridItem extends Item {
    static defaults = { width: 10000, height: 10000, dx: 50, dy: 50 };

    draw(g) {
        const { width, height } = this.attr;
        const dx = Math.max(1, num(this.attr.dx, 50)), dy = Math.max(1, num(this.attr.dy, 50));
        let d = '';
        const labels = [];
        for (let x = dx; x < width; x += dx) {
            d += `M ${x} 0 L ${x} ${height} `;
            labels.push(svg('text', { class: 'sd-canvas-grid-label', x: x + 2, y: 10 }, x));
        }
        for (let y = dy; y < height; y += dy) {
            d += `M 0 ${y} L ${width} ${y} `;
            labels.push(svg('text', { class: 'sd-canvas-grid-label', x: 2, y: y - 2 }, y));
        }
        g.append(svg('path', { class: 'sd-canvas-grid-lines', d, fill: 'none', 'stroke-width': 1 }), ...labels);
        g.style.pointerEvents = 'none';
    }
}

/** A sparkline of a series channel over the last `length` seconds. */
class PlotItem extends Item {
    static defaults = { x: 0, y: 0, width: 100, height: 100, length: 3600, label: null, min: null, max: null };

    get seriesChannel() { return this.channel; }

    get micro() { return false; }

    draw(g) {
        const a = this.attr;
        g.classList.add('sd-canvas-plot');
        g.append(svg('rect', {
            class: 'sd-canvas-frame', x: a.x, y: a.y, width: a.width, height: a.height,
            'stroke-width': this.micro ? 0.5 : 1,
        }));
        if (this.micro) this.area = g.appendChild(svg('path', { class: 'sd-canvas-plot-area', 'fill-opacity': 0.3 }));
        this.line = g.appendChild(svg('polyline', {
            class: 'sd-canvas-plot-line', 'stroke-width': this.micro ? 1 : 1.5,
            style: a['data-color'] ? `stroke: ${a['data-color']}` : null,
        }));
        if (!this.micro) {
            const size = Math.max(8, Math.min(14, a.height / 8));
            this.top = g.appendChild(svg('text', { class: 'sd-canvas-plot-tick', x: a.x + 3, y: a.y + 3, 'font-size': size, 'dominant-baseline': 'hanging' }));
            this.bottom = g.appendChild(svg('text', { class: 'sd-canvas-plot-tick', x: a.x + 3, y: a.y + a.height - 3, 'font-size': size }));
            this.caption = g.appendChild(svg('text', {
                class: 'sd-canvas-plot-tick', x: a.x + a.width - 3, y: a.y + 3, 'font-size': size,
                'dominant-baseline': 'hanging', 'text-anchor': 'end',
            }, String(a.label ?? this.channel ?? '')));
        }
        if (this.channel) g.append(this.warningSign());
    }

    update(latest, now, feed) {
        super.update(latest, now, feed);
        const series = this.channel ? feed.series(this.channel) : undefined;
        const a = this.attr;
        const to = feed.live ? now : feed.window().to;
        const from = to - num(a.length, 3600);
        const points = [];
        let lo = Infinity, hi = -Infinity;
        for (let i = 0; series && i < series.t.length; i++) {
            const t = series.t[i], x = series.x[i];
            if (t < from || t > to || typeof x !== 'number' || !Number.isFinite(x)) continue;
            points.push([t, x]);
            lo = Math.min(lo, x);
            hi = Math.max(hi, x);
        }
        lo = num(a.min, lo);
        hi = num(a.max, hi);
        if (hi <= lo) { hi = lo + 1; lo -= 1; }
        const pad = this.micro ? 0.05 : 0.1;
        const span = hi - lo;
        const [y0, y1] = [lo - pad * span, hi + pad * span];
        const px = (t) => a.x + ((t - from) / (to - from)) * a.width;
        const py = (x) => a.y + a.height - ((Math.min(y1, Math.max(y0, x)) - y0) / (y1 - y0)) * a.height;
        const coords = points.map(([t, x]) => `${px(t).toFixed(2)},${py(x).toFixed(2)}`);
        this.line.setAttribute('points', coords.join(' '));
        this.group.setAttribute('data-points', String(points.length));
        if (this.area) {
            this.area.setAttribute('d', points.length
                ? `M ${px(points[0][0])} ${a.y + a.height} L ${coords.join(' L ')} L ${px(points[points.length - 1][0])} ${a.y + a.height} Z`
                : '');
        }
        if (this.top) {
            this.top.textContent = points.length ? formatValue(Number(hi.toPrecision(4))) : '';
            this.bottom.textContent = points.length ? formatValue(Number(lo.toPrecision(4))) : '';
        }
    }
}

class MicroPlotItem extends PlotItem {
    static defaults = { ...PlotItem.defaults, width: 50, height: 30, label: '' };

    get micro() { return true; }
}

const ITEMS = {
    box: BoxItem, circle: CircleItem, valve: ValveItem, solenoid: SolenoidItem,
    invisible: InvisibleItem, text: TextItem, button: ButtonItem, image: ImageItem,
    grid: GridItem, plot: PlotItem, micro_plot: MicroPlotItem,
};

// ---------------------------------------------------------------------------------------

export class CanvasPanel extends Panel {
    static addable = { label: 'Canvas (config/slowdash-*.json)', channels: 'none' };

    static newConfig(type) { return { type: 'canvas', config_name: '' }; }

    configName() {
        return String(this.config.config_name ?? '').trim()
            .replace(/^slowdash-/, '').replace(/\.json$/, '');
    }

    title() {
        return this.config.title || this.document?.meta?.title || this.document?.title || this.configName();
    }

    build() {
        this.items = [];
        this.negate = new Set();
        this.document = null;
        this.root = el('div', { class: 'sd-canvas' });
        this.body.replaceChildren(this.root);
        this.timer = setInterval(() => { if (this.items.length) this.update(this.feed); }, 1000);
        const content = this.config.content;
        if (content && typeof content === 'object') {
            this.draw(content);
        } else if (this.configName()) {
            this.load();
        } else {
            this.message('no canvas: set "config_name" (slowdash-NAME.json in config/) in this panel\'s configuration');
        }
    }

    destroy() {
        clearInterval(this.timer);
        this.items = [];
    }

    async load() {
        const file = `slowdash-${this.configName()}.json`;
        let content;
        try {
            content = await getJSON(`./api/config/content/${encodeURIComponent(file)}`);
        } catch (error) {
            this.root.replaceChildren(el('div', { class: 'sd-panel-message sd-error' },
                `${file} could not be loaded: ${error.message}`));
            this.body.dataset.loaded = 'error';
            return;
        }
        if (!content || typeof content !== 'object' || Array.isArray(content)) {
            this.root.replaceChildren(el('div', { class: 'sd-panel-message sd-error' },
                `${file}: no such canvas in config/ (or not a JSON object)`));
            this.body.dataset.loaded = 'error';
            return;
        }
        this.draw(content);
        this.feed.refresh();
    }

    draw(content) {
        this.document = content;
        const negate = content.style?.negate ?? [];
        this.negate = new Set((Array.isArray(negate) ? negate : [negate]).map(String));
        const viewBox = content.view_box ?? content.viewBox ?? DEFAULT_VIEW_BOX;
        const root = svg('svg', {
            viewBox: Array.isArray(viewBox) ? viewBox.join(' ') : viewBox,
            preserveAspectRatio: 'xMidYMid meet', role: 'img',
            'aria-label': this.title() || 'canvas',
        });
        this.items = [];
        const problems = [];
        for (const config of Array.isArray(content.items) ? content.items : []) {
            if (!config || typeof config !== 'object' || !config.type) continue;
            const cls = ITEMS[config.type];
            if (!cls) {
                problems.push(`unknown item type "${config.type}"`);
                continue;
            }
            try {
                const item = new cls(config, this);
                root.appendChild(item.build());
                this.items.push(item);
            } catch (error) {
                problems.push(`${config.type}: ${error.message}`);
            }
        }
        this.root.replaceChildren(root);
        this.body.dataset.loaded = 'true';
        this.body.dataset.items = String(this.items.length);
        if (problems.length) notify(`canvas ${this.configName() || ''}: ${problems.join('; ')}`, 'error');
        this.update(this.feed);
    }

    seriesChannels() {
        return [...new Set(this.items.map((i) => i.seriesChannel).filter(Boolean))];
    }

    valueChannels() {
        return [...new Set(this.items.filter((i) => i.channel && !i.seriesChannel).map((i) => i.channel))];
    }

    update(feed) {
        const now = feed.live ? Date.now() / 1000 : feed.window().to;
        for (const item of this.items) {
            if (!item.channel) continue;
            try {
                item.update(feed.latest(item.channel), now, feed);
            } catch (error) {
                console.warn(`canvas item ${item.channel}: ${error.message}`);
            }
        }
    }

    // -- actions --------------------------------------------------------------------------

    onItemClick(item, event) {
        const action = item.action;
        if (action?.open) {
            // http(s) and the server's own pages only: never a javascript: URL from a file
            let url = null;
            try { url = new URL(String(action.open), window.location.href); } catch { /* below */ }
            if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
                notify(`not opened: ${action.open} (only http and https addresses)`, 'error');
                return;
            }
            window.open(url.href, '_blank', 'noopener');
        } else if (action?.submit) {
            const name = action.submit.name;
            if (!name) {
                notify('this button has no "submit": {"name": ...}', 'error');
                return;
            }
            this.submit({ [name]: true }, item);
        } else if (action?.form) {
            this.openForm(String(action.form), item);
        } else if (item.channel) {
            this.openInfo(item);
        }
        event.stopPropagation();
    }

    /** POST a command; answers true on success. Failures show the server's message. */
    async submit(doc, item = null) {
        const name = commandName(doc);
        item?.group.setAttribute('data-busy', '');
        try {
            const content = await sendCommand(doc);
            notify(outcomeText(name, content), 'ok');
            this.body.dataset.lastCommand = `ok: ${name}`;
            refreshAfterCommand(this.feed);
            return true;
        } catch (error) {
            notifyError(`${name} failed`, error);
            this.body.dataset.lastCommand = `error: ${name}: ${error.message}`;
            return { error };
        } finally {
            item?.group.removeAttribute('data-busy');
        }
    }

    openForm(formName, item) {
        const spec = this.document?.forms?.[formName];
        if (!spec || typeof spec !== 'object') {
            notify(`canvas ${this.configName()}: no form "${formName}" in "forms"`, 'error');
            return;
        }
        const initial = spec.initial && typeof spec.initial === 'object' ? spec.initial : {};
        const inputs = [];
        const rows = [];
        for (const entry of Array.isArray(spec.inputs) ? spec.inputs : []) {
            if (!entry?.name) continue;
            const type = entry.type ?? 'number';
            const input = el('input', {
                name: entry.name, type, step: type === 'number' ? (entry.step ?? 'any') : entry.step,
            });
            const value = entry.initial ?? initial[entry.name];
            if (type === 'checkbox') input.checked = Boolean(value);
            else if (value !== undefined && value !== null) input.value = String(value);
            inputs.push(input);
            rows.push(el('tr', {}, el('td', {}, el('label', {}, entry.label || entry.name)), el('td', {}, input)));
        }
        const buttons = Array.isArray(spec.buttons) && spec.buttons.length
            ? spec.buttons : [{ name: 'apply', label: 'Apply' }];
        const error = el('div', { class: 'sd-dialog-error', role: 'alert' });
        const cancel = el('button', { type: 'button', value: 'cancel' }, 'Cancel');
        const actions = buttons.map((b) => el('button', {
            type: 'submit', class: 'sd-primary', 'data-name': b.name || 'apply',
        }, b.label || b.name || 'Apply'));
        const form = el('form', { method: 'dialog' },
            el('h2', {}, spec.title ?? formName),
            item.channel ? el('p', { class: 'sd-canvas-form-value' },
                `${item.channel}: ${item.group.getAttribute('data-value') || '---'}`) : null,
            el('table', {}, rows), error,
            el('div', { class: 'sd-dialog-buttons' }, cancel, actions));
        const box = el('dialog', { class: 'sd-dialog sd-canvas-form', 'data-form': formName }, form);
        const close = () => { box.close(); box.remove(); };
        cancel.addEventListener('click', close);
        box.addEventListener('cancel', close);
        form.addEventListener('submit', async (event) => {
            event.preventDefault();
            const button = event.submitter ?? actions[0];
            const doc = { [button.dataset.name]: true, ...initial };
            for (const input of inputs) {
                if (input.type === 'checkbox') doc[input.name] = input.checked;
                else if (input.type === 'number' && input.value !== '') {
                    doc[input.name] = Number.isNaN(input.valueAsNumber) ? input.value : input.valueAsNumber;
                } else doc[input.name] = input.value;
            }
            for (const b of actions) b.disabled = true;
            error.textContent = '';
            const result = await this.submit(doc, item);
            for (const b of actions) b.disabled = false;
            if (result === true) close();
            else error.textContent = result.error.message;
        });
        document.body.appendChild(box);
        box.showModal();
        inputs[0]?.focus();
    }

    /** A metric item without an action: its channel, latest value and a link to plot it. */
    openInfo(item) {
        const latest = this.feed.latest(item.channel);
        const close = el('button', { type: 'button', class: 'sd-primary' }, 'Close');
        const box = el('dialog', { class: 'sd-dialog sd-canvas-info' },
            el('h2', {}, item.channel),
            el('dl', {},
                el('dt', {}, 'value'), el('dd', {}, latest ? item.text(latest) : 'no data'),
                el('dt', {}, 'time'), el('dd', {}, latest ? formatTime(latest.t) : '')),
            el('p', {}, el('a', {
                href: `./slowplot.html?channel=${encodeURIComponent(item.channel)}`, target: '_blank',
            }, 'plot this channel')),
            el('div', { class: 'sd-dialog-buttons' }, close));
        const finish = () => { box.close(); box.remove(); };
        close.addEventListener('click', finish);
        box.addEventListener('cancel', finish);
        document.body.appendChild(box);
        box.showModal();
    }
}

registerPanel(['canvas'], CanvasPanel);
