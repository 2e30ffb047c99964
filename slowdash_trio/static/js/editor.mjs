// The file editor (slowedit.html?filename=F): a config file or, when the project is secure
// (system.our_security_is_perfect), a task script; Save (Ctrl+S) writes it back through the
// config-file API, and for slowtask-NAME.py "Save and restart task" restarts the task.

import { el, getJSON, postJSON, postBody, request, loadProject, notify, notifyError } from './api.mjs';

const INDENT = '    ';

const params = new URLSearchParams(window.location.search);
const filename = params.get('filename') ?? '';
const taskName = /^slowtask-(.+)\.py$/.exec(filename)?.[1] ?? null;
const text = document.getElementById('sd-editor-text');
const status = document.getElementById('sd-editor-status');
let savedText = '';
let busy = false;

/** The line under the editor: what happened last (kind: info, ok, error). */
function setStatus(message, kind = 'info') {
    status.textContent = message;
    status.dataset.kind = kind;
}

function fileUrl() { return `./api/config/file/${encodeURIComponent(filename)}`; }

function isDirty() { return text.value !== savedText; }

function showDirty() {
    document.body.classList.toggle('sd-dirty', isDirty());
}

async function load() {
    try {
        const response = await request(fileUrl());
        text.value = await response.text();
        savedText = text.value;
        setStatus(`${filename} loaded`, 'info');
    } catch (error) {
        savedText = '';
        text.value = '';
        if (error.status === 404) {
            setStatus(`${filename} does not exist yet: saving creates it`, 'info');
        } else {
            setStatus(`${filename} could not be loaded: ${error.message}`, 'error');
            notifyError(`loading ${filename} failed`, error);
        }
    }
    text.disabled = false;
    showDirty();
    text.focus();
}

/** Write the text to config/; answers true when the server took it (201). */
async function save() {
    if (busy) return false;
    if (/\.json$/i.test(filename)) {
        try {
            JSON.parse(text.value);
        } catch (error) {
            if (!window.confirm(`This is not valid JSON (${error.message}). Save anyway?`)) return false;
        }
    }
    busy = true;
    const content = text.value;
    setStatus(`saving ${filename}…`, 'info');
    try {
        await postBody(`${fileUrl()}?overwrite=yes`, content, 'text/plain; charset=utf-8');
        savedText = content;
        showDirty();
        setStatus(`${filename} saved`, 'ok');
        notify(`saved ${filename}`, 'ok');
        return true;
    } catch (error) {
        setStatus(`saving ${filename} failed: ${error.message}`, 'error');
        notifyError(`saving ${filename} failed`, error);
        return false;
    } finally {
        busy = false;
    }
}

async function taskError() {
    try {
        const reply = await getJSON('./api/control/task?since=0');
        const task = (reply?.tasks ?? []).find((t) => t.name === taskName);
        return task?.error?.message || 'no error message recorded';
    } catch (error) {
        return `its error could not be read (${error.message})`;
    }
}

async function saveAndRestart() {
    if (!(await save())) return;
    busy = true;
    setStatus(`saved; restarting task ${taskName}…`, 'info');
    try {
        const { content } = await postJSON(`./api/control/task/${encodeURIComponent(taskName)}`, { action: 'start' });
        const state = content?.state ?? 'started';
        if (state === 'error') {
            const message = await taskError();
            setStatus(`saved; task ${taskName} failed to start: ${message}`, 'error');
            notify(`task ${taskName} failed to start: ${message}`, 'error');
        } else {
            setStatus(`saved; task ${taskName}: ${state}`, 'ok');
            notify(`task ${taskName}: ${state}`, 'ok');
        }
    } catch (error) {
        setStatus(`saved, but the restart of task ${taskName} failed: ${error.message}`, 'error');
        notifyError(`restarting task ${taskName} failed`, error);
    } finally {
        busy = false;
    }
}

// -- keys: Tab indents with spaces, Shift+Tab dedents, Escape lets the next Tab leave ------

function replaceRange(start, end, replacement, selectStart, selectEnd) {
    text.focus();
    text.setSelectionRange(start, end);
    // execCommand keeps the browser's undo history; setRangeText is the fallback
    if (!document.execCommand('insertText', false, replacement)) {
        text.setRangeText(replacement, start, end, 'end');
        text.dispatchEvent(new Event('input'));
    }
    if (selectStart !== undefined) text.setSelectionRange(selectStart, selectEnd);
}

function indent(outdent) {
    const { selectionStart: start, selectionEnd: end, value } = text;
    const multiline = value.slice(start, end).includes('\n');
    if (!outdent && !multiline) {
        replaceRange(start, end, INDENT);
        return;
    }
    const lineStart = value.lastIndexOf('\n', start - 1) + 1;
    const block = value.slice(lineStart, end);
    const lines = block.split('\n');
    const changed = lines.map((line) => (outdent ? line.replace(/^ {1,4}/, '') : INDENT + line));
    const replacement = changed.join('\n');
    if (replacement === block) return;
    const firstShift = changed[0].length - lines[0].length;
    replaceRange(lineStart, end, replacement,
        Math.max(lineStart, start + firstShift), lineStart + replacement.length);
}

let tabLeaves = false;
text.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') { tabLeaves = true; return; }
    if (event.key === 'Tab' && !tabLeaves && !event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        indent(event.shiftKey);
        return;
    }
    tabLeaves = false;
});
text.addEventListener('input', showDirty);

document.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === 's') {
        event.preventDefault();
        save();
    }
});

window.addEventListener('beforeunload', (event) => {
    if (isDirty()) event.preventDefault();
});

async function main() {
    const header = document.getElementById('sd-header');
    const { project, title: projectTitle } = await loadProject();
    document.title = `${filename || 'editor'} - ${projectTitle}`;
    const saveButton = el('button', { type: 'button', id: 'sd-editor-save', title: 'save (Ctrl+S)' }, 'Save');
    saveButton.addEventListener('click', () => save());
    const restart = taskName
        ? el('button', { type: 'button', id: 'sd-editor-restart', title: `save, then load the script afresh and start task ${taskName}` }, 'Save and restart task')
        : null;
    restart?.addEventListener('click', () => saveAndRestart());
    header.replaceChildren(
        el('a', { href: './', class: 'sd-home', title: `${projectTitle}: home` }, '⌂'),
        el('h1', { id: 'sd-title' }, filename || 'no file'),
        el('span', { class: 'sd-editor-tools' },
            project.is_secure || !/\.py$/i.test(filename) ? null
                : el('span', { class: 'sd-editor-warning', title: 'system.our_security_is_perfect is false' }, 'not in secure mode: the server refuses to save scripts'),
            saveButton, restart));
    if (!filename) {
        setStatus('no file given: open slowedit.html?filename=NAME', 'error');
        saveButton.disabled = true;
        return;
    }
    await load();
    window.sdEditor = { filename, taskName, save, saveAndRestart, isDirty };   // for the tests
}

main();
