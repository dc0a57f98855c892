// COPY and UID COPY (RFC 9051 §6.4.7) with UIDPLUS COPYUID (RFC 4315 §3).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { Mailbox } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';

export async function targetMailbox(s: ImapSession, raw: string): Promise<Mailbox> {
  const name = s.mailboxFromClient(raw);
  const mb = await s.deps.store.getMailbox(s.account!.id, name);
  // RFC 9051 §6.4.7: TRYCREATE when the destination does not exist.
  if (!mb) throw new ImapNo('TRYCREATE', `Mailbox ${name} does not exist`);
  return mb;
}

export function copyUid(uidValidity: number, mapping: Array<[number, number]>): string {
  return `COPYUID ${uidValidity} ${mapping.map((m) => m[0]).join(',')} ${mapping.map((m) => m[1]).join(',')}`;
}

export const copy: Handler<'COPY'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  const uids = resolveSet(s, cmd.set, cmd.uid);
  const dst = await targetMailbox(s, cmd.mailbox);
  if (uids.length === 0) return 'COPY completed';
  const r = await s.deps.store.copyMessages(sel.mailboxId, uids, dst.id, { origin: s.origin });
  if (dst.id === sel.mailboxId) sel.added(r.mapping.map((m) => m[1]));
  return { code: copyUid(r.uidValidity, r.mapping), text: 'COPY completed' };
};
