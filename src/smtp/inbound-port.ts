// The MX's inbound authentication check (SPF, DKIM, DMARC; RFC 7208, 6376, 7489): the contract of
// src/mailauth/inbound.ts `checkInbound` (OUTBOUND-SPEC.md), set on ServerDeps by main.ts when
// config.mailAuth is on. The SMTP layer only applies the verdict (src/smtp/receive.ts, deliver.ts).

export interface InboundVerdict {
  action: 'deliver' | 'junk' | 'reject';
  /** For reject: enhanced status code and text, e.g. "5.7.1 DMARC policy of example.org says reject" (SMTP code 550). */
  reply: string | null;
  /** "Authentication-Results: <our hostname>; spf=…; dkim=…; dmarc=…\r\n" (RFC 8601), to prepend. */
  header: string;
  /** Byte ranges [start, end) of existing Authentication-Results fields claiming our hostname. */
  strip: Array<[number, number]>;
}

export interface InboundInput {
  message: Buffer;
  /** Connecting client address. */
  ip: string;
  /** EHLO/HELO argument. */
  helo: string;
  /** MAIL FROM address without <>; '' for the null reverse-path. */
  mailFrom: string;
  /** Our hostname: authserv-id of the Authentication-Results field. */
  hostname: string;
  isHosted(domain: string): Promise<boolean>;
  /** DNS servers ("127.0.0.1:5353"); absent = the system's. */
  dnsServers?: string[];
  /** Verification limits (src/mailauth/inbound.ts). */
  maxVerifyBytes?: number;
  timeoutMs?: number;
}

export type InboundChecker = (o: InboundInput) => Promise<InboundVerdict>;
