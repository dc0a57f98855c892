import cluster from 'node:cluster';
import { closeSync, openSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Config } from '../../config/config.ts';
import { WORKER_ENV, type Ports } from '../../cluster/messages.ts';
import { runPrimary } from '../../cluster/primary.ts';
import { runWorker, workerLogger } from '../../cluster/worker.ts';
import { PortBindError } from '../../net/listener.ts';
import { createLogger } from '../../obs/log.ts';
import { CliError, loadCliConfig, type CommandContext } from '../context.ts';
import { invocation } from '../invocation.ts';

export const SERVE_HELP = `Usage: pillarbox serve [options]

Starts every listener over one store, in one process (--workers N for several). The first start creates the data folder,
the SQLite database and a self-signed TLS certificate for --hostname.

Options (each also settable as PILLARBOX_<NAME> in the environment, e.g. PILLARBOX_IMAP_PORT,
or in DATA/config.json; flags win over environment, environment over the file):
  --data DIR                data folder (default ./data)
  --database URL            SQLite file path or postgres://user@host/db (default DATA/pillarbox.sqlite)
  --config FILE             JSON config file (default DATA/config.json)
  --hostname NAME           this server's name in greetings, headers and its certificate
  --host ADDR               bind address (default 0.0.0.0)
  --smtp-port N             SMTP for the world, MX (default 25)
  --submission-port N       SMTP submission with STARTTLS (default 587)
  --submissions-port N      SMTP submission over implicit TLS (default 465)
  --imap-port N             IMAP with STARTTLS (default 143)
  --imaps-port N            IMAP over implicit TLS (default 993)
  --pop3-port N             POP3 with STLS (default 110)
  --pop3s-port N            POP3 over implicit TLS (default 995)
  --http-port N             HTTP (health check now, webmail later; default 8080)
                            Port 0 means any free port; see --ports-file.
  --lmtp-port N             LMTP (RFC 2033) for an MTA in front of Pillarbox (default: off);
                            accepted from loopback and the addresses of config lmtpAllow only
  --mail-auth on|off        SPF, DKIM and DMARC checks of mail arriving on the MX port (default on)
  --ports-file FILE         where the bound ports are written as JSON (default DATA/ports.json).
                            Removed at start and at stop; written once every listener accepts
                            connections and this banner has been printed (its last line is
                            "Ready."), so its presence means "ready".
  --tls-cert FILE --tls-key FILE
                            a real certificate and key (PEM) instead of the self-signed one
  --max-message-size SIZE   largest message accepted (default 50MB)
                            Config limits.sendMessagesPerHour (500) and limits.sendRecipientsPerDay
                            (5000) bound what one account may send; srsSecret (PILLARBOX_SRS_SECRET)
                            signs forwarded senders (default: generated into DATA/srs-secret).
  --allow-plaintext-loopback
                            allow passwords without TLS on connections from 127.0.0.1/::1
  --relay-host URL          send all outgoing mail through this smarthost with AUTH:
                            smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465
  --relay-ca FILE           PEM to verify the smarthost's certificate with (default: system CAs)
  --outbound-port N         port of other domains' MX hosts (default 25; for tests)
  --dns-servers ADDR[,ADDR] DNS servers for MX lookups and mail checks, e.g. 127.0.0.1:5353
                            (--dns-server is the same)
                            (default: the system's)
  --proxy-protocol LIST     listeners behind a proxy that sends a PROXY protocol header (HAProxy
                            send-proxy / send-proxy-v2), e.g. imap,imaps,smtp (default: none);
                            config proxyProtocol.listeners
  --proxy-trusted LIST      the proxies' addresses, IPs or CIDR ranges (10.0.0.5,fd00::/8); on a
                            listed listener other addresses are refused; config proxyProtocol.trusted
  --log-level LEVEL         debug, info, warn or error (default info)
  --log-file FILE           append logs to FILE instead of stderr; SIGHUP reopens it (logrotate)
  --log-format FORMAT       text (time level event key=value …, default) or json (one object a
                            line: {"time","level","event",…fields})
  --workers N|auto          worker processes serving the listeners over the one store (default
                            1: this process alone; auto: one per core). Config workers.
`;

/** A start-up error as the CLI reports it (message, exit code). */
function startError(err: unknown): CliError | unknown {
  if (err instanceof PortBindError || (err instanceof Error && /cannot listen/.test(err.message))) return new CliError(err.message, 69);
  if (err instanceof Error && err.name === 'TlsLoadError') return new CliError(err.message, 78);
  return err;
}

/** `--workers` as a number: auto = the cores (availableParallelism). */
export function workerCount(config: { workers?: number | 'auto' }): number {
  const w = config.workers ?? 1;
  return w === 'auto' ? Math.max(1, availableParallelism()) : w;
}

export async function serveCommand(ctx: CommandContext): Promise<number> {
  if (ctx.args.length) throw new CliError(`unexpected argument "${ctx.args[0]}"; see pillarbox serve --help`);
  const config = loadCliConfig(ctx, 64); // EX_USAGE
  const workers = workerCount(config);
  const workerId = Number(process.env[WORKER_ENV] ?? 0);
  if (cluster.isWorker && workerId > 0) {
    const log = workerLogger(createLogger({ level: config.logLevel, format: config.logFormat, file: config.logFile }), workerId);
    const stopReopening = config.logFile ? log.reopenOn('SIGHUP') : () => {};
    const failed = (err: unknown) => {
      const e = startError(err);
      return { message: e instanceof Error ? e.message : String(e), code: e instanceof CliError ? e.exitCode : 70 };
    };
    const code = await runWorker(config, log, workerId, workers, failed);
    stopReopening();
    return code;
  }
  const { startServer, writePortsFile, prepareData } = await import('../../main.ts');
  // A ports file left by an earlier run must not say "ready" for this one.
  rmSync(config.portsFile, { force: true });
  if (config.logFile) {
    // A log file that can't be opened is a start-up error, not a server that logs nowhere.
    try {
      closeSync(openSync(config.logFile, 'a'));
    } catch (err) {
      throw new CliError(`cannot open the log file ${config.logFile}: ${(err as Error).message}`, 73);
    }
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat, file: config.logFile });
  const stopReopening = config.logFile ? log.reopenOn('SIGHUP') : () => {};
  // Commands that work as printed from where the user started the server (src/cli/invocation.ts).
  const { program: cli, storeFlags: dataFlag } = invocation(config, ctx.flags);
  if (workers > 1) {
    // The primary: prepares the data folder once, then forks the workers (src/cluster/primary.ts).
    let code: number;
    try {
      const { domains } = await prepareData(config, log);
      log.info('server.starting', { node: process.versions.node, pid: process.pid, data: config.dataDir, workers });
      code = await runPrimary({
        count: workers,
        log,
        ready: (p, tls, store) => {
          log.info('server.ready', { pid: process.pid, workers, hostname: config.hostname, store, ...p });
          log.flush();
          process.stdout.write(banner({ config, p, tls, store, domains, cli, dataFlag, workers }), () => writePortsFile(config.portsFile, p));
        },
        onSignal: (sig, n) => void process.stdout.write(n === 1 ? `${sig}: stopping\n` : `${sig}: stopping now\n`),
      });
    } catch (err) {
      stopReopening();
      await log.close();
      const e = startError(err);
      const exit = (err as { exitCode?: number }).exitCode;
      throw e instanceof CliError ? e : exit !== undefined ? new CliError((err as Error).message, exit) : e;
    }
    rmSync(config.portsFile, { force: true });
    stopReopening();
    await log.close();
    return code;
  }
  let server;
  try {
    server = await startServer(config, log);
  } catch (err) {
    stopReopening();
    await log.close();
    throw startError(err);
  }
  const p = server.ports;
  const domains = (await server.store.listDomains()).length;
  // The start-up log lines (stderr, batched per loop turn) go out before the banner says Ready.
  log.flush();
  process.stdout.write(
    banner({ config, p, tls: server.tls.summary, store: server.store.kind, domains, cli, dataFlag, workers: 1 }),
    // The ports file is written only once the whole banner has been handed to stdout.
    () => writePortsFile(config.portsFile, p),
  );
  // SIGTERM/SIGINT: drain and stop (src/main.ts stopAll); a second one during the drain cuts it
  // short (sockets destroyed at once, the store still closed cleanly). Listeners stay installed
  // until the store is closed, so no signal takes Node's default exit in the middle of it.
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      process.stdout.write(signals === 1 ? `${sig}: stopping\n` : `${sig}: stopping now\n`);
      server.stop({ now: signals > 1 }).then(done, done);
    };
    const done = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  rmSync(config.portsFile, { force: true });
  stopReopening();
  await log.close();
  return 0;
}

/** The start-up banner; its last line is "Ready." (the ports file is written after it). */
function banner(b: { config: Config; p: Ports; tls: string; store: string; domains: number; cli: string; dataFlag: string; workers: number }): string {
  const { config, p, cli, dataFlag } = b;
  return [
    `Pillarbox is running as ${config.hostname} (data: ${config.dataDir}, store: ${b.store}${b.workers > 1 ? `, ${b.workers} worker processes` : ''})`,
    `  SMTP      ${config.host}:${p.smtp} (MX)   submission :${p.submission} (STARTTLS)   submissions :${p.submissions} (TLS)`,
    `  IMAP      ${config.host}:${p.imap} (STARTTLS)   IMAPS :${p.imaps} (TLS)`,
    `  POP3      ${config.host}:${p.pop3} (STLS)   POP3S :${p.pop3s} (TLS)`,
    `  HTTP      ${config.host}:${p.http}`,
    ...(p.lmtp !== undefined ? [`  LMTP      ${config.host}:${p.lmtp} (loopback${config.lmtpAllow?.length ? ' and lmtpAllow' : ''} only)`] : []),
    `  TLS       ${b.tls}`,
    `  ports     ${config.portsFile}`,
    ...(b.domains === 0
      ? [
          '',
          'No domain yet. Add your first domain and user:',
          `  ${cli} domain add example.com${dataFlag}`,
          `  ${cli} user add you@example.com --password-stdin --quota 1GB${dataFlag}`,
        ]
      : []),
    'Ready.',
    '',
  ].join('\n');
}
