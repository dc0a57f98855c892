import { ConfigError, loadConfig } from '../../config/load.ts';
import { PortBindError } from '../../net/listener.ts';
import { CliError, type CommandContext } from '../context.ts';

export const SERVE_HELP = `Usage: pillarbox serve [options]

Starts every listener in one process over one store. The first start creates the data folder,
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
  --ports-file FILE         where the bound ports are written as JSON once the server is ready
                            (default DATA/ports.json)
  --tls-cert FILE --tls-key FILE
                            a real certificate and key (PEM) instead of the self-signed one
  --max-message-size SIZE   largest message accepted (default 50MB)
  --allow-plaintext-loopback
                            allow passwords without TLS on connections from 127.0.0.1/::1
  --log-level LEVEL         debug, info, warn or error (default info)
`;

export async function serveCommand(ctx: CommandContext): Promise<number> {
  if (ctx.args.length) throw new CliError(`unexpected argument "${ctx.args[0]}"; see pillarbox serve --help`);
  let config;
  try {
    config = loadConfig(ctx.flags);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 64);
    throw err;
  }
  const { startServer } = await import('../../main.ts');
  let server;
  try {
    server = await startServer(config);
  } catch (err) {
    if (err instanceof PortBindError || (err instanceof Error && /cannot listen/.test(err.message))) throw new CliError(err.message, 69);
    if (err instanceof Error && err.name === 'TlsLoadError') throw new CliError(err.message, 78);
    throw err;
  }
  const p = server.ports;
  const cli = process.argv[1]?.endsWith('main.ts') ? './bin/pillarbox' : 'pillarbox';
  const dataFlag = ctx.flags.data ? ` --data ${ctx.flags.data}` : '';
  const domains = await server.store.listDomains();
  process.stdout.write(
    [
      `Pillarbox is running as ${config.hostname} (data: ${config.dataDir}, store: ${server.store.kind})`,
      `  SMTP      ${config.host}:${p.smtp} (MX)   submission :${p.submission} (STARTTLS)   submissions :${p.submissions} (TLS)`,
      `  IMAP      ${config.host}:${p.imap} (STARTTLS)   IMAPS :${p.imaps} (TLS)`,
      `  POP3      ${config.host}:${p.pop3} (STLS)   POP3S :${p.pop3s} (TLS)`,
      `  HTTP      ${config.host}:${p.http}`,
      `  TLS       ${server.tls.summary}`,
      `  ports     ${config.portsFile}`,
      ...(domains.length === 0
        ? [
            '',
            'No domain yet. Add your first domain and user:',
            `  ${cli} domain add example.com${dataFlag}`,
            `  ${cli} user add you@example.com --password-stdin --quota 1GB${dataFlag}`,
          ]
        : []),
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stdout.write(`${sig}: stopping\n`);
      server.stop().then(resolve, resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}
