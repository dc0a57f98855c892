// Compares our ENVELOPE, BODY, BODYSTRUCTURE, BODY[section] and BINARY[section] answers with
// Dovecot 2.3's, recorded by capture-dovecot.ts in dovecot/*.json, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import { writeEnvelope } from '../../../src/protocol/imap/envelope.ts';
import { writeBodyStructure } from '../../../src/protocol/imap/bodystructure.ts';
import {
  parseSection, readSection, findPart, decodeTransferEncoding,
} from '../../../src/protocol/imap/section.ts';

const here = dirname(fileURLToPath(import.meta.url));
type Enc = string | { base64: string } | { error: string } | null;
function dec(v: Enc): Buffer | null {
  if (v === null) return null;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if ('base64' in v) return Buffer.from(v.base64, 'base64');
  throw new Error('error value');
}

// Deliberate differences from Dovecot:
// - Dovecot echoes media types, subtypes and parameter names in their original case; we keep
//   them lower-cased (MimeNode contract; IMAP compares them case-insensitively). These vectors
//   have upper-case ones, so BODY/BODYSTRUCTURE are compared case-insensitively there.
const CASE_DIFFERS = new Set(['01-simple', '13-weird-mime']);
// - Dovecot sends Latin-1 header bytes as they are (not UTF-8, so invalid in IMAP4rev2); we send
//   them transcoded to UTF-8 (RFC 6532). Compared after transcoding Dovecot's Latin-1 strings.
const LATIN1_HEADERS = new Set(['09-latin1-headers']);
// - Dovecot counts sizes of bare-LF messages as if stored with CRLF; our offsets are raw bytes.
//   These vectors are compared after converting the message to CRLF (the form IMAP requires).
const BARE_LF = new Set(['14-bare-lf']);
const KNOWN: Record<string, Array<[string, string]>> = {};
// - Dovecot replaces NUL with 0x80 in BODY[] and even in BINARY[] (RFC 3516 sends it as
//   literal8); we return the bytes unchanged: whether NUL can be sent is the session's call.
const NUL_REPLACED = new Set(['17-encodings']);
// - Dovecot returns BINARY[] of a base64 message/rfc822 part undecoded; we decode it as its
//   Content-Transfer-Encoding says (RFC 3516 §4.2).
const BINARY_SKIP = new Set(['18-message-global:2']);

const files = readdirSync(join(here, 'messages')).filter((f) => f.endsWith('.eml')).sort();

for (const f of files) {
  const name = f.replace(/\.eml$/, '');
  test(`dovecot parity: ${name}`, () => {
    let raw = readFileSync(join(here, 'messages', f));
    if (BARE_LF.has(name)) raw = Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
    const fx = JSON.parse(readFileSync(join(here, 'dovecot', name + '.json'), 'utf8'));
    const meta = parseMessage(raw);
    const fix = (s: string) => {
      for (const [ours, theirs] of KNOWN[name] ?? []) s = s.split(theirs).join(ours);
      return s;
    };

    let envExpected = dec(fx.ENVELOPE)!;
    if (LATIN1_HEADERS.has(name)) {
      // transcode literal contents and recompute literal lengths
      const s = envExpected.toString('latin1').replace(/\{(\d+)\}\r\n/g, (_m, n: string) => `\u0000${n}\u0000`);
      let out = '';
      for (let i = 0; i < s.length;) {
        if (s[i] === '\u0000') {
          const j = s.indexOf('\u0000', i + 1);
          const len = Number(s.slice(i + 1, j));
          const content = s.slice(j + 1, j + 1 + len);
          out += `{${Buffer.byteLength(content, 'utf8')}}\r\n${content}`;
          i = j + 1 + len;
        } else out += s[i++];
      }
      envExpected = Buffer.from(out, 'utf8');
    }
    assert.equal(writeEnvelope(meta.envelope), envExpected.toString('utf8'), 'ENVELOPE');

    for (const [item, ext] of [['BODYSTRUCTURE', true], ['BODY', false]] as const) {
      let ours = writeBodyStructure(meta.root, ext);
      let theirs = fix(dec(fx[item])!.toString('utf8'));
      if (CASE_DIFFERS.has(name)) { ours = ours.toLowerCase(); theirs = theirs.toLowerCase(); }
      assert.equal(ours, theirs, item);
    }
    assert.equal(String(raw.length), fx['RFC822.SIZE'], 'RFC822.SIZE');

    for (const [sec, v] of Object.entries(fx.sections as Record<string, Enc>)) {
      const spec = parseSection(sec);
      assert.ok(spec, `section ${sec} parses`);
      if (v !== null && typeof v === 'object' && 'error' in v) assert.fail(`dovecot error for ${sec}: ${v.error}`);
      const ours = readSection(raw, meta, spec);
      let theirs = dec(v)!.toString('latin1');
      if (NUL_REPLACED.has(name)) theirs = theirs.replace(/\x80/g, '\x00');
      assert.equal(ours.toString('latin1'), theirs, `BODY[${sec}]`);
    }

    for (const [path, v] of Object.entries(fx.binary as Record<string, Enc>)) {
      if (BINARY_SKIP.has(`${name}:${path}`)) continue;
      const part = findPart(meta.root, path.split('.').map(Number));
      assert.ok(part, `part ${path}`);
      const decoded = decodeTransferEncoding(raw.subarray(part.bodyStart, part.bodyEnd), part.encoding);
      if (v !== null && typeof v === 'object' && 'error' in v && /\[PARSE\]/.test(v.error)) {
        // Dovecot refuses corrupt base64 with NO [PARSE]; we decode what can be decoded, since
        // clients handle a best-effort body better than a failed FETCH.
        assert.ok(decoded, `BINARY[${path}] best effort`);
      } else if (v !== null && typeof v === 'object' && 'error' in v) {
        assert.match(v.error, /UNKNOWN-CTE/);
        assert.equal(decoded, null, `BINARY[${path}] unknown CTE`);
      } else {
        let theirs = dec(v)!.toString('latin1');
        if (NUL_REPLACED.has(name)) theirs = theirs.replace(/\x80/g, '\x00');
        assert.equal(decoded?.toString('latin1'), theirs, `BINARY[${path}]`);
      }
    }
  });
}
