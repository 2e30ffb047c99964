// "singles" panels: big value displays, one tile per item (the original's layout format):
//
//   {"type": "singles", "item_type": "square",
//    "items": [{"channel": "run_status['lapse']", "label": "Lapse", "format": "%d s",
//               "time_format": "%a,%H:%M", "gauge": {"min": 0, "max": 100},
//               "ranges": {"normal": {"min", "max", "color"}, "warn": {...}, "error": {...}},
//               "text_transform": "replace(0,'Idling')", "tolerable_gap": 60}],
//    "color": {"base", "value_opacity", "gauge_opacity", "tile_opacity"},
//    "grid": {"rows", "columns"},
//    "ranges": {"apply_to_value", "apply_to_gauge", "apply_to_tile"}}
//
// A range matches when min <= value < max (a missing bound is open); normal, warn and error
// are tried in this order. Without a panel "ranges" entry the colour goes to the value and
// the gauge. Each tile exposes data-state (normal | warn | error | none), data-value and
// data-stale for tests and tools.

import { el, cssVar } from '../api.mjs';
import { format, formatValue } from '../format.mjs';
import { parseMetric } from '../transform.mjs';
import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { asObject, numberOr, setData, withAlpha } from './plot-util.mjs';

const RANGE_NAMES = ['normal', 'warn', 'error'];
const RANGE_COLORS = { normal: '--sd-ok', warn: '--sd-warn', error: '--sd-error' };
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** UNIX seconds in a strftime subset (%Y %y %m %d %H %M %S %a %b %Z %%), local time. */
export function strftime(spec, seconds) {
    const d = new Date(seconds * 1000);
    const two = (n) => String(n).padStart(2, '0');
    const zone = () => {
        const offset = -d.getTimezoneOffset();
        const sign = offset >= 0 ? '+' : '-';
        return `${sign}${two(Math.floor(Math.abs(offset) / 60))}${two(Math.abs(offset) % 60)}`;
    };
    const fields = {
        Y: () => String(d.getFullYear()), y: () => two(d.getFullYear() % 100),
        m: () => two(d.getMonth() + 1), d: () => two(d.getDate()), H: () => two(d.getHours()),
        M: () => two(d.getMinutes()), S: () => two(d.getSeconds()), a: () => DAYS[d.getDay()],
        b: () => MONTHS[d.getMonth()], Z: zone, '%': () => '%',
    };
    return String(spec).replace(/%([YymdHMSabZ%])/g, (_m, c) => fields[c]());
}

/** Singles grid: the configured rows/columns, else the original's choice for n tiles. */
export function gridFor(n, grid = {}) {
    let rows = Math.trunc(numberOr(grid.rows, 0)), columns = Math.trunc(numberOr(grid.columns, 0));
    const count = Math.max(1, n);
    if (rows > 0 && columns > 0) return { rows, columns };
    if (columns > 0) return { rows: Math.ceil(count / columns), columns };
    if (rows > 0) return { rows, columns: Math.ceil(count / rows) };
    if (count <= 1) return { rows: 1, columns: 1 };
    if (count <= 3) return { rows: 1, columns: count };
    if (count <= 8) return { rows: 2, columns: Math.ceil(count / 2) };
    if (count <= 15) return { rows: 3, columns: Math.ceil(count / 3) };
    if (count <= 20) return { rows: 4, columns: Math.ceil(count / 4) };
    rows = Math.floor(Math.sqrt(count));
    return { rows, columns: Math.ceil(count / rows) };
}

/** The range a value falls in: [name, color] or [null, null]. */
export function rangeOf(value, ranges) {
    if (!ranges || typeof ranges !== 'object' || !Number.isFinite(value)) return [null, null];
    for (const name of RANGE_NAMES) {
        const range = ranges[name];
        if (!range || typeof range !== 'object') continue;
        const min = numberOr(range.min), max = numberOr(range.max);
        if (min === undefined && max === undefined) continue;
        if (value >= (min ?? -Infinity) && value < (max ?? Infinity)) {
            return [name, range.color || cssVar(RANGE_COLORS[name], 'gray')];
        }
    }
    return [null, null];
}

function numeric(value) {
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
    return null;
}

class Tile {
    constructor(config, panelConfig) {
        this.config = config && typeof config === 'object' ? config : { channel: String(config ?? '') };
        this.panelConfig = panelConfig;
        this.problem = null;
        try {
            this.metric = parseMetric(this.config.channel ?? '');
        } catch (error) {
            this.metric = null;
            this.problem = error.message;
        }
        this.transform = null;
        const tt = String(this.config.text_transform ?? '').trim().replace(/^->/, '');
        if (tt) {
            try {
                this.transform = parseMetric(`value->${tt}`);
            } catch (error) {
                this.problem = `text_transform: ${error.message}`;
            }
        }
        this.time = null;
        this.build();
    }

    get channel() { return this.metric?.channel ?? null; }

    build() {
        const c = this.config;
        this.label = el('div', { class: 'sd-single-label' }, String(c.label ?? c.channel ?? ''));
        this.value = el('div', { class: 'sd-single-value' }, '---');
        this.timeText = el('div', { class: 'sd-single-time' }, '---');
        this.element = el('div', { class: 'sd-single', 'data-channel': String(c.channel ?? ''), 'data-state': 'none' },
            this.label, this.value);
        const min = numberOr(c.gauge?.min), max = numberOr(c.gauge?.max);
        this.gauge = null;
        if (min !== undefined && max !== undefined && min < max) {
            this.gaugeMin = min;
            this.gaugeMax = max;
            const opacity = numberOr(this.panelConfig.color?.gauge_opacity, 0.7);
            this.gaugeFill = el('div', { class: 'sd-gauge-fill', style: { opacity: String(opacity) } });
            const marks = [];
            for (const name of ['error', 'warn', 'normal']) {
                const range = c.ranges?.[name];
                const lo = numberOr(range?.min, min), hi = numberOr(range?.max, max);
                if (!range || (range.min === undefined && range.max === undefined) || !(hi > lo)) continue;
                const a = Math.max(0, Math.min(1, (lo - min) / (max - min)));
                const b = Math.max(0, Math.min(1, (hi - min) / (max - min)));
                marks.push(el('div', {
                    class: `sd-gauge-mark sd-gauge-mark-${name}`,
                    style: { left: `${a * 100}%`, width: `${(b - a) * 100}%`, background: range.color || `var(${RANGE_COLORS[name]})` },
                }));
            }
            this.gauge = el('div', { class: 'sd-single-gauge' },
                el('div', { class: 'sd-gauge-track' }, this.gaugeFill), el('div', { class: 'sd-gauge-marks' }, marks),
                el('div', { class: 'sd-gauge-scale' }, el('span', {}, formatValue(min)), el('span', {}, formatValue(max))));
            this.element.appendChild(this.gauge);
        }
        this.element.appendChild(this.timeText);
        if (this.problem) this.showProblem();
    }

    showProblem() {
        this.value.textContent = '!';
        this.element.title = this.problem;
        this.element.classList.add('sd-single-problem');
        this.timeText.textContent = this.problem;
    }

    update(feed, base) {
        if (this.problem) return;
        const latest = this.channel ? feed.latest(this.channel) : undefined;
        const panel = this.panelConfig;
        const flags = panel.ranges && typeof panel.ranges === 'object'
            ? panel.ranges : { apply_to_value: true, apply_to_gauge: true };
        let value = null;
        if (latest) {
            const raw = asObject(latest.x) ?? latest.x;
            try {
                value = this.metric.apply(raw);
            } catch (error) {
                this.problem = error.message;
                this.showProblem();
                return;
            }
        }
        this.time = latest?.t ?? null;
        const number = numeric(value);
        let text = value;
        if (this.transform && value !== null && value !== undefined) text = this.transform.apply(value);
        let shown;
        if (text === null || text === undefined || (typeof text === 'number' && Number.isNaN(text))) shown = '---';
        else if (numeric(text) !== null && typeof text !== 'boolean' && this.config.format) shown = format(this.config.format, numeric(text));
        else if (typeof text === 'number') shown = formatValue(text);
        else if (typeof text === 'object') shown = JSON.stringify(text);
        else shown = String(text);
        this.value.textContent = shown;
        this.timeText.textContent = this.time === null ? '---'
            : strftime(this.config.time_format || '%a,%H:%M', this.time);
        const [state, color] = rangeOf(number, this.config.ranges);
        const valueOpacity = numberOr(panel.color?.value_opacity, 1);
        this.value.style.color = withAlpha(flags.apply_to_value && color ? color : base, valueOpacity);
        const tileOpacity = numberOr(panel.color?.tile_opacity, 0.1);
        this.element.style.background = flags.apply_to_tile && color
            ? withAlpha(color, Math.max(0.25, tileOpacity)) : withAlpha(base, tileOpacity);
        if (this.gauge) {
            const f = number === null ? 0 : (number - this.gaugeMin) / (this.gaugeMax - this.gaugeMin);
            this.gaugeFill.style.width = `${Math.max(0, Math.min(1, f)) * 100}%`;
            this.gaugeFill.style.background = flags.apply_to_gauge && color ? color
                : panel.color?.base || cssVar('--sd-accent', base);
            this.gaugeFill.hidden = number === null;
        }
        setData(this.element, {
            state: state ?? 'none', value: number ?? (value === null || value === undefined ? null : String(value)), time: this.time,
        });
        this.checkStale();
    }

    checkStale() {
        const gap = numberOr(this.config.tolerable_gap ?? this.panelConfig.tolerable_gap);
        const stale = gap !== undefined && this.time !== null && Date.now() / 1000 - this.time > gap;
        this.element.classList.toggle('sd-stale', stale);
        setData(this.element, { stale: gap === undefined ? null : stale ? 'yes' : 'no' });
        if (stale) this.element.title = `no new value for more than ${gap} s`;
        else if (!this.problem) this.element.removeAttribute('title');
    }
}

export class SinglesPanel extends Panel {
    static addable = { label: 'Single values (big numbers)', channels: 'many' };

    static newConfig(type, channels) {
        return { type: 'singles', item_type: 'square', items: channels.map((channel) => ({ channel })) };
    }

    build() {
        const items = Array.isArray(this.config.items) ? this.config.items : [];
        this.tiles = items.map((item) => new Tile(item, this.config));
        const { rows, columns } = gridFor(this.tiles.length, this.config.grid);
        const margin = this.config.margin ?? {};
        const px = (v) => `${numberOr(v, 0)}px`;
        this.grid = el('div', {
            class: `sd-singles sd-singles-${String(this.config.item_type || 'square')}`,
            style: {
                gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))`,
                gridTemplateRows: `repeat(${rows}, minmax(0, 1fr))`,
                padding: `${px(margin.top)} ${px(margin.right)} ${px(margin.bottom)} ${px(margin.left)}`,
            },
        }, this.tiles.map((t) => t.element));
        this.body.classList.add('sd-singles-body');
        this.body.replaceChildren(this.tiles.length ? this.grid
            : el('div', { class: 'sd-panel-message' }, 'no items configured'));
        setData(this.body, { items: this.tiles.length, rows, columns });
        if (this.tiles.some((t) => (t.config.tolerable_gap ?? this.config.tolerable_gap) !== undefined)) {
            this.timer = setInterval(() => { for (const t of this.tiles) t.checkStale(); }, 2000);
        }
    }

    valueChannels() { return [...new Set(this.tiles.map((t) => t.channel).filter(Boolean))]; }

    update(feed) {
        const base = this.config.color?.base || cssVar('--sd-fg', '#222');
        for (const tile of this.tiles) tile.update(feed, base);
        setData(this.body, { updated: (Number(this.body.dataset.updated) || 0) + 1 });
    }

    destroy() { clearInterval(this.timer); }
}

registerPanel(['singles'], SinglesPanel);
