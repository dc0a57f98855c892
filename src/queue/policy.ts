// Outbound delivery policy, pure (no I/O, the clock passed in): when to try again, when to give
// up, when to warn the sender, and what a reply from the other side means.
//
// - Retry backoff: `base` after the first failed attempt, doubling per attempt, capped at `max`
//   (defaults 5 min and 2 h: 5, 10, 20, 40, 80, 120, 120 … minutes). RFC 5321 §4.5.4.1 asks for
//   at least 30 minutes between retries to one destination in general; the shorter first steps
//   are what Postfix does too (a greylisting server wants the second try within minutes).
// - Expiry (RFC 5321 §4.5.4.1: "at least 4-5 days"): default 5 days from enqueue. The last
//   attempt is made at the expiry time itself (the retry before it is moved there), and a
//   temporary failure then is final: 'expired', with a DSN.
// - Delay warning (RFC 3461 §4.1 NOTIFY=DELAY): once per recipient, on the first temporary
//   failure at least `delayWarning` (default 4 h) after the message was queued.
// - Replies (RFC 5321 §4.2.1): 2xx sent, 4xx temporary, 5xx permanent; anything that is no reply
//   (connection refused, timeout, TLS failure, DNS SERVFAIL) is temporary.

export interface RetryPolicy {
  /** First retry delay, ms. */
  retryBase: number;
  /** Longest retry delay, ms. */
  retryMax: number;
  /** How long a message may stay queued, ms. */
  expiry: number;
  /** After how long in the queue a temporary failure warns the sender (once), ms; 0 = never. */
  delayWarning: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retryBase: 5 * 60_000,
  retryMax: 2 * 60 * 60_000,
  expiry: 5 * 24 * 60 * 60_000,
  delayWarning: 4 * 60 * 60_000,
};

/** Delay before the next attempt after `attempts` attempts (1 = the first one failed). */
export function retryDelay(attempts: number, p: RetryPolicy): number {
  const n = Math.max(1, attempts);
  // 2 ** 40 would overflow nothing, but cap the exponent so the product stays a safe integer.
  const d = p.retryBase * 2 ** Math.min(n - 1, 30);
  return Math.max(0, Math.min(d, p.retryMax));
}

export type Verdict = 'sent' | 'temporary' | 'permanent';

/** RFC 5321 §4.2.1: the first digit decides. 0 (no reply at all) is temporary. */
export function verdictOf(code: number): Verdict {
  if (code >= 200 && code < 300) return 'sent';
  if (code >= 500 && code < 600) return 'permanent';
  return 'temporary';
}

/**
 * The RFC 3463 status of a reply: the enhanced code the server gave (RFC 2034 §3, right after the
 * basic code), else one from the basic code's class.
 */
export function statusOf(reply: string, code: number): string {
  // linear: fixed-width digit checks on the first few characters only
  const m = /^\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)/.exec(reply.slice(0, 16));
  if (m && Number(m[1]) === Math.floor(code / 100)) return `${m[1]}.${m[2]}.${m[3]}`;
  const v = verdictOf(code);
  return v === 'sent' ? '2.0.0' : v === 'permanent' ? '5.0.0' : '4.0.0';
}

/** What becomes of one recipient after one attempt whose verdict is `v`. */
export type Decision =
  | { kind: 'sent' }
  | { kind: 'failed' }
  | { kind: 'expired' }
  | { kind: 'deferred'; nextAttemptAt: number; warn: boolean };

export function decide(
  v: Verdict,
  r: { attempts: number; delayWarned: boolean },
  m: { createdAt: number; expiresAt: number },
  now: number,
  p: RetryPolicy,
): Decision {
  if (v === 'sent') return { kind: 'sent' };
  if (v === 'permanent') return { kind: 'failed' };
  if (now >= m.expiresAt) return { kind: 'expired' };
  // The last try is at the expiry time, not skipped because the backoff would overshoot it.
  const nextAttemptAt = Math.min(now + retryDelay(r.attempts, p), m.expiresAt);
  const warn = p.delayWarning > 0 && !r.delayWarned && now - m.createdAt >= p.delayWarning;
  return { kind: 'deferred', nextAttemptAt, warn };
}

/** The ms epoch a message queued at `now` expires at. */
export function expiresAt(now: number, p: RetryPolicy): number {
  return now + p.expiry;
}
