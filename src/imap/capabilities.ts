// CAPABILITY lists (RFC 9051 §6.1.1 and each extension's RFC).

export interface CapabilityContext {
  tls: boolean;
  authenticated: boolean;
  /** Plain-text login allowed now (TLS, or loopback with allowPlaintextLoopback). */
  loginAllowed: boolean;
  appendLimit: number;
  /** COMPRESS=DEFLATE is active (then not offered again, RFC 4978 §3). */
  compressed: boolean;
}

/** WITHIN (RFC 5032), SAVEDATE (RFC 8514), MULTIAPPEND (RFC 3502), REPLACE (RFC 8508), UIDONLY (RFC 9586), CATENATE (RFC 4469), NOTIFY (RFC 5465). */
const EXTENSIONS: readonly string[] = ['WITHIN', 'SAVEDATE', 'MULTIAPPEND', 'REPLACE', 'UIDONLY', 'CATENATE', 'NOTIFY'];

export function capabilities(c: CapabilityContext): string[] {
  const caps = ['IMAP4rev2', 'IMAP4rev1'];
  if (!c.authenticated) {
    if (!c.tls) caps.push('STARTTLS');
    // RFC 9051 §6.2.3 / §11.1: no plain-text passwords without TLS.
    if (c.loginAllowed) caps.push('AUTH=PLAIN');
    else caps.push('LOGINDISABLED');
    caps.push('SASL-IR', 'LITERAL+', 'ID', 'ENABLE', 'IDLE');
    return caps;
  }
  caps.push(
    'LITERAL+',
    'SASL-IR',
    'ID',
    'ENABLE',
    'IDLE',
    'NAMESPACE',
    'UIDPLUS',
    'MOVE',
    'UNSELECT',
    'CHILDREN',
    'LIST-EXTENDED',
    'LIST-STATUS',
    'SPECIAL-USE',
    'CREATE-SPECIAL-USE',
    'CONDSTORE',
    'QRESYNC',
    'ESEARCH',
    'SEARCHRES',
    // RFC 5256 §3 / RFC 5957 §5 (src/imap/handlers/sort.ts).
    'SORT',
    'SORT=DISPLAY',
    // RFC 5256 §3 (src/imap/handlers/thread.ts).
    'THREAD=ORDEREDSUBJECT',
    'THREAD=REFERENCES',
    // RFC 5267 §3 (ESORT), RFC 9394 (PARTIAL in SEARCH/SORT return options and UID FETCH).
    'ESORT',
    'PARTIAL',
    // RFC 5267 §4 (UPDATE contexts, CANCELUPDATE, NOUPDATE: src/imap/context.ts).
    'CONTEXT=SEARCH',
    'CONTEXT=SORT',
    // RFC 8474 (MAILBOXID in CREATE/SELECT/STATUS, EMAILID/THREADID in FETCH and SEARCH).
    'OBJECTID',
    'QUOTA',
    'QUOTA=RES-STORAGE',
    'STATUS=SIZE',
    `APPENDLIMIT=${c.appendLimit}`,
    'BINARY',
    'UTF8=ACCEPT',
  );
  // Issue 14 extensions, each listed once complete (RFC sections next to their code).
  caps.push(...EXTENSIONS);
  if (!c.compressed) caps.push('COMPRESS=DEFLATE'); // RFC 4978
  return caps;
}
