// The MessageMeta of a message being received, computed from the same bytes that are staged.
// Uses the streaming MIME parser (src/protocol/mime/parser.ts); it keeps only headers in memory.

import type { MessageMeta } from '../protocol/mime/types.ts';

export interface MetaSink {
  write(chunk: Buffer): void;
  end(): MessageMeta;
}

/** Temporary stand-in until the MIME parser lands: top-level headers only, the body as one text/plain leaf. */
export function createMetaSink(): MetaSink {
  let size = 0;
  let header: Buffer[] = [];
  let headerLen = 0;
  let headerDone = false;
  let headerEnd = -1;
  let lines = 0;
  const tail: number[] = [];
  return {
    write(chunk: Buffer) {
      for (let i = 0; i < chunk.length; i++) {
        const c = chunk[i]!;
        if (c === 0x0a) lines++;
        if (!headerDone) {
          tail.push(c);
          if (tail.length > 4) tail.shift();
          const n = tail.length;
          if ((n >= 2 && tail[n - 1] === 0x0a && tail[n - 2] === 0x0a) || (n >= 4 && tail[n - 1] === 0x0a && tail[n - 2] === 0x0d && tail[n - 3] === 0x0a)) {
            headerDone = true;
            headerEnd = size + i + 1;
          }
        }
      }
      if (!headerDone || headerEnd > size) {
        const keep = headerDone ? chunk.subarray(0, headerEnd - size) : chunk;
        if (headerLen < 1 << 20) {
          header.push(keep);
          headerLen += keep.length;
        }
      }
      size += chunk.length;
    },
    end(): MessageMeta {
      if (!headerDone) headerEnd = size;
      const text = Buffer.concat(header).toString('utf8');
      header = [];
      const fields: Array<[string, string]> = [];
      for (const raw of text.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/)) {
        const colon = raw.indexOf(':');
        if (colon > 0) fields.push([raw.slice(0, colon).trim().toLowerCase(), raw.slice(colon + 1).trim()]);
      }
      const get = (n: string) => fields.find(([k]) => k === n)?.[1] ?? null;
      const date = get('date');
      const sent = date ? Date.parse(date) : NaN;
      return {
        v: 1,
        envelope: {
          date,
          subject: get('subject'),
          from: null,
          sender: null,
          replyTo: null,
          to: null,
          cc: null,
          bcc: null,
          inReplyTo: get('in-reply-to'),
          messageId: get('message-id'),
        },
        root: {
          headerStart: 0,
          headerEnd,
          bodyStart: headerEnd,
          bodyEnd: size,
          type: 'text',
          subtype: 'plain',
          params: [['charset', 'us-ascii']],
          id: null,
          description: null,
          encoding: '7BIT',
          md5: null,
          disposition: null,
          language: null,
          location: null,
          size: size - headerEnd,
          lines,
        },
        sentDate: Number.isNaN(sent) ? null : sent,
        search: {
          subject: get('subject') ?? '',
          from: get('from') ?? '',
          to: get('to') ?? '',
          cc: get('cc') ?? '',
          bcc: get('bcc') ?? '',
          fields,
        },
      };
    },
  };
}
