// Number and time formatting: the printf subset that layouts use ("%.2f", "%d s", "%5.3e",
// "%g", "%s", "%x", "%%"), and times as the dashboard shows them.

const SPEC = /%([-+ 0#]*)(\d+)?(?:\.(\d+))?([dioufFeEgGxXs%])/g;

function pad(text, width, flags) {
    if (!width || text.length >= width) return text;
    if (flags.includes('-')) return text.padEnd(width);
    if (flags.includes('0') && /^[-+ ]?[\d.]/.test(text)) {
        const sign = /^[-+ ]/.test(text) ? text[0] : '';
        return sign + text.slice(sign.length).padStart(width - sign.length, '0');
    }
    return text.padStart(width);
}

function general(value, precision) {
    const p = precision === undefined ? 6 : Math.max(1, precision);
    if (value === 0) return '0';
    const exponent = Math.floor(Math.log10(Math.abs(value)));
    if (exponent < -4 || exponent >= p) {
        const [mantissa, exp] = value.toExponential(p - 1).split('e');
        const trimmed = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
        const e = Number(exp);
        return `${trimmed}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
    }
    const fixed = value.toFixed(Math.max(0, p - 1 - exponent));
    return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

function one(value, flags, width, precision, conversion) {
    if (conversion === 's') {
        const text = value === null || value === undefined ? '' : String(value);
        return pad(precision === undefined ? text : text.slice(0, precision), width, flags);
    }
    const number = typeof value === 'number' ? value : Number(value);
    if (!Number.isFinite(number)) {
        return pad(value === null || value === undefined ? '' : String(value), width, flags);
    }
    let text;
    switch (conversion) {
        case 'd': case 'i': case 'u': text = String(Math.trunc(number)); break;
        case 'f': case 'F': text = number.toFixed(precision ?? 6); break;
        case 'e': case 'E': {
            const [m, e] = number.toExponential(precision ?? 6).split('e');
            const exp = Number(e);
            text = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
            if (conversion === 'E') text = text.toUpperCase();
            break;
        }
        case 'g': case 'G':
            text = general(number, precision);
            if (conversion === 'G') text = text.toUpperCase();
            break;
        case 'x': text = Math.trunc(number).toString(16); break;
        case 'X': text = Math.trunc(number).toString(16).toUpperCase(); break;
        case 'o': text = Math.trunc(number).toString(8); break;
        default: text = String(number);
    }
    if (number >= 0 && flags.includes('+')) text = `+${text}`;
    else if (number >= 0 && flags.includes(' ')) text = ` ${text}`;
    return pad(text, width, flags);
}

/** printf-style formatting of one value: format('%.2f V', 3.14159) == '3.14 V'. */
export function format(spec, value) {
    if (!spec) return formatValue(value);
    let used = false;
    const text = spec.replace(SPEC, (_m, flags, width, precision, conversion) => {
        if (conversion === '%') return '%';
        if (used) return '';
        used = true;
        return one(value, flags, width ? Number(width) : 0,
            precision === undefined ? undefined : Number(precision), conversion);
    });
    return used ? text : `${text}${formatValue(value)}`;
}

/** A value shown without a format: numbers to 6 significant digits, objects as JSON. */
export function formatValue(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'number') {
        if (Number.isInteger(value)) return String(value);
        return general(value, 6);
    }
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
}

const two = (n) => String(n).padStart(2, '0');

/** UNIX seconds as local "YYYY-MM-DD HH:MM:SS". */
export function formatTime(seconds, { date = true } = {}) {
    if (!Number.isFinite(seconds)) return '';
    const d = new Date(seconds * 1000);
    const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
    if (!date) return time;
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
}

/** A duration in seconds as "90 s", "15 min", "6 h", "7 d". */
export function formatDuration(seconds) {
    const s = Math.abs(seconds);
    if (s < 120) return `${Math.round(seconds)} s`;
    if (s < 7200) return `${+(seconds / 60).toFixed(1)} min`;
    if (s < 172800) return `${+(seconds / 3600).toFixed(1)} h`;
    return `${+(seconds / 86400).toFixed(1)} d`;
}
