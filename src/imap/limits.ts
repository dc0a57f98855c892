// The IMAP session's fixed caps on what one connection may make the server hold (input, literals,
// output). The configurable ones (line length, APPENDLIMIT, timeouts) are in src/config/config.ts.

/** Largest literal buffered in memory for anything but an APPEND message. */
export const MAX_BUFFERED_LITERAL = 64 * 1024;
/** Pause reading when this much unparsed input is queued. */
export const INPUT_HIGH_WATER = 256 * 1024;
/**
 * Before login a connection may hold at most this much: its longest line, one command with its
 * literals, and queued input. Literals only for the commands that carry credentials or ID.
 */
export const PREAUTH_MAX_BYTES = 8 * 1024;
export const PREAUTH_LITERAL_COMMANDS: ReadonlySet<string> = new Set(['LOGIN', 'AUTHENTICATE', 'ID']);
/**
 * Output backpressure: no further command is read while this much output waits for the client
 * (socket.writableLength), so a client that sends without reading can't make us buffer without
 * bound. Input stops as well (the input high-water mark pauses the socket). IDLE updates wait for
 * the same mark.
 */
export const OUTPUT_HIGH_WATER = 256 * 1024;
/** Consecutive syntax errors before the server gives up on a client. */
export const MAX_BAD_COMMANDS = 50;
/**
 * One APPEND command (several messages with MULTIAPPEND, RFC 3502, or CATENATE text parts) may
 * stage at most this many times APPENDLIMIT bytes before its handler runs; past it, NO [LIMIT].
 */
export const APPEND_COMMAND_FACTOR = 10;
