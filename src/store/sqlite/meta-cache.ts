// Parsed MessageMeta by blob id, least recently used first out, bounded by entries AND by bytes.
// A blob's content never changes, so neither does its parse; parsing the JSON was the top cost of
// FETCH ENVELOPE/BODYSTRUCTURE and header SEARCH. Bounded by count alone, 2,000 messages with
// huge header blocks or thousands of parts (deliverable by anyone) pinned ~13 MB each: the cost of
// an entry is now estimated from its stored JSON (parsed objects take about twice its length on
// the heap), and an entry bigger than an eighth of the budget is parsed every time, never kept.
// Entries are shared and must be treated as read-only.
import type { MessageMeta } from '../../protocol/mime/types.ts';

/** Default budget: estimated heap bytes of all cached entries. */
export const META_CACHE_BYTES = 32 * 1024 * 1024;
export const META_CACHE_ENTRIES = 2_000;
/** Heap bytes per byte of stored JSON, roughly (strings, arrays and objects of the parse). */
const HEAP_PER_JSON_BYTE = 2;

interface Entry {
  meta: MessageMeta;
  cost: number;
}

export class MetaCache {
  readonly #map = new Map<string, Entry>();
  #bytes = 0;
  readonly maxBytes: number;
  readonly maxEntries: number;

  constructor(maxBytes = META_CACHE_BYTES, maxEntries = META_CACHE_ENTRIES) {
    this.maxBytes = maxBytes;
    this.maxEntries = maxEntries;
  }

  /** Estimated heap bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The cached parse (now the most recently used), or the one `load` reads (JSON text), cached if it fits. */
  get(blobId: string, load: () => string): MessageMeta {
    const e = this.#map.get(blobId);
    if (e) {
      this.#map.delete(blobId);
      this.#map.set(blobId, e);
      return e.meta;
    }
    const text = load();
    const meta = JSON.parse(text) as MessageMeta;
    const cost = text.length * HEAP_PER_JSON_BYTE;
    if (cost > this.maxBytes / 8) return meta;
    this.#map.set(blobId, { meta, cost });
    this.#bytes += cost;
    while (this.#map.size > this.maxEntries || this.#bytes > this.maxBytes) {
      const [oldest, old] = this.#map.entries().next().value as [string, Entry];
      this.#map.delete(oldest);
      this.#bytes -= old.cost;
    }
    return meta;
  }
}
