// What FETCH renders from a message's immutable parts, kept with the parse it came from: ENVELOPE,
// BODY and BODYSTRUCTURE (from MessageMeta) and HEADER.FIELDS[.NOT] sections (from the body's
// header block). A body is content-addressed and never changes, so neither can these; clients ask
// for the same ones on every resync and listing, and under bench/imap-persistent.ts rendering
// them was ~11% of the event loop's CPU (perf).
//
// Entries hang off the MessageMeta object (a WeakMap): the store's parse cache decides how long a
// message's parse stays in memory, and its renderings go with it. A store that parses anew per call
// simply never hits. Header-field renderings are capped per message (a client can ask for any
// field list), the oldest dropped first.

import type { MessageMeta } from '../protocol/mime/types.ts';

/** Different HEADER.FIELDS lists kept per message. */
const FIELD_LISTS = 4;

interface Rendered {
  /** Keyed by item and charset mode: `E8`, `E7` (ENVELOPE), `B8`, `S8`… (BODY, BODYSTRUCTURE). */
  text: Map<string, string>;
  fields: Map<string, Buffer> | null;
}

const byMeta = new WeakMap<MessageMeta, Rendered>();

function entry(meta: MessageMeta): Rendered {
  let r = byMeta.get(meta);
  if (!r) {
    r = { text: new Map(), fields: null };
    byMeta.set(meta, r);
  }
  return r;
}

/** A rendering of `meta` by `render`, once per meta, kind and charset mode (utf8: RFC 9051 / UTF8=ACCEPT). */
export function renderedText(meta: MessageMeta, kind: 'E' | 'B' | 'S', utf8: boolean, render: () => string): string {
  const r = entry(meta);
  const key = utf8 ? `${kind}8` : `${kind}7`;
  let v = r.text.get(key);
  if (v === undefined) {
    v = render();
    r.text.set(key, v);
  }
  return v;
}

/**
 * A HEADER.FIELDS[.NOT] section of `meta`'s body (the header block at range.start..end), filtered
 * by `render` on a miss. The caller must not change the returned bytes (a partial fetch takes a
 * subarray).
 */
export async function renderedFields(
  meta: MessageMeta,
  range: { start: number; end: number; names: readonly string[]; not: boolean },
  render: () => Promise<Buffer>,
): Promise<Buffer> {
  const r = entry(meta);
  // The header block's place (a nested message's differs from the top one's), then the list:
  // field names are atoms or strings, matched case-insensitively; NUL cannot occur in one.
  const key = `${range.start}:${range.end}${range.not ? '-' : '+'}${range.names.join('\0').toLowerCase()}`;
  const hit = r.fields?.get(key);
  if (hit) return hit;
  const v = await render();
  const fields = (r.fields ??= new Map());
  if (fields.size >= FIELD_LISTS) fields.delete(fields.keys().next().value!);
  fields.set(key, v);
  return v;
}
