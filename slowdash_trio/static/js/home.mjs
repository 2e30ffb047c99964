// The home page (slowhome.html, served at /): the project's title and style, the catalog of
// layouts and pages, the channel browser, the task manager, and the server's status. The
// panels are the same classes as in layouts, drawn here directly.

import { el, getJSON, loadProject } from './api.mjs';
import { DataFeed } from './feed.mjs';
import { Panel } from './panels/base.mjs';
import { panelClass, registerPanel, loadPanels } from './panels/registry.mjs';
import { formatTime, formatDuration } from './format.mjs';
import { linkList, linksInTrouble, restartNote } from './panels/taskmanager.mjs';

const STATUS_RELOAD = 10;   // seconds between status refreshes

function stateBadge(state) {
    return el('span', { class: 'sd-state', 'data-state': String(state ?? 'unknown') }, String(state ?? 'unknown'));
}

/** Server version, user modules and data sources from /api/config, refreshed periodically. */
export class ServerStatusPanel extends Panel {
    build() {
        this.timer = null;
        this.content = el('div', { class: 'sd-server-status' }, el('div', { class: 'sd-panel-message' }, 'loading…'));
        this.body.replaceChildren(this.content);
        this.refresh();
    }

    title() { return this.config.title ?? 'Server status'; }

    destroy() { clearTimeout(this.timer); this.closed = true; }

    async refresh() {
        clearTimeout(this.timer);
        try {
            this.render(await getJSON('./api/config'));
            this.body.dataset.state = 'ready';
        } catch (error) {
            this.content.replaceChildren(el('div', { class: 'sd-panel-message sd-error sd-server-down' },
                `the server cannot be read: ${error.message}`));
            this.body.dataset.state = 'error';
        }
        if (!this.closed) {
            this.timer = setTimeout(() => this.refresh(), (Number(this.config.reload) || STATUS_RELOAD) * 1000);
        }
    }

    render(config) {
        const project = config?.project ?? {};
        const parts = [el('dl', { class: 'sd-server-facts' },
            el('dt', {}, 'Server'), el('dd', { class: 'sd-server-version' }, config?.slowdash?.version ?? '?'),
            el('dt', {}, 'Project'), el('dd', {}, project.name ?? ''),
            el('dt', {}, 'Script editing'), el('dd', {}, project.is_secure ? 'on (our_security_is_perfect)' : 'off'),
            el('dt', {}, 'Checked'), el('dd', { class: 'sd-server-checked' }, formatTime(Date.now() / 1000, { date: false })))];

        const modules = Object.entries(config?.user_module ?? {});
        if (modules.length) {
            parts.push(el('h3', {}, 'User modules'), el('table', { class: 'sd-status-table sd-modules' },
                el('tbody', {}, modules.map(([name, m]) => {
                    const problems = [];
                    if (m?.stuck) {
                        const since = m.stuck.since ? ` for ${formatDuration(Date.now() / 1000 - m.stuck.since)}` : '';
                        problems.push(el('div', { class: 'sd-error' }, `stuck in ${m.stuck.callback ?? '?'}${since}`));
                    }
                    const restart = restartNote(m?.state, m?.restart);
                    if (restart) problems.push(restart);
                    if (m?.error) {
                        problems.push(el('details', { class: 'sd-error' },
                            el('summary', {}, `${m.error.callback ? `${m.error.callback}: ` : ''}${m.error.message ?? 'error'}`),
                            el('pre', {}, m.error.traceback ?? '')));
                    }
                    const links = linkList(m?.links);
                    if (links) problems.push(links);
                    return el('tr', { 'data-module': name, 'data-state': m?.state ?? '', 'data-links': linksInTrouble(m?.links) ? 'trouble' : 'ok' },
                        el('td', {}, name), el('td', {}, stateBadge(m?.state)),
                        el('td', {}, m?.error_count ? `${m.error_count} error${m.error_count > 1 ? 's' : ''}` : ''),
                        el('td', {}, problems));
                }))));
        }

        let sources = config?.data_source ?? [];
        if (!Array.isArray(sources)) sources = Object.entries(sources).map(([type, s]) => ({ type, ...(s ?? {}) }));
        if (sources.length) {
            parts.push(el('h3', {}, 'Data sources'), el('table', { class: 'sd-status-table sd-sources' },
                el('tbody', {}, sources.map((s) => el('tr', { 'data-source': s.name ?? s.type, 'data-state': s.state ?? '' },
                    el('td', {}, s.name ?? s.type ?? ''), el('td', {}, stateBadge(s.state)),
                    el('td', {}, s.since ? `since ${formatTime(Number(s.since))}` : ''),
                    el('td', { class: s.error ? 'sd-error' : '' }, s.error ?? ''))))));
        }
        if (!modules.length && !sources.length) {
            parts.push(el('p', { class: 'sd-muted' }, 'No user modules or data sources are configured.'));
        }
        this.content.replaceChildren(...parts);
    }
}

registerPanel(['serverstatus'], ServerStatusPanel);

const SECTIONS = [
    { type: 'catalog', area: 'catalog' },
    { type: 'channellist', area: 'channels' },
    { type: 'taskmanager', area: 'tasks' },
    { type: 'serverstatus', area: 'status' },
];

function frame(config, context) {
    const body = el('div', { class: 'sd-panel-body' });
    const titleText = el('span', { class: 'sd-panel-title-text' });
    const section = el('section', { class: 'sd-panel', 'data-type': config.type, style: { gridArea: config.area } },
        el('header', { class: 'sd-panel-title' }, titleText), body);
    const cls = panelClass(config.type);
    if (!cls) {
        body.append(el('div', { class: 'sd-panel-message sd-error' }, `the ${config.type} panel did not load`));
        return { section, panel: null };
    }
    try {
        const panel = new cls(body, config, context);
        panel.build();
        titleText.textContent = panel.title();
        return { section, panel };
    } catch (error) {
        console.error(error);
        body.append(el('div', { class: 'sd-panel-message sd-error' }, `the ${config.type} panel failed: ${error.message}`));
        return { section, panel: null };
    }
}

async function main() {
    const header = document.getElementById('sd-header');
    const root = document.getElementById('sd-home');
    const { config, title } = await loadProject();
    document.title = title;
    header.replaceChildren(
        el('h1', { id: 'sd-title' }, title),
        el('nav', { class: 'sd-home-links' },
            el('a', { href: 'slowplot.html' }, 'All channels'),
            el('span', { class: 'sd-home-version' }, config.slowdash?.version ?? '')));

    await loadPanels(SECTIONS.map((section) => section.type));
    // no channels are drawn here: the feed is the panels' context, not started
    const feed = new DataFeed();
    const panels = [];
    for (const section of SECTIONS) {
        const { section: element, panel } = frame({ ...section }, { feed, layout: null });
        root.append(element);
        if (panel) panels.push(panel);
    }
    window.sdHome = { panels, config };   // for the console and the tests
}

main();
