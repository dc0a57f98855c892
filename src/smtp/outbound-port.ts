// What the SMTP layer needs from the outbound queue (issue 13; implemented by src/queue/outbound.ts,
// set on ServerDeps by main.ts). Without it, mail for other domains gets 451 as before.

import type { BlobRef } from '../store/store.ts';
import type { QueueRecipientInput } from '../store/queue.ts';

export interface OutboundPort {
  /** DKIM-signs (when the From: domain has keys in store.dkimKeys) and enqueues durably; resolves after commit.
   *  mailFrom is final (smtp-policy has already applied SRS for forwards). */
  send(o: {
    /** data: a body held in memory (memoryBlob), queued with its bytes. */
    blob: BlobRef & { data?: Buffer };
    mailFrom: string;
    recipients: QueueRecipientInput[];
    accountId: number | null;
    origin: 'submission' | 'forward';
    envid?: string | null;
    ret?: 'FULL' | 'HDRS' | null;
  }): Promise<{ queueId: string }>;
  /** Hands a finished DSN (composeDsn output) to `to`: into that account's INBOX when `to` is hosted here,
   *  else queued with the null sender <>. Never called with to = ''. */
  deliverDsn(dsn: Buffer, to: string): Promise<void>;
}
