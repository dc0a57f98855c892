"""SORT and THREAD through Python's imaplib (sort(), thread(), uid('SORT'/'THREAD')) against
Pillarbox (driven by imaplib-sort.test.ts).

Usage: imaplib_sort.py HOST PORT CAFILE USER PASSWORD
Prints "OK <n> checks" on success; any failed check raises (non-zero exit).
"""
import imaplib
import ssl
import sys

host, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


m = imaplib.IMAP4_SSL('localhost', int(port), ssl_context=ctx)
m.login(user, password)
caps = m.capability()[1][0].decode().upper().split()
for c in ('SORT', 'SORT=DISPLAY', 'THREAD=REFERENCES', 'THREAD=ORDEREDSUBJECT'):
    check(c in caps, '%s in %r' % (c, caps))

MSGS = [
    ('Lunch on Friday', '<l1@example.org>', None, 'Mon, 4 Mar 2024 09:00:00 +0100', 'Carol <carol@example.org>'),
    ('Re: Lunch on Friday', '<l2@example.org>', '<l1@example.org>', 'Mon, 4 Mar 2024 09:30:00 +0100', 'alice@example.org'),
    ('Budget', '<b1@example.org>', None, 'Mon, 4 Mar 2024 07:00:00 +0000', 'Bob <bob@example.org>'),
    ('Re: Re: Lunch on Friday', '<l3@example.org>', '<l1@example.org> <l2@example.org>', 'Mon, 4 Mar 2024 10:00:00 +0100', 'bob@example.org'),
]
m.create('SortBox')
for subject, mid, refs, date, frm in MSGS:
    lines = ['From: ' + frm, 'To: team@example.org', 'Subject: ' + subject, 'Date: ' + date, 'Message-ID: ' + mid]
    if refs:
        lines.append('References: ' + refs)
    typ, _ = m.append('SortBox', None, None, ('\r\n'.join(lines + ['', 'body', ''])).encode())
    check(typ == 'OK', 'append')
m.select('SortBox')

typ, data = m.sort('(SUBJECT)', 'UTF-8', 'ALL')
check(typ == 'OK' and data == [b'3 1 2 4'], 'sort subject: %r' % (data,))
typ, data = m.sort('(REVERSE DATE)', 'UTF-8', 'ALL')
check(data == [b'4 2 1 3'], 'sort reverse date: %r' % (data,))
typ, data = m.sort('(DISPLAYFROM)', 'UTF-8', 'ALL')
# alice@example.org, "Bob", bob@example.org, "Carol" (RFC 5957 §3)
check(data == [b'2 3 4 1'], 'sort displayfrom: %r' % (data,))
typ, data = m.uid('SORT', '(FROM)', 'UTF-8', 'SUBJECT', 'lunch')
check(typ == 'OK' and data == [b'2 4 1'], 'uid sort from: %r' % (data,))
typ, data = m.thread('REFERENCES', 'UTF-8', 'ALL')
check(typ == 'OK' and data == [b'(3)(1 2 4)'], 'thread references: %r' % (data,))
typ, data = m.thread('ORDEREDSUBJECT', 'UTF-8', 'ALL')
check(data == [b'(3)(1 (2)(4))'], 'thread orderedsubject: %r' % (data,))
typ, data = m.uid('THREAD', 'REFERENCES', 'UTF-8', 'NOT', 'FROM', 'carol')
# The missing root's dummy has one child: promoted to the top (RFC 5256 §3 step 3).
check(data == [b'(3)(2 4)'], 'uid thread without the root: %r' % (data,))
typ, data = m.sort('(SUBJECT)', 'KOI8-R', 'ALL')
check(typ == 'NO' and b'BADCHARSET' in data[0], 'unknown charset: %r %r' % (typ, data))
m.logout()
print('OK %d checks' % checks)
