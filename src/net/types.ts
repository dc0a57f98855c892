// What src/main.ts hands to each protocol server (SMTP, IMAP, POP3). Protocol sessions depend on
// these interfaces and on the Store interface only, never on a concrete store.

import type { Socket } from 'node:net';
import type { TLSSocket, SecureContext } from 'node:tls';
import type { Store, Account } from '../store/store.ts';
import type { Config } from '../config/config.ts';
import type { Logger } from '../obs/log.ts';

export interface TlsProvider {
  /** Current certificate and key (PEM). */
  readonly cert: string;
  readonly key: string;
  readonly context: SecureContext;
  /** Server side of STARTTLS/STLS on an accepted plain socket; resolves once the handshake is done. */
  upgrade(socket: Socket): Promise<TLSSocket>;
}

export type AuthResult =
  | { ok: true; account: Account }
  | { ok: false; reason: 'invalid' | 'throttled' | 'disabled'; message: string };

export interface Authenticator {
  /**
   * Verifies a password. Failures are counted per (login name, source address): that pair's
   * checks are then delayed, growing and decaying (src/auth/throttle-policy.ts). 'throttled'
   * (a temporary refusal, password not checked) only when the attempt would have to wait too long.
   */
  login(username: string, password: string, remoteAddress: string): Promise<AuthResult>;
}

/** Tracks authenticated connections per account (IMAP per-account connection limit). */
export interface ConnectionRegistry {
  /** Returns a release function, or null when the account is at `limit`. */
  acquire(protocol: 'imap' | 'pop3', accountId: number, limit: number): (() => void) | null;
  count(protocol: 'imap' | 'pop3', accountId: number): number;
}

export interface ServerDeps {
  store: Store;
  config: Config;
  tls: TlsProvider;
  auth: Authenticator;
  connections: ConnectionRegistry;
  log: Logger;
}

/** A connection handler: called with each accepted socket (already TLS for implicit-TLS ports). */
export interface ConnectionInfo {
  /** True when the socket is TLS from the start (993, 995, 465). */
  implicitTls: boolean;
  /** The listener's name, e.g. 'imap', 'imaps'. */
  listener: string;
}

export type ConnectionHandler = (socket: Socket | TLSSocket, info: ConnectionInfo) => void;

/** Each protocol module exports one of these; main.ts binds it to its listeners. */
export interface ProtocolServer {
  handle: ConnectionHandler;
  /** Stops accepting work, says goodbye to sessions (BYE / 421 / -ERR), resolves when closed. */
  close(): Promise<void>;
}
