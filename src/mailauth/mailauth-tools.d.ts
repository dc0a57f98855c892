// Types for the one mailauth internal we use (mailauth ships no declarations for lib/tools.js).
declare module 'mailauth/lib/tools.js' {
  /** RFC 7489 §3.1 identifier alignment: the first entry aligned with fromDomain (relaxed: same organizational domain; strict: identical), or false. */
  export function getAlignment(fromDomain: string, domainList: Array<string | { domain: string }>, strict?: boolean): { domain: string } | false;
}
