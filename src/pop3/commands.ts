// The POP3 command table: the handler of every keyword in COMMAND_STATES (src/protocol/pop3/
// commands.ts says which state each is valid in; the session checks it before calling), and CAPA,
// the one command with something to say in both states.

import type { Pop3Command } from '../protocol/pop3/commands.ts';
import { errLine, multiLine } from '../protocol/pop3/responses.ts';
import type { Pop3Session } from './session.ts';
import { apop, auth, pass, plaintextAllowed, user } from './auth.ts';
import { dele, list, noop, retr, rset, stat, top, uidl } from './transaction.ts';
import { quit } from './update.ts';

export type Handler = (s: Pop3Session, cmd: Pop3Command) => void | Promise<void>;

/** RFC 2449 §5 CAPA; RFC 2595 §4: STLS only while it is permitted. */
function capa(s: Pop3Session, cmd: Pop3Command): void {
  if (cmd.args.length) return void s.send(errLine('CAPA takes no arguments'));
  const caps = ['TOP', 'UIDL'];
  if (s.state === 'authorization') {
    if (plaintextAllowed(s)) caps.push('USER', 'SASL PLAIN');
    if (!s.tls) caps.push('STLS');
  }
  caps.push('RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING');
  // RFC 2449 §6.7: NEVER only when the server never deletes on its own; true (it has no expiry).
  caps.push('EXPIRE NEVER');
  caps.push('IMPLEMENTATION Pillarbox');
  s.send(multiLine('Capability list follows', caps));
}

export const HANDLERS: Readonly<Record<string, Handler>> = {
  CAPA: capa,
  QUIT: quit,
  STLS: (s, cmd) => s.stls(cmd),
  USER: user,
  PASS: pass,
  APOP: apop,
  AUTH: auth,
  NOOP: noop,
  STAT: stat,
  LIST: list,
  UIDL: uidl,
  RETR: retr,
  TOP: top,
  DELE: dele,
  RSET: rset,
};
