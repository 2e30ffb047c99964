// Panel types: each panel module registers its class here under the layout types it draws.
// Modules are loaded when a page needs their types (a layout of time-axis plots does not
// wait for the canvas code); a module that fails to load costs only its own types.

const classes = new Map();

/** Register `cls` (a Panel subclass) for the layout panel types `types`. */
export function registerPanel(types, cls) {
    for (const type of types) classes.set(type, cls);
}

/** The class drawing a panel type, or undefined. */
export function panelClass(type) { return classes.get(type); }

/** Registered classes that can be added from the "add panel" dialog: [{type, cls}]. */
export function addablePanels() {
    const seen = new Set(), list = [];
    for (const [type, cls] of classes) {
        if (seen.has(cls) || !cls.addable) continue;
        seen.add(cls);
        list.push({ type, cls });
    }
    return list;
}

// panel module -> the layout types it registers
const MODULES = {
    timeaxis: ['timeaxis', 'timeseries'],
    plot: ['plot'],
    table: ['table', 'tree'],
    singles: ['singles'],
    html: ['html'],
    canvas: ['canvas'],
    taskmanager: ['taskmanager'],
    channellist: ['channellist'],
    catalog: ['catalog'],
};
const loading = new Map();

function loadModule(name) {
    if (!loading.has(name)) {
        loading.set(name, import(`./${name}.mjs`).catch((error) => {
            console.error(`panel module ${name} did not load`, error);
        }));
    }
    return loading.get(name);
}

/** Load the modules drawing `types` (unknown types are left to the caller to report). */
export function loadPanels(types) {
    const wanted = new Set(types);
    const names = Object.keys(MODULES).filter((name) => MODULES[name].some((t) => wanted.has(t)));
    return Promise.all(names.map(loadModule));
}

/** Load every panel module (for the "add panel" dialog). */
export function loadAllPanels() {
    return Promise.all(Object.keys(MODULES).map(loadModule));
}
