// The task manager: one row per task (state, last error, busy call, device links, restarts),
// Start / Stop / Reload, and "Rescan" for new config/slowtask-*.py files. It follows
// /api/control/task with a long poll (?since=REV), so a change made anywhere (a device link
// going down included) shows at once.

import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { el, getJSON, postJSON, projectConfig, notify, notifyError } from '../api.mjs';
import { formatTime } from '../format.mjs';

const RUNNING = new Set(['running', 'loading', 'restarting']);
const LINK_TROUBLE = new Set(['down', 'stalled', 'closed']);
const RETRY_MIN = 1, RETRY_MAX = 10;   // seconds between attempts while the server is away

function pause(seconds, signal) {
    return new Promise((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    });
}

/** The recorded error message of a task (for a start that ended in "error"). */
export async function taskError(name) {
    try {
        const reply = await getJSON('./api/control/task?since=0');
        const task = (reply?.tasks ?? []).find((t) => t.name === name);
        return task?.error?.message || 'no error message recorded';
    } catch (error) {
        return `its error could not be read (${error.message})`;
    }
}

/** How many of `links` (a module's or task's device links) are not working. */
export function linksInTrouble(links) {
    return Array.isArray(links) ? links.filter((link) => LINK_TROUBLE.has(String(link?.state))).length : 0;
}

/** The device links of a module or task, one line each; a link down or stalled stands out
 * with its error and since when. Null when there are none. */
export function linkList(links) {
    if (!Array.isArray(links) || !links.length) return null;
    return el('ul', { class: 'sd-links' }, links.map((link) => {
        const state = String(link?.state ?? 'unknown');
        const address = String(link?.address ?? '?');
        const trouble = LINK_TROUBLE.has(state);
        const since = Number(link?.since) ? ` since ${formatTime(Number(link.since), { date: false })}` : '';
        return el('li', { class: 'sd-link', 'data-state': state, 'data-address': address, title: `device link ${address}: ${state}${since}` },
            el('span', { class: 'sd-link-label' }, 'link '),
            el('span', { class: 'sd-link-address' }, address), ' ',
            el('span', { class: 'sd-state sd-link-state', 'data-state': state }, state),
            trouble ? el('span', { class: 'sd-link-error' }, `${since}${link?.last_error ? `: ${link.last_error}` : ''}`) : null);
    }));
}

/** A line about restarts (`restart` of a module's or task's status), or null. */
export function restartNote(state, restart) {
    if (!restart || typeof restart !== 'object') return null;
    const limit = `${restart.restarts ?? 0} of ${restart.max_restarts ?? '?'} restarts within ${restart.window ?? '?'} s`;
    if (state === 'restarting' && Number(restart.next_attempt)) {
        return el('div', { class: 'sd-restart', 'data-restart': 'waiting' },
            `crashed; restart at ${formatTime(Number(restart.next_attempt), { date: false })} (${limit})`);
    }
    if (restart.gave_up && state === 'error') {
        return el('div', { class: 'sd-restart sd-error', 'data-restart': 'gave-up' },
            `crashed again after ${limit}: not restarted`);
    }
    if (restart.total) {
        return el('div', { class: 'sd-restart', 'data-restart': 'restarted' },
            `restarted ${restart.total} time${restart.total > 1 ? 's' : ''} (${limit})`);
    }
    return null;
}

export class TaskManagerPanel extends Panel {
    static addable = { label: 'Task manager', channels: 'none' };

    static newConfig(type) { return { type, title: 'Tasks' }; }

    build() {
        this.aborter = new AbortController();
        this.pending = new Set();     // tasks with a request in flight
        this.opened = new Set();      // tasks whose traceback is unfolded
        this.tasks = [];
        this.secure = false;
        this.problem = el('div', { class: 'sd-task-problem sd-error', role: 'alert', hidden: true });
        this.table = el('div', { class: 'sd-task-list' },
            el('div', { class: 'sd-panel-message' }, 'loading the task list…'));
        const rescan = el('button', { type: 'button', class: 'sd-task-rescan', title: 'look for new config/slowtask-*.py files' }, 'Rescan');
        rescan.addEventListener('click', () => this.rescan(rescan));
        this.body.replaceChildren(el('div', { class: 'sd-tasks' },
            el('div', { class: 'sd-toolbar' }, el('span', { class: 'sd-spacer' }), rescan),
            this.problem, this.table));
        projectConfig().then((config) => {
            this.secure = !!config.project?.is_secure;
            this.render();
        }, () => {});
        this.follow();
    }

    title() { return this.config.title ?? 'Tasks'; }

    destroy() { this.aborter.abort(); }

    /** The long poll: at once the first time, then whenever the revision moves. */
    async follow() {
        const signal = this.aborter.signal;
        let since = 0, failures = 0;
        while (!signal.aborted) {
            try {
                const reply = await getJSON(`./api/control/task?since=${since}`, { signal });
                failures = 0;
                this.problem.hidden = true;
                const revision = Number(reply?.revision) || 0;
                this.tasks = Array.isArray(reply?.tasks) ? reply.tasks : [];
                this.render();
                // a server that answers at once without a new revision is not hammered
                if (revision <= since) await pause(RETRY_MIN, signal);
                since = revision;
            } catch (error) {
                if (signal.aborted || error.name === 'AbortError') return;
                failures += 1;
                this.problem.textContent = `the task list could not be loaded: ${error.message}`;
                this.problem.hidden = false;
                this.body.dataset.state = 'error';
                since = 0;   // a restarted server counts its revisions afresh
                await pause(Math.min(RETRY_MAX, RETRY_MIN * 2 ** (failures - 1)), signal);
            }
        }
    }

    render() {
        this.body.dataset.state = 'ready';
        if (!this.tasks.length) {
            this.table.replaceChildren(el('div', { class: 'sd-panel-message' },
                'No tasks: put a script in config/slowtask-NAME.py and press Rescan.'));
            return;
        }
        const rows = [];
        for (const task of this.tasks) rows.push(...this.rowsOf(task));
        this.table.replaceChildren(el('table', {},
            el('thead', {}, el('tr', {},
                el('th', {}, 'Task'), el('th', {}, 'State'), el('th', {}, 'Activity'), el('th', {}, ''))),
            el('tbody', {}, rows)));
    }

    rowsOf(task) {
        const name = String(task.name);
        const state = String(task.state ?? (task.is_stopped ? 'stopped' : 'listed'));
        const busy = this.pending.has(name);
        const running = RUNNING.has(state);
        // a task in error after a crash without restart policy still serves (and can be stopped)
        const live = running || Boolean(task.is_serving);
        const button = (label, action, enabled, title) => el('button', {
            type: 'button', class: `sd-task-${label.toLowerCase()}`, title,
            disabled: busy || !enabled, onclick: () => this.act(name, action, label),
        }, label);
        const activity = [];
        const restart = restartNote(state, task.restart);
        if (restart) activity.push(restart);
        const links = linkList(task.links);
        if (links) activity.push(links);
        if (task.busy) activity.push(el('div', { class: 'sd-task-busy' }, `busy: ${task.busy}`));
        if (task.last_command) {
            activity.push(el('div', { class: 'sd-task-last' },
                `last call: ${task.last_command}`,
                task.last_command_time ? ` at ${formatTime(task.last_command_time, { date: false })}` : ''));
        }
        const exports = Array.isArray(task.exports) ? task.exports : [];
        if (exports.length && live) {
            activity.push(el('div', { class: 'sd-task-exports' }, `${exports.length} channel${exports.length > 1 ? 's' : ''}: `,
                exports.slice(0, 8).flatMap((ch, i) => [i ? ', ' : '',
                    el('a', { href: `slowplot.html?channel=${encodeURIComponent(ch)}` }, ch)]),
                exports.length > 8 ? ', …' : ''));
        }
        const edit = this.secure
            ? el('a', { href: `slowedit.html?filename=${encodeURIComponent(`slowtask-${name}.py`)}`, class: 'sd-task-edit', title: `edit slowtask-${name}.py` }, 'Edit')
            : null;
        const troubled = linksInTrouble(task.links);
        const row = el('tr', { class: 'sd-task', 'data-task': name, 'data-state': state, 'data-links': troubled ? 'trouble' : 'ok' },
            el('td', { class: 'sd-task-name' }, name,
                task.auto_load ? el('span', { class: 'sd-task-auto', title: 'started with the server (auto_load)' }, 'auto') : null),
            el('td', {}, el('span', { class: 'sd-task-state', 'data-state': state }, busy ? `${state}…` : state)),
            el('td', { class: 'sd-task-activity' }, activity),
            el('td', { class: 'sd-task-actions' },
                button('Start', 'start', !running && state !== 'stopping', 'load the script and start the task'),
                button('Stop', 'stop', live, 'stop the task'),
                button('Reload', 'start', running || state === 'error', 'stop, load the script afresh and start'),
                edit));
        const rows = [row];
        const error = task.error;
        if (error && (error.message || task.has_error)) {
            const details = el('details', { class: 'sd-task-error', open: this.opened.has(name) },
                el('summary', {},
                    error.callback ? el('span', { class: 'sd-task-error-where' }, `${error.callback}: `) : null,
                    el('span', { class: 'sd-task-error-message' }, error.message || 'error'),
                    error.time ? el('span', { class: 'sd-task-error-time' }, ` (${formatTime(error.time)})`) : null),
                el('pre', { class: 'sd-task-traceback' }, error.traceback || 'no traceback'));
            details.addEventListener('toggle', () => {
                if (details.open) this.opened.add(name); else this.opened.delete(name);
            });
            rows.push(el('tr', { class: 'sd-task-error-row', 'data-task': name },
                el('td', { colspan: 4 }, details)));
        }
        return rows;
    }

    async act(name, action, label) {
        this.pending.add(name);
        this.render();
        try {
            const { content } = await postJSON(`./api/control/task/${encodeURIComponent(name)}`, { action });
            const state = content?.state;
            if (state === 'error') {
                notify(`task ${name} failed to start: ${await taskError(name)}`, 'error');
            } else {
                notify(`task ${name}: ${state ?? 'ok'}`, 'ok');
            }
        } catch (error) {
            notifyError(`${label} of task ${name} failed`, error);
        } finally {
            this.pending.delete(name);
            this.render();
        }
    }

    async rescan(button) {
        button.disabled = true;
        try {
            const { content } = await postJSON('./api/update/tasklist', {});
            const added = Array.isArray(content?.added) ? content.added : [];
            notify(added.length ? `new tasks: ${added.join(', ')}` : 'no new task scripts', 'ok');
        } catch (error) {
            notifyError('the task rescan failed', error);
        } finally {
            button.disabled = false;
        }
    }
}

registerPanel(['taskmanager'], TaskManagerPanel);
