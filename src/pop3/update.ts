// POP3 QUIT and the UPDATE state (RFC 1939 §6): DELE marks and \Seen applied per the account's
// POP policy (expunge, trash, archive, keep; markSeen) in one store call, +OK only after it is
// committed. Recent mode deletes nothing. Mail removed from INBOX is retained for recent mode.

import { SystemFlag } from '../store/store.ts';
import type { Pop3Command } from '../protocol/pop3/commands.ts';
import { errLine, okLine } from '../protocol/pop3/responses.ts';
import type { Pop3Session } from './session.ts';
import { DAY_MS, RECENT_DAYS, type Login, type SnapMessage } from './snapshot.ts';

export async function quit(s: Pop3Session, cmd: Pop3Command): Promise<void> {
  if (cmd.args.length) return void s.send(errLine('QUIT takes no arguments'));
  if (s.state === 'authorization') {
    s.send(okLine('Bye'));
    s.end();
    return;
  }
  // RFC 1939 §6: UPDATE state.
  s.state = 'update';
  let text: string;
  let ok = true;
  try {
    text = await update(s);
  } catch (err) {
    ok = false;
    s.deps.log.error('pop3.update-failed', { session: s.id, error: err });
    text = 'Some deleted messages could not be removed; they are still in the maildrop';
  }
  if (s.isClosed()) return; // can't answer, but the update went through (or failed) anyway
  s.send(ok ? okLine(text) : errLine(text, 'SYS/TEMP'));
  s.end();
}

/** Applies DELE marks and \Seen per the account's POP policy. */
async function update(s: Pop3Session): Promise<string> {
  const login = s.login!;
  const origin = `pop3:${s.id}`;
  const inboxId = login.inbox.id;
  const messages = s.drop.messages;
  const inInbox = (m: SnapMessage) => !m.gone && !m.retained;
  const deleted = messages.filter((m) => m.deleted && inInbox(m)).map((m) => m.uid);
  const retrieved = messages.filter((m) => m.retrieved && inInbox(m)).map((m) => m.uid);
  if (login.recent) {
    const seen = login.markSeen ? retrieved : [];
    if (seen.length) await s.store.storeFlags(inboxId, seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, { origin });
    logUpdate(s, 'recent', 0, retrieved.length);
    return `Bye; recent mode deletes nothing (${deleted.length} marked message${deleted.length === 1 ? '' : 's'} left in place)`;
  }
  return updateInOneCall(s, login, deleted, retrieved);
}

/** The whole UPDATE in one store transaction (store.popUpdate), retaining removed mail for recent mode. */
async function updateInOneCall(s: Pop3Session, login: Login, deleted: number[], retrieved: number[]): Promise<string> {
  const action = login.deleteAction;
  const deletedSet = new Set(deleted);
  // Expunged messages need no \Seen; moved ones keep their flags, so they get it first.
  const seen = !login.markSeen ? [] : action === 'expunge' ? retrieved.filter((u) => !deletedSet.has(u)) : retrieved;
  const res = await s.store.popUpdate(
    login.inbox.id,
    { seen, remove: deleted, action, retainSince: action === 'keep' ? null : Date.now() - RECENT_DAYS * DAY_MS },
    { origin: `pop3:${s.id}` },
  );
  const count = action === 'keep' ? deleted.length : res.removed.length;
  logUpdate(s, action, count, retrieved.length);
  const p = count === 1 ? '' : 's';
  if (action === 'keep') return `Bye; ${count} message${p} kept on the server and hidden from POP`;
  if (count === 0) return 'Bye; no messages deleted';
  if (action === 'expunge') return `Bye; ${count} message${p} deleted`;
  return `Bye; ${count} message${p} moved to ${res.mailbox?.name ?? (action === 'trash' ? 'Trash' : 'Archive')}`;
}

function logUpdate(s: Pop3Session, action: string, changed: number, retrieved: number): void {
  s.deps.log.info('pop3.update', { session: s.id, account: s.login?.account.address, action, changed, retrieved });
}
