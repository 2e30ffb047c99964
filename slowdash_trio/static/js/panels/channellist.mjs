// The channel browser: every channel of /api/channels with a filter; a click opens a quick
// view of one channel, "Plot selected" one view of several.

import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { el, getJSON } from '../api.mjs';

// object types get a quick-view suffix choosing their panel; the rest are time-axis plots
const SUFFIXES = new Set(['table', 'tree', 'histogram', 'histogram2d', 'graph']);

/** The quick-view spec of one channel: NAME, or NAME/TYPE for object types. */
export function viewSpec(channel) {
    return SUFFIXES.has(channel.type) ? `${channel.name}/${channel.type}` : channel.name;
}

/** The quick view of channels: the plain ones in one time-axis plot, each object apart. */
export function quickViewLink(channels) {
    const plain = channels.filter((c) => !SUFFIXES.has(c.type)).map((c) => c.name);
    const groups = plain.length ? [plain.join(',')] : [];
    for (const c of channels) if (SUFFIXES.has(c.type)) groups.push(viewSpec(c));
    // keep , ; / readable: slowplot.html splits on them after decoding
    const spec = encodeURIComponent(groups.join(';'))
        .replace(/%2C/g, ',').replace(/%3B/g, ';').replace(/%2F/g, '/');
    return `slowplot.html?channel=${spec}`;
}

/** Whether a channel matches every word of the filter (name or type). */
export function matches(channel, filter) {
    const text = `${channel.name} ${channel.type ?? 'numeric'}`.toLowerCase();
    return filter.toLowerCase().split(/\s+/).filter(Boolean).every((word) => text.includes(word));
}

export class ChannelListPanel extends Panel {
    static addable = { label: 'Channel list', channels: 'none' };

    static newConfig(type) { return { type, title: 'Channels' }; }

    build() {
        this.channels = [];
        this.filter = el('input', {
            type: 'search', class: 'sd-channel-filter', placeholder: 'filter channels',
            'aria-label': 'filter channels', value: this.config.filter ?? '',
        });
        this.count = el('span', { class: 'sd-channel-count' });
        this.plot = el('button', { type: 'button', class: 'sd-channel-plot', disabled: true }, 'Plot selected');
        const rescan = el('button', { type: 'button', class: 'sd-channel-rescan', title: 'look for new channels' }, '↻');
        this.list = el('div', { class: 'sd-channel-list' });
        this.filter.addEventListener('input', () => this.applyFilter());
        this.plot.addEventListener('click', () => {
            const chosen = this.selected();
            if (chosen.length) window.location.href = quickViewLink(chosen);
        });
        rescan.addEventListener('click', () => this.load(true));
        this.list.addEventListener('change', () => this.syncSelection());
        this.body.replaceChildren(el('div', { class: 'sd-channels' },
            el('div', { class: 'sd-toolbar' }, this.filter, this.count, this.plot, rescan),
            this.list));
        this.load();
    }

    title() { return this.config.title ?? 'Channels'; }

    async load(rescan = false) {
        this.body.dataset.state = 'loading';
        try {
            const reply = await getJSON(`./api/channels${rescan ? '?force_rescan=1' : ''}`);
            this.channels = (Array.isArray(reply) ? reply : []).filter((c) => c && c.name);
        } catch (error) {
            this.list.replaceChildren(el('div', { class: 'sd-panel-message sd-error' },
                `the channel list could not be loaded: ${error.message}`));
            this.body.dataset.state = 'error';
            return;
        }
        this.render();
        this.body.dataset.state = 'ready';
    }

    render() {
        const previous = new Set(this.selected().map((c) => c.name));
        if (!this.channels.length) {
            this.list.replaceChildren(el('div', { class: 'sd-panel-message' }, 'This project has no channels yet.'));
            this.count.textContent = '';
            return;
        }
        this.rows = this.channels.map((channel) => {
            const type = channel.type ?? 'numeric';
            const box = el('input', {
                type: 'checkbox', class: 'sd-channel-select', 'aria-label': `select ${channel.name}`,
                checked: previous.has(channel.name),
            });
            const row = el('li', { class: 'sd-channel', 'data-channel': channel.name, 'data-type': type },
                box,
                el('a', { href: quickViewLink([channel]), class: 'sd-channel-name' }, channel.name),
                el('span', { class: 'sd-channel-type' }, type),
                channel.current ? el('span', { class: 'sd-channel-current', title: 'a current value (module, task or stream)' }, 'current') : null);
            return { channel, row, box };
        });
        this.list.replaceChildren(el('ul', {}, this.rows.map((r) => r.row)));
        this.applyFilter();
    }

    applyFilter() {
        if (!this.rows) return;
        const filter = this.filter.value;
        let shown = 0;
        for (const { channel, row } of this.rows) {
            row.hidden = !matches(channel, filter);
            if (!row.hidden) shown += 1;
        }
        this.count.textContent = `${shown} of ${this.rows.length}`;
        this.body.dataset.shown = String(shown);
        this.syncSelection();
    }

    /** The checked channels that the filter shows. */
    selected() {
        return (this.rows ?? []).filter((r) => r.box.checked && !r.row.hidden).map((r) => r.channel);
    }

    syncSelection() {
        const count = this.selected().length;
        this.plot.disabled = count === 0;
        this.plot.textContent = count > 1 ? `Plot ${count} selected` : 'Plot selected';
    }
}

registerPanel(['channellist'], ChannelListPanel);
