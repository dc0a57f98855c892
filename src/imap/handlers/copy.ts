// COPY and UID COPY (RFC 9051 §6.4.7) with UIDPLUS COPYUID (RFC 4315 §3).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { Mailbox } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';
import { uidRanges } from '../selected.ts';

export async function targetMailbox(s: ImapSession, raw: string): Promise<Mailbox> {
  const name = s.mailboxFromClient(raw);
  const mb = await s.deps.store.getMailbox(s.account!.id, name);
  // RFC 9051 §6.4.7: TRYCREATE when the destination does not exist.
  if (!mb) throw new ImapNo('TRYCREATE', `Mailbox ${name} does not exist`);
  return mb;
}

/**
 * RFC 4315 §3: COPYUID's two sets list the UIDs in corresponding order. The store copies in
 * ascending source order and gives ascending new UIDs, so both sets compress into ranges in one
 * pass (`1:131072`, not 131,072 numbers).
 */
export function copyUid(uidValidity: number, mapping: ReadonlyArray<readonly [number, number]>): string {
  const src = mapping.map((m) => m[0]);
  const dst = mapping.map((m) => m[1]);
  const ascending = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
  if (!ascending(src) || !ascending(dst)) return `COPYUID ${uidValidity} ${src.join(',')} ${dst.join(',')}`;
  return `COPYUID ${uidValidity} ${uidRanges(src)} ${uidRanges(dst)}`;
}

export const copy: Handler<'COPY'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  const uids = resolveSet(s, cmd.set, cmd.uid);
  const dst = await targetMailbox(s, cmd.mailbox);
  if (uids.length === 0) return 'COPY completed';
  // RFC 9051 §6.4.7: all or nothing; the store stages a big copy and publishes it at once.
  const r = await s.deps.store.copyMessages(sel.mailboxId, uids, dst.id, { origin: s.origin });
  if (dst.id === sel.mailboxId) sel.added(r.mapping.map((m) => m[1]));
  // Nothing copied (all expunged meanwhile): no COPYUID, whose sets can't be empty.
  if (r.mapping.length === 0) return 'COPY completed';
  return { code: copyUid(r.uidValidity, r.mapping), text: 'COPY completed' };
};
