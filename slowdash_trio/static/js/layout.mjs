// A layout: the grid of panels of a slowplot-*.json file (the original's format), the range
// and reload controls that drive its data feed, and editing (add, remove, move, configure,
// save back to config/).

import { el, getJSON, notify, notifyError, request } from './api.mjs';
import { DataFeed } from './feed.mjs';
import { panelClass, addablePanels, loadPanels, loadAllPanels } from './panels/registry.mjs';

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** A layout config with every key the page reads, filled with defaults. */
export function normalizeLayout(config) {
    const layout = config && typeof config === 'object' ? config : {};
    layout.meta ??= {};
    layout.control ??= {};
    const control = layout.control;
    control.range ??= {};
    control.range.length = Number(control.range.length) > 0 ? Number(control.range.length) : 3600;
    control.range.to = Number(control.range.to) || 0;
    control.reload = Number(control.reload) > 0 ? Number(control.reload) : 60;
    control.grid ??= {};
    const panels = Array.isArray(layout.panels) ? layout.panels : [];
    layout.panels = panels.filter((p) => p && typeof p === 'object');
    const count = Math.max(1, layout.panels.length);
    let columns = Number(control.grid.columns) || 0;
    let rows = Number(control.grid.rows) || 0;
    if (columns <= 0) columns = Math.min(3, Math.ceil(Math.sqrt(count)));
    if (rows <= 0) rows = Math.ceil(count / columns);
    control.grid.columns = columns;
    control.grid.rows = rows;
    return layout;
}

export class Layout {
    /**
     * root: the element holding the grid. config: the layout document. options.name: the
     * file's NAME (slowplot-NAME.json) or null for a view not yet saved.
     */
    constructor(root, config, { name = null, fileType = 'slowplot' } = {}) {
        this.root = root;
        this.config = normalizeLayout(config);
        this.name = name;
        this.fileType = fileType;
        const control = this.config.control;
        this.feed = new DataFeed({
            length: control.range.length, to: control.range.to, reload: control.reload,
        });
        this.frames = [];
        this.editing = false;
        this.dirty = false;
        this.resizer = new ResizeObserver((entries) => {
            for (const entry of entries) entry.target.sdPanel?.resize();
        });
    }

    async start() {
        await loadPanels(this.config.panels.map((p) => p.type));
        this.render();
        this.feed.start();
    }

    render() {
        for (const frame of this.frames) this.destroyFrame(frame);
        this.frames = [];
        const { rows, columns } = this.config.control.grid;
        this.root.style.setProperty('--sd-columns', columns);
        this.root.style.setProperty('--sd-rows', rows);
        this.root.replaceChildren();
        this.config.panels.forEach((panelConfig, index) => {
            const frame = this.buildFrame(panelConfig, index);
            this.frames.push(frame);
            this.root.appendChild(frame.element);
        });
        if (!this.config.panels.length) {
            this.root.appendChild(el('div', { class: 'sd-empty' },
                'This layout has no panels. ',
                el('button', { type: 'button', onclick: () => this.addPanelDialog() }, 'Add a panel')));
        }
        this.feed.refresh();
    }

    buildFrame(panelConfig, index) {
        const body = el('div', { class: 'sd-panel-body' });
        const titleText = el('span', { class: 'sd-panel-title-text' });
        const tools = el('span', { class: 'sd-panel-tools' },
            el('button', { type: 'button', title: 'move back', 'data-action': 'left', onclick: () => this.movePanel(index, -1) }, '◀'),
            el('button', { type: 'button', title: 'move forward', 'data-action': 'right', onclick: () => this.movePanel(index, 1) }, '▶'),
            el('button', { type: 'button', title: 'configure', 'data-action': 'configure', onclick: () => this.configureDialog(index) }, '⚙'),
            el('button', { type: 'button', title: 'remove', 'data-action': 'remove', onclick: () => this.removePanel(index) }, '✕'));
        const header = el('header', { class: 'sd-panel-title' }, titleText, tools);
        const element = el('section', {
            class: 'sd-panel', 'data-type': String(panelConfig.type ?? ''), 'data-index': index,
        }, header, body);
        const frame = { element, body, titleText, panel: null };
        const cls = panelClass(panelConfig.type);
        if (!cls) {
            body.appendChild(el('div', { class: 'sd-panel-message sd-error' },
                `unknown panel type "${panelConfig.type}"`));
            return frame;
        }
        try {
            const panel = new cls(body, panelConfig, { feed: this.feed, layout: this });
            panel.build();
            frame.panel = panel;
            titleText.textContent = panel.title();
            this.feed.add(panel);
            body.sdPanel = panel;
            this.resizer.observe(body);
        } catch (error) {
            console.error(error);
            body.replaceChildren(el('div', { class: 'sd-panel-message sd-error' },
                `this ${panelConfig.type} panel cannot be drawn: ${error.message}`));
        }
        return frame;
    }

    destroyFrame(frame) {
        if (!frame.panel) return;
        this.feed.remove(frame.panel);
        this.resizer.unobserve(frame.body);
        try { frame.panel.destroy(); } catch (error) { console.error(error); }
    }

    // -- editing ---------------------------------------------------------------------------

    setEditing(editing) {
        this.editing = editing;
        document.body.classList.toggle('sd-editing', editing);
    }

    changed() {
        this.dirty = true;
        document.body.classList.add('sd-dirty');
    }

    addPanel(panelConfig) {
        this.config.panels.push(panelConfig);
        this.fitGrid();
        this.changed();
        this.render();
    }

    removePanel(index) {
        this.config.panels.splice(index, 1);
        this.changed();
        this.render();
    }

    movePanel(index, delta) {
        const target = index + delta;
        const panels = this.config.panels;
        if (target < 0 || target >= panels.length) return;
        [panels[index], panels[target]] = [panels[target], panels[index]];
        this.changed();
        this.render();
    }

    async replacePanel(index, panelConfig) {
        this.config.panels[index] = panelConfig;
        this.changed();
        await loadPanels([panelConfig.type]);
        this.render();
    }

    /** Grow the grid when the panels no longer fit. */
    fitGrid() {
        const grid = this.config.control.grid;
        while (grid.rows * grid.columns < this.config.panels.length) {
            if (grid.columns <= grid.rows) grid.columns += 1; else grid.rows += 1;
        }
    }

    setGrid(rows, columns) {
        this.config.control.grid = { rows: Math.max(1, rows | 0), columns: Math.max(1, columns | 0) };
        this.changed();
        this.render();
    }

    /** The layout document as saved: panels in their order, control from the feed. */
    document() {
        const control = this.config.control;
        control.range = { length: this.feed.length, to: this.feed.to };
        control.reload = this.feed.reload;
        return this.config;
    }

    /** Save as config/slowplot-NAME.json; asks before overwriting. Answers true when saved. */
    async save(name = this.name) {
        if (!name || !NAME_PATTERN.test(name)) {
            notify(`"${name}": a layout name has letters, digits, "_", "-" and "." only`, 'error');
            return false;
        }
        const file = `${this.fileType}-${name}.json`;
        const doc = this.document();
        doc.meta.name ??= name;
        const body = JSON.stringify(doc, null, 4);
        const post = (overwrite) => request(`./api/config/file/${file}${overwrite ? '?overwrite=yes' : ''}`, {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
        });
        try {
            let response = await post(this.name === name);
            if (response.status === 202) {
                if (!window.confirm(`${file} exists. Overwrite it?`)) return false;
                response = await post(true);
            }
            this.name = name;
            this.dirty = false;
            document.body.classList.remove('sd-dirty');
            notify(`saved ${file}`, 'ok');
            const url = new URL(window.location.href);
            url.search = `?config=${file}`;
            window.history.replaceState(null, '', url);
            return true;
        } catch (error) {
            notifyError(`saving ${file} failed`, error);
            return false;
        }
    }

    // -- dialogs ---------------------------------------------------------------------------

    async addPanelDialog() {
        await loadAllPanels();
        const types = addablePanels();
        let channels = [];
        try {
            channels = (await getJSON('./api/channels')) ?? [];
        } catch (error) {
            notifyError('the channel list could not be loaded', error);
        }
        const typeSelect = el('select', { name: 'type' },
            types.map(({ type, cls }) => el('option', { value: type }, cls.addable.label)));
        const filter = el('input', { type: 'search', placeholder: 'filter channels', name: 'filter' });
        const list = el('select', { name: 'channels', multiple: true, size: 12 },
            channels.map((c) => el('option', { value: c.name },
                c.type && c.type !== 'numeric' ? `${c.name} (${c.type})` : c.name)));
        filter.addEventListener('input', () => {
            const needle = filter.value.toLowerCase();
            for (const option of list.options) option.hidden = !option.value.toLowerCase().includes(needle);
        });
        const result = await dialog('Add a panel', [
            el('label', {}, 'Type ', typeSelect),
            el('label', {}, 'Channels ', filter), list,
        ], 'Add');
        if (!result) return;
        const type = typeSelect.value;
        const cls = types.find((t) => t.type === type)?.cls;
        const chosen = [...list.selectedOptions].map((o) => o.value);
        if (!cls) return;
        this.addPanel(cls.newConfig(type, chosen));
    }

    async configureDialog(index) {
        const panelConfig = this.config.panels[index];
        const text = el('textarea', { name: 'config', rows: 18, cols: 70, spellcheck: 'false' });
        text.value = JSON.stringify(panelConfig, null, 2);
        const title = el('input', { type: 'text', name: 'title', value: panelConfig.title ?? '' });
        const result = await dialog(`Configure panel ${index + 1} (${panelConfig.type})`, [
            el('label', {}, 'Title ', title), text,
        ], 'Apply', () => {
            try {
                const parsed = JSON.parse(text.value);
                if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || !parsed.type) {
                    return 'the panel config must be a JSON object with a "type"';
                }
            } catch (error) {
                return `not JSON: ${error.message}`;
            }
            return null;
        });
        if (!result) return;
        const parsed = JSON.parse(text.value);
        if (title.value !== (panelConfig.title ?? '')) parsed.title = title.value;
        this.replacePanel(index, parsed);
    }

    async gridDialog() {
        const { rows, columns } = this.config.control.grid;
        const r = el('input', { type: 'number', min: 1, max: 12, name: 'rows', value: rows });
        const c = el('input', { type: 'number', min: 1, max: 12, name: 'columns', value: columns });
        if (await dialog('Grid', [el('label', {}, 'Rows ', r), el('label', {}, 'Columns ', c)], 'Apply')) {
            this.setGrid(Number(r.value), Number(c.value));
        }
    }
}

/**
 * A modal dialog with `content` and OK/Cancel; `check()` may answer an error text that keeps
 * it open. Answers true on OK.
 */
export function dialog(title, content, okLabel = 'OK', check = () => null) {
    return new Promise((resolve) => {
        const error = el('div', { class: 'sd-dialog-error', role: 'alert' });
        const ok = el('button', { type: 'submit', value: 'ok', class: 'sd-primary' }, okLabel);
        const cancel = el('button', { type: 'button', value: 'cancel' }, 'Cancel');
        const form = el('form', { method: 'dialog' },
            el('h2', {}, title), el('div', { class: 'sd-dialog-content' }, content), error,
            el('div', { class: 'sd-dialog-buttons' }, cancel, ok));
        const box = el('dialog', { class: 'sd-dialog' }, form);
        let answered = false;
        const finish = (value) => {
            if (answered) return;
            answered = true;
            box.close();
            box.remove();
            resolve(value);
        };
        form.addEventListener('submit', (event) => {
            const problem = check();
            if (problem) {
                event.preventDefault();
                error.textContent = problem;
                return;
            }
            event.preventDefault();
            finish(true);
        });
        cancel.addEventListener('click', () => finish(false));
        box.addEventListener('cancel', () => finish(false));
        document.body.appendChild(box);
        box.showModal();
    });
}
