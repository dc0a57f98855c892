// Types for the part of mx-connect 2.0.0 (no bundled types) that src/queue/transport.ts uses.
declare module 'mx-connect' {
  import type { Socket } from 'node:net';
  interface MxEntry { exchange: string; priority: number; A?: string[]; AAAA?: string[] }
  interface MxConnectOptions {
    target: string;
    mx?: MxEntry[];
    port?: number;
    maxConnectTime?: number;
    ignoreMXHosts?: string[];
    localHostname?: string;
    dnsOptions?: { resolveRecords?: (name: string, type: string) => Promise<unknown[]>; ignoreIPv6?: boolean; blockLocalAddresses?: boolean };
    mtaSts?: { enabled: boolean; cache?: { get(domain: string): Promise<unknown>; set(domain: string, policy: any): Promise<unknown> }; logger?: (entry: unknown) => void };
  }
  interface MxConnection {
    socket: Socket;
    hostname: string;
    host: string;
    port: number;
    policyMatch?: { valid: boolean; mode?: string; testing?: boolean };
  }
  function mxConnect(options: MxConnectOptions): Promise<MxConnection>;
  export default mxConnect;
}
