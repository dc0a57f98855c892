// SELECT / EXAMINE (RFC 9051 §6.3.2, §6.3.3) with CONDSTORE (RFC 7162 §3.1.8) and
// QRESYNC (RFC 7162 §3.2.5) parameters.
import type { Handler } from '../commands.ts';
import { ImapBad, ImapNo } from '../errors.ts';
import { SelectedMailbox } from '../selected.ts';
import { flagList, formatSeqSet, seqSetHas } from '../../protocol/imap/response.ts';
import { SystemFlag, mailboxObjectId } from '../../store/store.ts';
import { fetchOpen } from '../uidonly.ts';
import { prewarmKeyIndex } from '../sort-index.ts';

export const select: Handler<'SELECT' | 'EXAMINE'> = async (s, _tag, cmd) => {
  const readOnly = cmd.name === 'EXAMINE';
  if (cmd.qresync && !s.qresync) throw new ImapBad('QRESYNC is not enabled (ENABLE QRESYNC first)');
  const account = s.account!;
  const name = s.mailboxFromClient(cmd.mailbox);
  // RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected; RFC 7162 §3.2.11 [CLOSED].
  if (s.selected) {
    s.unselect();
    if (s.qresync) s.write('* OK [CLOSED] Previous mailbox closed\r\n');
  }
  const mb = await s.deps.store.getMailbox(account.id, name);
  if (!mb) throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  if (cmd.condstore || cmd.qresync) s.condstore = true;
  s.savedSearch = []; // RFC 5182 §2.1: the saved result does not survive a SELECT

  const sel = new SelectedMailbox(mb.id, mb.name, mb.uidValidity, readOnly, [], mb.highestModseq);
  s.selected = sel;
  s.state = 'selected';
  const messages = await s.deps.store.listMessages(mb.id);
  if (s.selected !== sel) return null;
  sel.initialize(messages.map((m) => m.uid));
  // IMAP4rev1 \Recent (RFC 3501 §2.3.2): SELECT claims what no session has seen; EXAMINE only
  // looks (a read-only session does not take \Recent from later ones). Not in IMAP4rev2.
  if (!s.rev2) {
    sel.recentSource = (below) => s.deps.store.claimRecent(mb.id, below, !readOnly);
    await sel.settleRecent();
    if (s.selected !== sel) return null;
  }
  const fresh = await s.deps.store.getMailboxById(mb.id);
  const uidNext = Math.max(fresh?.uidNext ?? mb.uidNext, sel.maxUid + 1);
  const highest = Math.max(fresh?.highestModseq ?? mb.highestModseq, sel.highestModseq);
  sel.highestModseq = highest;

  for (const m of messages) if (m.keywords.length) sel.noteKeywords(m.keywords);
  let out = sel.flagsResponses(true);
  out += `* ${sel.exists} EXISTS\r\n`;
  if (!s.rev2) {
    out += `* ${sel.recent.size} RECENT\r\n`;
    const unseen = messages.find((m) => !(m.systemFlags & SystemFlag.Seen) && sel.seqOf(m.uid) > 0);
    // RFC 9586 §3: no sequence numbers in responses with UIDONLY (UNSEEN is one).
    if (unseen && !s.uidOnly) out += `* OK [UNSEEN ${sel.seqOf(unseen.uid)}] First unseen\r\n`;
  }
  out += `* OK [UIDVALIDITY ${mb.uidValidity}] UIDs valid\r\n`;
  out += `* OK [UIDNEXT ${uidNext}] Predicted next UID\r\n`;
  out += `* OK [HIGHESTMODSEQ ${highest}] Highest\r\n`;
  // RFC 8474 §4.2
  out += `* OK [MAILBOXID (${mailboxObjectId(mb)})] Ok\r\n`;
  if (s.rev2) out += `* LIST () "/" ${s.mailboxToClient(mb.name)}\r\n`;
  s.write(out);
  // A big mailbox's SORT/THREAD keys read in the background from now (sort-index.ts), not at
  // the first SORT or THREAD; sessions selecting it meanwhile share the one build.
  const prewarmAt = s.deps.config.limits.sortPrewarmMessages;
  if (prewarmAt > 0 && sel.exists >= prewarmAt) {
    prewarmKeyIndex(s.deps.store, mb.id, mb.uidValidity, sel.uids, (err) => s.deps.log.warn('imap.sort-prewarm-failed', { session: s.id, mailbox: mb.id, err }));
  }

  // RFC 7162 §3.2.5.1: what changed since the client's last known state.
  const q = cmd.qresync;
  if (q && q.uidValidity === mb.uidValidity) {
    const maxUid = sel.maxUid;
    const known = (uid: number) => (q.knownUids ? seqSetHas(q.knownUids, uid, maxUid) : true);
    // The sequence-match data (§3.2.5.2) only narrows the answer; the full answer is also correct.
    const since = q.modseq;
    const vanished = (await s.deps.store.expungedSince(mb.id, since)).filter(known);
    if (vanished.length) s.write(`* VANISHED (EARLIER) ${formatSeqSet(vanished)}\r\n`);
    const changed = await s.deps.store.listMessages(mb.id, { changedSince: since });
    let buf = '';
    for (const m of changed) {
      const seq = sel.seqOf(m.uid);
      if (!seq) continue;
      if (m.keywords.length && sel.noteKeywords(m.keywords)) buf += sel.flagsResponses(); // RFC 3501 §7.2.6
      buf += `${fetchOpen(s.uidOnly, seq, m.uid, !s.uidOnly).head}${s.uidOnly ? '' : ' '}FLAGS ${flagList(m.systemFlags, m.keywords, sel.isRecent(m.uid))} MODSEQ (${m.modseq}))\r\n`;
      if (buf.length > 65536) {
        await s.writeAwait(buf);
        buf = '';
      }
    }
    if (buf) await s.writeAwait(buf);
  }
  return { code: readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${cmd.name} completed` };
};
