#!/usr/bin/env python3
"""Login attempts with Python's own clients (imaplib, poplib, smtplib) from a chosen local address.

stdin: {"ports": {"imap": n, "pop3": n, "submission": n}, "steps": [{"proto": "imap"|"pop3"|"smtp",
"src": "127.0.0.2", "user": "...", "password": "..."}, ...]}
stdout: one JSON list, per step {"ok": bool, "error": str|null, "ms": float}. Each step is a new
connection; plain text (the test server allows it on loopback)."""
import imaplib
import json
import poplib
import smtplib
import socket
import sys
import time

_create = socket.create_connection


def bound(src):
    """socket.create_connection that binds the client side to src (imaplib/poplib have no option)."""
    def create(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw):
        return _create(address, timeout, (src, 0), **kw)
    return create


def imap(port, user, password):
    c = imaplib.IMAP4('127.0.0.1', port, timeout=60)
    try:
        c.login(user, password)
        c.logout()
    finally:
        try:
            c.shutdown()
        except Exception:
            pass


def pop3(port, user, password):
    c = poplib.POP3('127.0.0.1', port, timeout=60)
    try:
        c.user(user)
        c.pass_(password)
        c.stat()
        c.quit()
    finally:
        c.close()


def smtp(port, user, password, src):
    c = smtplib.SMTP('127.0.0.1', port, timeout=60, source_address=(src, 0))
    try:
        c.ehlo('client.test')
        c.login(user, password)
        c.quit()
    finally:
        c.close()


def main():
    plan = json.load(sys.stdin)
    ports = plan['ports']
    out = []
    for s in plan['steps']:
        socket.create_connection = bound(s['src'])
        t0 = time.monotonic()
        err = None
        try:
            if s['proto'] == 'imap':
                imap(ports['imap'], s['user'], s['password'])
            elif s['proto'] == 'pop3':
                pop3(ports['pop3'], s['user'], s['password'])
            else:
                smtp(ports['submission'], s['user'], s['password'], s['src'])
        except smtplib.SMTPResponseException as e:
            err = '%d %s' % (e.smtp_code, e.smtp_error.decode('utf-8', 'replace'))
        except Exception as e:  # imaplib.IMAP4.error, poplib.error_proto, OSError
            err = (e.args[0].decode('utf-8', 'replace') if e.args and isinstance(e.args[0], bytes) else str(e))
        finally:
            socket.create_connection = _create
        out.append({'ok': err is None, 'error': err, 'ms': round((time.monotonic() - t0) * 1000, 1)})
    json.dump(out, sys.stdout)


main()
