// The layout page: slowplot.html?config=slowplot-NAME.json (a saved layout, the original's
// format), ?channel=A,B;C/table (a quick view), ?html=NAME (config/html-NAME.html alone), or
// nothing (every channel: a first page for a new project). slowdash.html?config=slowdash-NAME.json shows a canvas the same way.

import { getJSON, loadProject, notifyError, el } from './api.mjs';
import { Layout } from './layout.mjs';
import { buildHeader } from './header.mjs';

function plotOf(type, channel) {
    if (type === 'tree' || type === 'table') return { type, channel };
    if (type === 'histogram' || type === 'histogram2d' || type === 'graph') {
        return { type: 'plot', plots: [{ type, channel }] };
    }
    return null;
}

/** ?channel=A,B;C/table: one panel per ";" group; a "/TYPE" suffix picks the panel type
 * (otherwise the first channel's type from /api/channels). */
export function quickLayout(spec, types = new Map()) {
    const panels = [];
    for (const group of spec.split(';').map((g) => g.trim()).filter(Boolean)) {
        const [names, suffix] = group.split('/');
        const channels = names.split(',').map((c) => c.trim()).filter(Boolean);
        if (!channels.length) continue;
        const kind = suffix || types.get(channels[0]) || 'timeseries';
        if (kind === 'tree' || kind === 'table') {
            panels.push({ type: kind, channel: channels[0] });
        } else if (kind === 'histogram' || kind === 'histogram2d' || kind === 'graph') {
            panels.push({ type: 'plot', plots: channels.map((channel) => ({ type: kind, channel })) });
        } else if (kind === 'singles') {
            panels.push({ type: 'singles', items: channels.map((channel) => ({ channel })) });
        } else {
            panels.push({ type: 'timeaxis', plots: channels.map((channel) => ({ type: 'timeseries', channel })) });
        }
    }
    return { meta: { title: spec }, control: { range: { length: 3600, to: 0 }, reload: 10 }, panels };
}

/** Every channel: numeric ones in one time-axis plot, each object channel in its own panel. */
export function allChannelsLayout(channels) {
    const numeric = channels.filter((c) => !c.type || c.type === 'numeric');
    const panels = [];
    if (numeric.length) {
        panels.push({
            type: 'timeaxis', title: 'All channels',
            plots: numeric.slice(0, 32).map((c) => ({ type: 'timeseries', channel: c.name })),
        });
    }
    for (const c of channels) {
        const panel = plotOf(c.type, c.name);
        if (panel && panels.length < 12) panels.push({ ...panel, title: c.name });
    }
    return {
        meta: { title: 'All channels', description: 'every channel of the project' },
        control: { range: { length: 3600, to: 0 }, reload: 10 }, panels,
    };
}

function canvasLayout(name, content) {
    return {
        meta: { ...(content.meta ?? {}), name },
        control: { range: { length: 3600, to: 0 }, reload: Number(content.control?.reload) || 10, grid: { rows: 1, columns: 1 } },
        panels: [{ type: 'canvas', config_name: name, title: content.meta?.title ?? '', content }],
    };
}

async function main() {
    const header = document.getElementById('sd-header');
    const root = document.getElementById('sd-layout');
    const { title: projectTitle } = await loadProject();
    const params = new URLSearchParams(window.location.search);
    const file = params.get('config');
    let config, name = null, fileType = 'slowplot';
    if (file) {
        const match = /^(slowplot|slowdash)-(.+?)(\.json|\.yaml|\.py)?$/.exec(file);
        fileType = match?.[1] ?? 'slowplot';
        name = match && (match[3] ?? '.json') === '.json' ? match[2] : null;
        try {
            config = await getJSON(`./api/config/content/${encodeURIComponent(file)}`);
        } catch (error) {
            root.replaceChildren(el('div', { class: 'sd-config-error' },
                el('h2', {}, 'Configuration file error'), el('p', {}, `${file}: ${error.message}`)));
            header.replaceChildren(el('a', { href: './', class: 'sd-home' }, '⌂'), el('h1', {}, projectTitle));
            document.title = `${file} - ${projectTitle}`;
            return;
        }
        if (!config || typeof config !== 'object' || Array.isArray(config)) {
            root.replaceChildren(el('div', { class: 'sd-config-error' },
                el('h2', {}, 'Configuration file error'), el('p', {}, `${file}: not a layout (empty or not a JSON object)`)));
            return;
        }
        if (!Array.isArray(config.panels) && (config.items || config.view_box)) {
            config = canvasLayout(name ?? file, config);
            name = null;
        }
    } else if (params.get('html')) {
        const html = params.get('html');
        config = {
            meta: { title: html },
            control: { range: { length: 3600, to: 0 }, reload: 10, grid: { rows: 1, columns: 1 } },
            panels: [{ type: 'html', file: html, location: 'project', title: html }],
        };
    } else if (params.get('channel')) {
        let types = new Map();
        try {
            types = new Map(((await getJSON('./api/channels')) ?? []).map((c) => [c.name, c.type]));
        } catch { /* quick view without types: time-axis plots */ }
        config = quickLayout(params.get('channel'), types);
    } else {
        let channels = [];
        try {
            channels = (await getJSON('./api/channels')) ?? [];
        } catch (error) {
            notifyError('the channel list could not be loaded', error);
        }
        config = allChannelsLayout(channels);
    }
    const title = config.meta?.title || name || '';
    document.title = title ? `${title} - ${projectTitle}` : projectTitle;
    const layout = new Layout(root, config, { name, fileType });
    window.sdLayout = layout;   // for the console and the tests
    buildHeader(header, layout, { title, projectTitle });
    await layout.start();
    window.addEventListener('beforeunload', (event) => {
        if (layout.dirty) event.preventDefault();
    });
}

main();
