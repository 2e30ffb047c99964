// The catalog: the project's layouts, canvases and HTML panels (config/contentlist), newest
// first, each a link to the page that shows it; a broken file shows its error and line.

import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { el, getJSON, projectConfig } from '../api.mjs';
import { formatTime } from '../format.mjs';

const KINDS = {
    slowplot: 'layout',
    slowdash: 'canvas',
    html: 'HTML',
    userhtml: 'page',
};

/** The page showing a contentlist entry, or null for types without a page. */
export function contentLink(entry) {
    const file = entry.config_file || `${entry.type}-${entry.name}.json`;
    const query = (key, value) => `${key}=${encodeURIComponent(value)}`;
    if (entry.type === 'slowplot') return `slowplot.html?${query('config', file)}`;
    if (entry.type === 'slowdash') return `slowdash.html?${query('config', file)}`;
    if (entry.type === 'html') return `slowplot.html?${query('html', entry.name)}`;
    if (entry.type === 'userhtml') return `userhtml/${encodeURIComponent(file)}`;
    return null;
}

/** Whether the config-file API lets the browser edit this file. */
function editable(file, secure) {
    return secure || /\.(json|yaml|html)$/i.test(file);
}

export class CatalogPanel extends Panel {
    static addable = { label: 'Catalog of layouts and pages', channels: 'none' };

    static newConfig(type) { return { type, title: 'Catalog' }; }

    build() {
        this.list = el('div', { class: 'sd-catalog-list' });
        const refresh = el('button', { type: 'button', class: 'sd-catalog-refresh', title: 'reload the list' }, '↻');
        refresh.addEventListener('click', () => this.load());
        this.body.replaceChildren(el('div', { class: 'sd-catalog' },
            el('div', { class: 'sd-toolbar' },
                el('a', { href: 'slowplot.html', class: 'sd-catalog-all' }, 'All channels'),
                el('span', { class: 'sd-spacer' }), refresh),
            this.list));
        this.onVisible = () => { if (!document.hidden) this.load(); };
        document.addEventListener('visibilitychange', this.onVisible);
        this.load();
    }

    title() { return this.config.title ?? 'Catalog'; }

    types() {
        const types = this.config.types;
        return Array.isArray(types) && types.length ? types : Object.keys(KINDS);
    }

    async load() {
        let entries, secure = false;
        try {
            [entries, secure] = await Promise.all([
                getJSON('./api/config/contentlist'),
                projectConfig().then((c) => !!c.project?.is_secure, () => false),
            ]);
        } catch (error) {
            this.list.replaceChildren(el('div', { class: 'sd-panel-message sd-error' },
                `the list of layouts could not be loaded: ${error.message}`));
            this.body.dataset.state = 'error';
            return;
        }
        const wanted = new Set(this.types());
        const shown = (Array.isArray(entries) ? entries : [])
            .filter((e) => e && wanted.has(e.type))
            .sort((a, b) => (Number(b.mtime) || 0) - (Number(a.mtime) || 0));
        this.render(shown, secure);
        this.body.dataset.state = 'ready';
        this.body.dataset.count = String(shown.length);
    }

    render(entries, secure) {
        if (!entries.length) {
            this.list.replaceChildren(el('div', { class: 'sd-panel-message' },
                'No layouts yet: open "All channels", arrange panels and save the layout.'));
            return;
        }
        const rows = entries.map((entry) => {
            const file = entry.config_file || `${entry.type}-${entry.name}.json`;
            const link = contentLink(entry);
            const title = entry.title || entry.name;
            const error = entry.config_error
                ? el('div', { class: 'sd-catalog-problem sd-error', 'data-line': entry.config_error_line || '' },
                    `${file}: ${entry.config_error}`)
                : null;
            // (userhtml/ pages are not in config/, where the editor writes)
            const edit = entry.type !== 'userhtml' && editable(file, secure)
                ? el('a', { href: `slowedit.html?filename=${encodeURIComponent(file)}`, class: 'sd-catalog-edit', title: `edit ${file}` }, '✎')
                : null;
            return el('li', {
                class: `sd-catalog-entry${error ? ' sd-catalog-broken' : ''}`,
                'data-type': entry.type, 'data-file': file,
            },
            el('span', { class: 'sd-catalog-kind', 'data-type': entry.type }, KINDS[entry.type] ?? entry.type),
            el('div', { class: 'sd-catalog-main' },
                link ? el('a', { href: link, class: 'sd-catalog-title' }, title)
                    : el('span', { class: 'sd-catalog-title' }, title),
                entry.description ? el('div', { class: 'sd-catalog-description' }, entry.description) : null,
                error),
            el('span', { class: 'sd-catalog-meta' },
                entry.mtime ? el('span', { class: 'sd-catalog-time' }, formatTime(Number(entry.mtime))) : null,
                el('span', { class: 'sd-catalog-file' }, file), edit));
        });
        this.list.replaceChildren(el('ul', {}, rows));
    }

    destroy() {
        document.removeEventListener('visibilitychange', this.onVisible);
    }
}

registerPanel(['catalog'], CatalogPanel);
