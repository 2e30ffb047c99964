// HTML panels: a user's config/html-NAME.html shown in a panel, with the original's bindings.
//
// Layout config: {"type": "html", "file": NAME, "location": "project" | "system", "title",
// "reload": bool (load the file again at each reload interval), "scaling": number (0: fit)}.
//
// - sd-value="METRIC" shows a channel's value (transforms: ../transform.mjs); on an input or a
//   select it sets the value (checkbox/radio: checked), on a <form> it fills the inputs named
//   like the keys of a tree value; sd-enabled="METRIC" enables/disables by truthiness.
// - "Live" elements follow every new value; inputs, selects and forms are not live (they take
//   a value at load and after each submit) unless they have a non-empty sd-live attribute;
//   buttons are live. A live input's change is written back as current data {METRIC: value}.
// - <input type="submit" name="KEY"> POSTs {KEY: true, ...the form's named inputs} to
//   ./api/control (KEY "TASK.func()" calls a task function; "await ..." answers its result);
//   sd-confirm="question" asks first. <button> elements are not wired; form submission is
//   suppressed.
//
// The file is inserted with innerHTML, so <script> elements in it are NOT executed (and event
// handler attributes are the user's own risk, as in the original); <style> works.

import { Panel } from './base.mjs';
import { registerPanel } from './registry.mjs';
import { el, request, postJSON, notify, notifyError, ApiError } from '../api.mjs';
import { formatValue } from '../format.mjs';
import { parseMetric } from '../transform.mjs';



// ---------------------------------------------------------------------------------------
// commands (shared with the canvas panel)

/** The command key of a control document ("TASK.func()"), else its first key. */
export function commandName(doc) {
    const keys = Object.keys(doc);
    return keys.filter((k) => k.length > 2 && k.includes('(') && k.endsWith(')')).pop() ?? keys[0] ?? '';
}

/**
 * POST a command to ./api/control; answers the reply document. Throws ApiError with the
 * server's message on an HTTP error, on a reply {status: "error"} and on an empty reply
 * (nobody handled it).
 */
export async function sendCommand(doc) {
    const { status, content } = await postJSON('./api/control', doc);
    if (content === null || content === '') {
        throw new ApiError(status, `nobody handled the command (the function might not exist) (HTTP ${status})`);
    }
    if (content && typeof content === 'object'
        && String(content.status ?? '').toLowerCase() === 'error') {
        throw new ApiError(status, content.message || 'the command failed', content);
    }
    return content;
}

/**
 * Fetch new data after a command: now, and twice more shortly after, since a function called
 * without `await` is still running when the server answers.
 */
export function refreshAfterCommand(feed) {
    feed.refresh();
    for (const delay of [500, 2000]) setTimeout(() => feed.refresh(), delay);
}

/** The text shown when a command succeeded: its result for `await` calls. */
export function outcomeText(name, content) {
    if (content && typeof content === 'object' && 'result' in content) {
        return `${name}: returned ${JSON.stringify(content.result)}`;
    }
    return `${name}: done`;
}

// ---------------------------------------------------------------------------------------
// element values

const CONTROLS = new Set(['INPUT', 'SELECT', 'TEXTAREA']);
const NOT_SENT = new Set(['submit', 'button', 'reset', 'image', 'file']);

function inputType(element) {
    return (element.getAttribute('type') ?? '').toLowerCase();
}

function isButton(element) {
    return element.tagName === 'BUTTON'
        || (element.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(inputType(element)));
}

/** Live by default: anything that is not an input, select or form; buttons are live too. */
function isLive(element) {
    if (element.hasAttribute('sd-live')) return element.getAttribute('sd-live') !== '';
    if (isButton(element)) return true;
    return !(CONTROLS.has(element.tagName) || element.tagName === 'FORM');
}

function displayText(value) {
    return typeof value === 'string' ? value : formatValue(value);
}

/** Put `value` into an input/select/textarea. */
function setControl(element, value) {
    const type = inputType(element);
    if (element.tagName === 'INPUT' && (type === 'checkbox' || type === 'radio')) {
        element.checked = typeof value === 'boolean' || type === 'checkbox'
            ? Boolean(value) : String(value) === element.value;
        return;
    }
    if (isButton(element)) {
        element.value = displayText(value);
        return;
    }
    const text = displayText(value);
    if (element.value !== text) element.value = text;
}

/** The value a control holds, as written back or submitted; undefined: nothing to send. */
function controlValue(element, { forSubmit = false } = {}) {
    const type = inputType(element);
    if (element.tagName === 'INPUT') {
        if (type === 'checkbox') {
            const value = element.getAttribute('value');
            return element.checked ? (forSubmit && value ? value : true) : false;
        }
        if (type === 'radio') return element.checked ? element.value : undefined;
        if (type === 'number' || type === 'range') {
            const number = element.valueAsNumber;
            return Number.isNaN(number) ? null : number;
        }
    }
    return element.value;
}

// ---------------------------------------------------------------------------------------

export class HtmlPanel extends Panel {
    static addable = { label: 'HTML form (config/html-*.html)', channels: 'none' };

    static newConfig(type) {
        return { type: 'html', file: '', location: 'project', title: '' };
    }

    /** NAME of html-NAME[.html]: the config's file without the "html-" prefix. */
    fileName() {
        return String(this.config.file ?? '').trim().replace(/^html-/, '');
    }

    url() {
        const name = this.fileName();
        if (this.config.location === 'system') {
            return `./html-${encodeURIComponent(name)}${name.includes('.') ? '' : '.html'}`;
        }
        return `./api/config/content/html-${encodeURIComponent(name)}?content_type=html`;
    }

    title() {
        return this.config.title || this.fileName().replace(/\.(html|py)$/, '');
    }

    build() {
        this.bindings = [];
        this.busy = new Set();
        this.reported = new Set();
        this.loadedAt = 0;
        this.loading = null;
        this.content = el('div', { class: 'sd-html-content' });
        this.frame = el('div', { class: 'sd-html-frame' }, this.content);
        this.status = el('div', { class: 'sd-html-status', role: 'status', 'aria-live': 'polite' });
        this.root = el('div', { class: 'sd-html-panel' }, this.frame, this.status);
        this.body.replaceChildren(this.root);
        this.content.addEventListener('click', (event) => this.onClick(event));
        this.content.addEventListener('submit', (event) => event.preventDefault(), true);
        this.onPointerUp = () => { for (const b of this.bindings) b.holding = false; };
        window.addEventListener('pointerup', this.onPointerUp);
        window.addEventListener('pointercancel', this.onPointerUp);
        if (!this.fileName()) {
            this.message('no file: set "file" (html-NAME.html in config/) in this panel\'s configuration');
            return;
        }
        this.load();
    }

    destroy() {
        window.removeEventListener('pointerup', this.onPointerUp);
        window.removeEventListener('pointercancel', this.onPointerUp);
        this.bindings = [];
    }

    /** Fetch the file and render it; answers when done (also after a failure). */
    load() {
        this.loading ??= this.fetchAndRender().finally(() => { this.loading = null; });
        return this.loading;
    }

    async fetchAndRender() {
        const url = this.url();
        let html;
        try {
            html = await (await request(url)).text();
        } catch (error) {
            this.showLoadError(`html-${this.fileName()} could not be loaded: ${error.message}`);
            return;
        }
        this.loadedAt = Date.now();
        if (!html.trim()) {
            this.showLoadError(`html-${this.fileName()}: no such file in config/ (the server answered nothing)`);
            return;
        }
        this.render(html);
    }

    showLoadError(text) {
        this.bindings = [];
        this.content.replaceChildren(el('div', { class: 'sd-panel-message sd-error' }, text));
        this.body.dataset.loaded = 'error';
    }

    render(html) {
        // innerHTML: scripts in the user's file are not executed (see the top of this file)
        this.content.innerHTML = html;
        this.bindings = [];
        const problems = [];
        for (const attribute of ['sd-value', 'sd-enabled']) {
            for (const element of this.content.querySelectorAll(`[${attribute}]`)) {
                const metric = element.getAttribute(attribute);
                const binding = {
                    element, metric, kind: attribute, parsed: null, live: isLive(element),
                    waiting: true, shown: undefined, holding: false, editing: false, writtenAt: 0,
                };
                try {
                    binding.parsed = parseMetric(metric);
                } catch (error) {
                    element.classList.add('sd-metric-error');
                    element.title = error.message;
                    problems.push(error.message);
                }
                this.bindings.push(binding);
                if (binding.live && CONTROLS.has(element.tagName) && !isButton(element)) {
                    this.wireLive(binding);
                }
            }
        }
        const fresh = problems.filter((p) => !this.reported.has(p));
        if (fresh.length) {   // once per problem, not at every reload of the file
            for (const p of fresh) this.reported.add(p);
            notify(`html-${this.fileName()}: ${fresh.join('; ')}`, 'error');
        }
        this.body.dataset.loaded = 'true';
        this.body.dataset.bindings = String(this.bindings.length);
        this.fit();
        this.feed.refresh();    // the channels of the new bindings
        this.update(this.feed);
    }

    wireLive(binding) {
        const { element } = binding;
        element.addEventListener('pointerdown', () => { binding.holding = true; });
        element.addEventListener('input', () => { binding.editing = true; });
        element.addEventListener('change', () => {
            binding.editing = false;
            const value = controlValue(element);
            if (value === undefined || value === null) return;
            binding.shown = undefined;
            binding.writtenAt = Date.now() / 1000;
            this.feed.write(binding.metric, value).catch((error) => {
                notifyError(`writing ${binding.metric} failed`, error);
            });
        });
    }

    valueChannels() {
        const channels = new Set();
        for (const b of this.bindings ?? []) if (b.parsed) channels.add(b.parsed.channel);
        return [...channels];
    }

    update(feed) {
        if (this.config.reload && !this.loading && this.loadedAt
            && Date.now() - this.loadedAt >= feed.reload * 1000) {
            this.load();
            return;
        }
        for (const binding of this.bindings ?? []) {
            if (!binding.parsed || (!binding.live && !binding.waiting)) continue;
            if (binding.holding || binding.editing) continue;
            const latest = feed.latest(binding.parsed.channel);
            if (!latest) continue;
            // a value written here is on its way back: do not jump back to the older one
            if (binding.writtenAt && latest.t < binding.writtenAt
                && Date.now() / 1000 - binding.writtenAt < 3) continue;
            let value;
            try {
                value = binding.parsed.apply(latest.x);
            } catch (error) {
                console.warn(`${binding.metric}: ${error.message}`);
                continue;
            }
            binding.waiting = false;
            if (value === null || value === undefined) continue;
            this.apply(binding, value);
        }
    }

    apply(binding, value) {
        const { element } = binding;
        const key = typeof value === 'object' ? JSON.stringify(value) : `${typeof value}:${value}`;
        if (key === binding.shown && !CONTROLS.has(element.tagName)) return;
        binding.shown = key;
        if (binding.kind === 'sd-enabled') {
            const enabled = Boolean(value);
            if ('disabled' in element) element.disabled = !enabled;
            element.classList.toggle('sd-disabled', !enabled);
            element.setAttribute('aria-disabled', String(!enabled));
            return;
        }
        if (CONTROLS.has(element.tagName)) {
            setControl(element, value);
        } else if (element.tagName === 'FORM') {
            const tree = value && typeof value === 'object' ? (value.tree ?? null) : null;
            if (!tree || typeof tree !== 'object') return;
            for (const [name, item] of Object.entries(tree)) {
                for (const input of element.querySelectorAll(`[name="${CSS.escape(name)}"]`)) {
                    if (CONTROLS.has(input.tagName) && !isButton(input)) setControl(input, item);
                }
            }
        } else {
            element.textContent = displayText(value);
        }
    }

    // -- submit ---------------------------------------------------------------------------

    onClick(event) {
        const button = event.target.closest?.('input[type="submit" i]');
        if (!button || !this.content.contains(button)) return;
        event.preventDefault();
        this.submit(button);
    }

    /** The document a submit button sends: {NAME: true, named inputs of its form...}. */
    formDocument(button) {
        const doc = {};
        const name = button.getAttribute('name');
        if (name) doc[name] = true;
        const form = button.closest('form');
        const scope = form ?? this.content;
        for (const input of scope.querySelectorAll('input, select, textarea')) {
            if (!form && input.closest('form')) continue;   // without a form: the loose inputs
            const inputName = input.getAttribute('name');
            if (!inputName || input === button) continue;
            if (input.tagName === 'INPUT' && NOT_SENT.has(inputType(input))) continue;
            const value = controlValue(input, { forSubmit: true });
            if (value !== undefined) doc[inputName] = value;
        }
        return doc;
    }

    async submit(button) {
        if (this.busy.has(button) || button.disabled) return;
        const doc = this.formDocument(button);
        const label = commandName(doc) || button.value || 'submit';
        if (button.hasAttribute('sd-confirm')) {
            const question = button.getAttribute('sd-confirm') || `${label}?`;
            if (!window.confirm(question)) {
                this.showStatus(`${label}: cancelled`, 'info');
                return;
            }
        }
        this.busy.add(button);
        button.classList.add('sd-busy');
        button.setAttribute('aria-busy', 'true');
        this.showStatus(`${label}: sending…`, 'busy');
        try {
            const content = await sendCommand(doc);
            const text = outcomeText(label, content);
            this.showStatus(`✔ ${text}`, 'ok');
            notify(text, 'ok');
            for (const binding of this.bindings) binding.waiting = true;
            refreshAfterCommand(this.feed);
        } catch (error) {
            this.showStatus(`✖ ${label} failed: ${error.message}`, 'error');
            notifyError(`${label} failed`, error);
        } finally {
            this.busy.delete(button);
            button.classList.remove('sd-busy');
            button.removeAttribute('aria-busy');
        }
    }

    showStatus(text, kind) {
        this.status.textContent = text;
        this.status.dataset.kind = kind;
    }

    // -- size -----------------------------------------------------------------------------

    resize() { this.fit(); }

    /** config.scaling > 0: that zoom; otherwise shrink to fit the box (not below 0.6). */
    fit() {
        const content = this.content;
        if (!content || !this.frame.isConnected) return;
        content.style.transform = '';
        content.style.width = '';
        let scale = Number(this.config.scaling);
        if (!(scale > 0)) {
            const { clientWidth, clientHeight } = this.frame;
            const width = content.scrollWidth, height = content.scrollHeight;
            if (!clientWidth || !clientHeight || !width || !height) return;
            scale = Math.max(0.6, Math.min(1, clientWidth / width, clientHeight / height));
        }
        if (Math.abs(scale - 1) > 0.01) {
            content.style.transform = `scale(${scale})`;
            content.style.width = `${100 / scale}%`;
        }
    }
}

registerPanel(['html'], HtmlPanel);
