// SEARCH arguments (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 7162 §3.1.5 MODSEQ, RFC 5032 WITHIN,
// RFC 8514 SAVEDATE), and the SORT and THREAD commands (RFC 5256 §5, RFC 5957 §5, RFC 5267 §3.2)
// whose criteria are SEARCH keys. Pure.

import type { Reader } from './reader.ts';
import type { ImapCommand, PartialRange, SearchKey, SearchReturn, SortKeyName, ThreadAlgorithm } from './types.ts';
import { SORT_KEY_NAMES } from './types.ts';

/**
 * `"RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"` (RFC 4731 §3.1, RFC 5267 §3),
 * after its SP, with PARTIAL (RFC 9394 §3.1): at most one of PARTIAL and ALL; UPDATE and the
 * CONTEXT hint (RFC 5267 §4.2, §4.3) are not result options of their own (`update` says UPDATE).
 */
function returnOptions(r: Reader, what: string): { returns: SearchReturn[]; partial: PartialRange | null; update?: true } {
  r.sp();
  let partial: PartialRange | null = null;
  let update = false;
  const returns = r.list(() => {
    const o = r.atom('return option').toUpperCase();
    if (o === 'UPDATE') {
      update = true;
      return null;
    }
    if (o === 'CONTEXT') return null;
    if (o === 'PARTIAL') {
      if (partial) r.fail('Only one PARTIAL return option');
      r.sp();
      partial = partialRange(r);
      return null;
    }
    if (!['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE'].includes(o)) r.fail(`Unknown ${what} return option ${o.slice(0, 32)}`);
    return o as SearchReturn;
  }).filter((o): o is SearchReturn => o !== null);
  if (partial && returns.includes('ALL')) r.fail('PARTIAL and ALL cannot be combined (RFC 9394 §3.1)');
  return update ? { returns, partial, update: true } : { returns, partial };
}

/** RFC 9394 §4 `partial-range`: "a:b" or "-a:-b" (nz-numbers; either order). */
export function partialRange(r: Reader): PartialRange {
  const start = r.pos;
  const last = r.take('-');
  const a = r.nzNumber();
  r.expect(':');
  if (last) r.expect('-');
  const b = r.nzNumber();
  return { lo: Math.min(a, b), hi: Math.max(a, b), last, text: r.seg.slice(start, r.pos) };
}

/** `search-key *(SP search-key)`: one key, or their AND. */
function searchKeys(r: Reader): SearchKey {
  const keys: SearchKey[] = [searchKey(r, 0)];
  while (r.take(' ')) keys.push(searchKey(r, 0));
  return keys.length === 1 ? keys[0]! : { k: 'and', keys };
}

export function parseSearch(r: Reader, uid: boolean): ImapCommand {
  let returns: SearchReturn[] | null = null;
  let partial: PartialRange | null = null;
  let update = false;
  let charset: string | null = null;
  r.sp();
  if (r.takeWord('RETURN')) {
    const o = returnOptions(r, 'SEARCH');
    ({ returns, partial } = o);
    update = o.update === true;
    r.sp();
  }
  if (r.takeWord('CHARSET')) {
    r.sp();
    charset = r.astring().toUpperCase();
    r.sp();
  }
  const key = searchKeys(r);
  return update ? { name: 'SEARCH', uid, charset, returns, partial, key, update: true } : { name: 'SEARCH', uid, charset, returns, partial, key };
}

/**
 * RFC 5256 §5: `SORT SP sort-criteria SP search-criteria` (charset mandatory), with ESORT's
 * `[SP sort-return-opts]` before the criteria (RFC 5267 §3.2) and RFC 5957's DISPLAY keys.
 */
export function parseSort(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  let returns: SearchReturn[] | null = null;
  let partial: PartialRange | null = null;
  let update = false;
  if (r.takeWord('RETURN')) {
    const o = returnOptions(r, 'SORT');
    ({ returns, partial } = o);
    update = o.update === true;
    r.sp();
  }
  const criteria = r.list(() => {
    let word = r.atom('sort key').toUpperCase();
    let reverse = false;
    if (word === 'REVERSE') {
      reverse = true;
      r.sp();
      word = r.atom('sort key').toUpperCase();
    }
    if (!(SORT_KEY_NAMES as readonly string[]).includes(word)) r.fail(`Unknown sort key ${word.slice(0, 32)}`);
    return { key: word as SortKeyName, reverse };
  }, false);
  r.sp();
  const charset = r.astring().toUpperCase();
  r.sp();
  const key = searchKeys(r);
  return update ? { name: 'SORT', uid, returns, partial, criteria, charset, key, update: true } : { name: 'SORT', uid, returns, partial, criteria, charset, key };
}

/** RFC 5256 §5: `THREAD SP thread-alg SP search-criteria`. */
export function parseThread(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  const alg = r.atom('threading algorithm').toUpperCase();
  if (alg !== 'ORDEREDSUBJECT' && alg !== 'REFERENCES') r.fail(`Unknown threading algorithm ${alg.slice(0, 32)}`);
  r.sp();
  const charset = r.astring().toUpperCase();
  r.sp();
  return { name: 'THREAD', uid, algorithm: alg as ThreadAlgorithm, charset, key: searchKeys(r) };
}

const FLAG_KEYS: Record<string, [number, boolean]> = {
  ANSWERED: [2, true],
  DELETED: [8, true],
  DRAFT: [16, true],
  FLAGGED: [4, true],
  SEEN: [1, true],
  UNANSWERED: [2, false],
  UNDELETED: [8, false],
  UNDRAFT: [16, false],
  UNFLAGGED: [4, false],
  UNSEEN: [1, false],
};

function searchKey(r: Reader, depth: number): SearchKey {
  if (depth > 50) r.fail('Search too deeply nested');
  if (r.peek() === '(') {
    const keys = r.list(() => searchKey(r, depth + 1), false);
    return keys.length === 1 ? keys[0]! : { k: 'and', keys };
  }
  const c = r.peekCode();
  if ((c >= 0x30 && c <= 0x39) || c === 0x2a || c === 0x24) return { k: 'seq', set: r.seqSet() };
  const word = r.atom('search key').toUpperCase();
  const flag = FLAG_KEYS[word];
  if (flag) return { k: 'flag', flag: flag[0], set: flag[1] };
  const arg = () => {
    r.sp();
    return r.astring();
  };
  switch (word) {
    case 'ALL':
      return { k: 'all' };
    case 'NEW': // rev1: RECENT UNSEEN
      return { k: 'and', keys: [{ k: 'recent', set: true }, { k: 'flag', flag: 1, set: false }] };
    case 'OLD':
      return { k: 'recent', set: false };
    case 'RECENT':
      return { k: 'recent', set: true };
    case 'BCC':
    case 'CC':
    case 'FROM':
    case 'SUBJECT':
    case 'TO':
      return { k: 'header', field: word.toLowerCase(), value: arg() };
    case 'HEADER': {
      r.sp();
      const field = r.astring().toLowerCase();
      return { k: 'header', field, value: arg() };
    }
    case 'BODY':
      return { k: 'body', value: arg() };
    case 'TEXT':
      return { k: 'text', value: arg() };
    case 'KEYWORD':
    case 'UNKEYWORD': {
      r.sp();
      const f = r.flag();
      if (f.keyword === null) {
        // KEYWORD \Seen etc. behave like the flag key.
        return { k: 'flag', flag: f.system, set: word === 'KEYWORD' };
      }
      return { k: 'keyword', keyword: f.keyword, set: word === 'KEYWORD' };
    }
    case 'BEFORE':
    case 'ON':
    case 'SINCE':
    case 'SENTBEFORE':
    case 'SENTON':
    case 'SENTSINCE': {
      r.sp();
      const sent = word.startsWith('SENT');
      const op = (sent ? word.slice(4) : word).toLowerCase() as 'before' | 'on' | 'since';
      return { k: 'date', op, sent, day: r.date() };
    }
    case 'OLDER':
    case 'YOUNGER': {
      // RFC 5032 §3: ( "OLDER" / "YOUNGER" ) SP nz-number
      r.sp();
      return { k: 'within', op: word === 'OLDER' ? 'older' : 'younger', seconds: r.nzNumber() };
    }
    case 'SAVEDBEFORE':
    case 'SAVEDON':
    case 'SAVEDSINCE': {
      // RFC 8514 §5
      r.sp();
      return { k: 'saved', op: word.slice(5).toLowerCase() as 'before' | 'on' | 'since', day: r.date() };
    }
    case 'SAVEDATESUPPORTED': // RFC 8514 §4.3: every mailbox here keeps save dates
      return { k: 'all' };
    case 'LARGER':
    case 'SMALLER': {
      r.sp();
      return { k: 'size', op: word === 'LARGER' ? 'larger' : 'smaller', n: r.number() };
    }
    case 'UID': {
      r.sp();
      return { k: 'uid', set: r.seqSet() };
    }
    case 'NOT': {
      r.sp();
      return { k: 'not', key: searchKey(r, depth + 1) };
    }
    case 'OR': {
      r.sp();
      const a = searchKey(r, depth + 1);
      r.sp();
      return { k: 'or', a, b: searchKey(r, depth + 1) };
    }
    case 'EMAILID':
    case 'THREADID': {
      // RFC 8474 §6: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
      r.sp();
      const id = r.atom('objectid');
      if (id.length > 255 || !/^[A-Za-z0-9_-]+$/.test(id)) r.fail('Invalid objectid'); // linear: anchored, one class
      return { k: 'objectid', what: word === 'EMAILID' ? 'emailid' : 'threadid', id };
    }
    case 'MODSEQ': {
      // RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
      r.sp();
      if (r.peek() === '"') {
        r.quoted();
        r.sp();
        const t = r.atom('entry type').toLowerCase();
        if (!['priv', 'shared', 'all'].includes(t)) r.fail('Invalid MODSEQ entry type');
        r.sp();
      }
      return { k: 'modseq', modseq: r.number64() };
    }
    default:
      return r.fail(`Unknown search key ${word.slice(0, 32)}`);
  }
}