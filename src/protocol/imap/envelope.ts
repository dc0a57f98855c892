// RFC 9051 §7.5.2 ENVELOPE serialisation.
import type { Envelope, EnvelopeAddress } from '../mime/types.ts';
import { nstring } from './strings.ts';

function addressList(list: EnvelopeAddress[] | null, utf8: boolean): string {
  if (!list || list.length === 0) return 'NIL';
  let s = '(';
  for (const a of list) {
    s += `(${nstring(a.name, utf8)} ${nstring(a.adl, utf8)} ${nstring(a.mailbox, utf8)} ${nstring(a.host, utf8)})`;
  }
  return s + ')';
}

/**
 * `(date subject from sender reply-to to cc bcc in-reply-to message-id)`. `utf8`: the session
 * enabled UTF8=ACCEPT (RFC 9051 §6.3.1 / RFC 6855), so 8-bit strings may be sent quoted.
 */
export function writeEnvelope(env: Envelope, utf8 = false): string {
  return '(' + [
    nstring(env.date, utf8),
    nstring(env.subject, utf8),
    addressList(env.from, utf8),
    addressList(env.sender, utf8),
    addressList(env.replyTo, utf8),
    addressList(env.to, utf8),
    addressList(env.cc, utf8),
    addressList(env.bcc, utf8),
    nstring(env.inReplyTo, utf8),
    nstring(env.messageId, utf8),
  ].join(' ') + ')';
}
