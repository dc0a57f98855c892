// POP3 TRANSACTION state (RFC 1939 §5, §7): STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP over
// the session's maildrop snapshot (src/pop3/snapshot.ts). RETR and TOP stream the message with
// dot-stuffing and backpressure.

import type { Readable } from 'node:stream';
import { parseNumber } from '../protocol/pop3/commands.ts';
import type { Pop3Command } from '../protocol/pop3/commands.ts';
import { DotStuffEncoder, TopFilter, errLine, multiLine, okLine } from '../protocol/pop3/responses.ts';
import type { Pop3Session } from './session.ts';
import type { SnapMessage } from './snapshot.ts';

/** Messages up to this size are read in one call rather than streamed. */
const SMALL_MESSAGE = 128 * 1024;
/** Largest single write while streaming a message. */
const WRITE_CHUNK = 64 * 1024;

/** Resolves a message-number argument; sends the -ERR and returns null when unusable. */
function pick(s: Pop3Session, arg: string | undefined, cmdName: string): SnapMessage | null {
  if (arg === undefined) {
    s.send(errLine(`${cmdName} needs a message number`));
    return null;
  }
  const n = parseNumber(arg);
  if (n === null) {
    s.send(errLine(`Invalid message number: ${arg.slice(0, 40)}`));
    return null;
  }
  const messages = s.drop.messages;
  const m = messages[n - 1];
  if (!m) {
    const total = messages.length;
    s.send(errLine(`No such message: ${n} (the maildrop has ${total} message${total === 1 ? '' : 's'})`));
    return null;
  }
  if (m.deleted) {
    s.send(errLine(`Message ${n} is already deleted`));
    return null;
  }
  if (m.gone) {
    s.send(errLine(`Message ${n} was removed by another client during this session`));
    return null;
  }
  return m;
}

export function noop(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length) return void s.send(errLine('NOOP takes no arguments'));
  s.send(okLine());
}

export function stat(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length) return void s.send(errLine('STAT takes no arguments'));
  const { count, size } = s.drop.totals();
  s.send(okLine(`${count} ${size}`)); // RFC 1939 §5 drop listing
}

export function list(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length > 1) return void s.send(errLine('LIST takes at most one message number'));
  if (cmd.args.length === 1) {
    const m = pick(s, cmd.args[0], 'LIST');
    if (m) s.send(okLine(`${m.num} ${m.size}`));
    return;
  }
  const { count, size } = s.drop.totals();
  s.send(multiLine(`${count} messages (${size} octets)`, s.drop.live().map((m) => `${m.num} ${m.size}`)));
}

/** RFC 1939 §7: unique-id, 1–70 chars in 0x21–0x7E, stable for the message's life (`uidl`). */
export function uidl(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length > 1) return void s.send(errLine('UIDL takes at most one message number'));
  if (cmd.args.length === 1) {
    const m = pick(s, cmd.args[0], 'UIDL');
    if (m) s.send(okLine(`${m.num} ${m.uidl}`));
    return;
  }
  s.send(multiLine('Unique-ID listing follows', s.drop.live().map((m) => `${m.num} ${m.uidl}`)));
}

/** Marks only; UPDATE removes (RFC 1939 §6). */
export function dele(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length !== 1) return void s.send(errLine('DELE needs exactly one message number'));
  const m = pick(s, cmd.args[0], 'DELE');
  if (!m) return;
  m.deleted = true;
  s.send(okLine(`Message ${m.num} deleted`));
}

export function rset(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length) return void s.send(errLine('RSET takes no arguments'));
  for (const m of s.drop.messages) m.deleted = false;
  const { count, size } = s.drop.totals();
  s.send(okLine(`Maildrop has ${count} message${count === 1 ? '' : 's'} (${size} octets)`));
}

export async function retr(s: Pop3Session, cmd: Pop3Command): Promise<void> {
  if (cmd.args.length !== 1) return void s.send(errLine('RETR needs exactly one message number'));
  const m = pick(s, cmd.args[0], 'RETR');
  if (!m) return;
  if (await sendMessage(s, m, null, `${m.size} octets`)) m.retrieved = true;
}

export async function top(s: Pop3Session, cmd: Pop3Command): Promise<void> {
  if (cmd.args.length !== 2) return void s.send(errLine('TOP needs a message number and a line count'));
  const m = pick(s, cmd.args[0], 'TOP');
  if (!m) return;
  const lines = parseNumber(cmd.args[1], { allowZero: true });
  if (lines === null) return void s.send(errLine(`Invalid line count: ${cmd.args[1]!.slice(0, 40)}`));
  await sendMessage(s, m, new TopFilter(lines), 'Top of message follows');
}

/** A message opened for sending: its first bytes already read. */
interface Body {
  stream: Readable | null;
  it: AsyncIterator<Buffer>;
  first: IteratorResult<Buffer>;
}

/** The rest of a message read in one call: nothing. */
const NO_MORE: AsyncIterator<Buffer> = { next: async () => ({ done: true, value: undefined }) };

/**
 * Sends a message as a multi-line response, streamed with backpressure. Its first bytes are read
 * before +OK is sent, so an unreadable message gets a clean -ERR. Messages other sessions of this
 * server expunge are known from the change bus (`gone`, refused in pick), those other processes
 * expunge from the expunge log (Maildrop.refreshExpunged). Returns true when the whole response was written.
 */
async function sendMessage(s: Pop3Session, m: SnapMessage, top: TopFilter | null, okText: string): Promise<boolean> {
  if (!m.retained) await s.drop.refreshExpunged(s.store, s.login!);
  if (m.gone) {
    s.send(errLine(`Message ${m.num} was removed by another client during this session`));
    return false;
  }
  const body = await openBody(s, m);
  if (!body) return false;
  return writeBody(s, m, body, top, okText);
}

/** Reads the first bytes; on failure sends -ERR (gone, or [SYS/TEMP] unreadable) and returns null. */
async function openBody(s: Pop3Session, m: SnapMessage): Promise<Body | null> {
  let stream: Readable | null = null;
  try {
    if (m.size <= SMALL_MESSAGE) {
      // One read instead of a stream: most mail is small.
      const whole = await s.store.readBlob(m.blobId, 0, m.size);
      return { stream: null, it: NO_MORE, first: { done: false, value: whole } };
    }
    stream = s.store.streamBlob(m.blobId);
    s.streaming = stream;
    const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    return { stream, it, first: await it.next() };
  } catch (err) {
    stream?.destroy();
    s.streaming = null;
    const login = s.login!;
    if (!m.retained && (await s.store.getMessages(login.inbox.id, [m.uid])).length === 0) {
      m.gone = true;
      s.send(errLine(`Message ${m.num} was removed by another client during this session`));
    } else {
      s.deps.log.warn('pop3.read-failed', { session: s.id, uid: m.uid, error: err });
      s.send(errLine(`Message ${m.num} cannot be read right now; try again later`, 'SYS/TEMP'));
    }
    return null;
  }
}

/** +OK, the dot-stuffed message (or its TOP part) and the terminator. */
async function writeBody(s: Pop3Session, m: SnapMessage, body: Body, top: TopFilter | null, okText: string): Promise<boolean> {
  try {
    if (s.isClosed()) return false;
    // Output is coalesced into writes of up to WRITE_CHUNK bytes: the status line goes out with
    // the first bytes of the message and the terminator with the last, never as tiny writes.
    const enc = new DotStuffEncoder();
    let held: Buffer[] = [Buffer.from(okLine(okText))];
    let heldLen = held[0]!.length;
    let r = body.first;
    try {
      while (!r.done) {
        let chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        if (top) chunk = top.push(chunk);
        if (chunk.length) {
          const out = enc.push(chunk);
          if (heldLen + out.length > WRITE_CHUNK) {
            if (!(await s.write(held.length === 1 ? held[0]! : Buffer.concat(held, heldLen)))) return false;
            held = [];
            heldLen = 0;
          }
          held.push(out);
          heldLen += out.length;
        }
        if (top?.done) break;
        r = await body.it.next();
      }
    } catch (err) {
      // Part of a response may already be out: the only safe thing left is to drop the connection.
      s.deps.log.error('pop3.stream-failed', { session: s.id, uid: m.uid, error: err });
      s.destroy();
      return false;
    }
    held.push(enc.end());
    return s.write(Buffer.concat(held));
  } finally {
    s.streaming = null;
    body.stream?.destroy();
  }
}
