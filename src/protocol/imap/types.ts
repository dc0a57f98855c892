// Typed IMAP commands (RFC 9051 §6, RFC 3501 §6 and the extensions Pillarbox implements).

import type { NotifyCommand } from './notify-args.ts';

/** A sequence set (RFC 9051 §9 `sequence-set`): ranges with `*` as -1; or `$` (RFC 5182 saved result). */
export type SeqSet = { saved: true } | { saved: false; ranges: Array<[number, number]> };

export interface FlagSet {
  /** Bitmask of SystemFlag. */
  systemFlags: number;
  keywords: string[];
}

export type SystemFlagName = 'seen' | 'answered' | 'flagged' | 'deleted' | 'draft';

/** RFC 9051 §6.4.4 search keys as a tree (plus CONDSTORE MODSEQ, RFC 7162 §3.1.5). */
export type SearchKey =
  | { k: 'all' }
  | { k: 'and'; keys: SearchKey[] }
  | { k: 'or'; a: SearchKey; b: SearchKey }
  | { k: 'not'; key: SearchKey }
  /** A system flag set (or not set). */
  | { k: 'flag'; flag: number; set: boolean }
  | { k: 'keyword'; keyword: string; set: boolean }
  /** FROM/TO/CC/BCC/SUBJECT/HEADER: substring of a header field (empty value: field present). */
  | { k: 'header'; field: string; value: string }
  | { k: 'body'; value: string }
  | { k: 'text'; value: string }
  /** BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE; `day` = UTC midnight ms of the date. */
  | { k: 'date'; op: 'before' | 'on' | 'since'; sent: boolean; day: number }
  | { k: 'size'; op: 'larger' | 'smaller'; n: number }
  | { k: 'seq'; set: SeqSet }
  | { k: 'uid'; set: SeqSet }
  | { k: 'modseq'; modseq: number }
  /** WITHIN (RFC 5032 §2) OLDER/YOUNGER: INTERNALDATE at or before / at or after now minus `seconds`. */
  | { k: 'within'; op: 'older' | 'younger'; seconds: number }
  /** SAVEDATE (RFC 8514 §4.3) SAVEDBEFORE/SAVEDON/SAVEDSINCE: the save date's day; `day` as for 'date'. */
  | { k: 'saved'; op: 'before' | 'on' | 'since'; day: number }
  /** OBJECTID EMAILID / THREADID (RFC 8474 §6): exactly that id. */
  | { k: 'objectid'; what: 'emailid' | 'threadid'; id: string }
  /** IMAP4rev1 RECENT/NEW/OLD: Pillarbox never reports \Recent, so RECENT matches nothing. */
  | { k: 'recent'; set: boolean };

export type SectionText = 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';

/** BODY[section] (RFC 9051 §6.4.5). */
export interface SectionSpec {
  /** Part numbers, e.g. [2, 1] for "2.1"; empty for the whole message. */
  part: number[];
  text: SectionText | null;
  /** Header field names for HEADER.FIELDS[.NOT], as sent. */
  fields: string[];
}

export interface Partial {
  start: number;
  length: number;
}

export type FetchItem =
  | { k: 'FLAGS' }
  | { k: 'INTERNALDATE' }
  | { k: 'RFC822.SIZE' }
  | { k: 'ENVELOPE' }
  | { k: 'BODY' }
  | { k: 'BODYSTRUCTURE' }
  | { k: 'UID' }
  | { k: 'MODSEQ' }
  /** RFC 8514 §4.2 */
  | { k: 'SAVEDATE' }
  /** OBJECTID (RFC 8474 §5.3). */
  | { k: 'EMAILID' }
  | { k: 'THREADID' }
  | { k: 'RFC822' }
  | { k: 'RFC822.HEADER' }
  | { k: 'RFC822.TEXT' }
  | { k: 'BODY[]'; peek: boolean; section: SectionSpec; partial: Partial | null }
  | { k: 'BINARY[]'; peek: boolean; part: number[]; partial: Partial | null }
  | { k: 'BINARY.SIZE'; part: number[] };

export type StatusItem = 'MESSAGES' | 'UIDNEXT' | 'UIDVALIDITY' | 'UNSEEN' | 'DELETED' | 'SIZE' | 'HIGHESTMODSEQ' | 'RECENT' | 'APPENDLIMIT' | 'MAILBOXID';
export const STATUS_ITEMS: readonly StatusItem[] = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'RECENT', 'APPENDLIMIT', 'MAILBOXID'];

export interface QresyncParams {
  uidValidity: number;
  modseq: number;
  knownUids: SeqSet | null;
  seqMatch: { seqs: SeqSet; uids: SeqSet } | null;
}

/** One message of an APPEND (RFC 4466 §2.3 append-message). */
export interface AppendMessage {
  flags: FlagSet | null;
  date: number | null;
  /** The message; null when the session streamed the literal into the store, or with CATENATE. */
  message: Buffer | null;
  /** Index of the message literal in the raw command (-1 with CATENATE). */
  literalIndex: number;
  /** RFC 6855 §4 UTF8 (literal8). */
  utf8: boolean;
  /** RFC 4469 CATENATE parts, or null. */
  catenate: CatPart[] | null;
}

/** RFC 4469 §5 cat-part: a TEXT literal (null when streamed) or an IMAP URL (RFC 5092). */
export type CatPart = { kind: 'text'; literalIndex: number; data: Buffer | null } | { kind: 'url'; url: string };

export type SearchReturn = 'MIN' | 'MAX' | 'ALL' | 'COUNT' | 'SAVE';

/**
 * RFC 9394 §4 partial-range: positions `lo`..`hi` (1-based, lo <= hi) in the result, counted from
 * its end when `last` ("-1:-100" is the last 100); `text` is the range as the client wrote it.
 */
export interface PartialRange {
  lo: number;
  hi: number;
  last: boolean;
  text: string;
}

/** RFC 5256 §3 sort keys, with DISPLAYFROM / DISPLAYTO (RFC 5957 §4). */
export type SortKeyName = 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO';
export const SORT_KEY_NAMES: readonly SortKeyName[] = ['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO'];

export interface SortCriterion {
  key: SortKeyName;
  /** REVERSE: this criterion descending (RFC 5256 §3). */
  reverse: boolean;
}

export type ThreadAlgorithm = 'ORDEREDSUBJECT' | 'REFERENCES';

export type ImapCommand =
  | { name: 'CAPABILITY' | 'NOOP' | 'LOGOUT' | 'STARTTLS' | 'CHECK' | 'CLOSE' | 'UNSELECT' | 'IDLE' | 'NAMESPACE' }
  | { name: 'LOGIN'; user: string; pass: string }
  | { name: 'AUTHENTICATE'; mechanism: string; initial: string | null }
  | { name: 'ENABLE'; caps: string[] }
  /** RFC 4978 §5: the mechanism, upper-cased. */
  | { name: 'COMPRESS'; mechanism: string }
  | { name: 'SELECT' | 'EXAMINE'; mailbox: string; condstore: boolean; qresync: QresyncParams | null }
  | { name: 'CREATE'; mailbox: string; specialUse: string[] }
  | { name: 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE'; mailbox: string }
  | { name: 'RENAME'; from: string; to: string }
  | {
      name: 'LIST';
      /** LIST-EXTENDED (RFC 5258) syntax used (selection options, several patterns or RETURN). */
      extended: boolean;
      selection: string[];
      reference: string;
      patterns: string[];
      returns: { subscribed: boolean; children: boolean; specialUse: boolean; status: StatusItem[] | null };
    }
  | { name: 'LSUB'; reference: string; pattern: string }
  | { name: 'STATUS'; mailbox: string; items: StatusItem[] }
  /** RFC 3502 MULTIAPPEND: one or more messages. */
  | { name: 'APPEND'; mailbox: string; messages: AppendMessage[] }
  /** RFC 8508: `target` is a sequence number (-1 for "*") or, with `uid`, a UID. */
  | { name: 'REPLACE'; uid: boolean; target: number; mailbox: string; message: AppendMessage }
  /**
   * `partial`: the PARTIAL return option (RFC 9394 §3.1), in `returns` as well. `update`: the
   * UPDATE return option (RFC 5267 §4.3), set only when given (CONTEXT, §4.2, is accepted and ignored).
   */
  | { name: 'SEARCH'; uid: boolean; charset: string | null; returns: SearchReturn[] | null; partial: PartialRange | null; key: SearchKey; update?: true }
  /** RFC 5256 SORT; `returns`: ESORT (RFC 5267 §3), null without RETURN; `partial`, `update` as SEARCH's. */
  | { name: 'SORT'; uid: boolean; returns: SearchReturn[] | null; partial: PartialRange | null; criteria: SortCriterion[]; charset: string; key: SearchKey; update?: true }
  /** RFC 5267 §4.3.5: the tags of the searching commands whose updates stop. */
  | { name: 'CANCELUPDATE'; tags: string[] }
  | { name: 'THREAD'; uid: boolean; algorithm: ThreadAlgorithm; charset: string; key: SearchKey }
  /** `partial`: the UID FETCH PARTIAL modifier (RFC 9394 §3.3). */
  | { name: 'FETCH'; uid: boolean; set: SeqSet; items: FetchItem[]; changedSince: number | null; vanished: boolean; macro: boolean; partial: PartialRange | null }
  | {
      name: 'STORE';
      uid: boolean;
      set: SeqSet;
      op: 'add' | 'remove' | 'set';
      silent: boolean;
      flags: FlagSet;
      unchangedSince: number | null;
    }
  | { name: 'COPY' | 'MOVE'; uid: boolean; set: SeqSet; mailbox: string }
  | { name: 'EXPUNGE'; uid: boolean; set: SeqSet | null }
  | { name: 'ID'; params: Array<[string, string | null]> | null }
  | { name: 'GETQUOTA'; root: string }
  | { name: 'GETQUOTAROOT'; mailbox: string }
  /** RFC 5465 NOTIFY (src/protocol/imap/notify-args.ts). */
  | NotifyCommand;

export type CommandName = ImapCommand['name'];

export interface TaggedCommand {
  tag: string;
  command: ImapCommand;
}
