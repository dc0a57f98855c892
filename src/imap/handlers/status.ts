// STATUS (RFC 9051 §6.3.11) incl. SIZE (RFC 8438), HIGHESTMODSEQ (RFC 7162 §3.1.6),
// APPENDLIMIT (RFC 7889 §3.1), RECENT for IMAP4rev1 (RFC 3501 §6.3.10), MAILBOXID (RFC 8474 §4.3).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import { mailboxObjectId, type Mailbox } from '../../store/store.ts';
import type { StatusItem } from '../../protocol/imap/types.ts';
import { ImapNo } from '../errors.ts';

export async function statusLineFor(s: ImapSession, mb: Mailbox, items: readonly StatusItem[]): Promise<string> {
  const st = await s.deps.store.mailboxStatus(mb.id);
  const parts: string[] = [];
  for (const it of items) {
    switch (it) {
      case 'MESSAGES':
        parts.push(`MESSAGES ${st.messages}`);
        break;
      case 'UIDNEXT':
        parts.push(`UIDNEXT ${st.uidNext}`);
        break;
      case 'UIDVALIDITY':
        parts.push(`UIDVALIDITY ${st.uidValidity}`);
        break;
      case 'UNSEEN':
        parts.push(`UNSEEN ${st.unseen}`);
        break;
      case 'DELETED':
        parts.push(`DELETED ${st.deleted}`);
        break;
      case 'SIZE':
        parts.push(`SIZE ${st.size}`);
        break;
      case 'HIGHESTMODSEQ':
        parts.push(`HIGHESTMODSEQ ${st.highestModseq}`);
        break;
      case 'RECENT': {
        // RFC 3501 §6.3.10: messages with \Recent: those no session has seen, plus the ones this
        // session claimed when it has the mailbox selected read-write.
        const sel = s.selected;
        const own = sel && sel.mailboxId === mb.id && sel.recentSource && !sel.readOnly ? sel.recent.size : 0;
        parts.push(`RECENT ${st.recent + own}`);
        break;
      }
      case 'APPENDLIMIT':
        parts.push(`APPENDLIMIT ${s.deps.config.limits.appendLimit}`);
        break;
      case 'MAILBOXID':
        // RFC 8474 §4.3
        parts.push(`MAILBOXID (${mailboxObjectId(mb)})`);
        break;
    }
  }
  return `* STATUS ${s.mailboxToClient(mb.name)} (${parts.join(' ')})\r\n`;
}

export const status: Handler<'STATUS'> = async (s, _tag, cmd) => {
  const name = s.mailboxFromClient(cmd.mailbox);
  const mb = await s.deps.store.getMailbox(s.account!.id, name);
  if (!mb) throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  if (cmd.items.includes('HIGHESTMODSEQ')) s.enableCondstore();
  s.write(await statusLineFor(s, mb, cmd.items));
  return 'STATUS completed';
};
