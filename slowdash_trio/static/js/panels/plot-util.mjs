// Small helpers shared by the plot, table/tree and singles panels: metric
// channel names, object values, series colours and colour scales.

import { cssVar } from '../api.mjs';

/** The channel of a metric `CH[PATH]->f()->g()` (null for a metric that does not parse). */
export { metricChannel } from '../transform.mjs';

/** An object value (histogram, graph, table, tree...): decoded when it came as JSON text. */
export function asObject(value) {
    if (typeof value === 'string') {
        const text = value.trim();
        if (!text.startsWith('{')) return null;
        try {
            value = JSON.parse(text);
        } catch {
            return null;
        }
    }
    return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
}

/** A finite number from a config value ("1.5", 1.5), else undefined. */
export function numberOr(value, fallback = undefined) {
    if (value === null || value === undefined || value === '') return fallback;
    const number = Number(value);
    return Number.isFinite(number) ? number : fallback;
}

/** The theme's series colours (--sd-series), in order. */
export function seriesColors() {
    const list = cssVar('--sd-series', '').split(',').map((c) => c.trim()).filter(Boolean);
    return list.length ? list : ['#009090', '#dd8000', '#4169e1', '#c2255c', '#2f9e44'];
}

/** The colour of the `index`-th drawing; a number in config picks from the palette. */
export function seriesColor(index, configured) {
    const palette = seriesColors();
    if (configured !== undefined && configured !== null && configured !== '') {
        const n = Number(configured);
        if (Number.isInteger(n) && String(configured).trim() === String(n)) {
            return palette[((n % palette.length) + palette.length) % palette.length];
        }
        return String(configured);
    }
    return palette[index % palette.length];
}

let probe = null;

/** [r, g, b, a] of any CSS colour (a in 0..1). */
export function rgba(color) {
    probe ??= document.createElement('canvas').getContext('2d');
    probe.fillStyle = '#000000';
    probe.fillStyle = color;
    const value = probe.fillStyle;
    if (value.startsWith('#')) {
        return [1, 3, 5].map((i) => parseInt(value.slice(i, i + 2), 16)).concat([1]);
    }
    const parts = value.replace(/^rgba?\(|\)$/g, '').split(',').map((p) => Number(p.trim()));
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
}

/** A CSS colour with its opacity multiplied by `alpha`. */
export function withAlpha(color, alpha) {
    const [r, g, b, a] = rgba(color);
    const value = Math.max(0, Math.min(1, a * alpha));
    return `rgba(${r}, ${g}, ${b}, ${+value.toFixed(3)})`;
}

// Colour scales for 2-D histograms: anchor colours, interpolated linearly.
const SCALES = {
    parula: ['#352a87', '#0f5cdd', '#1481d6', '#06a4ca', '#2eb7a4', '#87bf77', '#d1bb59',
        '#fec832', '#f9fb0e'],
    viridis: ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779',
        '#6ece58', '#b5de2b', '#fde725'],
    magma: ['#000004', '#1c1044', '#4f127b', '#812581', '#b5367a', '#e55064', '#fb8761',
        '#fec287', '#fcfdbf'],
    rainbow: ['#3030ff', '#00c0ff', '#00e060', '#e0e000', '#ff8000', '#ff0000'],
    gray: ['#101010', '#f0f0f0'],
    grey: ['#101010', '#f0f0f0'],
};

/** Names of the colour scales (lower case). */
export const COLOR_SCALES = Object.keys(SCALES);

const anchorCache = new Map();

/** A function f in [0, 1] -> [r, g, b] for the colour scale `name` (default parula). */
export function colorScale(name) {
    const key = SCALES[String(name ?? '').toLowerCase()] ? String(name).toLowerCase() : 'parula';
    if (!anchorCache.has(key)) anchorCache.set(key, SCALES[key].map((c) => rgba(c).slice(0, 3)));
    const anchors = anchorCache.get(key);
    return (f) => {
        const x = Math.max(0, Math.min(1, Number.isFinite(f) ? f : 0)) * (anchors.length - 1);
        const i = Math.min(anchors.length - 2, Math.floor(x));
        const t = x - i;
        return [0, 1, 2].map((k) => Math.round(anchors[i][k] * (1 - t) + anchors[i + 1][k] * t));
    };
}

/** Set `data-*` attributes of an element from an object (null/undefined removes). */
export function setData(element, values) {
    for (const [key, value] of Object.entries(values)) {
        if (value === null || value === undefined) delete element.dataset[key];
        else element.dataset[key] = String(value);
    }
}
