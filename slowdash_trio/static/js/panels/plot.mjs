// "plot" panels: histograms, 2-D histograms, graphs, bar charts, and histograms / scatter plots
// of time series (the original's {"type": "plot", "plots": [...], "axes": {...}, "legend":
// {...}}). uPlot draws the axes, grid, zoom and cursor; the drawings themselves are path
// builders of ours (steps, bars, lines, markers, error bars, a colour map).
//
// What is drawn is readable by tests and tools: body.dataset (entries, bins, points, last...)
// and body.sdPanel.summary().

import uPlot from '../../vendor/uPlot.esm.js';
import { el, cssVar } from '../api.mjs';
import { format, formatValue } from '../format.mjs';
import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import {
    asObject, colorScale, metricChannel, numberOr, seriesColor, setData, withAlpha,
} from './plot-util.mjs';

const OBJECT_TYPES = new Set(['histogram', 'histogram2d', 'graph', 'bar']);
const SERIES_TYPES = new Set(['ts-histogram', 'ts-scatter']);
const LEGEND_STYLES = new Set(['side', 'box', 'transparent', 'hidden', 'none']);

// -------------------------------------------------------------------------------------------
// reading values

function histogramOf(value) {
    const bins = value?.bins;
    const min = numberOr(bins?.min), max = numberOr(bins?.max);
    if (min === undefined || max === undefined || !(max > min) || !Array.isArray(value.counts)) {
        return null;
    }
    const counts = value.counts.map((c) => numberOr(c, 0));
    return { min, max, counts };
}

function histogram2dOf(value) {
    const xmin = numberOr(value?.xbins?.min), xmax = numberOr(value?.xbins?.max);
    const ymin = numberOr(value?.ybins?.min), ymax = numberOr(value?.ybins?.max);
    if ([xmin, xmax, ymin, ymax].includes(undefined) || !(xmax > xmin) || !(ymax > ymin)) return null;
    if (!Array.isArray(value.counts)) return null;
    const counts = value.counts.map((row) => (Array.isArray(row) ? row.map((c) => numberOr(c, 0)) : []));
    const nx = counts.reduce((n, row) => Math.max(n, row.length), 0);
    return { xmin, xmax, ymin, ymax, counts, nx, ny: counts.length };
}

function graphOf(value) {
    if (!Array.isArray(value?.y)) return null;
    const n = value.y.length;
    const y = value.y.map((v) => numberOr(v, null));
    const x = Array.isArray(value.x) && value.x.length === n
        ? value.x.map((v) => numberOr(v, null)) : y.map((_, i) => i);
    const graph = { x, y };
    for (const key of ['x_err', 'y_err']) {
        if (Array.isArray(value[key]) && value[key].length === n) {
            graph[key] = value[key].map((v) => Math.abs(numberOr(v, 0)));
        }
    }
    return graph;
}

/** ts-histogram: the values of a series, binned by config.bins {n, min, max} (auto if absent). */
function binSeries(values, bins = {}) {
    const data = values.map((v) => numberOr(v, null)).filter((v) => v !== null);
    let min = numberOr(bins.min), max = numberOr(bins.max);
    const autoMax = max === undefined;
    if (min === undefined) min = data.length ? Math.min(...data) : 0;
    if (max === undefined) max = data.length ? Math.max(...data) : 1;
    if (!(max > min)) max = min + 1;
    let n = Math.trunc(numberOr(bins.n, 0));
    if (!(n > 0)) n = data.length < 10 ? 10 : data.length < 100 ? 20 : data.length < 500 ? 50 : 100;
    const counts = new Array(n).fill(0);
    let sum = 0, sum2 = 0, used = 0;
    for (const v of data) {
        let bin = Math.floor(n * (v - min) / (max - min));
        if (bin === n && autoMax && v === max) bin = n - 1;   // the largest value stays in
        if (bin < 0 || bin >= n) continue;
        counts[bin] += 1;
        used += 1; sum += v; sum2 += v * v;
    }
    const mean = used ? sum / used : NaN;
    const rms = used ? Math.sqrt(Math.max(0, sum2 / used - mean * mean)) : NaN;
    return { min, max, counts, stat: { Entries: used, Mean: mean, RMS: rms, Last: data.at(-1) } };
}

/** ts-scatter: each X point with the Y value current at its time (sample and hold). */
function pairSeries(sx, sy) {
    const x = [], y = [];
    if (!sx || !sy) return { x, y };
    let j = -1;
    for (let i = 0; i < sx.t.length; i++) {
        while (j + 1 < sy.t.length && sy.t[j + 1] <= sx.t[i] + 1e-6) j += 1;
        if (j < 0) continue;
        const xv = numberOr(sx.x[i], null), yv = numberOr(sy.x[j], null);
        if (xv === null || yv === null) continue;
        x.push(xv);
        y.push(yv);
    }
    return { x, y };
}

// -------------------------------------------------------------------------------------------
// one drawing of a plot panel

class Drawing {
    constructor(config, index) {
        this.config = config;
        this.index = index;
        this.data = null;       // {kind: 'hist' | 'hist2d' | 'graph', ...}
        this.stat = null;
        this.attr = {};
        this.labels = null;
        this.time = null;
    }

    get type() { return this.config.type || 'auto'; }

    get channel() { return metricChannel(this.config.channel); }

    label() {
        const c = this.config;
        if (c.label) return String(c.label);
        if (c.channel) return String(c.channel);
        if (c.channelX || c.channelY) return `${c.channelX ?? ''},${c.channelY ?? ''}`;
        return 'untitled';
    }

    color() { return seriesColor(this.index, this.attr.color ?? this.config.color); }

    /** Fill opacity (histograms, bars) or marker opacity (graphs). */
    opacity() {
        const fallback = this.type === 'ts-scatter' ? 0.5 : this.isHistogram() ? 0.2 : 1;
        return numberOr(this.attr.opacity ?? this.config.opacity, fallback);
    }

    isHistogram() { return this.type === 'histogram' || this.type === 'ts-histogram'; }

    seriesChannels() {
        if (this.type === 'ts-histogram') return [this.channel];
        if (this.type === 'ts-scatter') {
            return [metricChannel(this.config.channelX), metricChannel(this.config.channelY)];
        }
        return [];
    }

    valueChannels() {
        return OBJECT_TYPES.has(this.type) || this.type === 'auto' ? [this.channel] : [];
    }

    /** Read the feed; answers 'retype' when an untyped drawing found its type. */
    read(feed) {
        const type = this.type;
        this.data = null;
        this.stat = null;
        if (type === 'ts-histogram') {
            const series = feed.series(this.channel);
            if (!series) return null;
            const h = binSeries(series.x, this.config.bins ?? {});
            this.data = { kind: 'hist', min: h.min, max: h.max, counts: h.counts };
            this.stat = h.stat;
            this.time = series.t.at(-1) ?? null;
            return null;
        }
        if (type === 'ts-scatter') {
            const sx = feed.series(metricChannel(this.config.channelX));
            const sy = feed.series(metricChannel(this.config.channelY));
            if (!sx || !sy) return null;
            const { x, y } = pairSeries(sx, sy);
            this.data = { kind: 'graph', x, y, style: 'points' };
            if (x.length) {
                const spec = this.config.format || '%g, %g';
                const parts = spec.split(',');
                const text = parts.length === 2
                    ? `${format(parts[0], x.at(-1))},${format(parts[1], y.at(-1))}`
                    : `${formatValue(x.at(-1))}, ${formatValue(y.at(-1))}`;
                this.stat = { Points: x.length, Last: text.trim() };
            }
            return null;
        }
        const latest = feed.latest(this.channel);
        if (!latest) return null;
        const value = asObject(latest.x);
        if (type === 'auto') {
            let detected = null;
            if (value?.ybins) detected = 'histogram2d';
            else if (value?.bins) detected = 'histogram';
            else if (value?.y) detected = 'graph';
            else if (typeof latest.x === 'number') detected = 'ts-histogram';
            if (!detected) return null;
            this.config.type = detected;
            return 'retype';
        }
        if (!value) return null;
        this.time = latest.t;
        this.attr = value._attr && typeof value._attr === 'object' ? value._attr : {};
        if (value._stat !== undefined && value._stat !== null) this.stat = value._stat;
        if (type === 'histogram') {
            const h = histogramOf(value);
            if (h) this.data = { kind: 'hist', ...h };
        } else if (type === 'histogram2d') {
            const h = histogram2dOf(value);
            if (h) this.data = { kind: 'hist2d', ...h };
        } else {
            const g = graphOf(value);
            if (g) this.data = { kind: 'graph', ...g, style: type === 'bar' ? 'bar' : 'line' };
            this.labels = Array.isArray(value.labels) ? value.labels.map((l) => String(l ?? '')) : null;
        }
        return null;
    }

    /** [xs, ys] for uPlot (mode 2): what the scales and cursor see. */
    xy() {
        const d = this.data;
        if (!d) return [[], []];
        if (d.kind === 'hist') {
            const n = d.counts.length;
            const xs = [], ys = [];
            for (let i = 0; i < n; i++) {
                xs.push(d.min + (d.max - d.min) * (i + 0.5) / n);
                ys.push(d.counts[i]);
            }
            return [xs, ys];
        }
        if (d.kind === 'graph') return [d.x, d.y];
        return [[], []];
    }

    entries() {
        const d = this.data;
        if (d?.kind === 'hist') return d.counts.reduce((a, b) => a + b, 0);
        if (d?.kind === 'hist2d') return d.counts.reduce((a, row) => a + row.reduce((s, c) => s + c, 0), 0);
        return undefined;
    }
}

// -------------------------------------------------------------------------------------------
// ranges

function extent(values, positive) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
        if (v === null || !Number.isFinite(v) || (positive && v <= 0)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    return lo <= hi ? [lo, hi] : null;
}

function merge(a, b) {
    if (!a) return b;
    if (!b) return a;
    return [Math.min(a[0], b[0]), Math.max(a[1], b[1])];
}

/** The nearest 1, 2 or 5 times a power of ten below (direction -1) or above (+1) v > 0. */
function niceLog(v, direction) {
    const decade = 10 ** Math.floor(Math.log10(v));
    const steps = direction < 0 ? [5, 2, 1] : [1, 2, 5, 10];
    for (const m of steps) {
        if (direction < 0 ? m * decade <= v * (1 + 1e-9) : m * decade >= v * (1 - 1e-9)) return m * decade;
    }
    return direction < 0 ? decade : 10 * decade;
}

function padded(range, log, { lower = 0.05, upper = 0.05, zero = false } = {}) {
    if (!range) return log ? [1, 10] : [0, 1];
    let [lo, hi] = range;
    if (log) {
        if (hi <= lo) return [niceLog(lo / 2, -1), niceLog(hi * 2, 1)];
        const f = Math.log10(hi / lo);
        return [niceLog(lo / 10 ** (f * lower), -1), niceLog(hi * 10 ** (f * upper), 1)];
    }
    if (zero) lo = Math.min(lo, 0);
    if (hi <= lo) return [lo - 0.5 - Math.abs(lo) * 0.05, hi + 0.5 + Math.abs(hi) * 0.05];
    const span = hi - lo;
    return [zero && lo === 0 ? 0 : lo - span * lower, hi + span * upper];
}

// -------------------------------------------------------------------------------------------
// canvas helpers

function marker(ctx, shape, x, y, r) {
    ctx.beginPath();
    const kind = shape.replace(/^open/, '');
    if (kind === 'square') ctx.rect(x - r, y - r, 2 * r, 2 * r);
    else if (kind === 'diamond') {
        ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.3, y); ctx.lineTo(x, y + r * 1.3); ctx.lineTo(x - r * 1.3, y);
        ctx.closePath();
    } else if (kind === 'triangle') {
        ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.2, y + r * 0.8); ctx.lineTo(x - r * 1.2, y + r * 0.8);
        ctx.closePath();
    } else ctx.arc(x, y, r, 0, 2 * Math.PI);
    if (shape.startsWith('open')) ctx.stroke(); else ctx.fill();
}

function tickText(value) {
    if (!Number.isFinite(value)) return '';
    const abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return format('%.2e', value);
    return String(+value.toPrecision(6));
}

// -------------------------------------------------------------------------------------------
// the panel

export class PlotPanel extends Panel {
    static addable = { label: 'Histograms and graphs', channels: 'many' };

    /** Plots of the chosen channels; their types are found from the data on the first draw. */
    static newConfig(type, channels) {
        return { type: 'plot', plots: channels.map((channel) => ({ channel })) };
    }

    build() {
        const plots = Array.isArray(this.config.plots) ? this.config.plots : [];
        this.drawings = plots.filter((p) => p && typeof p === 'object').map((p, i) => new Drawing(p, i));
        this.uplot = null;
        this.signature = '';
        this.zoom = null;
        this.ranges = { x: [0, 1], y: [0, 1], z: [0, 1] };
        this.drawCount = 0;
        const legendStyle = LEGEND_STYLES.has(this.config.legend?.style) ? this.config.legend.style : 'box';
        this.canvasBox = el('div', { class: 'sd-plot-canvas' });
        this.legend = el('div', { class: `sd-plot-legend sd-legend-${legendStyle}` });
        this.readout = el('div', { class: 'sd-plot-readout', hidden: true });
        this.nodata = el('div', { class: 'sd-plot-nodata' }, this.drawings.length ? 'no data' : 'no plots configured');
        this.main = el('div', { class: 'sd-plot-main' }, this.canvasBox, this.nodata, this.readout);
        this.zbar = el('div', { class: 'sd-plot-zbar', hidden: true });
        this.root = el('div', { class: 'sd-plot' }, this.main, this.zbar);
        if (legendStyle === 'side') this.root.appendChild(this.legend);
        else this.main.appendChild(this.legend);
        this.body.replaceChildren(this.root);
        this.body.classList.add('sd-plot-body');
        // the plot area changes without the panel changing (style sheet loaded, colour bar)
        this.observer = new ResizeObserver(() => this.resize());
        this.observer.observe(this.main);
        setData(this.body, { plot: this.drawings.map((d) => d.type).join(' '), drawn: 0 });
    }

    title() {
        if (this.config.title || this.config.axes?.title) return super.title();
        return this.drawings?.length === 1 ? this.drawings[0].label() : '';
    }

    seriesChannels() { return this.drawings.flatMap((d) => d.seriesChannels()).filter(Boolean); }

    valueChannels() { return this.drawings.flatMap((d) => d.valueChannels()).filter(Boolean); }

    get axesConfig() { return this.config.axes && typeof this.config.axes === 'object' ? this.config.axes : {}; }

    update(feed) {
        let retyped = false;
        for (const d of this.drawings) if (d.read(feed) === 'retype') retyped = true;
        if (retyped) {
            setData(this.body, { plot: this.drawings.map((d) => d.type).join(' ') });
            for (const d of this.drawings) d.read(feed);
            feed.refresh();   // a drawing may now need a series channel
        }
        this.draw();
    }

    resize() {
        if (!this.uplot) { this.draw(); return; }
        this.drawZbar();
        const { width, height } = this.plotSize();
        if (width > 0 && height > 0) this.uplot.setSize({ width, height });
    }

    destroy() {
        this.observer?.disconnect();
        this.uplot?.destroy();
        this.uplot = null;
    }

    plotSize() {
        return { width: Math.floor(this.main.clientWidth), height: Math.floor(this.main.clientHeight) };
    }

    // -- drawing ------------------------------------------------------------------------------

    draw() {
        const has2d = this.drawings.some((d) => d.data?.kind === 'hist2d');
        this.zbar.hidden = !has2d;
        this.computeRanges();
        this.updateLegend();
        this.drawZbar();   // before measuring: the bar takes its room beside the plot
        const anyData = this.drawings.some((d) => d.data);
        this.nodata.hidden = anyData;
        const { width, height } = this.plotSize();
        if (width < 30 || height < 30) return;   // not laid out yet: resize() draws
        const signature = this.currentSignature();
        if (!this.uplot || signature !== this.signature) this.createPlot(width, height, signature);
        else if (this.uplot.width !== width || this.uplot.height !== height) this.uplot.setSize({ width, height });
        const data = this.plotData();
        if (this.zoom) {
            this.uplot.setData(data, false);
            this.uplot.batch(() => {
                this.uplot.setScale('x', { ...this.zoom.x });
                this.uplot.setScale('y', { ...this.zoom.y });
            });
        } else {
            this.uplot.setData(data, true);
        }
        this.drawCount += 1;
        this.publish();
    }

    /** uPlot's data (mode 2): [null, [xs, ys] per series drawing] (one empty series at least). */
    plotData() {
        if (!this.seriesDrawings.length) return [null, [[], []]];
        return [null, ...this.seriesDrawings.map((d) => d.xy())];
    }

    currentSignature() {
        const axes = this.axesConfig;
        const titles = this.axisTitles();
        return JSON.stringify([this.drawings.map((d) => d.type), !!axes.xlog, !!axes.ylog,
            titles, this.body.closest('[data-theme]')?.dataset.theme ?? document.documentElement.dataset.theme]);
    }

    axisTitles() {
        const axes = this.axesConfig;
        const attr = this.drawings.find((d) => d.attr && Object.keys(d.attr).length)?.attr ?? {};
        // a graph's own labels name its axes when the layout does not
        const labels = this.drawings.length === 1 ? this.drawings[0].labels ?? [] : [];
        return [axes.xtitle || attr.xtitle || labels[0] || '', axes.ytitle || attr.ytitle || labels[1] || ''];
    }

    createPlot(width, height, signature) {
        this.uplot?.destroy();
        this.zoom = null;
        this.signature = signature;
        const axesConfig = this.axesConfig;
        const [xtitle, ytitle] = this.axisTitles();
        const base = parseFloat(getComputedStyle(this.body).fontSize) || 14;
        const fs = Math.max(9, Math.min(base * 0.85, height / 14, width / 22));
        const family = cssVar('--sd-font', 'sans-serif');
        const font = `${fs.toFixed(1)}px ${family}`;
        const labelColor = cssVar('--sd-plot-label', '#444');
        const gridColor = cssVar('--sd-plot-grid', 'rgba(0,0,0,0.1)');
        const frameColor = cssVar('--sd-plot-frame', '#999');
        const axis = (scale, side, title) => ({
            scale, side, font, labelFont: font, stroke: labelColor,
            label: title || undefined, labelSize: title ? fs * 1.5 : 0, labelGap: 0,
            gap: fs * 0.3,
            grid: { stroke: gridColor, width: 1 },
            ticks: { stroke: frameColor, width: 1, size: fs * 0.35 },
            values: (u, splits) => splits.map(tickText),
            size: (u, values, axisIdx, cycle) => {
                if (side === 2) return Math.ceil(fs * 1.9);
                const a = u.axes[axisIdx];
                if (cycle > 1 && a._size) return a._size;
                let widest = 0;
                u.ctx.save();
                u.ctx.font = font;
                for (const v of values ?? []) widest = Math.max(widest, u.ctx.measureText(v).width);
                u.ctx.restore();
                return Math.ceil(widest + fs * 0.9);
            },
        });
        const scale = (key, log) => ({
            time: false, auto: true, distr: log ? 3 : 1, log: 10,
            range: () => [...this.ranges[key]],
        });
        this.seriesDrawings = this.drawings.filter((d) => d.type !== 'histogram2d');
        const series = [{}];
        for (const d of this.seriesDrawings) {
            series.push({
                label: d.label(), scale: 'y', width: 0, points: { show: false },
                stroke: () => d.color(),
                fill: () => withAlpha(d.color(), d.opacity()),
                paths: (u) => this.pathOf(u, d),
                facets: [{ scale: 'x', auto: true }, { scale: 'y', auto: true }],
            });
        }
        if (series.length === 1) {
            this.seriesDrawings = [];
            series.push({ show: false, scale: 'y', facets: [{ scale: 'x', auto: true }, { scale: 'y', auto: true }] });
        }
        const options = {
            mode: 2, width, height, pxAlign: 0,
            legend: { show: false },
            padding: [fs * 0.8, fs * 1.2, 0, 0],
            cursor: { drag: { x: true, y: true, uni: 25, setScale: true }, points: { show: false } },
            scales: { x: scale('x', !!axesConfig.xlog), y: scale('y', !!axesConfig.ylog) },
            axes: [axis('x', 2, xtitle), axis('y', 3, ytitle)],
            series,
            hooks: {
                drawClear: [(u) => {
                    const { left, top, width: w, height: h } = u.bbox;
                    u.ctx.save();
                    u.ctx.fillStyle = cssVar('--sd-plot-background', '#fff');
                    u.ctx.fillRect(left, top, w, h);
                    u.ctx.restore();
                }],
                drawAxes: [(u) => this.drawColorMaps(u)],
                draw: [(u) => {
                    this.drawMarkers(u);
                    this.drawFrame(u, frameColor);
                    setData(this.body, {
                        xrange: `${u.scales.x.min},${u.scales.x.max}`,
                        yrange: `${u.scales.y.min},${u.scales.y.max}`,
                    });
                }],
                setCursor: [(u) => this.showReadout(u)],
                setSelect: [(u) => {
                    const { left, top, width: w, height: h } = u.select;
                    if (w > 2 || h > 2) {
                        this.zoom = {
                            x: { min: u.posToVal(left, 'x'), max: u.posToVal(left + w, 'x') },
                            y: { min: u.posToVal(top + h, 'y'), max: u.posToVal(top, 'y') },
                        };
                        setData(this.body, { zoomed: 'yes' });
                    }
                }],
            },
        };
        this.canvasBox.replaceChildren();
        this.uplot = new uPlot(options, this.plotData(), this.canvasBox);
        this.uplot.over.addEventListener('dblclick', () => { this.zoom = null; this.draw(); });
        this.uplot.over.title = 'drag to zoom, double-click to reset';
    }

    computeRanges() {
        const axes = this.axesConfig;
        const xlog = !!axes.xlog, ylog = !!axes.ylog, zlog = !!axes.zlog;
        let x = null, y = null, z = null;
        let histogram = false, graph = false;
        for (const d of this.drawings) {
            const data = d.data;
            if (!data) continue;
            if (data.kind === 'hist') {
                histogram = true;
                x = merge(x, xlog ? extent([data.min, data.max], true) : [data.min, data.max]);
                y = merge(y, extent(data.counts, ylog));
            } else if (data.kind === 'hist2d') {
                x = merge(x, xlog ? extent([data.xmin, data.xmax], true) : [data.xmin, data.xmax]);
                y = merge(y, ylog ? extent([data.ymin, data.ymax], true) : [data.ymin, data.ymax]);
                z = merge(z, extent(data.counts.flat(), zlog));
            } else {
                graph = true;
                const xs = [], ys = [];
                for (let i = 0; i < data.x.length; i++) {
                    if (data.x[i] === null || data.y[i] === null) continue;
                    const ex = data.x_err?.[i] ?? 0, ey = data.y_err?.[i] ?? 0;
                    xs.push(data.x[i] - ex, data.x[i] + ex);
                    ys.push(data.y[i] - ey, data.y[i] + ey);
                }
                if (data.style === 'bar') {
                    const half = this.barWidth(d) / 2;
                    xs.push(...data.x.filter((v) => v !== null).flatMap((v) => [v - half, v + half]));
                    if (!ylog) ys.push(0);
                }
                x = merge(x, extent(xs, xlog));
                y = merge(y, extent(ys, ylog));
            }
        }
        const onlyHist = histogram && !graph;
        const is2d = this.drawings.some((d) => d.data?.kind === 'hist2d');
        const bars = this.drawings.some((d) => d.data?.style === 'bar');
        // histograms and 2-D histograms show their bin range; graphs get a margin
        const xr = is2d || onlyHist ? (x ?? (xlog ? [1, 10] : [0, 1])) : padded(x, xlog);
        let yr;
        if (is2d && !histogram && !graph) yr = y ?? [0, 1];
        else if ((histogram || bars) && !ylog) {
            yr = padded(y, false, { lower: y && y[0] < 0 ? 0.05 : 0, upper: 0.1, zero: true });
            if (yr[1] <= yr[0]) yr = [0, 1];
        } else yr = padded(y, ylog, histogram ? { lower: 0.1, upper: 0.1 } : {});
        const fixed = (flag, lo, hi, log, current) => {
            const a = numberOr(lo), b = numberOr(hi);
            if (!flag || a === undefined || b === undefined || !(b > a) || (log && a <= 0)) return current;
            return [a, b];
        };
        this.ranges.x = fixed(axes.xfixed, axes.xmin, axes.xmax, xlog, xr);
        this.ranges.y = fixed(axes.yfixed, axes.ymin, axes.ymax, ylog, yr);
        const zr = z ? [zlog ? z[0] : Math.min(0, z[0]), z[1]] : [zlog ? 1 : 0, 1];
        if (zr[1] <= zr[0]) zr[1] = zr[0] + 1;
        this.ranges.z = fixed(axes.zfixed ?? (axes.zmin !== undefined && axes.zmax !== undefined),
            axes.zmin, axes.zmax, zlog, zr);
    }

    /** uPlot path builder for one drawing: canvas-pixel Path2D objects. */
    pathOf(u, d) {
        const none = { stroke: null, fill: null, clip: null, band: null, gaps: null, flags: 0 };
        const data = d.data;
        if (!data) return none;
        const axes = this.axesConfig;
        const X = (v) => u.valToPos(v, 'x', true);
        const bottom = u.bbox.top + u.bbox.height;
        const Y = (v) => (axes.ylog && !(v > 0) ? bottom + 2 : u.valToPos(v, 'y', true));
        const baseline = axes.ylog ? bottom + 2 : Math.min(bottom + 2, Y(0));
        const stroke = new Path2D(), fill = new Path2D();
        const lineWidth = numberOr(d.config.line_width, d.isHistogram() || data.style === 'bar' ? 1 : 1);
        if (data.kind === 'hist') {
            const n = data.counts.length, w = (data.max - data.min) / n;
            if (d.config.shape === 'bar') {
                for (let i = 0; i < n; i++) {
                    const x0 = X(data.min + w * (i + 0.1)), x1 = X(data.min + w * (i + 0.9));
                    const y = Y(data.counts[i]);
                    fill.rect(x0, y, x1 - x0, baseline - y);
                    stroke.rect(x0, y, x1 - x0, baseline - y);
                }
            } else {
                stroke.moveTo(X(data.min), baseline);
                fill.moveTo(X(data.min), baseline);
                for (let i = 0; i < n; i++) {
                    const x0 = X(data.min + w * i), x1 = X(data.min + w * (i + 1)), y = Y(data.counts[i]);
                    stroke.lineTo(x0, y); stroke.lineTo(x1, y);
                    fill.lineTo(x0, y); fill.lineTo(x1, y);
                }
                stroke.lineTo(X(data.max), baseline);
                fill.lineTo(X(data.max), baseline);
                fill.closePath();
            }
            return { ...none, stroke, fill, _width: lineWidth, _stroke: d.color(), _fill: withAlpha(d.color(), d.opacity()) };
        }
        if (data.style === 'bar') {
            const width = this.barWidth(d);
            for (let i = 0; i < data.x.length; i++) {
                if (data.x[i] === null || data.y[i] === null) continue;
                const x0 = X(data.x[i] - width / 2), x1 = X(data.x[i] + width / 2), y = Y(data.y[i]);
                fill.rect(x0, Math.min(y, baseline), x1 - x0, Math.abs(baseline - y));
            }
            return { ...none, fill, _fill: withAlpha(d.color(), numberOr(d.config.opacity, 0.7)) };
        }
        const width = numberOr(d.config.line_width, data.style === 'points' ? 0 : 1);
        if (width <= 0) return none;
        let pen = false;
        for (let i = 0; i < data.x.length; i++) {
            if (data.x[i] === null || data.y[i] === null) { pen = false; continue; }
            const px = X(data.x[i]), py = Y(data.y[i]);
            if (pen) stroke.lineTo(px, py); else stroke.moveTo(px, py);
            pen = true;
        }
        const fillOpacity = numberOr(d.config.fill_opacity, 0);
        return { ...none, stroke, _width: width, _stroke: withAlpha(d.color(), numberOr(d.config.line_opacity, 1)), _fill: fillOpacity > 0 ? withAlpha(d.color(), fillOpacity) : null };
    }

    /** A bar chart's bar width in x units: bar_width, else 80 % of the closest spacing. */
    barWidth(d) {
        const xs = d.data.x.filter((v) => v !== null).sort((a, b) => a - b);
        let spacing = Infinity;
        for (let i = 1; i < xs.length; i++) if (xs[i] > xs[i - 1]) spacing = Math.min(spacing, xs[i] - xs[i - 1]);
        return numberOr(d.config.bar_width, Number.isFinite(spacing) ? spacing * 0.8 : 0.8);
    }

    /** Graph markers and error bars (after the series). */
    drawMarkers(u) {
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        const ratio = u.ctx.canvas.width / Math.max(1, u.width);
        const axes = this.axesConfig;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        for (const d of this.drawings) {
            const data = d.data;
            if (data?.kind !== 'graph' || data.style === 'bar') continue;
            const color = d.color();
            const size = numberOr(d.config.marker_size, data.style === 'points' ? 3 : 2) * ratio;
            const shape = String(d.config.marker_type || 'circle');
            const X = (v) => u.valToPos(v, 'x', true);
            const Y = (v) => u.valToPos(axes.ylog ? Math.max(v, 1e-300) : v, 'y', true);
            ctx.strokeStyle = withAlpha(color, 0.9);
            ctx.lineWidth = Math.max(1, ratio);
            if (data.x_err || data.y_err) {
                ctx.beginPath();
                for (let i = 0; i < data.x.length; i++) {
                    if (data.x[i] === null || data.y[i] === null) continue;
                    const ex = data.x_err?.[i] ?? 0, ey = data.y_err?.[i] ?? 0;
                    if (ex > 0) { ctx.moveTo(X(data.x[i] - ex), Y(data.y[i])); ctx.lineTo(X(data.x[i] + ex), Y(data.y[i])); }
                    if (ey > 0) { ctx.moveTo(X(data.x[i]), Y(data.y[i] - ey)); ctx.lineTo(X(data.x[i]), Y(data.y[i] + ey)); }
                }
                ctx.stroke();
            }
            if (size <= 0) continue;
            ctx.fillStyle = withAlpha(color, d.opacity());
            ctx.strokeStyle = withAlpha(color, d.opacity());
            for (let i = 0; i < data.x.length; i++) {
                if (data.x[i] === null || data.y[i] === null) continue;
                marker(ctx, shape, X(data.x[i]), Y(data.y[i]), size);
            }
        }
        ctx.restore();
    }

    drawFrame(u, color) {
        const { left, top, width, height } = u.bbox;
        u.ctx.save();
        u.ctx.strokeStyle = color;
        u.ctx.lineWidth = 1;
        u.ctx.strokeRect(left + 0.5, top + 0.5, width - 1, height - 1);
        u.ctx.restore();
    }

    /** 2-D histograms as colour maps (under the other drawings). */
    drawColorMaps(u) {
        const axes = this.axesConfig;
        const colors = colorScale(axes.colorscale);
        const [zmin, zmax] = this.ranges.z;
        const zlog = !!axes.zlog;
        const level = (c) => {
            if (zlog) return c > 0 ? (Math.log10(c) - Math.log10(zmin)) / (Math.log10(zmax) - Math.log10(zmin)) : null;
            return (c - zmin) / (zmax - zmin);
        };
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        for (const d of this.drawings) {
            const h = d.data;
            if (h?.kind !== 'hist2d') continue;
            const dx = (h.xmax - h.xmin) / Math.max(1, h.nx), dy = (h.ymax - h.ymin) / Math.max(1, h.ny);
            for (let iy = 0; iy < h.ny; iy++) {
                const y0 = u.valToPos(h.ymin + dy * iy, 'y', true), y1 = u.valToPos(h.ymin + dy * (iy + 1), 'y', true);
                const row = h.counts[iy];
                for (let ix = 0; ix < row.length; ix++) {
                    const c = row[ix];
                    if (!(c > 0) && !(c < 0)) continue;   // empty bins stay transparent
                    const f = level(c);
                    if (f === null) continue;
                    const [r, g, b] = colors(f);
                    ctx.fillStyle = `rgb(${r},${g},${b})`;
                    const x0 = u.valToPos(h.xmin + dx * ix, 'x', true), x1 = u.valToPos(h.xmin + dx * (ix + 1), 'x', true);
                    ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0) + 0.5, Math.abs(y1 - y0) + 0.5);
                }
            }
        }
        ctx.restore();
    }

    /** The colour scale bar beside a 2-D histogram. */
    drawZbar() {
        if (this.zbar.hidden) return;
        const axes = this.axesConfig;
        const [zmin, zmax] = this.ranges.z;
        const zlog = !!axes.zlog;
        const height = Math.round(Math.max(20, this.body.clientHeight * 0.8));
        const key = JSON.stringify([zmin, zmax, zlog, axes.colorscale, axes.ztitle, height]);
        if (key === this.zbarKey) return;
        this.zbarKey = key;
        const colors = colorScale(axes.colorscale);
        const canvas = el('canvas', { class: 'sd-plot-zbar-scale' });
        canvas.width = 12;
        canvas.height = 128;
        const ctx = canvas.getContext('2d');
        for (let i = 0; i < 128; i++) {
            const [r, g, b] = colors(1 - i / 127);
            ctx.fillStyle = `rgb(${r},${g},${b})`;
            ctx.fillRect(0, i, 12, 1);
        }
        const mid = zlog ? Math.sqrt(zmin * zmax) : (zmin + zmax) / 2;
        const labels = el('div', { class: 'sd-plot-zbar-labels' },
            el('span', {}, tickText(zmax)), el('span', {}, tickText(+mid.toPrecision(3))), el('span', {}, tickText(zmin)));
        const box = el('div', { class: 'sd-plot-zbar-box', style: { height: `${height}px` } }, canvas, labels);
        this.zbar.replaceChildren(box);
        if (axes.ztitle) this.zbar.appendChild(el('div', { class: 'sd-plot-zbar-title' }, String(axes.ztitle)));
        setData(this.zbar, { zmin, zmax, colorscale: String(axes.colorscale || 'Parula') });
    }

    updateLegend() {
        const style = this.legend.className.match(/sd-legend-(\w+)/)?.[1] ?? 'box';
        const entries = [];
        const many = this.drawings.length > 1;
        for (const d of this.drawings) {
            const hasStat = d.stat !== null && d.stat !== undefined;
            if (!many && !hasStat) continue;
            const swatch = d.type === 'histogram2d' ? null : el('span', { class: 'sd-plot-swatch', style: { background: d.color() } });
            const entry = el('div', { class: 'sd-plot-legend-entry', 'data-channel': d.config.channel ?? '' },
                el('div', { class: 'sd-plot-legend-label', style: { color: d.type === 'histogram2d' ? '' : d.color() } }, swatch, d.label()));
            if (hasStat) {
                const stat = d.stat;
                if (stat && typeof stat === 'object' && !Array.isArray(stat)) {
                    entry.appendChild(el('table', { class: 'sd-plot-stat' },
                        Object.entries(stat).map(([k, v]) => el('tr', {},
                            el('th', {}, k), el('td', {}, typeof v === 'number' ? formatValue(v) : typeof v === 'object' ? JSON.stringify(v) : String(v ?? ''))))));
                } else {
                    entry.appendChild(el('div', { class: 'sd-plot-stat-text' }, formatValue(stat)));
                }
            }
            entries.push(entry);
        }
        const key = entries.map((e) => e.outerHTML).join('');
        if (key !== this.legendKey) {
            this.legendKey = key;
            this.legend.replaceChildren(...entries);
        }
        this.legend.hidden = style === 'none' || entries.length === 0;
    }

    showReadout(u) {
        const { left, top } = u.cursor;
        if (left === undefined || left === null || left < 0 || top < 0) {
            this.readout.hidden = true;
            return;
        }
        const x = u.posToVal(left, 'x'), y = u.posToVal(top, 'y');
        const lines = [`x = ${tickText(x)}, y = ${tickText(y)}`];
        for (const d of this.drawings) {
            const data = d.data;
            if (!data) continue;
            const spec = d.config.format || '%.5g';
            const show = (v) => format(spec.split(',')[0], v);
            if (data.kind === 'hist') {
                const n = data.counts.length, w = (data.max - data.min) / n;
                const i = Math.floor((x - data.min) / w);
                if (i >= 0 && i < n) lines.push(`${d.label()}: [${tickText(data.min + w * i)}, ${tickText(data.min + w * (i + 1))}) ${show(data.counts[i])}`);
            } else if (data.kind === 'hist2d') {
                const ix = Math.floor((x - data.xmin) / (data.xmax - data.xmin) * data.nx);
                const iy = Math.floor((y - data.ymin) / (data.ymax - data.ymin) * data.ny);
                const c = data.counts[iy]?.[ix];
                if (c !== undefined) lines.push(`${d.label()}: ${show(c)}`);
            } else {
                let best = -1, distance = Infinity;
                for (let i = 0; i < data.x.length; i++) {
                    if (data.x[i] === null || data.y[i] === null) continue;
                    const px = u.valToPos(data.x[i], 'x'), py = u.valToPos(data.y[i], 'y');
                    const dist = Math.hypot(px - left, py - top);
                    if (dist < distance) { distance = dist; best = i; }
                }
                if (best >= 0 && distance < 30) lines.push(`${d.label()}: (${tickText(data.x[best])}, ${show(data.y[best])})`);
            }
        }
        this.readout.textContent = lines.join('\n');
        this.readout.hidden = false;
    }

    // -- what is drawn, for tests and tools ---------------------------------------------------

    summary() {
        const scales = this.uplot ? {
            x: [this.uplot.scales.x.min, this.uplot.scales.x.max],
            y: [this.uplot.scales.y.min, this.uplot.scales.y.max],
        } : null;
        return {
            drawn: this.drawCount,
            zoomed: !!this.zoom,
            scales,
            z: this.drawings.some((d) => d.data?.kind === 'hist2d') ? [...this.ranges.z] : null,
            plots: this.drawings.map((d) => {
                const data = d.data;
                const item = { type: d.type, label: d.label(), color: d.color(), stat: d.stat, entries: d.entries() ?? null };
                if (data?.kind === 'hist') Object.assign(item, { bins: data.counts.length, min: data.min, max: data.max, counts: [...data.counts] });
                if (data?.kind === 'hist2d') Object.assign(item, { xbins: data.nx, ybins: data.ny });
                if (data?.kind === 'graph') {
                    Object.assign(item, { points: data.x.length, last: data.x.length ? [data.x.at(-1), data.y.at(-1)] : null, errors: !!(data.x_err || data.y_err) });
                }
                return item;
            }),
        };
    }

    publish() {
        const first = this.drawings.find((d) => d.data);
        const data = first?.data;
        const values = { drawn: this.drawCount, zoomed: this.zoom ? 'yes' : 'no' };
        values.entries = first?.entries();
        values.bins = data?.kind === 'hist' ? data.counts.length : data?.kind === 'hist2d' ? `${data.nx}x${data.ny}` : undefined;
        const graph = this.drawings.find((d) => d.data?.kind === 'graph')?.data;
        values.points = graph ? graph.x.length : undefined;
        values.last = graph?.x.length ? `${graph.x.at(-1)},${graph.y.at(-1)}` : undefined;
        setData(this.body, values);
    }
}

registerPanel(['plot'], PlotPanel);
