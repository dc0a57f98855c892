// NOOP (RFC 9051 §6.1.2): reports pending mailbox changes (the dispatcher flushes them).
import type { Handler } from '../commands.ts';

export const noop: Handler<'NOOP'> = async () => 'NOOP completed';
