// The panel contract. A layout gives each panel a body element, its config (the object saved
// in the layout file: edit it in place) and a context {feed, layout}; the data feed calls
// update(feed) whenever new data arrive.

import { el } from '../api.mjs';

export class Panel {
    /** Shown in the "add panel" dialog; panels without it cannot be added from there. */
    static addable = null;   // e.g. {label: 'Time-axis plot', channels: 'many' | 'one' | 'none'}

    /** A new panel's config for the "add panel" dialog, given the chosen channels. */
    static newConfig(type, channels) { return { type, channel: channels[0] ?? '' }; }

    constructor(body, config, context) {
        this.body = body;
        this.config = config;
        this.context = context;
        this.feed = context.feed;
    }

    /** Build the DOM (called once, after the constructor). */
    build() {}

    /** Channels this panel needs over the whole time window. */
    seriesChannels() { return []; }

    /** Channels of which this panel needs only the latest value. */
    valueChannels() { return []; }

    /** New data: draw from feed.series(ch), feed.latest(ch), feed.window(). */
    update(feed) {}

    /** The panel's box changed size. */
    resize() {}

    /** The panel is removed. */
    destroy() {}

    /** The title shown in the panel's frame. */
    title() { return this.config.title || this.config.axes?.title || ''; }

    /** A message in the panel body (no data, bad config...). */
    message(text, kind = 'info') {
        this.body.replaceChildren(el('div', { class: `sd-panel-message sd-${kind}`, text }));
    }
}
