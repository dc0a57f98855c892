// Structured one-line logs: `time level event key=value …` (text) or one JSON object per line
// ({"time","level","event",...fields}). Events are named `area.what` (e.g. `smtp.delivered`,
// `imap.login-failed`) so they can be grepped.
//
// Where lines go: stderr (default) or a file opened for appending (--log-file). A file is written
// through an asynchronous stream, so a slow disk never holds the event loop; the bytes waiting in
// that stream are capped (maxBufferedBytes), and lines beyond the cap are dropped and counted, then
// reported as `log.dropped n=…` once the stream has drained. `reopen()` (SIGHUP, for logrotate)
// opens the path again; lines already queued go to the old file. Stderr is written as Node writes
// it (synchronously to files and pipes on Linux), the lines of one event-loop turn in one write,
// with the same cap on what Node queues.

import { createWriteStream, type WriteStream } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** A logger that owns its output: the server's. */
export interface ServerLogger extends Logger {
  /** Lines dropped so far because the output could not keep up. */
  readonly dropped: number;
  /** Opens the log file again (after logrotate moved it); nothing for stderr. */
  reopen(): void;
  /** Calls reopen() on this signal (process.on: other handlers of the signal keep working); returns the remover. */
  reopenOn(signal: NodeJS.Signals): () => void;
  /** Writes out the lines this event-loop turn has queued (before the start-up banner, so the log reads in order). */
  flush(): void;
  /** Flushes and closes the file (stderr stays open). */
  close(): Promise<void>;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Append to this file instead of writing to stderr. */
  file?: string | null;
  /** Most bytes waiting to be written before lines are dropped (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Where lines go instead (tests); no cap applies. */
  write?: (line: string) => void;
}

export const DEFAULT_MAX_BUFFERED = 4 * 1024 * 1024;
/** A field value longer than this is cut (client-supplied strings end up in logs). */
const MAX_VALUE = 1000;
const RESERVED = new Set(['time', 'level', 'event']);

function clip(s: string): string {
  return s.length > MAX_VALUE ? s.slice(0, MAX_VALUE) + '…' : s;
}

function plain(v: unknown): unknown {
  if (v instanceof Error) return clip(v.message);
  if (typeof v === 'string') return clip(v);
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function fmtText(v: unknown): string {
  const p = plain(v);
  // A linear character-class test: no backtracking on client data.
  if (typeof p === 'string') return /^[\w.@:/+,=-]+$/.test(p) ? p : JSON.stringify(p);
  return JSON.stringify(p) ?? 'null';
}

/** One formatted line (with its newline). */
export function formatLine(format: LogFormat, level: LogLevel, event: string, fields: Record<string, unknown> | undefined, time = new Date()): string {
  if (format === 'json') {
    const o: Record<string, unknown> = { time: time.toISOString(), level, event };
    if (fields) for (const k in fields) if (fields[k] !== undefined) o[RESERVED.has(k) ? `field_${k}` : k] = plain(fields[k]);
    return JSON.stringify(o) + '\n';
  }
  let line = `${time.toISOString()} ${level} ${event}`;
  if (fields) for (const k in fields) if (fields[k] !== undefined) line += ` ${k}=${fmtText(fields[k])}`;
  return line + '\n';
}

interface Output {
  /** Queues a line (urgent: written before returning, with what waits before it); false when it was dropped. */
  write(line: string, urgent?: boolean): boolean;
  flush(): void;
  reopen(): void;
  close(): Promise<void>;
}

/** Flushes of stderr outputs, run on process exit (one listener for all of them). */
const exitFlushes = new Set<() => void>();
function onExit(flush: () => void): void {
  if (exitFlushes.size === 0) process.on('exit', () => exitFlushes.forEach((f) => f()));
  exitFlushes.add(flush);
}

/**
 * A capped writer over a Writable (a file stream, or process.stderr which is not ours to end).
 * A file that fails (can't be opened, disk error) is reported once on stderr; its lines are dropped
 * until reopen() succeeds.
 */
function cappedOutput(open: () => NodeJS.WritableStream & { writableLength: number }, cap: number, onDrain: () => void, owned: boolean): Output {
  let stream = open();
  let failed = false;
  let waiting = false;
  const watch = (s: typeof stream) => {
    if (!owned) return;
    s.once('error', (err: Error) => {
      if (s !== stream) return;
      failed = true;
      process.stderr.write(formatLine('text', 'error', 'log.write-failed', { error: err }));
    });
  };
  watch(stream);
  // Stderr is written synchronously, one system call per write (a pipe: a wake-up of its reader
  // too): the lines of one event-loop turn go out together at its end (three lines per relayed
  // message otherwise cost three writes). An error line goes out at once, with those before it,
  // and whatever waits is written when the process exits.
  let pending = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (!pending) return;
    const p = pending;
    pending = '';
    stream.write(p);
  };
  if (!owned) onExit(flush);
  return {
    write(line, urgent) {
      if (failed || stream.writableLength + pending.length + line.length > cap) {
        // Report the drop once the stream has room again ('drain' follows a full buffer).
        if (!failed && !waiting) {
          waiting = true;
          stream.once('drain', () => {
            waiting = false;
            onDrain();
          });
        }
        return false;
      }
      if (owned) {
        stream.write(line);
        return true;
      }
      pending += line;
      if (urgent) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
      return true;
    },
    flush,
    reopen() {
      if (!owned) return;
      const old = stream;
      stream = open();
      failed = false;
      waiting = false;
      watch(stream);
      old.end();
      old.on('error', () => {});
    },
    close() {
      if (!owned) {
        flush();
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        if (failed) return resolve();
        stream.once('error', () => resolve());
        stream.end(() => resolve());
      });
    },
  };
}

/**
 * createLogger(level) / createLogger(level, write): lines to stderr or to `write`, as before.
 * createLogger({ level, format, file, maxBufferedBytes }): the server's logger.
 */
export function createLogger(opts: LogLevel | LoggerOptions = 'info', write?: (line: string) => void): ServerLogger {
  const o: LoggerOptions = typeof opts === 'string' ? { level: opts, write } : opts;
  const min = ORDER[o.level ?? 'info'];
  const format = o.format ?? 'text';
  const cap = o.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
  let dropped = 0;
  let unreported = 0;
  let out: Output;
  const onDrain = () => {
    if (unreported === 0) return;
    const n = unreported;
    unreported = 0;
    // The report itself is not capped: one short line after a drain.
    out.write(formatLine(format, 'warn', 'log.dropped', { n, total: dropped }));
  };
  if (o.write) {
    const w = o.write;
    out = { write: (l) => (w(l), true), flush() {}, reopen() {}, close: async () => {} };
  } else if (o.file) {
    const file = o.file;
    out = cappedOutput(() => createWriteStream(file, { flags: 'a', highWaterMark: Math.min(16 * 1024, cap) }), cap, onDrain, true);
  } else {
    out = cappedOutput(() => process.stderr, cap, onDrain, false);
  }
  const emit = (lvl: LogLevel, event: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    if (!out.write(formatLine(format, lvl, event, fields), lvl === 'error')) {
      dropped++;
      unreported++;
    }
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    get dropped() {
      return dropped;
    },
    reopen: () => out.reopen(),
    flush: () => out.flush(),
    reopenOn(signal) {
      const h = () => out.reopen();
      process.on(signal, h);
      return () => void process.off(signal, h);
    },
    close: () => {
      onDrain(); // drops not yet reported are reported last
      return out.close();
    },
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
