// COMPRESS (RFC 4978 §3): DEFLATE only; BAD when already active. NO [COMPRESSIONACTIVE] is for a
// lower layer compressing already: Node's TLS never does (its OpenSSL has TLS compression off),
// so that answer never applies here. The tagged OK is written uncompressed by the handler itself,
// then everything after its CRLF is compressed both ways (src/imap/compress.ts).
import type { Handler } from '../commands.ts';
import { ImapBad } from '../errors.ts';
import { statusLine } from '../../protocol/imap/response.ts';

export const compress: Handler<'COMPRESS'> = async (s, tag, cmd) => {
  if (cmd.mechanism !== 'DEFLATE') throw new ImapBad(`Unknown compression mechanism ${cmd.mechanism.slice(0, 32)}`);
  if (s.compressed) throw new ImapBad('DEFLATE is already active', 'COMPRESSIONACTIVE');
  // Pending untagged responses first, in the clear like the OK.
  await s.flushChangesAsync(true);
  s.write(statusLine(tag, 'OK', null, 'DEFLATE active'));
  s.startCompression();
  return null;
};
