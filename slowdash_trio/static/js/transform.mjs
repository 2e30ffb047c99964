// Metrics: a channel and a chain of transforms applied to its latest value, as HTML bindings
// (sd-value="CHANNEL[PATH]->f()->g()") and singles panels write them.
//
//   run_status['running']->invert()      channel run_status, then get('running'), invert()
//   psu.V0->scale(1000)->format('%.1f mV')
//
// Functors: offset(x), scale(x), format(spec), match(regex[, if_true, if_false]),
// replace(a, b), eq(v), gt(v), invert(), default(v), last(), get(column | 'tree/path').
// Arguments: quoted strings ('...' or "..."), true, false, null, NaN, numbers; a bare word is
// taken as a string (as `status[running]` is). Scalar functors apply element by element to
// arrays (a table column from get()). Bad syntax throws a MetricError naming the problem.

import { format } from './format.mjs';

export class MetricError extends Error {
    constructor(metric, problem) {
        super(`metric "${metric}": ${problem}`);
        this.name = 'MetricError';
        this.metric = metric;
    }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?Infinity$|^0[xX][0-9a-fA-F]+$/;
const BARE = /^[A-Za-z0-9_./:-]+$/;

const isNull = (v) => v === null || v === undefined;
const numeric = (v) => typeof v === 'number' || (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)));

/** Loose equality of two values as users mean it: 1 == '1', true == 'true'. */
export function sameValue(a, b) {
    if (a === b) return true;
    if (isNull(a) || isNull(b)) return false;
    if (typeof a !== 'object' && typeof b !== 'object') {
        if (numeric(a) && numeric(b)) return Number(a) === Number(b);
        return String(a) === String(b);
    }
    return false;
}

function elementwise(fn) {
    return (value) => (Array.isArray(value) ? value.map((v) => fn(v)) : fn(value));
}

function lookup(value, key) {
    if (isNull(value) || isNull(key)) return null;
    if (typeof value === 'object' && Array.isArray(value.table)) {
        let column = key;
        if (typeof key === 'string' && !numeric(key)) {
            column = (value.columns ?? []).indexOf(key);
            if (column < 0) return null;
        }
        return value.table.map((row) => (Array.isArray(row) ? row[Number(column)] ?? null : null));
    }
    let node = value && typeof value === 'object' && value.tree && typeof value.tree === 'object'
        ? value.tree : value;
    const path = typeof key === 'string' ? key.split('/').filter((p) => p !== '') : [key];
    for (const part of path) {
        if (isNull(node) || typeof node !== 'object') return null;
        node = Array.isArray(node) ? node[Number(part)] : node[part];
    }
    return isNull(node) ? null : node;
}

// name -> [minimum args, maximum args, (args) => (value) => result]
const FUNCTORS = {
    offset: [1, 1, ([x]) => elementwise((v) => (isNull(v) ? null : Number(v) + Number(x)))],
    scale: [1, 1, ([x]) => elementwise((v) => (isNull(v) ? null : Number(v) * Number(x)))],
    format: [1, 1, ([spec]) => elementwise((v) => (isNull(v) ? null : format(String(spec), v)))],
    match: [1, 3, ([pattern, yes = true, no = false], metric) => {
        let regex;
        try {
            regex = new RegExp(String(pattern));
        } catch (error) {
            throw new MetricError(metric, `match(): bad regular expression: ${error.message}`);
        }
        return elementwise((v) => (isNull(v) ? null : (regex.test(String(v)) ? yes : no)));
    }],
    replace: [2, 2, ([a, b]) => elementwise((v) => (sameValue(v, a) ? b : v))],
    eq: [1, 1, ([x]) => elementwise((v) => (isNull(v) || isNull(x) ? null : sameValue(v, x)))],
    gt: [1, 1, ([x]) => elementwise((v) => {
        if (isNull(v) || isNull(x)) return null;
        return numeric(v) && numeric(x) ? Number(v) > Number(x) : String(v) > String(x);
    })],
    invert: [0, 0, () => elementwise((v) => (isNull(v) ? null : !v))],
    default: [1, 1, ([x]) => elementwise((v) => (isNull(v) ? x : v))],
    last: [0, 0, () => (v) => (Array.isArray(v) ? (v.length ? v[v.length - 1] : null) : v)],
    get: [1, 1, ([key]) => (v) => lookup(v, key)],
};

/** The functor names a metric may use. */
export const functorNames = Object.freeze(Object.keys(FUNCTORS));

/**
 * Split `text` at `separator` outside quotes and brackets. Answers the pieces; throws on an
 * unclosed quote or bracket.
 */
function splitOutside(text, separator, metric) {
    const pieces = [];
    let depth = 0, quote = null, start = 0;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quote) {
            if (c === '\\') i += 1;
            else if (c === quote) quote = null;
            continue;
        }
        if (c === '"' || c === "'") quote = c;
        else if (c === '(' || c === '[') depth += 1;
        else if (c === ')' || c === ']') {
            depth -= 1;
            if (depth < 0) throw new MetricError(metric, `unexpected "${c}"`);
        } else if (depth === 0 && text.startsWith(separator, i)) {
            pieces.push(text.slice(start, i));
            start = i + separator.length;
            i = start - 1;
        }
    }
    if (quote) throw new MetricError(metric, `unclosed ${quote} quote`);
    if (depth > 0) throw new MetricError(metric, 'unclosed bracket or parenthesis');
    pieces.push(text.slice(start));
    return pieces;
}

/** One argument: a quoted string, true/false/null/NaN, a number, or a bare word. */
function parseArgument(text, metric) {
    const t = text.trim();
    if (t === '') throw new MetricError(metric, 'empty argument');
    const q = t[0];
    if (q === '"' || q === "'") {
        if (t.length < 2 || t[t.length - 1] !== q) {
            throw new MetricError(metric, `bad quoted argument ${t}`);
        }
        return t.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    if (t === 'true') return true;
    if (t === 'false') return false;
    if (t === 'null') return null;
    if (t === 'NaN') return NaN;
    if (NUMBER.test(t)) return Number(t);
    if (BARE.test(t)) return t;
    throw new MetricError(metric, `bad argument ${t} (quote strings: '...')`);
}

function parseArguments(text, metric) {
    if (text.trim() === '') return [];
    return splitOutside(text, ',', metric).map((a) => parseArgument(a, metric));
}

function parseFunctor(text, metric) {
    const t = text.trim();
    const open = t.indexOf('(');
    if (open < 0 || !t.endsWith(')')) {
        throw new MetricError(metric, `"${t}" is not a function call like name(...)`);
    }
    const name = t.slice(0, open).trim();
    if (!NAME.test(name)) throw new MetricError(metric, `bad function name "${name}"`);
    const spec = Object.hasOwn(FUNCTORS, name) ? FUNCTORS[name] : null;
    if (!spec) {
        throw new MetricError(metric, `unknown function ${name}() (known: ${functorNames.join(', ')})`);
    }
    const args = parseArguments(t.slice(open + 1, -1), metric);
    const [min, max, make] = spec;
    if (args.length < min || args.length > max) {
        const wanted = min === max ? `${min}` : `${min} to ${max}`;
        throw new MetricError(metric, `${name}() takes ${wanted} argument${max === 1 ? '' : 's'}, not ${args.length}`);
    }
    return { name, args, fn: make(args, metric) };
}

/**
 * Parse a metric `CHANNEL[PATH]->f()->g()`. Answers {channel, functors: [{name, args}],
 * apply(value)}; throws MetricError on bad syntax.
 */
export function parseMetric(text) {
    const metric = String(text ?? '');
    const parts = splitOutside(metric, '->', metric);
    let head = parts[0].trim();
    const functors = [];
    const bracket = head.indexOf('[');
    if (bracket >= 0) {
        if (!head.endsWith(']')) throw new MetricError(metric, `text after "]" in "${head}"`);
        const inner = head.slice(bracket + 1, -1);
        head = head.slice(0, bracket).trim();
        const args = parseArguments(inner, metric);
        if (args.length !== 1) throw new MetricError(metric, '[...] takes one key or path');
        functors.push({ name: 'get', args, fn: FUNCTORS.get[2](args, metric) });
    }
    if (!head) throw new MetricError(metric, 'no channel name');
    if (/[\s()'"]/.test(head)) throw new MetricError(metric, `bad channel name "${head}"`);
    for (const piece of parts.slice(1)) functors.push(parseFunctor(piece, metric));
    const chain = functors.map((f) => f.fn);
    return {
        channel: head,
        functors: functors.map(({ name, args }) => ({ name, args })),
        apply(value) {
            let result = value;
            for (const fn of chain) result = fn(result);
            return result;
        },
    };
}

/** The channel of a metric, or null when it does not parse (for channel lists). */
export function metricChannel(text) {
    try {
        return parseMetric(text).channel;
    } catch {
        return null;
    }
}
