// One worker process of `pillarbox serve --workers N` (src/cluster/primary.ts): the whole server
// (src/main.ts startServer) over the shared store, its listeners' sockets shared through the
// primary. It tells the primary when it is ready (ports, TLS summary) or why it failed, sends a
// ping per account after each durable commit (the store's relay), says which accounts it has local
// subscribers of (the store's want: the primary forwards only those accounts' pings) and hands the
// other workers' pings to its bus; it stops on the primary's word, on SIGTERM/SIGINT (a second one: stop now),
// or at once when the primary is gone (the IPC channel closed). Its log lines carry `worker=N`.

import type { ServerLogger } from '../obs/log.ts';
import type { Config } from '../config/config.ts';
import type { RunningServer } from '../main.ts';
import type { FromWorker, ToWorker } from './messages.ts';

/** The logger with `worker=id` on every line. */
export function workerLogger(log: ServerLogger, id: number): ServerLogger {
  const w = Object.create(log) as ServerLogger;
  w.debug = (e, f) => log.debug(e, { worker: id, ...f });
  w.info = (e, f) => log.info(e, { worker: id, ...f });
  w.warn = (e, f) => log.warn(e, { worker: id, ...f });
  w.error = (e, f) => log.error(e, { worker: id, ...f });
  return w;
}

/**
 * Runs worker `id` of `count` until it is told to stop; resolves once the server stopped and the
 * channel to the primary is closed. `failed(err)`: the CLI's message and exit code for a start-up error.
 */
export async function runWorker(
  config: Config,
  log: ServerLogger,
  id: number,
  count: number,
  failed: (err: unknown) => { message: string; code: number },
): Promise<number> {
  const send = (m: FromWorker) => {
    if (process.connected) process.send!(m, undefined, undefined, () => {}); // a primary gone: 'disconnect' stops us
  };
  const { startServer } = await import('../main.ts');
  let server: RunningServer;
  try {
    server = await startServer(config, log, {
      id,
      count,
      singletons: id === 1,
      relay: (a, h) => send({ t: 'ping', a, h }),
      want: (a, on) => send({ t: 'want', a, on }),
    });
  } catch (err) {
    const f = failed(err);
    send({ t: 'failed', ...f });
    process.stderr.write(`pillarbox: worker ${id}: ${f.message}\n`);
    await log.close();
    if (process.connected) process.disconnect();
    return f.code;
  }
  let signals = 0;
  let stopped!: () => void;
  const done = new Promise<void>((r) => (stopped = r));
  // server.stop is idempotent; `now` cuts a drain under way short.
  const stop = (now: boolean) => void server.stop({ now }).then(stopped, stopped);
  const onMessage = (m: ToWorker) => {
    if (m.t === 'ping') server.store.bus.notify(m.a, m.h);
    // From now on the account's pings come here; one pull for any that came before (messages.ts).
    else if (m.t === 'wanted') server.store.bus.notify(m.a, 0);
    else if (m.t === 'recover') void server.store.recoverProcess?.(m.pid).catch((err) => log.error('store.recover-failed', { pid: m.pid, error: err }));
    else if (m.t === 'stop') stop(m.now);
  };
  const onSignal = () => stop(++signals > 1);
  const onGone = () => stop(true);
  process.on('message', onMessage);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('disconnect', onGone);
  log.flush();
  send({ t: 'ready', ports: server.ports, tls: server.tls.summary, store: server.store.kind });
  await done;
  process.off('message', onMessage);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('disconnect', onGone);
  await log.close();
  if (process.connected) process.disconnect();
  return 0;
}
