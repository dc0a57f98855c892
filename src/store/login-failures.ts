// Failed-login state shared by every process on one store (the server's authenticator and the
// admin CLI's `pillarbox throttle list|clear`): one row per (source, login name) with a failure
// score that halves every half-life. The policy that reads it lives in src/auth/throttle-policy.ts;
// the store only keeps the numbers and does the decay-and-add atomically.

export interface LoginFailureRow {
  /** Source key: an IPv4 address, or an IPv6 /64 written `2001:db8:1:2::/64` (src/auth/source-key.ts). */
  ip: string;
  /** Lower-cased login name as given (it may name no account), or `*` for names past the per-source cap. */
  username: string;
  /** Decaying failure score as of `lastFailureAt`: +1 per failure, halved every half-life. */
  score: number;
  /** Failures recorded since the row was created (never decays; for the admin). */
  failures: number;
  /** ms since the epoch. */
  firstFailureAt: number;
  lastFailureAt: number;
}

export interface LoginFailureFilter {
  ip?: string;
  username?: string;
}

export interface LoginFailureStore {
  /** Rows matching the filter (every row without one), ordered by ip, username. */
  list(filter?: LoginFailureFilter): Promise<LoginFailureRow[]>;
  /**
   * One failure at `at` for (ip, username), atomically: score = score · 0.5^((at − last) / halfLifeMs) + 1
   * (no decay if `at` is not after the last failure), failures + 1. Returns the row as stored.
   */
  record(ip: string, username: string, at: number, halfLifeMs: number): Promise<LoginFailureRow>;
  /** Removes matching rows (every row without a filter); returns how many. */
  clear(filter?: LoginFailureFilter): Promise<number>;
  /** Removes rows whose last failure is before `before` (their score has decayed to nothing). */
  prune(before: number): Promise<number>;
}
