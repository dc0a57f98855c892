// CHECK (RFC 9051 §6.4.1 lists it as removed in IMAP4rev2; kept for IMAP4rev1 clients as a NOOP).
import type { Handler } from '../commands.ts';

export const check: Handler<'CHECK'> = async () => 'CHECK completed';
