// The server's web API, seen from the browser: JSON requests with the server's own error
// messages, and notices that show them to the user.
//
// Every path is relative ("./api/..."), so a page served under a reverse-proxy prefix works.

/** A request the server refused or could not answer; `message` is the server's own text. */
export class ApiError extends Error {
    constructor(status, message, body = null) {
        super(message);
        this.name = 'ApiError';
        this.status = status;
        this.body = body;
    }
}

async function errorOf(response) {
    let body = null, message = '';
    const text = await response.text().catch(() => '');
    try {
        body = JSON.parse(text);
        if (body && typeof body === 'object' && typeof body.message === 'string') {
            message = body.message;
        }
    } catch { /* not JSON */ }
    if (!message) message = text.trim().slice(0, 300) || response.statusText || 'request failed';
    return new ApiError(response.status, `${message} (HTTP ${response.status})`, body);
}

/** fetch() that turns network failures and HTTP errors into ApiError. */
export async function request(path, options = {}) {
    let response;
    try {
        response = await fetch(path, { cache: 'no-store', ...options });
    } catch (error) {
        if (error.name === 'AbortError') throw error;
        throw new ApiError(0, `the server cannot be reached (${error.message})`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
}

/** GET (or another method) answering JSON; an empty body answers null. */
export async function getJSON(path, options = {}) {
    const response = await request(path, options);
    const text = await response.text();
    if (!text) return null;
    try {
        return JSON.parse(text);
    } catch {
        throw new ApiError(response.status, `the server's answer to ${path} is not JSON`);
    }
}

/** POST a JSON document; answers the parsed reply (or null) and the HTTP status. */
export async function postJSON(path, document, options = {}) {
    const response = await request(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(document),
        ...options,
    });
    const text = await response.text();
    let content = null;
    try { content = text ? JSON.parse(text) : null; } catch { content = text; }
    return { status: response.status, content };
}

/** POST raw text or bytes (config files). */
export async function postBody(path, body, contentType = 'application/octet-stream') {
    const response = await request(path, {
        method: 'POST', headers: { 'Content-Type': contentType }, body,
    });
    return { status: response.status, text: await response.text() };
}

// ---------------------------------------------------------------------------------------
// notices: errors and confirmations shown to the user

function noticeBox() {
    let box = document.getElementById('sd-notices');
    if (!box) {
        box = document.createElement('div');
        box.id = 'sd-notices';
        box.setAttribute('role', 'status');
        box.setAttribute('aria-live', 'polite');
        document.body.appendChild(box);
    }
    return box;
}

/**
 * Show a message to the user. kind: 'error' (stays until dismissed), 'ok', 'info'
 * (disappear after a few seconds).
 */
export function notify(message, kind = 'info') {
    const box = noticeBox();
    const note = document.createElement('div');
    note.className = `sd-notice sd-notice-${kind}`;
    const text = document.createElement('span');
    text.className = 'sd-notice-text';
    text.textContent = message;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'sd-notice-close';
    close.title = 'dismiss';
    close.textContent = '×';
    close.addEventListener('click', () => note.remove());
    note.append(text, close);
    box.appendChild(note);
    while (box.children.length > 8) box.firstElementChild.remove();
    if (kind !== 'error') setTimeout(() => note.remove(), kind === 'ok' ? 3000 : 5000);
    if (kind === 'error') console.warn(message);
    return note;
}

/** Show an error's message (the server's, for ApiError) with a prefix saying what failed. */
export function notifyError(what, error) {
    const message = error instanceof Error ? error.message : String(error);
    return notify(what ? `${what}: ${message}` : message, 'error');
}

// ---------------------------------------------------------------------------------------
// project configuration, loaded once per page

let configPromise = null;

/** /api/config, fetched once; theme and title applied to the page. */
export function projectConfig() {
    if (!configPromise) {
        configPromise = getJSON('./api/config').then((config) => {
            applyStyle(config?.style ?? {});
            return config ?? {};
        });
    }
    return configPromise;
}

/**
 * What a page needs of the project: /api/config (`{}` when it cannot be loaded: the failure
 * is shown, not thrown) and the title to show.
 */
export async function loadProject() {
    let config = {};
    try {
        config = await projectConfig();
    } catch (error) {
        notifyError('the project configuration could not be loaded', error);
    }
    const project = config.project ?? {};
    return { config, project, title: project.title || project.name || 'SlowDash' };
}

/** Theme (`style.theme`: light | dark) and title colours from the project's style. */
export function applyStyle(style) {
    const root = document.documentElement;
    const theme = style.theme === 'dark' ? 'dark' : 'light';
    root.dataset.theme = theme;
    const title = style.title ?? {};
    if (title.color) root.style.setProperty('--sd-title-color', title.color);
    if (title.background) root.style.setProperty('--sd-title-background', title.background);
    const panel = style.panel ?? {};
    const vars = {
        plotBackgroundColor: '--sd-plot-background',
        plotMarginColor: '--sd-plot-margin',
        plotFrameColor: '--sd-plot-frame',
        plotLabelColor: '--sd-plot-label',
        plotGridColor: '--sd-plot-grid',
    };
    for (const [key, name] of Object.entries(vars)) {
        if (panel[key]) root.style.setProperty(name, panel[key]);
    }
    return theme;
}

/** A CSS custom property's value, for canvas drawing. */
export function cssVar(name, fallback = '') {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
}

/** Create an element: el('div', {class: 'x', title: 't'}, child, 'text', ...). */
export function el(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes ?? {})) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'class') element.className = value;
        else if (key === 'style' && typeof value === 'object') Object.assign(element.style, value);
        else if (key.startsWith('on') && typeof value === 'function') {
            element.addEventListener(key.slice(2), value);
        } else if (key === 'text') element.textContent = value;
        else element.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
        if (child === null || child === undefined || child === false) continue;
        element.append(child instanceof Node ? child : String(child));
    }
    return element;
}
