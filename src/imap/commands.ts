// The command table: which states allow each command (RFC 9051 §6) and its handler.

import type { ImapCommand, CommandName } from '../protocol/imap/types.ts';
import type { ImapSession, SessionState } from './session.ts';
import { capability } from './handlers/capability.ts';
import { noop } from './handlers/noop.ts';
import { logout } from './handlers/logout.ts';
import { starttls } from './handlers/starttls.ts';
import { login } from './handlers/login.ts';
import { authenticate } from './handlers/authenticate.ts';
import { enable } from './handlers/enable.ts';
import { select } from './handlers/select.ts';
import { create } from './handlers/create.ts';
import { del } from './handlers/delete.ts';
import { rename } from './handlers/rename.ts';
import { subscribe } from './handlers/subscribe.ts';
import { list } from './handlers/list.ts';
import { lsub } from './handlers/lsub.ts';
import { namespace } from './handlers/namespace.ts';
import { status } from './handlers/status.ts';
import { append } from './handlers/append.ts';
import { idle } from './handlers/idle.ts';
import { check } from './handlers/check.ts';
import { close } from './handlers/close.ts';
import { unselect } from './handlers/unselect.ts';
import { expunge } from './handlers/expunge.ts';
import { search } from './handlers/search.ts';
import { sort } from './handlers/sort.ts';
import { thread } from './handlers/thread.ts';
import { fetch } from './handlers/fetch.ts';
import { store } from './handlers/store.ts';
import { copy } from './handlers/copy.ts';
import { move } from './handlers/move.ts';
import { replace } from './handlers/replace.ts';
import { compress } from './handlers/compress.ts';
import { id } from './handlers/id.ts';
import { getquota, getquotaroot } from './handlers/quota.ts';
import { notify } from './handlers/notify.ts';
import { cancelupdate } from './handlers/cancelupdate.ts';

/** A tagged OK text (optionally with a response code), or null when the handler answers itself. */
export type HandlerResult = string | { code: string | null; text: string } | null;

export type Handler<N extends CommandName> = (s: ImapSession, tag: string, cmd: ImapCommand & { name: N }) => Promise<HandlerResult>;

const ANY: SessionState[] = ['notauth', 'auth', 'selected'];
const NOTAUTH: SessionState[] = ['notauth'];
const AUTH: SessionState[] = ['auth', 'selected'];
const SELECTED: SessionState[] = ['selected'];

export const COMMANDS: { [N in CommandName]: { states: SessionState[]; handler: Handler<N> } } = {
  CAPABILITY: { states: ANY, handler: capability },
  NOOP: { states: ANY, handler: noop },
  LOGOUT: { states: ANY, handler: logout },
  ID: { states: ANY, handler: id },
  STARTTLS: { states: NOTAUTH, handler: starttls },
  LOGIN: { states: NOTAUTH, handler: login },
  AUTHENTICATE: { states: NOTAUTH, handler: authenticate },
  ENABLE: { states: AUTH, handler: enable },
  COMPRESS: { states: AUTH, handler: compress },
  SELECT: { states: AUTH, handler: select },
  EXAMINE: { states: AUTH, handler: select },
  CREATE: { states: AUTH, handler: create },
  DELETE: { states: AUTH, handler: del },
  RENAME: { states: AUTH, handler: rename },
  SUBSCRIBE: { states: AUTH, handler: subscribe },
  UNSUBSCRIBE: { states: AUTH, handler: subscribe },
  LIST: { states: AUTH, handler: list },
  LSUB: { states: AUTH, handler: lsub },
  NAMESPACE: { states: AUTH, handler: namespace },
  STATUS: { states: AUTH, handler: status },
  APPEND: { states: AUTH, handler: append },
  IDLE: { states: AUTH, handler: idle },
  GETQUOTA: { states: AUTH, handler: getquota },
  GETQUOTAROOT: { states: AUTH, handler: getquotaroot },
  NOTIFY: { states: AUTH, handler: notify }, // RFC 5465 §8: command-auth
  CHECK: { states: SELECTED, handler: check },
  CLOSE: { states: SELECTED, handler: close },
  UNSELECT: { states: SELECTED, handler: unselect },
  EXPUNGE: { states: SELECTED, handler: expunge },
  SEARCH: { states: SELECTED, handler: search },
  SORT: { states: SELECTED, handler: sort },
  THREAD: { states: SELECTED, handler: thread },
  FETCH: { states: SELECTED, handler: fetch },
  STORE: { states: SELECTED, handler: store },
  COPY: { states: SELECTED, handler: copy },
  MOVE: { states: SELECTED, handler: move },
  REPLACE: { states: SELECTED, handler: replace },
  CANCELUPDATE: { states: SELECTED, handler: cancelupdate },
};
