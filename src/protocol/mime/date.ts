// The calendar date of a Date: header as written (RFC 5322 §3.3, obsolete forms §4.3), for
// SENTBEFORE / SENTON / SENTSINCE, which compare "the date as written, disregarding time and
// timezone" (RFC 3501 §6.4.4): `Sun, 25 Mar 2007 00:00:00 +0200` is 25 March, not 24 March UTC.
import { stripComments } from './headers.ts';

const MONTHS: Readonly<Record<string, number>> = {
  jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11,
};

/** Days in month m (0-11) of year y. */
const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m + 1, 0)).getUTCDate();

const isDigits = (s: string, min: number, max: number) => {
  if (s.length < min || s.length > max) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 48 || s.charCodeAt(i) > 57) return false;
  return true;
};

function ymd(y: number, m: number, d: number): number | null {
  if (m < 0 || m > 11 || d < 1 || d > daysIn(y, m)) return null;
  return Date.UTC(y, m, d);
}

/**
 * The written day as ms at 00:00 UTC of that date (the form SEARCH compares), or null when the
 * value has no recognisable date. `[day-of-week ","] day month year …`; 2-digit years are
 * 2000–2049 / 1950–1999 and 3-digit years 1900 + n (RFC 5322 §4.3); an ISO 8601 `yyyy-mm-dd`
 * start (seen in the wild) is read too. Bounded input, one pass per step.
 */
export function writtenDay(value: string | null): number | null {
  if (!value) return null;
  const s = stripComments(value.length > 512 ? value.slice(0, 512) : value, ' ');
  const toks = s.split(/[\s,]+/).filter((t) => t !== ''); // linear: one character class
  // RFC 5322: the day-of-week is optional, so the date starts at token 0 or 1.
  for (let i = 0; i < 2 && i + 2 < toks.length; i++) {
    const [d, mon, y] = [toks[i]!, toks[i + 1]!, toks[i + 2]!];
    const m = MONTHS[mon.slice(0, 3).toLowerCase()];
    if (!isDigits(d, 1, 2) || m === undefined || mon.length < 3 || !isDigits(y, 2, 4)) continue;
    let year = Number(y);
    if (y.length === 2) year += year < 50 ? 2000 : 1900;
    else if (y.length === 3) year += 1900;
    return ymd(year, m, Number(d));
  }
  const t = s.trim();
  if (t.length >= 10 && isDigits(t.slice(0, 4), 4, 4) && t[4] === '-' && isDigits(t.slice(5, 7), 2, 2) && t[7] === '-' && isDigits(t.slice(8, 10), 2, 2)) {
    return ymd(Number(t.slice(0, 4)), Number(t.slice(5, 7)) - 1, Number(t.slice(8, 10)));
  }
  return null;
}

/**
 * The day SENT* searches compare: the written date, else (a form only Date.parse understood) the
 * UTC day of the parsed time, else null.
 */
export function sentDayOf(dateHeader: string | null, sentDate: number | null): number | null {
  const w = writtenDay(dateHeader);
  if (w !== null || sentDate === null) return w;
  const d = new Date(sentDate);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
}
