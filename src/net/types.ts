// What src/main.ts hands to each protocol server (SMTP, IMAP, POP3). Protocol sessions depend on
// these interfaces and on the Store interface only, never on a concrete store.

import type { Socket } from 'node:net';
import type { TLSSocket, SecureContext } from 'node:tls';
import type { Store, Account } from '../store/store.ts';
import type { Config } from '../config/config.ts';
import type { Logger } from '../obs/log.ts';
import type { OutboundPort } from '../smtp/outbound-port.ts';
import type { InboundChecker } from '../smtp/inbound-port.ts';

export interface TlsProvider {
  /**
   * The CURRENT certificate, key (PEM) and secure context: read them at each handshake, never keep
   * them, since a reload (SIGHUP, changed files) replaces them for new handshakes.
   */
  readonly cert: string;
  readonly key: string;
  readonly context: SecureContext;
  /** SHA-256 fingerprint of the current certificate, `AB:CD:…`. */
  readonly fingerprint256: string;
  /** Server side of STARTTLS/STLS on an accepted plain socket; resolves once the handshake is done. */
  upgrade(socket: Socket): Promise<TLSSocket>;
}

export type AuthResult =
  | { ok: true; account: Account }
  | { ok: false; reason: 'invalid' | 'throttled' | 'busy' | 'disabled'; message: string };

export interface Authenticator {
  /**
   * Verifies a password. Failures are counted per (login name, source address): that pair's
   * checks are then delayed, growing and decaying (src/auth/throttle-policy.ts). 'throttled'
   * (a temporary refusal, password not checked) only when the attempt would have to wait too long;
   * 'busy' (temporary, not checked, not counted) when too many password checks already wait
   * process-wide (limits.passwordChecks / passwordCheckQueue, src/auth/check-gate.ts).
   */
  login(username: string, password: string, remoteAddress: string): Promise<AuthResult>;
}

/**
 * Tracks authenticated connections per account (IMAP per-account connection limit, POP3 IN-USE):
 * in this process (src/net/connections.ts), or across every process and node on the store
 * (src/net/shared-connections.ts).
 */
export interface ConnectionRegistry {
  /** Resolves to a release function, or null when the account is at `limit`. */
  acquire(protocol: 'imap' | 'pop3', accountId: number, limit: number): Promise<(() => void) | null>;
  /** Connections of this process. */
  count(protocol: 'imap' | 'pop3', accountId: number): number;
  /** Stops background work (heartbeats) and gives up this node's sessions. */
  close?(): Promise<void>;
}

export interface ServerDeps {
  store: Store;
  config: Config;
  tls: TlsProvider;
  auth: Authenticator;
  connections: ConnectionRegistry;
  log: Logger;
  /** The outbound queue (issue 13); absent: mail for other domains gets 451. */
  outbound?: OutboundPort;
  /** SPF/DKIM/DMARC on the MX port (src/mailauth/inbound.ts); absent: no checks. */
  inbound?: InboundChecker;
}

/** A connection handler: called with each accepted socket (already TLS for implicit-TLS ports). */
export interface ConnectionInfo {
  /** True when the socket is TLS from the start (993, 995, 465). */
  implicitTls: boolean;
  /** The listener's name, e.g. 'imap', 'imaps'. */
  listener: string;
  /**
   * The client's address and port ("::ffff:" stripped): the socket's peer, or on a PROXY protocol
   * listener the address the proxy's header gave (src/net/listener.ts). Sessions use these, never
   * socket.remoteAddress. Absent only where a test hands a socket over by hand.
   */
  remoteAddress?: string;
  remotePort?: number;
}

export type ConnectionHandler = (socket: Socket | TLSSocket, info: ConnectionInfo) => void;

/** Each protocol module exports one of these; main.ts binds it to its listeners. */
export interface ProtocolServer {
  handle: ConnectionHandler;
  /**
   * Shutdown, step 1 (drain): new connections get the goodbye line and are closed; every session
   * gets its goodbye (BYE / 421 / -ERR) as soon as it is between commands, never in the middle of a
   * response. Resolves once every session has closed or flushed its goodbye.
   */
  close(): Promise<void>;
  /**
   * Step 2, when the drain time is over: goodbye now to sessions where that cuts no response in
   * half (an IMAP APPEND or SMTP DATA still uploading); sockets of the others are destroyed.
   * Work already handed to the store goes on (see settled).
   */
  abort(): void;
  /** Step 3: resolves when work the sessions handed to the store (a delivery, an APPEND, a POP3 UPDATE) has finished. */
  settled(): Promise<void>;
}
