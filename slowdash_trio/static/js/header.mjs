// The bar at the top of layout pages: title, time range (length, back/forward, now or a
// fixed end, reload interval), the connection status, and the editing buttons.

import { el } from './api.mjs';
import { STATUS } from './feed.mjs';
import { formatTime, formatDuration } from './format.mjs';

const LENGTHS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
    7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 365 * 86400];
const RELOADS = [1, 2, 5, 10, 30, 60, 300, 900];

function lengthOptions(current) {
    const lengths = LENGTHS.includes(current) ? LENGTHS : [...LENGTHS, current].sort((a, b) => a - b);
    return lengths.map((s) => el('option', { value: s, selected: s === current }, formatDuration(s)));
}

function localInput(seconds) {
    const d = new Date(seconds * 1000);
    const two = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Build the header for `layout` into `header` (the layout's title, else the project's). */
export function buildHeader(header, layout, { title = '', projectTitle = '' } = {}) {
    const feed = layout.feed;
    const length = el('select', { id: 'sd-length', title: 'time window' });
    const to = el('input', { type: 'datetime-local', id: 'sd-to', step: 1, title: 'end of the window' });
    const now = el('button', { type: 'button', id: 'sd-now', title: 'follow the present time' }, 'Now');
    const back = el('button', { type: 'button', id: 'sd-back', title: 'earlier' }, '◀');
    const forward = el('button', { type: 'button', id: 'sd-forward', title: 'later' }, '▶');
    const reload = el('select', { id: 'sd-reload', title: 'reload interval' },
        RELOADS.map((s) => el('option', { value: s }, `↻ ${formatDuration(s)}`)));
    const status = el('span', { id: 'sd-status', class: 'sd-status', role: 'status' });

    const sync = () => {
        length.replaceChildren(...lengthOptions(feed.length));
        length.value = String(feed.length);
        to.value = localInput(feed.window().to);
        to.disabled = false;
        now.classList.toggle('sd-active', feed.live);
        if (![...reload.options].some((o) => Number(o.value) === feed.reload)) {
            reload.appendChild(el('option', { value: feed.reload }, `↻ ${formatDuration(feed.reload)}`));
        }
        reload.value = String(feed.reload);
    };
    length.addEventListener('change', () => { feed.setRange({ length: Number(length.value) }); layout.changed(); });
    to.addEventListener('change', () => {
        const t = new Date(to.value).getTime() / 1000;
        if (Number.isFinite(t)) feed.setRange({ to: t });
    });
    now.addEventListener('click', () => feed.setRange({ to: 0 }));
    const shift = (sign) => {
        const end = feed.window().to + sign * feed.length / 2;
        feed.setRange({ to: end >= Date.now() / 1000 ? 0 : end });
    };
    back.addEventListener('click', () => shift(-1));
    forward.addEventListener('click', () => shift(1));
    reload.addEventListener('change', () => { feed.setReload(Number(reload.value)); layout.changed(); });
    feed.addEventListener('range', sync);

    const showStatus = () => {
        let text = feed.status, kind = feed.status;
        if (feed.status === STATUS.DISCONNECTED) {
            text = 'disconnected: retrying';
        } else if (feed.isStale()) {
            text = `stale: last update ${formatTime(feed.lastUpdate, { date: false })}`;
            kind = 'stale';
        } else if (feed.status === STATUS.PAUSED) {
            text = `until ${formatTime(feed.window().to)}`;
        }
        status.textContent = text;
        status.dataset.state = kind.replace(' ', '-');
        status.title = feed.lastError ? String(feed.lastError.message) : '';
        if (feed.live && document.activeElement !== to) to.value = localInput(feed.window().to);
    };
    feed.addEventListener('status', showStatus);
    setInterval(showStatus, 1000);   // staleness and the live end time (not on every frame)

    const edit = el('button', { type: 'button', id: 'sd-edit', title: 'add, move, configure panels' }, 'Edit');
    const add = el('button', { type: 'button', id: 'sd-add', class: 'sd-edit-only' }, '+ Panel');
    const grid = el('button', { type: 'button', id: 'sd-grid', class: 'sd-edit-only' }, 'Grid');
    const save = el('button', { type: 'button', id: 'sd-save', class: 'sd-edit-only' }, 'Save');
    const saveAs = el('button', { type: 'button', id: 'sd-save-as', class: 'sd-edit-only' }, 'Save as…');
    edit.addEventListener('click', () => {
        layout.setEditing(!layout.editing);
        edit.classList.toggle('sd-active', layout.editing);
    });
    add.addEventListener('click', () => layout.addPanelDialog());
    grid.addEventListener('click', () => layout.gridDialog());
    const askName = () => {
        const name = window.prompt('Save the layout as (a name: letters, digits, _ - .)', layout.name ?? '');
        return name === null ? null : name.trim();
    };
    save.addEventListener('click', () => {
        const name = layout.name ?? askName();
        if (name) layout.save(name);
    });
    saveAs.addEventListener('click', () => {
        const name = askName();
        if (name) layout.save(name);
    });

    header.replaceChildren(
        el('a', { href: './', class: 'sd-home', title: `${projectTitle}: home` }, '⌂'),
        el('h1', { id: 'sd-title' }, title || projectTitle),
        el('span', { class: 'sd-range' }, back, length, forward, to, now, reload),
        status,
        el('span', { class: 'sd-edit-tools' }, edit, add, grid, save, saveAs),
    );
    sync();
    showStatus();
}
