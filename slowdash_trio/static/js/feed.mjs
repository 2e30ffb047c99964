// The data feed of a page: one object that fetches /api/data for every panel, follows the
// streaming WebSocket, falls back to polling when the socket is refused, and says how fresh
// its data is.
//
// Panels are consumers: { seriesChannels(): [names], valueChannels(): [names],
// update(feed) }. "Series" channels get the whole time window (resampled when long);
// "value" channels only their latest value (a short window plus the last point before it).
// Times kept here are absolute UNIX seconds.

import { getJSON, request, ApiError, notify } from './api.mjs';

const RESAMPLE_THRESHOLD = 7200;      // seconds: longer windows are resampled (as the original)
const RESAMPLE_POINTS = 600;          // buckets per window when resampling
const FALLBACK_POLL = 3;              // seconds between polls while the WebSocket is down
const REQUEST_TIMEOUT = 60;           // seconds
const RECONNECT_MIN = 0.5, RECONNECT_MAX = 10;  // WebSocket back-off, seconds
const ENVELOPE = ['x_min', 'x_max', 'x_n', 'x_err'];

export const STATUS = Object.freeze({
    CONNECTING: 'connecting', LIVE: 'live', POLLING: 'polling', PAUSED: 'fixed range',
    DISCONNECTED: 'disconnected',
});

const TIER_WIDTHS = [3600, 600, 60];  // the SQLite store's downsampling tiers (seconds)

/**
 * The bucket width the dashboard asks for a window (seconds; -1: raw points): about 600
 * buckets, rounded up to a multiple of the stores' tier widths, so that (with align=1 and a
 * tiered reducer) the server answers from its downsampling tiers instead of the raw rows.
 */
export function resampleFor(length) {
    if (!(length > RESAMPLE_THRESHOLD)) return -1;
    const width = length / RESAMPLE_POINTS;
    const tier = TIER_WIDTHS.find((w) => width >= w);
    return tier ? Math.ceil(width / tier - 1e-9) * tier : Math.round(width * 10) / 10;
}

function toArray(value) { return Array.isArray(value) ? value : [value]; }

/** One channel's reply (§5.1) as absolute-time arrays. */
export function normalize(entry) {
    if (entry === null || typeof entry !== 'object' || !('x' in entry)) return null;
    const start = Number(entry.start ?? 0) || 0;
    const series = { t: [], x: [] };
    if (Array.isArray(entry.t)) {
        series.t = entry.t.map((t) => Number(t) + start);
        series.x = Array.isArray(entry.x) ? entry.x : entry.t.map(() => entry.x);
        for (const key of ENVELOPE) if (Array.isArray(entry[key])) series[key] = entry[key];
    } else {
        series.t = [Number(entry.t ?? 0) + start];
        series.x = [entry.x];
    }
    return series;
}

/** old[before] + reply + old[after] as one series (envelope entries of old points: null). */
function spliced(old, before, reply, after) {
    const series = { t: [], x: [] };
    for (const key of ENVELOPE) if (reply[key]) series[key] = [];
    const take = (source, i) => {
        series.t.push(source.t[i]);
        series.x.push(source.x[i]);
        for (const key of ENVELOPE) {
            if (series[key]) series[key].push(source === reply ? reply[key][i] ?? null : null);
        }
    };
    before.forEach((i) => take(old, i));
    reply.t.forEach((_, i) => take(reply, i));
    after.forEach((i) => take(old, i));
    return series;
}

export class DataFeed extends EventTarget {
    constructor({ length = 3600, to = 0, reload = 60 } = {}) {
        super();
        this.length = Number(length) > 0 ? Number(length) : 3600;
        this.to = Number(to) || 0;
        this.reload = Number(reload) > 0 ? Number(reload) : 60;
        this.consumers = new Set();
        this.seriesData = new Map();
        this.valueData = new Map();
        this.status = STATUS.CONNECTING;
        this.lastUpdate = null;       // UNIX s of the last successful poll or frame
        this.lastError = null;
        this.socket = null;
        this.socketOpen = false;
        this.socketFailures = 0;
        this.pollTimer = null;
        this.socketTimer = null;
        this.aborter = null;
        this.inflight = false;
        this.running = false;
        this.notifyQueued = false;
        this.fetchCount = 0;          // requests answered (tests and the status line read it)
        this.frameCount = 0;          // WebSocket frames received
    }

    // -- consumers ------------------------------------------------------------------------

    add(consumer) { this.consumers.add(consumer); }
    remove(consumer) { this.consumers.delete(consumer); }

    /** The window shown now: {from, to} in UNIX seconds. */
    window() {
        const to = this.to > 0 ? this.to : Date.now() / 1000 + this.to;
        return { from: to - this.length, to };
    }

    get live() { return this.to <= 0; }

    /** A series channel's data {t: [...], x: [...], x_min?, x_max?...}, or undefined. */
    series(channel) { return this.seriesData.get(channel); }

    /** The latest {t, x} of a channel (value or series), or undefined. */
    latest(channel) {
        const value = this.valueData.get(channel);
        const series = this.seriesData.get(channel);
        const last = series && series.t.length
            ? { t: series.t[series.t.length - 1], x: series.x[series.x.length - 1] } : undefined;
        if (value && last) return value.t >= last.t ? value : last;
        return value ?? last;
    }

    channels() {
        const series = new Set(), values = new Set();
        for (const consumer of this.consumers) {
            for (const ch of consumer.seriesChannels?.() ?? []) if (ch) series.add(ch);
            for (const ch of consumer.valueChannels?.() ?? []) if (ch) values.add(ch);
        }
        return { series: [...series], values: [...values].filter((ch) => !series.has(ch)) };
    }

    // -- running --------------------------------------------------------------------------

    start() {
        if (this.running) return;
        this.running = true;
        this.connect();
        this.refresh();
        document.addEventListener('visibilitychange', this._onVisible = () => {
            if (!document.hidden && this.live) this.refresh();
        });
    }

    stop() {
        this.running = false;
        clearTimeout(this.pollTimer);
        clearTimeout(this.socketTimer);
        clearTimeout(this.stableTimer);
        this.aborter?.abort();
        if (this.socket) { this.socket.onclose = null; this.socket.close(); this.socket = null; }
        if (this._onVisible) document.removeEventListener('visibilitychange', this._onVisible);
    }

    /** Change the window (length seconds, to: 0 = now, else UNIX seconds) and fetch. */
    setRange({ length = this.length, to = this.to } = {}) {
        this.length = Math.max(1, Number(length));
        this.to = Number(to) || 0;
        this.seriesData.clear();
        this.refresh();
        this.dispatchEvent(new Event('range'));
    }

    setReload(seconds) {
        this.reload = Math.max(1, Number(seconds) || 60);
        this.schedulePoll();
    }

    /** Fetch everything now (one request per kind of channel); with `ifIdle`, only when no
     * request is on its way. */
    async refresh({ ifIdle = false } = {}) {
        if (!this.running || (ifIdle && this.inflight)) return;
        clearTimeout(this.pollTimer);
        this.aborter?.abort();
        const aborter = new AbortController();
        this.aborter = aborter;
        this.inflight = true;
        const { series, values } = this.channels();
        const signal = AbortSignal.any([aborter.signal, AbortSignal.timeout(REQUEST_TIMEOUT * 1000)]);
        try {
            const replies = await Promise.all([
                series.length ? this.fetchData(series, this.seriesQuery(), signal) : null,
                values.length ? this.fetchData(values, this.valueQuery(), signal) : null,
                series.length || values.length ? null : getJSON('./api/ping', { signal }),
            ]);
            if (aborter !== this.aborter) return;
            if (replies[0]) this.mergeSeries(replies[0]);
            if (replies[1]) this.mergeValues(replies[1]);
            this.fetchCount += 1;
            this.lastUpdate = Date.now() / 1000;
            if (this.status === STATUS.DISCONNECTED && !this.socket) {
                clearTimeout(this.socketTimer);   // the server is back: no need to wait
                this.connect();
            }
            this.lastError = null;
            this.setStatus(this.socketOpen ? STATUS.LIVE : STATUS.POLLING);
            this.queueUpdate();
        } catch (error) {
            if (aborter !== this.aborter || error.name === 'AbortError') return;
            this.lastError = error;
            if (error instanceof ApiError && error.status > 0) {
                notify(`data request failed: ${error.message}`, 'error');
                this.setStatus(this.socketOpen ? STATUS.LIVE : STATUS.POLLING);
            } else {
                this.setStatus(STATUS.DISCONNECTED);
            }
        } finally {
            if (aborter === this.aborter) {
                this.inflight = false;
                this.schedulePoll();
            }
        }
    }

    schedulePoll() {
        clearTimeout(this.pollTimer);
        if (!this.running) return;
        let interval = this.reload;
        if (!this.live) interval = Infinity;
        if (!this.socketOpen || this.socketFailures > 0 || this.status === STATUS.DISCONNECTED) {
            interval = Math.min(interval, FALLBACK_POLL);
        }
        if (Number.isFinite(interval)) {
            this.pollTimer = setTimeout(() => this.refresh(), interval * 1000);
        }
    }

    seriesQuery() {
        const resample = resampleFor(this.length);
        // buckets: their mean, and the min..max envelope drawn around it (all three come from
        // the tiers); raw points otherwise
        const query = {
            length: this.length, to: this.to > 0 ? this.to : 0, resample,
            reducer: resample > 0 ? 'mean' : 'last', filler: 'fillna',
            envelope: resample > 0 ? 1 : 0, prior_data: 1,
        };
        if (resample > 0) query.align = 1;
        return query;
    }

    valueQuery() {
        const length = Math.min(this.length, Math.max(60, 2 * this.reload));
        return {
            length, to: this.to > 0 ? this.to : 0, resample: -1, reducer: 'last',
            filler: 'fillna', envelope: 0, prior_data: 1,
        };
    }

    async fetchData(channels, query, signal) {
        const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
        const names = channels.map(encodeURIComponent).join(',');
        try {
            const reply = await getJSON(`./api/data/${names}?${params}`, { signal });
            return reply && typeof reply === 'object' ? reply : {};
        } catch (error) {
            // none of the channels is known (yet: a streamed one may appear): no data
            if (error instanceof ApiError && error.status === 404) return {};
            throw error;
        }
    }

    mergeSeries(reply) {
        const fresh = new Map();
        for (const [channel, entry] of Object.entries(reply)) {
            const series = normalize(entry);
            if (series) fresh.set(channel, series);
        }
        // What the page held outside the reply's time span stays (within the window): a
        // channel that only streams (nothing records it) is answered with its latest value
        // alone, which must not cut the live trace back to one point.
        if (this.live) {
            const { from } = this.window();
            for (const [channel, old] of this.seriesData) {
                const reply = fresh.get(channel) ?? { t: [], x: [] };
                const first = reply.t.length ? reply.t[0] : Infinity;
                const last = reply.t.length ? reply.t[reply.t.length - 1] : -Infinity;
                const before = [], after = [];
                old.t.forEach((t, i) => {
                    if (t >= from && t < first - 1e-3) before.push(i);
                    else if (t > last + 1e-3) after.push(i);
                });
                if (!before.length && !after.length) continue;
                fresh.set(channel, spliced(old, before, reply, after));
            }
        }
        this.seriesData = fresh;
    }

    mergeValues(reply) {
        for (const [channel, entry] of Object.entries(reply)) {
            const series = normalize(entry);
            if (!series || !series.t.length) continue;
            const k = series.t.length - 1;
            const old = this.valueData.get(channel);
            if (!old || series.t[k] >= old.t) this.valueData.set(channel, { t: series.t[k], x: series.x[k] });
        }
    }

    // -- streaming ------------------------------------------------------------------------

    connect() {
        if (!this.running) return;
        const url = new URL('ws/attach/current_data', window.location.href);
        url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
        url.search = '';
        let socket;
        try {
            socket = new WebSocket(url);
        } catch {
            this.reconnectLater();
            return;
        }
        this.socket = socket;
        socket.onopen = () => {
            this.socketOpen = true;
            // a socket that a proxy closes right after opening is as good as refused: the
            // failures (and the quicker polling) are forgotten only once it has stayed open
            clearTimeout(this.stableTimer);
            this.stableTimer = setTimeout(() => { this.socketFailures = 0; this.schedulePoll(); }, 5000);
            if (this.status !== STATUS.DISCONNECTED) this.setStatus(STATUS.LIVE);
            this.refresh({ ifIdle: true });   // what happened while we were away
        };
        socket.onmessage = (event) => this.onFrame(event.data);
        socket.onclose = () => {
            clearTimeout(this.stableTimer);
            const wasOpen = this.socketOpen;
            this.socketOpen = false;
            this.socket = null;
            if (!this.running) return;
            if (wasOpen) this.refresh();   // is it only the socket, or the server?
            else if (this.status === STATUS.LIVE || this.status === STATUS.CONNECTING) {
                this.setStatus(STATUS.POLLING);
            }
            this.schedulePoll();
            this.reconnectLater();
        };
    }

    reconnectLater() {
        clearTimeout(this.socketTimer);
        const delay = Math.min(RECONNECT_MAX, RECONNECT_MIN * 2 ** this.socketFailures);
        this.socketFailures += 1;
        this.socketTimer = setTimeout(() => this.connect(), delay * 1000);
    }

    onFrame(text) {
        let packet;
        try { packet = JSON.parse(text); } catch { return; }
        if (!packet || typeof packet !== 'object') return;
        if (typeof packet.error === 'string' && Object.keys(packet).length === 1) {
            notify(`the server refused a value: ${packet.error}`, 'error');
            return;
        }
        this.frameCount += 1;
        this.lastUpdate = Date.now() / 1000;
        const { from } = this.window();
        const wanted = this.channels();
        const series = new Set(wanted.series), values = new Set(wanted.values);
        for (const [channel, entry] of Object.entries(packet)) {
            if (!this.live || (!series.has(channel) && !values.has(channel))) continue;
            const points = normalize(entry);
            if (!points || !points.t.length) continue;
            const k = points.t.length - 1;
            const old = this.valueData.get(channel);
            if (!old || points.t[k] >= old.t) {
                this.valueData.set(channel, { t: points.t[k], x: points.x[k] });
            }
            if (series.has(channel)) this.appendSeries(channel, points, from);
        }
        if (this.status !== STATUS.LIVE && this.socketOpen) this.setStatus(STATUS.LIVE);
        this.queueUpdate();
    }

    appendSeries(channel, points, from) {
        let series = this.seriesData.get(channel);
        if (!series) {
            series = { t: [], x: [] };
            this.seriesData.set(channel, series);
        }
        const last = series.t.length ? series.t[series.t.length - 1] : -Infinity;
        for (let i = 0; i < points.t.length; i++) {
            if (points.t[i] > last + 1e-3) {
                series.t.push(points.t[i]);
                series.x.push(points.x[i]);
                for (const key of ENVELOPE) if (series[key]) series[key].push(null);
            }
        }
        // keep the window: drop points that scrolled out (keep one before, for the line)
        let cut = 0;
        while (cut + 1 < series.t.length && series.t[cut + 1] < from) cut += 1;
        if (cut > 0) {
            for (const key of ['t', 'x', ...ENVELOPE]) {
                if (series[key]) series[key].splice(0, cut);
            }
        }
    }

    /** Send a value as current data (sd-live write-back): over the WebSocket when open. */
    async write(channel, value) {
        const packet = JSON.stringify({ [channel]: { t: Date.now() / 1000, x: value } });
        if (this.socketOpen && this.socket) {
            this.socket.send(packet);
            return;
        }
        await request('./api/emit/current_data', {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, body: packet,
        });
    }

    // -- status and notification ----------------------------------------------------------

    setStatus(status) {
        if (!this.live && status !== STATUS.DISCONNECTED) status = STATUS.PAUSED;
        if (status === this.status) return;
        this.status = status;
        this.dispatchEvent(new Event('status'));
    }

    /** Seconds since the last good update (null before the first). */
    age() { return this.lastUpdate === null ? null : Date.now() / 1000 - this.lastUpdate; }

    /** Data older than twice the expected interval (live mode only). */
    isStale() {
        if (!this.live) return false;
        const age = this.age();
        const expected = this.socketOpen ? this.reload : Math.min(this.reload, FALLBACK_POLL);
        return age !== null && age > Math.max(10, 2 * expected + 5);
    }

    queueUpdate() {
        if (this.notifyQueued) return;
        this.notifyQueued = true;
        requestAnimationFrame(() => {
            this.notifyQueued = false;
            for (const consumer of this.consumers) {
                try {
                    consumer.update?.(this);
                } catch (error) {
                    console.error('a panel failed to draw', error);
                }
            }
            this.dispatchEvent(new Event('update'));
        });
    }
}
