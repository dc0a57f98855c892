// Modified UTF-7 mailbox names (RFC 3501 §5.1.3, RFC 9051 Appendix A / §5.1 for IMAP4rev1 clients).
// IMAP4rev2 and UTF8=ACCEPT clients (RFC 6855) use UTF-8 names directly.

function toModBase64(units: number[]): string {
  const bytes = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => bytes.writeUInt16BE(u, i * 2));
  const b64 = bytes.toString('base64');
  let end = b64.length;
  while (end > 0 && b64.charCodeAt(end - 1) === 0x3d) end--; // padding off, by hand: /=+$/ rescans every run of '='
  return b64.slice(0, end).replace(/\//g, ',');
}

/** UTF-8 (JS string) → modified UTF-7. */
export function encodeMailboxUtf7(name: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = () => {
    if (pending.length) {
      out += '&' + toModBase64(pending) + '-';
      pending = [];
    }
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? '&-' : name[i];
    } else {
      pending.push(c);
    }
  }
  flush();
  return out;
}

/** Modified UTF-7 → UTF-8 (JS string). Returns null when `s` is not valid modified UTF-7. */
export function decodeMailboxUtf7(s: string): string | null {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return null;
    if (c !== 0x26) {
      out += s[i];
      i++;
      continue;
    }
    const end = s.indexOf('-', i + 1);
    if (end < 0) return null;
    if (end === i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    const b64 = s.slice(i + 1, end);
    if (!/^[A-Za-z0-9+,]+$/.test(b64)) return null; // linear: anchored, one class
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    if (bytes.length % 2 !== 0 || bytes.length === 0) return null;
    let chunk = '';
    for (let j = 0; j < bytes.length; j += 2) chunk += String.fromCharCode(bytes.readUInt16BE(j));
    // Shortest form only: a re-encode must give the same text (RFC 3501 §5.1.3).
    if (toModBase64([...chunk].flatMap((ch) => Array.from({ length: ch.length }, (_, k) => ch.charCodeAt(k)))) !== b64) return null;
    for (let j = 0; j < chunk.length; j++) {
      const u = chunk.charCodeAt(j);
      if (u >= 0x20 && u <= 0x7e) return null;
    }
    out += chunk;
    i = end + 1;
  }
  return out;
}
