// Sessions that count against per-account limits across every process and node on one store
// (issue 15): the IMAP connection limit and the POP3 maildrop lock (RFC 2449 §8.1.2 IN-USE) hold
// whichever node a client lands on. Each node keeps a heartbeat row; a session counts only while
// its node's heartbeat is fresh, so the sessions of a node that died (SIGKILL, power) stop counting
// once its heartbeat is older than the time to live, and are removed by the next live node's
// heartbeat. Nothing here needs to survive a crash: the rows describe connections, which a crash
// ends anyway. The policy (when to heartbeat, the time to live) is src/net/shared-connections.ts.

export type LiveProtocol = 'imap' | 'pop3';

export interface LiveSessionStore {
  /**
   * Marks `node` alive at `now` and removes the nodes (and their sessions) whose heartbeat is
   * older than `staleBefore`. Returns false when the node had no row (first beat, or it was
   * presumed dead and removed meanwhile: its sessions must then be registered again).
   */
  heartbeat(node: string, now: number, staleBefore: number): Promise<boolean>;
  /**
   * Atomically with every other claim of the same (protocol, account): when fewer than `limit`
   * sessions of live nodes (heartbeat at or after `staleBefore`) exist, adds one for `node` and
   * returns its id; else null.
   */
  claim(node: string, protocol: LiveProtocol, accountId: number, limit: number, now: number, staleBefore: number): Promise<number | null>;
  /** Adds sessions without a limit check (a node that was presumed dead registering its own again). Returns their new ids. */
  restore(node: string, sessions: ReadonlyArray<{ protocol: LiveProtocol; accountId: number }>, now: number): Promise<number[]>;
  release(id: number): Promise<void>;
  /** Sessions of live nodes for (protocol, account). */
  count(protocol: LiveProtocol, accountId: number, staleBefore: number): Promise<number>;
  /** Removes the node and its sessions (a clean stop). */
  dropNode(node: string): Promise<void>;
}
