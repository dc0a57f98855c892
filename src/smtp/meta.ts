// The MessageMeta of a message being received, computed from the same bytes that are staged, by
// the streaming MIME parser (it keeps headers only, so memory stays bounded whatever the size).

import { MimeParser, finishSliced } from '../protocol/mime/parser.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';

export interface MetaSink {
  write(chunk: Buffer): void;
  end(): MessageMeta;
  /** end() with `pause()` awaited between its steps (the root header's ENVELOPE and SEARCH texts). */
  finish(pause: () => Promise<void>): Promise<MessageMeta>;
}

export function createMetaSink(): MetaSink {
  const p = new MimeParser();
  return { write: (chunk) => p.write(chunk), end: () => p.end(), finish: (pause) => finishSliced(p, pause) };
}
