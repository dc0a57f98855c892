// LMTP (RFC 2033): Pillarbox as the mailbox server behind an MTA (Postfix, Exim). The same recipient
// resolution and delivery as SMTP (src/smtp/), in smtp-server's LMTP mode: LHLO instead of EHLO, and
// after DATA one reply per accepted RCPT (§4.2), so one full mailbox fails only its own recipient.
//
// No AUTH and no TLS: the listener is for the MTA in front, so only loopback and the addresses
// listed in config.lmtpAllow may connect (others get 554 5.7.1 at the greeting). Other domains are
// refused (550 5.1.2): the MTA in front relays, not us. The inbound checks (SPF/DKIM/DMARC) are the
// MTA's; the MX's are not run again here.

import { isIP } from 'node:net';
import type { ProtocolServer, ServerDeps } from '../net/types.ts';
import { isLoopback } from '../protocol/smtp/address.ts';
import { createSmtpServer } from '../smtp/server.ts';

/** Strips the IPv4-mapped prefix so `::ffff:10.0.0.5` matches `10.0.0.5`. */
function plain(ip: string): string {
  return ip.toLowerCase().startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip.toLowerCase();
}

export function createLmtpServer(deps: ServerDeps): ProtocolServer {
  const allowed = new Set((deps.config.lmtpAllow ?? []).map(plain));
  return createSmtpServer(deps, 'lmtp', { allowConnect: (ip) => isLoopback(ip) || allowed.has(plain(ip)) });
}
