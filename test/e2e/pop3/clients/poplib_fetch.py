# A UIDL-tracking POP3 download client on Python's poplib (used by the POP3 end-to-end tests).
# usage: poplib_fetch.py HOST PORT ssl|stls CAFILE USER PASSWORD OUTDIR STATEFILE delete|keep
# Downloads every message whose UIDL is not in STATEFILE into OUTDIR/<uidl>.eml (CRLF lines,
# exactly as the server sent them after dot-unstuffing), optionally DELEs it, then QUITs.
# Prints "fetched N" on success.
import os, poplib, ssl, sys

host, port, mode, cafile, user, password, outdir, statefile, action = sys.argv[1:10]
ctx = ssl.create_default_context(cafile=cafile)
if mode == 'ssl':
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=30)
else:
    p = poplib.POP3(host, int(port), timeout=30)
    caps = p.capa()
    assert 'STLS' in caps, caps
    p.stls(context=ctx)
p.user(user)
p.pass_(password)
seen = set()
if os.path.exists(statefile):
    with open(statefile) as f:
        seen = set(l.strip() for l in f if l.strip())
resp, listing, _ = p.uidl()
fetched = 0
with open(statefile, 'a') as state:
    for entry in listing:
        num, uid = entry.decode().split(' ', 1)
        if uid in seen:
            continue
        resp, lines, octets = p.retr(int(num))
        data = b'\r\n'.join(lines) + b'\r\n'
        with open(os.path.join(outdir, uid + '.eml'), 'wb') as f:
            f.write(data)
        if action == 'delete':
            p.dele(int(num))
        state.write(uid + '\n')
        fetched += 1
p.quit()
print('fetched', fetched)
