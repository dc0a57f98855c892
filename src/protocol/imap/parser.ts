// IMAP command grammar (RFC 9051 §9, RFC 3501 §9, and extension grammars): RawCommand → typed command.
// Pure; a syntax error throws ImapParseError, which the session answers with a tagged BAD.
// The cursor is in reader.ts; FETCH and SEARCH arguments in fetch-args.ts and search-args.ts.

import type { RawCommand } from './receiver.ts';
import { MAX_TAG_LENGTH } from './receiver.ts';
import { parseFetch } from './fetch-args.ts';
import { appendLiteralTarget, parseAppend, parseReplace } from './append-args.ts';
import { ImapParseError, Reader, isTagChar } from './reader.ts';
import { parseSearch, parseSort, parseThread } from './search-args.ts';
import { parseNotify } from './notify-args.ts';
import type { FlagSet, ImapCommand, QresyncParams, SeqSet, StatusItem, TaggedCommand } from './types.ts';
import { STATUS_ITEMS } from './types.ts';

export { ImapParseError, Reader } from './reader.ts';
export { parseSection } from './fetch-args.ts';
export { appendLiteralTarget, type AppendLiteral } from './append-args.ts';

/** The tag of a command (for error replies), or null if none can be read. */
export function readTag(raw: RawCommand): string | null {
  // Only the head of the line is looked at: this runs at every literal of a command.
  const s = raw.segments[0]!.toString('latin1', 0, MAX_TAG_LENGTH + 2);
  let i = 0;
  while (i < s.length && i <= MAX_TAG_LENGTH && isTagChar(s.charCodeAt(i))) i++;
  if (i === 0 || i > MAX_TAG_LENGTH) return null;
  if (i < s.length && s[i] !== ' ') return null;
  return s.slice(0, i);
}

/** Tag and upper-cased command name ("UID FETCH" for UID commands), without parsing arguments. */
export function readCommandName(raw: RawCommand): { tag: string; name: string } | null {
  const tag = readTag(raw);
  if (tag === null) return null;
  const s = raw.segments[0]!.toString('latin1', tag.length + 1, tag.length + 64);
  const m = /^([A-Za-z0-9.=-]{1,32})(?: ([A-Za-z]{1,16}))?/.exec(s); // linear: anchored, bounded
  if (!m) return { tag, name: '' };
  let name = m[1]!.toUpperCase();
  if (name === 'UID' && m[2]) name = 'UID ' + m[2].toUpperCase();
  return { tag, name };
}

/** For APPEND literals: see appendLiteralTarget (append-args.ts). */
export function appendMessageMailbox(pending: RawCommand): string | null {
  const t = appendLiteralTarget(pending);
  return t && !t.replace ? t.mailbox : null;
}

export function isAppendMessageLiteral(pending: RawCommand): boolean {
  return appendMessageMailbox(pending) !== null;
}

/** Parses one complete command. Throws ImapParseError (with the tag when one was read). */
export function parseCommand(raw: RawCommand): TaggedCommand {
  const r = new Reader(raw);
  const tag = readTag(raw);
  if (tag === null) throw new ImapParseError('Missing or invalid tag');
  r.tag = tag;
  r.pos = tag.length;
  if (r.atEnd()) r.fail('Missing command');
  r.sp();
  let name = r.atom('command').toUpperCase();
  let uid = false;
  if (name === 'UID') {
    uid = true;
    r.sp();
    name = r.atom('command').toUpperCase();
    if (!['FETCH', 'SEARCH', 'STORE', 'COPY', 'MOVE', 'EXPUNGE', 'REPLACE', 'SORT', 'THREAD'].includes(name)) r.fail(`UID ${name} is not a command`);
  }
  const command = parseArgs(r, name, uid);
  r.end();
  return { tag, command };
}

function parseArgs(r: Reader, name: string, uid: boolean): ImapCommand {
  switch (name) {
    case 'CAPABILITY':
    case 'NOOP':
    case 'LOGOUT':
    case 'STARTTLS':
    case 'CHECK':
    case 'CLOSE':
    case 'UNSELECT':
    case 'IDLE':
    case 'NAMESPACE':
      return { name };
    case 'EXPUNGE': {
      if (!uid) return { name: 'EXPUNGE', uid: false, set: null };
      r.sp();
      return { name: 'EXPUNGE', uid: true, set: r.seqSet() };
    }
    case 'LOGIN': {
      r.sp();
      const user = r.astring();
      r.sp();
      const pass = r.astring();
      return { name: 'LOGIN', user, pass };
    }
    case 'AUTHENTICATE': {
      r.sp();
      const mechanism = r.atom('mechanism').toUpperCase();
      let initial: string | null = null;
      if (r.take(' ')) {
        // SASL-IR (RFC 4959): base64 or "=".
        initial = r.atom('initial response');
      }
      return { name: 'AUTHENTICATE', mechanism, initial };
    }
    case 'ENABLE': {
      const caps: string[] = [];
      while (r.take(' ')) caps.push(r.atom('capability').toUpperCase());
      if (caps.length === 0) r.fail('ENABLE needs a capability');
      return { name: 'ENABLE', caps };
    }
    case 'SELECT':
    case 'EXAMINE':
      return parseSelect(r, name);
    case 'COMPRESS': // RFC 4978 §5
      r.sp();
      return { name: 'COMPRESS', mechanism: r.atom('mechanism').toUpperCase() };
    case 'CREATE':
      return parseCreate(r);
    case 'DELETE':
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE': {
      r.sp();
      return { name, mailbox: r.astring() };
    }
    case 'RENAME': {
      r.sp();
      const from = r.astring();
      r.sp();
      return { name: 'RENAME', from, to: r.astring() };
    }
    case 'LIST':
      return parseList(r);
    case 'LSUB': {
      r.sp();
      const reference = r.astring();
      r.sp();
      return { name: 'LSUB', reference, pattern: r.listMailbox() };
    }
    case 'STATUS': {
      r.sp();
      const mailbox = r.astring();
      r.sp();
      return { name: 'STATUS', mailbox, items: r.list(() => statusItem(r), false) };
    }
    case 'APPEND':
      return parseAppend(r);
    case 'REPLACE':
      return parseReplace(r, uid);
    case 'SEARCH':
      return parseSearch(r, uid);
    case 'SORT':
      return parseSort(r, uid);
    case 'THREAD':
      return parseThread(r, uid);
    case 'FETCH':
      return parseFetch(r, uid);
    case 'STORE':
      return parseStore(r, uid);
    case 'COPY':
    case 'MOVE': {
      r.sp();
      const set = r.seqSet();
      r.sp();
      return { name, uid, set, mailbox: r.astring() };
    }
    case 'ID':
      return parseId(r);
    case 'NOTIFY': // RFC 5465 §8
      return parseNotify(r);
    case 'CANCELUPDATE': {
      // RFC 5267 §5: "CANCELUPDATE" 1*(SP quoted)
      const tags: string[] = [];
      while (r.take(' ')) tags.push(r.quoted());
      if (tags.length === 0) r.fail('CANCELUPDATE needs the tag of a searching command');
      return { name: 'CANCELUPDATE', tags };
    }
    case 'GETQUOTA': {
      r.sp();
      return { name: 'GETQUOTA', root: r.astring() };
    }
    case 'GETQUOTAROOT': {
      r.sp();
      return { name: 'GETQUOTAROOT', mailbox: r.astring() };
    }
    default:
      return r.fail(`Unknown command ${name.slice(0, 32)}`);
  }
}

function parseSelect(r: Reader, name: 'SELECT' | 'EXAMINE'): ImapCommand {
  r.sp();
  const mailbox = r.astring();
  let condstore = false;
  let qresync: QresyncParams | null = null;
  if (r.take(' ')) {
    r.list(() => {
      if (r.takeWord('CONDSTORE')) {
        condstore = true;
      } else if (r.takeWord('QRESYNC')) {
        // RFC 7162 §3.2.5
        r.sp();
        r.expect('(');
        const uidValidity = r.nzNumber();
        r.sp();
        const modseq = r.number64();
        let knownUids: SeqSet | null = null;
        let seqMatch: QresyncParams['seqMatch'] = null;
        // RFC 7162 §3.2.5: [SP known-uids] [SP "(" seq-match-data ")"]
        const matchData = (): QresyncParams['seqMatch'] => {
          r.expect('(');
          const seqs = r.seqSet();
          r.sp();
          const uids = r.seqSet();
          r.expect(')');
          return { seqs, uids };
        };
        if (r.take(' ')) {
          if (r.peek() !== '(') {
            knownUids = r.seqSet();
            if (r.take(' ')) seqMatch = matchData();
          } else {
            seqMatch = matchData();
          }
        }
        r.expect(')');
        qresync = { uidValidity, modseq, knownUids, seqMatch };
      } else {
        r.fail('Unknown SELECT parameter');
      }
      return null;
    }, false);
  }
  return { name, mailbox, condstore, qresync };
}

function parseCreate(r: Reader): ImapCommand {
  r.sp();
  const mailbox = r.astring();
  const specialUse: string[] = [];
  if (r.take(' ')) {
    // RFC 6154 §3, §6: CREATE mbox (USE (\Sent)); "USE" SP "(" [use-attr *(SP use-attr)] ")"
    r.list(() => {
      if (!r.takeWord('USE')) r.fail('Unknown CREATE parameter');
      r.sp();
      r.list(() => {
        r.expect('\\');
        specialUse.push('\\' + r.atom('special-use attribute'));
        return null;
      });
      return null;
    }, false);
  }
  return { name: 'CREATE', mailbox, specialUse };
}

function parseId(r: Reader): ImapCommand {
  // RFC 2971 §3.3
  r.sp();
  if (r.takeWord('NIL')) return { name: 'ID', params: null };
  const params: Array<[string, string | null]> = [];
  r.expect('(');
  if (!r.take(')')) {
    for (;;) {
      const k = r.string();
      r.sp();
      const v = r.nstring();
      params.push([k, v]);
      if (params.length > 30) r.fail('Too many ID fields');
      if (r.take(')')) break;
      r.sp();
    }
  }
  return { name: 'ID', params };
}

function statusItem(r: Reader): StatusItem {
  const a = r.atom('status item').toUpperCase() as StatusItem;
  if (!STATUS_ITEMS.includes(a)) r.fail(`Unknown status item ${a}`);
  return a;
}

function parseList(r: Reader): ImapCommand {
  r.sp();
  let extended = false;
  const selection: string[] = [];
  if (r.peek() === '(') {
    // RFC 5258 §3: list-select-opts
    extended = true;
    for (const o of r.list(() => r.atom('selection option').toUpperCase())) {
      if (!['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE'].includes(o)) r.fail(`Unknown LIST selection option ${o}`);
      selection.push(o);
    }
    r.sp();
  }
  if (selection.includes('RECURSIVEMATCH') && !selection.some((s) => s === 'SUBSCRIBED' || s === 'SPECIAL-USE')) {
    r.fail('RECURSIVEMATCH needs another selection option'); // RFC 5258 §3
  }
  const reference = r.astring();
  r.sp();
  let patterns: string[];
  if (r.peek() === '(') {
    extended = true;
    patterns = r.list(() => r.listMailbox(), false);
  } else {
    patterns = [r.listMailbox()];
  }
  const returns = { subscribed: false, children: false, specialUse: false, status: null as StatusItem[] | null };
  if (r.take(' ')) {
    if (!r.takeWord('RETURN')) r.fail('Expected RETURN');
    extended = true;
    r.sp();
    r.list(() => {
      const o = r.atom('return option').toUpperCase();
      if (o === 'SUBSCRIBED') returns.subscribed = true;
      else if (o === 'CHILDREN') returns.children = true;
      else if (o === 'SPECIAL-USE') returns.specialUse = true;
      else if (o === 'STATUS') {
        // RFC 5819
        r.sp();
        returns.status = r.list(() => statusItem(r), false);
      } else r.fail(`Unknown LIST return option ${o}`);
      return null;
    });
  }
  return { name: 'LIST', extended, selection, reference, patterns, returns };
}

function parseStore(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  const set = r.seqSet();
  r.sp();
  let unchangedSince: number | null = null;
  if (r.peek() === '(') {
    // RFC 7162 §3.1.3
    r.list(() => {
      if (!r.takeWord('UNCHANGEDSINCE')) r.fail('Unknown STORE modifier');
      r.sp();
      unchangedSince = r.number64();
      return null;
    }, false);
    r.sp();
  }
  let op: 'add' | 'remove' | 'set' = 'set';
  if (r.take('+')) op = 'add';
  else if (r.take('-')) op = 'remove';
  const item = r.atom('store item').toUpperCase();
  if (item !== 'FLAGS' && item !== 'FLAGS.SILENT') r.fail('Expected FLAGS or FLAGS.SILENT');
  r.sp();
  let flags: FlagSet;
  if (r.peek() === '(') {
    flags = r.flagList();
  } else {
    flags = { systemFlags: 0, keywords: [] };
    for (;;) {
      const f = r.flag();
      if (f.recent) r.fail('\\Recent cannot be stored');
      flags.systemFlags |= f.system;
      if (f.keyword !== null) flags.keywords.push(f.keyword);
      if (!r.take(' ')) break;
    }
  }
  return { name: 'STORE', uid, set, op, silent: item === 'FLAGS.SILENT', flags, unchangedSince };
}
