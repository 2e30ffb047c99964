// Time-axis plots (`timeaxis`, also written `timeseries`): one or many channels against
// time, drawn with uPlot. Follows the layout's window (live "now" mode or a fixed range);
// drag to zoom (the whole layout follows), double-click to go back; envelopes (x_min..x_max)
// are drawn as bands when the server sends them (resampled windows).

import uPlot from '../../vendor/uPlot.esm.js';
import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { cssVar, el } from '../api.mjs';
import { format, formatTime } from '../format.mjs';

/** The theme's series colours (--sd-series). */
export function seriesColors() {
    return cssVar('--sd-series', '#009090, #dd8000, #4169e1').split(',').map((c) => c.trim());
}

function numeric(value) {
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (typeof value === 'string' && value.trim() !== '') {
        const number = Number(value);
        return Number.isFinite(number) ? number : null;
    }
    return null;
}

function withAlpha(color, alpha) {
    if (/^#[0-9a-f]{6}$/i.test(color)) {
        return color + Math.round(alpha * 255).toString(16).padStart(2, '0');
    }
    return color;
}

/** The fewest decimals that write `step` exactly (to a millionth of it). */
function decimalsFor(step) {
    for (let d = 0; d < 12; d++) {
        if (Math.abs(Number(step.toFixed(d)) - step) <= Math.abs(step) * 1e-6) return d;
    }
    return 12;
}

/** Tick labels with as many digits as the tick spacing needs (uPlot's own show 1e-6 steps
 * as "0"); exponents for very small or very large values. */
export function tickLabels(u, splits) {
    const finite = splits.filter((v) => Number.isFinite(v));
    if (!finite.length) return splits.map(() => '');
    const big = Math.max(...finite.map(Math.abs));
    const step = finite.length > 1 ? Math.abs(finite[1] - finite[0]) : big || 1;
    const exponent = big !== 0 && (big < 1e-3 || big >= 1e6);
    const decimals = decimalsFor(step || 1);
    return splits.map((v) => {
        if (!Number.isFinite(v)) return '';
        if (Math.abs(v) < step * 1e-9) return '0';
        if (!exponent) return v.toFixed(decimals);
        const power = Math.floor(Math.log10(Math.abs(v)));
        const [mantissa, e] = v.toExponential(decimalsFor(step / 10 ** power)).split('e');
        return `${mantissa}e${Number(e)}`;
    });
}

const MIN_REDRAW = 250, MAX_REDRAW = 2000;  // ms between redraws of a live plot

/** Zoom history per feed, for double-click "back". */
const history = new WeakMap();

class TimeAxisPanel extends Panel {
    static addable = { label: 'Time-axis plot' };

    static newConfig(type, channels) {
        return {
            type: 'timeaxis',
            plots: channels.map((channel) => ({ type: 'timeseries', channel })),
            axes: { ylog: false, yfixed: false },
            legend: { style: 'side' },
        };
    }

    plots() {
        const plots = Array.isArray(this.config.plots) ? this.config.plots : [];
        return plots.filter((p) => p && typeof p.channel === 'string' && p.channel);
    }

    seriesChannels() { return this.plots().map((p) => p.channel); }

    build() {
        this.holder = el('div', { class: 'sd-timeaxis-plot' });
        this.legend = el('div', { class: 'sd-timeaxis-legend' });
        this.nodata = el('div', { class: 'sd-nodata' }, 'no data in this window');
        this.body.replaceChildren(el('div', { class: 'sd-timeaxis' }, this.holder, this.legend), this.nodata);
        this.sizer = new ResizeObserver(() => this.fit());
        this.sizer.observe(this.holder);
        this.body.dataset.points = '0';
        this.plot = null;
        this.shape = '';
        this.nextDraw = 0;
        this.deferred = null;
        this.draws = 0;
    }

    title() {
        return this.config.title || this.config.axes?.title || this.plots().map((p) => p.label || p.channel).join(', ');
    }

    /** uPlot options for the present set of series (with envelope bands where present). */
    options(envelopes) {
        const colors = seriesColors();
        const axes = this.config.axes ?? {};
        const label = cssVar('--sd-plot-label', '#333');
        const grid = cssVar('--sd-plot-grid', 'rgba(0,0,0,0.1)');
        const frame = cssVar('--sd-plot-frame', '#999');
        const series = [{ value: (u, t) => (t === null ? '' : formatTime(t)) }];
        const bands = [];
        this.plots().forEach((plot, i) => {
            const color = plot.color || colors[i % colors.length];
            const lineWidth = plot.line_width === undefined ? 1.5 : Number(plot.line_width);
            const markerSize = plot.marker_size === undefined ? 0 : Number(plot.marker_size);
            const fmt = plot.format;
            series.push({
                label: plot.label || plot.channel,
                stroke: withAlpha(color, plot.opacity === undefined ? 1 : Number(plot.opacity)),
                width: lineWidth,
                spanGaps: false,
                points: { show: markerSize > 0 || lineWidth === 0, size: Math.max(3, markerSize * 2) },
                // at the cursor: the value there; elsewhere: the channel's latest value
                value: (u, v, si, idx) => {
                    const shown = idx === null ? this.lastValues?.[plot.channel] : v;
                    return shown === null || shown === undefined ? '–' : format(fmt || '%.6g', shown);
                },
            });
            if (envelopes[i]) {
                const fill = withAlpha(color, 0.18);
                const edge = { stroke: 'transparent', width: 0, points: { show: false }, bandEdge: true };
                series.push({ ...edge, label: `${plot.channel} max` }, { ...edge, label: `${plot.channel} min` });
                bands.push({ series: [series.length - 2, series.length - 1], fill });
            }
        });
        const feed = this.feed;
        const yfixed = axes.yfixed && Number.isFinite(Number(axes.ymin)) && Number.isFinite(Number(axes.ymax));
        return {
            width: Math.max(100, this.holder.clientWidth),
            height: Math.max(60, this.holder.clientHeight),
            series,
            bands,
            scales: {
                x: { time: true, range: () => { const w = feed.window(); return [w.from, w.to]; } },
                y: {
                    distr: axes.ylog ? 3 : 1,
                    range: yfixed ? () => [Number(axes.ymin), Number(axes.ymax)] : undefined,
                },
            },
            axes: [
                { stroke: label, grid: { stroke: grid, width: 1 }, ticks: { stroke: frame, width: 1 } },
                {
                    stroke: label, grid: { stroke: grid, width: 1 }, ticks: { stroke: frame, width: 1 },
                    label: axes.ytitle || undefined, size: 60, values: tickLabels,
                },
            ],
            legend: {
                show: this.config.legend?.style !== 'none' && this.config.legend?.style !== 'hidden',
                live: true,
                mount: (u, table) => this.legend.replaceChildren(table),
            },
            cursor: { drag: { x: true, y: false, setScale: false } },
            hooks: {
                setSelect: [(u) => this.zoom(u)],
            },
        };
    }

    hideBandLegends(u) {
        const rows = u.root.querySelectorAll('.u-legend .u-series');
        u.series.forEach((s, i) => {
            if (s.bandEdge && rows[i]) rows[i].style.display = 'none';
        });
    }

    /** Fit the plot to its box (the legend has its own, below). */
    fit() {
        if (!this.plot) return;
        const width = Math.max(100, this.holder.clientWidth);
        const height = Math.max(60, this.holder.clientHeight);
        if (this.plot.width !== width || this.plot.height !== height) {
            this.plot.setSize({ width, height });
        }
    }

    zoom(u) {
        const { left, width } = u.select;
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        if (width < 5) return;
        const from = u.posToVal(left, 'x');
        const to = u.posToVal(left + width, 'x');
        if (!(to > from)) return;
        const stack = history.get(this.feed) ?? [];
        stack.push({ length: this.feed.length, to: this.feed.to });
        history.set(this.feed, stack);
        this.feed.setRange({ length: to - from, to });
    }

    back() {
        const previous = history.get(this.feed)?.pop();
        if (previous) this.feed.setRange(previous);
    }

    /** [t, x] tables per plot, and whether each carries an envelope. */
    tables(feed) {
        const tables = [], envelopes = [];
        let points = 0;
        const last = {};
        for (const plot of this.plots()) {
            const series = feed.series(plot.channel);
            if (!series) {
                tables.push([[], []]);
                envelopes.push(false);
                continue;
            }
            const xs = series.x.map(numeric);
            points += xs.length;
            if (xs.length) last[plot.channel] = xs[xs.length - 1];
            const table = [series.t, xs];
            const envelope = plot.fill_envelope !== false && Array.isArray(series.x_min) && Array.isArray(series.x_max)
                && series.x_min.some((v) => v !== null);
            if (envelope) table.push(series.x_max.map(numeric), series.x_min.map(numeric));
            tables.push(table);
            envelopes.push(envelope);
        }
        return { tables, envelopes, points, last };
    }

    /**
     * Live plots redraw at most every MIN_REDRAW ms, and no faster than the trace scrolls by
     * a pixel: a full redraw (axes, grid, every line) is most of a streaming page's main-thread
     * time, and values arriving in between are drawn with the next one.
     */
    redrawInterval(feed) {
        const { from, to } = feed.window();
        const pixels = Math.max(100, this.plot?.bbox.width / devicePixelRatio || 600);
        return Math.min(MAX_REDRAW, Math.max(MIN_REDRAW, ((to - from) / pixels) * 1000));
    }

    update(feed) {
        if (feed.live && this.plot) {
            const wait = this.nextDraw - performance.now();
            if (wait > 0) {
                this.deferred ??= setTimeout(() => {
                    this.deferred = null;
                    if (this.plot) this.update(this.feed);
                }, wait);
                return;
            }
        }
        this.draw(feed);
        this.nextDraw = performance.now() + this.redrawInterval(feed);
    }

    draw(feed) {
        const { tables, envelopes, points, last } = this.tables(feed);
        this.lastValues = last;
        const nonEmpty = tables.filter((t) => t[0].length);
        const shape = envelopes.join(',') + `|${document.documentElement.dataset.theme}`;
        let data;
        if (nonEmpty.length === 0) {
            data = [[], ...tables.flatMap((t) => t.slice(1).map(() => []))];
        } else if (tables.length === 1) {
            data = tables[0];
        } else {
            data = uPlot.join(tables.map((t) => (t[0].length ? t : [[], ...t.slice(1).map(() => [])])));
        }
        if (!this.plot || shape !== this.shape) {
            this.plot?.destroy();
            this.shape = shape;
            this.plot = new uPlot(this.options(envelopes), data, this.holder);
            this.plot.over.addEventListener('dblclick', () => this.back());
            this.hideBandLegends(this.plot);
        } else {
            this.plot.setData(data, false);
            const w = feed.window();
            this.plot.setScale('x', { min: w.from, max: w.to });
        }
        if (this.plot.cursor.idx === null || this.plot.cursor.idx === undefined) {
            this.plot.setLegend({ idx: null }, false);   // the latest values
        }
        this.nodata.hidden = points > 0;
        this.draws += 1;
        this.body.dataset.draws = String(this.draws);
        this.body.dataset.points = String(points);
        this.body.dataset.last = JSON.stringify(last);
        if (points > 0 && !this.drawn) {
            this.drawn = true;
            performance.mark('sd-timeaxis-drawn');
        }
    }

    resize() { this.fit(); }

    destroy() {
        clearTimeout(this.deferred);
        this.sizer.disconnect();
        this.plot?.destroy();
        this.plot = null;
    }
}

registerPanel(['timeaxis', 'timeseries'], TimeAxisPanel);
