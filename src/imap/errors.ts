// IMAP error taxonomy (RFC 9051 §7.1): handlers throw these; the dispatcher turns them into one
// tagged reply. ImapNo → `tag NO [CODE] text`, ImapBad → `tag BAD [CODE] text`, ImapBye → `* BYE`
// and close. A StoreError maps to the response code a client can act on (RFC 5530 codes).

import { StoreError } from '../store/store.ts';

export class ImapNo extends Error {
  readonly code: string | null;
  constructor(
    code: string | null,
    text: string,
  ) {
    super(text);
    this.code = code;
    this.name = 'ImapNo';
  }
}

export class ImapBad extends Error {
  readonly code: string | null;
  constructor(
    text: string,
    code: string | null = null,
  ) {
    super(text);
    this.code = code;
    this.name = 'ImapBad';
  }
}

export class ImapBye extends Error {
  readonly code: string | null;
  constructor(
    text: string,
    code: string | null = null,
  ) {
    super(text);
    this.code = code;
    this.name = 'ImapBye';
  }
}

/** Maps a thrown value to a tagged reply (or null for an unexpected error, which is logged). */
export function toReply(err: unknown): { cond: 'NO' | 'BAD'; code: string | null; text: string } | null {
  if (err instanceof ImapNo) return { cond: 'NO', code: err.code, text: err.message };
  if (err instanceof ImapBad) return { cond: 'BAD', code: err.code, text: err.message };
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'exists':
        return { cond: 'NO', code: 'ALREADYEXISTS', text: err.message };
      case 'not-found':
        return { cond: 'NO', code: 'NONEXISTENT', text: err.message };
      case 'quota':
        return { cond: 'NO', code: 'OVERQUOTA', text: err.message };
      case 'has-children':
        return { cond: 'NO', code: 'HASCHILDREN', text: err.message };
      case 'inbox':
      case 'invalid':
        return { cond: 'NO', code: 'CANNOT', text: err.message };
      case 'noperm':
        return { cond: 'NO', code: 'NOPERM', text: err.message };
      case 'limit':
        // RFC 5530 §3: "an implementation limit of some kind"
        return { cond: 'NO', code: 'LIMIT', text: err.message };
    }
  }
  return null;
}
