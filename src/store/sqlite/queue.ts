import type { QueueStore } from '../queue.ts';

const notImplemented = (): never => {
  throw new Error('not implemented');
};

export class SqliteQueue implements QueueStore {
  enqueue = async (): Promise<never> => notImplemented();
  claim = async (): Promise<never> => notImplemented();
  settle = async (): Promise<never> => notImplemented();
  get = async (): Promise<never> => notImplemented();
  list = async (): Promise<never> => notImplemented();
  retry = async (): Promise<never> => notImplemented();
  remove = async (): Promise<never> => notImplemented();
  stats = async (): Promise<never> => notImplemented();
}
