// Submission policy (issue 13): what an authenticated user may send.
//
// - From: (RFC 5322 §3.6.2) must name the user: every address in it is the account's own address or
//   one that resolves to the account (alias, +tag, catch-all), as for MAIL FROM. A message without
//   a From: field names nobody and is not refused here.
// - Sending limits per account, sliding windows, kept in memory (a restart forgets them; several
//   processes on PostgreSQL each count their own): messages per hour (checked at MAIL FROM) and
//   recipients per 24 hours (checked at each RCPT, counting the transaction's earlier ones).
//   Both are recorded only for a message that was accepted (250), so refused mail costs nothing.
//   Beyond a limit: 450 4.7.1 (RFC 3463 §3.8: delivery not authorized, temporary).

import type { EnvelopeAddress } from '../protocol/mime/types.ts';

const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Events (time, count) in one sliding window, oldest first; pruned on every read. */
class Window {
  readonly #times: number[] = [];
  readonly #counts: number[] = [];
  #head = 0;
  #total = 0;

  total(now: number, span: number): number {
    while (this.#head < this.#times.length && this.#times[this.#head]! <= now - span) {
      this.#total -= this.#counts[this.#head]!;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#times.length) {
      this.#times.splice(0, this.#head);
      this.#counts.splice(0, this.#head);
      this.#head = 0;
    }
    return this.#total;
  }

  add(now: number, n: number): void {
    const last = this.#times.length - 1;
    // Same millisecond (or clock step back): merge, so a burst is one entry.
    if (last >= this.#head && this.#times[last]! >= now) this.#counts[last]! += n;
    else {
      this.#times.push(now);
      this.#counts.push(n);
    }
    this.#total += n;
  }

  empty(now: number, span: number): boolean {
    return this.total(now, span) === 0;
  }
}

export interface SendLimits {
  sendMessagesPerHour: number;
  sendRecipientsPerDay: number;
}

export class SendLimiter {
  readonly #limits: SendLimits;
  readonly #messages = new Map<number, Window>();
  readonly #recipients = new Map<number, Window>();
  #sweepAt = 0;

  constructor(limits: SendLimits) {
    this.#limits = limits;
  }

  /** Reply text when the account may not start another message now, else null. */
  messageRefusal(accountId: number, now = Date.now()): string | null {
    const max = this.#limits.sendMessagesPerHour;
    if (max <= 0) return null;
    const used = this.#messages.get(accountId)?.total(now, HOUR) ?? 0;
    if (used < max) return null;
    return `4.7.1 Sending limit reached: at most ${max} messages per hour; try again later`;
  }

  /** Reply text when `pending + 1` more recipients would go past the daily limit, else null. */
  recipientRefusal(accountId: number, pending: number, now = Date.now()): string | null {
    const max = this.#limits.sendRecipientsPerDay;
    if (max <= 0) return null;
    const used = this.#recipients.get(accountId)?.total(now, DAY) ?? 0;
    if (used + pending + 1 <= max) return null;
    return `4.7.1 Sending limit reached: at most ${max} recipients per day; try again later`;
  }

  /** Counts an accepted message with its recipients. */
  record(accountId: number, recipients: number, now = Date.now()): void {
    this.#window(this.#messages, accountId).add(now, 1);
    this.#window(this.#recipients, accountId).add(now, recipients);
    if (now >= this.#sweepAt) this.#sweep(now);
  }

  #window(m: Map<number, Window>, id: number): Window {
    let w = m.get(id);
    if (!w) m.set(id, (w = new Window()));
    return w;
  }

  /** Drops accounts with nothing left in their windows (at most once an hour). */
  #sweep(now: number): void {
    this.#sweepAt = now + HOUR;
    for (const [id, w] of this.#messages) if (w.empty(now, HOUR)) this.#messages.delete(id);
    for (const [id, w] of this.#recipients) if (w.empty(now, DAY)) this.#recipients.delete(id);
  }
}

/** The addresses of a From: field (ENVELOPE form), group markers left out. */
export function fromAddresses(from: EnvelopeAddress[] | null): string[] {
  const out: string[] = [];
  for (const a of from ?? []) if (a.mailbox !== null && a.host !== null) out.push(`${a.mailbox}@${a.host}`);
  return out;
}
