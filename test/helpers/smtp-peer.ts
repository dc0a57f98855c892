// A receiving SMTP server for outbound tests: smtp-server on 127.0.0.1 (port 0 or a given one),
// which records every connection and message, and answers RCPT/DATA as the test decides.
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession, type SMTPServerAddress } from 'smtp-server';

export interface PeerMessage {
  from: string;
  to: string[];
  body: Buffer;
  secure: boolean;
  /** Connection it came on (smtp-server session id). */
  session: string;
  /** MAIL FROM parameters (SIZE, BODY, SMTPUTF8 …), upper-cased keys. */
  params: Record<string, unknown>;
}

export interface PeerOptions {
  port?: number;
  /** Loopback address to listen on (127.0.0.1; another 127.x lets two peers share one port). */
  host?: string;
  /** Reply for one recipient: null = accept, else [code, text]. */
  rcpt?: (address: string) => [number, string] | null;
  /** Reply for the message: null = 250, else [code, text]. */
  data?: (m: PeerMessage) => [number, string] | null;
  /** Wait this long before answering DATA (a slow receiver). */
  dataDelayMs?: number;
  /** smtp-server options (hideSTARTTLS, hideSMTPUTF8, size, authMethods, onAuth …). */
  server?: Partial<SMTPServerOptions>;
}

export interface Peer {
  port: number;
  messages: PeerMessage[];
  /** Connections accepted so far. */
  connections: number;
  helos: string[];
  close(): Promise<void>;
}

class PeerError extends Error {
  responseCode: number;
  constructor(code: number, text: string) {
    super(text);
    this.responseCode = code;
  }
}

export async function startPeer(o: PeerOptions = {}): Promise<Peer> {
  const peer: Peer = { port: 0, messages: [], connections: 0, helos: [], close: async () => {} };
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['AUTH'],
    authOptional: true,
    ...o.server,
    onConnect(_s: SMTPServerSession, cb: (err?: Error) => void) {
      peer.connections++;
      cb();
    },
    onRcptTo(addr: SMTPServerAddress, _s: SMTPServerSession, cb: (err?: Error) => void) {
      const r = o.rcpt?.(addr.address) ?? null;
      cb(r ? new PeerError(r[0], r[1]) : undefined);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        const m: PeerMessage = {
          from: env.mailFrom ? env.mailFrom.address : '',
          to: env.rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: session.secure,
          session: session.id,
          params: (env.mailFrom && (env.mailFrom as { args?: Record<string, unknown> }).args) || {},
        };
        if (session.hostNameAppearsAs) peer.helos.push(session.hostNameAppearsAs);
        const answer = () => {
          const r = o.data?.(m) ?? null;
          if (r) return cb(new PeerError(r[0], r[1]));
          peer.messages.push(m);
          cb(null, 'OK queued');
        };
        if (o.dataDelayMs) setTimeout(answer, o.dataDelayMs);
        else answer();
      });
    },
  } as SMTPServerOptions);
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  peer.port = (server.server.address() as { port: number }).port;
  peer.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return peer;
}
