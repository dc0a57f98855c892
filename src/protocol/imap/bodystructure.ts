// RFC 9051 §7.5.2 BODY and BODYSTRUCTURE serialisation from the cached MIME tree.
// Output matches Dovecot 2.3 byte for byte on the vectors in test/vectors/mime.
import type { MimeNode } from '../mime/types.ts';
import { writeEnvelope } from './envelope.ts';
import { nstring, imapString } from './strings.ts';

function paramList(params: Array<[string, string]>, utf8: boolean): string {
  if (params.length === 0) return 'NIL';
  return '(' + params.map(([k, v]) => `${imapString(k, utf8)} ${imapString(v, utf8)}`).join(' ') + ')';
}

function bodyParams(node: MimeNode): Array<[string, string]> {
  // As Dovecot does: text parts without a charset are labelled with the RFC 2045 §5.2 default
  // (appended after the given parameters).
  if (node.type === 'text' && !node.params.some(([k]) => k === 'charset')) {
    return [...node.params, ['charset', 'us-ascii']];
  }
  return node.params;
}

function disposition(node: MimeNode, utf8: boolean): string {
  const d = node.disposition;
  if (!d) return 'NIL';
  return `(${imapString(d.type, utf8)} ${paramList(d.params, utf8)})`;
}

function language(node: MimeNode, utf8: boolean): string {
  const l = node.language;
  if (!l || l.length === 0) return 'NIL';
  // body-fld-lang allows a single string; Dovecot always sends the list form.
  return '(' + l.map((x) => imapString(x, utf8)).join(' ') + ')';
}

/** Stand-in for a missing part: an empty text/plain, as Dovecot writes it. */
function emptyText(at: number): MimeNode {
  return {
    headerStart: at, headerEnd: at, bodyStart: at, bodyEnd: at, type: 'text', subtype: 'plain', params: [],
    id: null, description: null, encoding: '7bit', md5: null, disposition: null, language: null, location: null,
    size: 0, lines: 0,
  };
}

const EMPTY_ENVELOPE = '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)';

function write(node: MimeNode, extended: boolean, utf8: boolean): string {
  if (node.type === 'multipart') {
    // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]. A multipart without a
    // usable boundary has no parts; the grammar needs one, so (as Dovecot) an empty text/plain.
    const children = node.children && node.children.length > 0 ? node.children : [emptyText(node.bodyStart)];
    let s = '(';
    for (const c of children) s += write(c, extended, utf8);
    s += ' ' + imapString(node.subtype, utf8);
    if (extended) {
      s += ` ${paramList(node.params, utf8)} ${disposition(node, utf8)} ${language(node, utf8)} ${nstring(node.location, utf8)}`;
    }
    return s + ')';
  }
  const fields = [
    imapString(node.type, utf8),
    imapString(node.subtype, utf8),
    paramList(bodyParams(node), utf8),
    nstring(node.id, utf8),
    nstring(node.description, utf8),
    imapString(node.encoding, utf8),
    String(node.size),
  ];
  if (node.type === 'message' && node.subtype === 'rfc822') {
    // body-type-msg: envelope SP body SP body-fld-lines. When the message was not parsed (e.g.
    // base64 transfer encoding), an empty envelope and text/plain body as Dovecot does.
    // message/global (RFC 9051 media-message) is written as a basic body like Dovecot 2.3 does,
    // since IMAP4rev1 (RFC 3501) clients cannot parse an envelope there.
    if (node.message) fields.push(writeEnvelope(node.message.envelope, utf8), write(node.message.root, extended, utf8));
    else fields.push(EMPTY_ENVELOPE, write(emptyText(node.bodyStart), extended, utf8));
    fields.push(String(node.lines));
  } else if (node.type === 'text') {
    fields.push(String(node.lines));
  }
  if (extended) {
    // body-ext-1part: md5 dsp lang loc
    fields.push(nstring(node.md5, utf8), disposition(node, utf8), language(node, utf8), nstring(node.location, utf8));
  }
  return '(' + fields.join(' ') + ')';
}

/** BODY (extended=false) or BODYSTRUCTURE (extended=true) of a message or part. */
export function writeBodyStructure(node: MimeNode, extended: boolean, utf8 = false): string {
  return write(node, extended, utf8);
}
