// CATENATE (RFC 4469): not advertised yet.
import type { ImapSession } from '../session.ts';
import type { CatPart } from '../../protocol/imap/types.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import type { BlobRef } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import type { StagedLiterals } from './append-data.ts';

export async function catenate(_s: ImapSession, _parts: CatPart[], _staged: StagedLiterals): Promise<{ blob: BlobRef; meta: MessageMeta }> {
  throw new ImapNo('CANNOT', 'CATENATE is not supported');
}
