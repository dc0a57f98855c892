"""Runs a command on a real pseudo-terminal and types answers at its prompts.

usage: pty_run.py PROMPT_MARKER ANSWER... -- COMMAND ARG...

Each time the terminal output has shown PROMPT_MARKER once more, the next ANSWER is typed,
followed by Enter (CR, as a terminal sends it). Prints everything the terminal showed as one
JSON string on stdout and exits with the command's exit code.
"""
import json, os, pty, select, sys, time

sep = sys.argv.index('--')
marker = sys.argv[1].encode()
answers = sys.argv[2:sep]
argv = sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b''
sent = 0
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if fd not in r:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
        break
    if not data:
        break
    out += data
    if sent < len(answers) and out.count(marker) > sent:
        os.write(fd, answers[sent].encode() + b'\r')
        sent += 1
_, status = os.waitpid(pid, 0)
print(json.dumps(out.decode('utf-8', 'replace')))
sys.exit(os.waitstatus_to_exitcode(status))
