"""A full IMAP session with Python's imaplib against Pillarbox (driven by imaplib.test.ts).

Usage: imaplib_session.py HOST PORT MODE(ssl|starttls) CAFILE USER PASSWORD PREFIX
Prints "OK <n> checks" on success; any failed check raises (non-zero exit).
"""
import base64
import imaplib
import os
import re
import ssl
import sys

host, port, mode, cafile, user, password, prefix = sys.argv[1:8]
port = int(port)
ctx = ssl.create_default_context(cafile=cafile)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def connect():
    if mode == 'ssl':
        m = imaplib.IMAP4_SSL('localhost', port, ssl_context=ctx)
    else:
        m = imaplib.IMAP4('localhost', port)
        check('STARTTLS' in m.capabilities, 'STARTTLS advertised')
        check('LOGINDISABLED' in m.capabilities, 'LOGINDISABLED before TLS')
        m.starttls(ssl_context=ctx)
    typ, _ = m.login(user, password)
    check(typ == 'OK', 'login')
    return m


m = connect()
typ, caps = m.capability()
caps = caps[0].decode().upper().split()
check('IMAP4REV1' in caps and 'IDLE' in caps and 'MOVE' in caps and 'UIDPLUS' in caps, 'capabilities after login: %r' % (caps,))

typ, boxes = m.list()
check(typ == 'OK', 'list')
text = b'\n'.join(boxes).decode()
for name, use in (('Sent', '\\Sent'), ('Drafts', '\\Drafts'), ('Trash', '\\Trash'), ('Junk', '\\Junk'), ('Archive', '\\Archive')):
    check(re.search(r'\(([^)]*)%s[^)]*\) "/" "?%s"?' % (re.escape(use), name), text), 'special-use %s in %s' % (use, text))
check('INBOX' in text, 'INBOX listed')

box = prefix + '-py'
check(m.create(box)[0] == 'OK', 'create')
check(m.rename(box, box + '2')[0] == 'OK', 'rename')
box = box + '2'
check(m.create(box + '/child')[0] == 'OK', 'create child')
check(m.delete(box + '/child')[0] == 'OK', 'delete child')

attachment = os.urandom(3000)
b64 = base64.encodebytes(attachment).replace(b'\n', b'\r\n')
msg = (b'From: Py <py@example.com>\r\nTo: ' + user.encode() + b'\r\nSubject: Hello from imaplib\r\n'
       b'Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n'
       b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nBody text here\r\n'
       b'--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64 + b'--zz--\r\n')
typ, data = m.append(box, '(\\Flagged)', imaplib.Time2Internaldate(1700000000), msg)
check(typ == 'OK' and b'APPENDUID' in data[0], 'append: %r' % (data,))
m.append(box, None, None, b'From: a@example.com\r\nSubject: second\r\n\r\nplain\r\n')

typ, data = m.select(box)
check(typ == 'OK' and data[0] == b'2', 'select: %r' % (data,))
typ, data = m.search(None, 'FLAGGED')
check(data[0] == b'1', 'search flagged: %r' % (data,))
typ, data = m.uid('SEARCH', None, 'SUBJECT', '"from imaplib"')
check(data[0] == b'1', 'uid search subject: %r' % (data,))
typ, data = m.search('UTF-8', 'BODY', 'plain')
check(data[0] == b'2', 'search body: %r' % (data,))

typ, data = m.uid('FETCH', '1', '(BODY.PEEK[2]<0.100>)')
part_start = msg.index(b'base64\r\n\r\n') + len(b'base64\r\n\r\n')
check(data[0][1] == msg[part_start:part_start + 100], 'partial fetch bytes')
typ, data = m.uid('FETCH', '1', '(BINARY.PEEK[2])')
check(data[0][1] == attachment, 'BINARY decoded')
typ, data = m.fetch('1', '(RFC822)')
check(data[0][1] == msg, 'RFC822 whole message')
typ, data = m.fetch('1', '(FLAGS)')
check(b'\\Seen' in data[0], 'RFC822 fetch set \\Seen: %r' % (data,))

check(m.store('2', '+FLAGS', '(\\Answered $Label)')[0] == 'OK', 'store')
typ, data = m.fetch('2', '(FLAGS)')
check(b'\\Answered' in data[0] and b'$Label' in data[0], 'flags stored: %r' % (data,))
typ, data = m.copy('1', 'Archive')
check(typ == 'OK' and b'COPYUID' in data[0], 'copy: %r' % (data,))
typ, data = m._simple_command('MOVE', '2', 'Trash')
check(typ == 'OK', 'move: %r' % (data,))
typ, data = m.status(box, '(MESSAGES UIDNEXT UNSEEN)')
check(b'MESSAGES 1' in data[0], 'status after move: %r' % (data,))

# IDLE: a second session sets a flag, the first sees it.
other = connect()
other.select(box)
tag = m._new_tag()
m.send(tag + b' IDLE\r\n')
check(m.readline().startswith(b'+'), 'idle continuation')
other.store('1', '+FLAGS', '(\\Deleted)')
line = m.readline()
check(b'FETCH' in line and b'\\Deleted' in line, 'flag change seen in IDLE: %r' % (line,))
m.send(b'DONE\r\n')
line = m.readline()
check(line.startswith(tag + b' OK'), 'idle done: %r' % (line,))
other.logout()

typ, data = m.expunge()
check(typ == 'OK' and data[-1] == b'1', 'expunge (after the MOVE one): %r' % (data,))
m.close()
check(m.delete(box)[0] == 'OK', 'delete folder')
typ, _ = m.logout()
check(typ == 'BYE', 'logout')
print('OK %d checks' % checks)
