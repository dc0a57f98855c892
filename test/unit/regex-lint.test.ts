// Makes super-linear regular expressions on untrusted data impossible to add unnoticed. Two rules
// over every RegExp in src/ (found with the TypeScript parser, so strings and comments that look
// like regexes don't count and none is missed):
//
// 1. Structure (all of src/, no exceptions): test/helpers/regex-check.ts parses each pattern and
//    rejects the shapes that backtrack super-linearly — nested unbounded repetition ((a+)+),
//    repeated alternatives that can start alike ((a|ab)*), two unbounded repetitions of
//    overlapping characters in a row (\s*\s*, \s*x?\s*$), and an unanchored pattern that repeats
//    characters it can start with and then needs more (`[ \t]+$`, `<[^>]*>`, `\([^)]*\)`,
//    `[\s\S]*?-->`: every start position rescans the same run, O(n²) — the shape of the header
//    unfolding and HTML stripping defects). A RegExp built from a non-literal string is rejected
//    too: it cannot be checked.
// 2. Review (src/protocol, src/imap, src/pop3, src/smtp, src/store — the code that reads client and
//    message data): a pattern with an unbounded quantifier needs a `// linear: <why>` comment on
//    its line or in the comment block right above, so each one was reasoned about. Patterns
//    without one (`/[\r\n]/g`, `/^[0-9]{1,10}$/`) cost O(n·|pattern|) and need none.
//
// Why both: the checker is conservative but a heuristic; the comment makes a person state why a
// pattern is linear; and test/unit/linear.test.ts measures the parsers themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../helpers/server.ts';
import { checkRegex, hasUnboundedQuantifier } from '../helpers/regex-check.ts';

const REVIEWED = ['src/protocol/', 'src/imap/', 'src/pop3/', 'src/smtp/', 'src/store/'];

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Found {
  where: string;
  source: string | null;
  flags: string;
  justified: boolean;
}

function regexesIn(path: string): Found[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const out: Found[] = [];
  const justified = (line: number): boolean => {
    if (lines[line]!.includes('// linear:')) return true;
    for (let l = line - 1; l >= 0 && /^\s*(\/\/|\*|\/\*)/.test(lines[l]!); l--) if (lines[l]!.includes('linear:')) return true;
    return false;
  };
  const visit = (n: ts.Node): void => {
    const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
    const where = `${relative(ROOT, path)}:${line + 1}`;
    if (n.kind === ts.SyntaxKind.RegularExpressionLiteral) {
      const t = n.getText(sf);
      const end = t.lastIndexOf('/');
      out.push({ where, source: t.slice(1, end), flags: t.slice(end + 1), justified: justified(line) });
    } else if ((ts.isNewExpression(n) || ts.isCallExpression(n)) && ts.isIdentifier(n.expression) && n.expression.text === 'RegExp') {
      const [pat, fl] = n.arguments ?? [];
      const literal = (e: ts.Expression | undefined) => (e && (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) ? e.text : null);
      out.push({ where, source: literal(pat), flags: literal(fl) ?? '', justified: justified(line) });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

test('the checker itself: the super-linear shapes are caught, the linear ones pass', () => {
  const bad: Array<[string, string]> = [
    ['(a+)+$', ''], ['(\\s*,)*x', ''], ['(a|ab)*c', ''], ['(a|a)*b', ''],
    ['^[ \\t]+|[ \\t]+$', 'g'], ['\\s+$', ''], ['[ \\t]+$', ''], ['=+$', ''],
    ['<[^>]*>', 'g'], ['\\([^)]*\\)', 'g'], ['<!--[\\s\\S]*?-->', 'g'], ['<(script|style)\\b[^>]*>[\\s\\S]*?<\\/\\1\\s*>', 'gi'],
    ['.*x.*', ''], ['^\\s*a?\\s*$', ''], ['^\\d+\\d+$', ''], ['a.*b', ''], ['(x+x+)+y', ''],
  ];
  for (const [src, flags] of bad) assert.notDeepEqual(checkRegex(src, flags), [], `/${src}/${flags} must be flagged`);
  const good: Array<[string, string]> = [
    ['[\\r\\n\\t ]+', 'g'], ['\\r?\\n', 'g'], ['[\\s,]+', ''], ['^[ \\t]+', ''], ['^([^\']*)\'[^\']*\'(.*)$', 's'],
    ['%([0-9a-fA-F]{2})|([^%]+)|%', 'g'], ['^[A-Za-z0-9!#$%&\'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&\'*+/=?^_`{|}~-]+)*$', ''],
    ['^0{0,4}(:0{0,4}){6}:0{0,3}1$', ''], ['^::ffff:(?=\\d+\\.\\d+\\.\\d+\\.\\d+$)', 'i'], ['\\. To specify a positional.*$', 's'],
    ['(?:\\r\\n|\\n)*', ''], ['^([^*]+)\\*(?:(\\d+)(\\*?)|)$', ''], ['a[^a]*b', 'g'],
  ];
  for (const [src, flags] of good) assert.deepEqual(checkRegex(src, flags), [], `/${src}/${flags} is linear`);
});

test('every RegExp in src/ is of a linear shape; those on client or message data say why', () => {
  const problems: string[] = [];
  let count = 0;
  for (const f of files(join(ROOT, 'src'))) {
    const rel = relative(ROOT, f);
    for (const r of regexesIn(f)) {
      count++;
      if (r.source === null) {
        problems.push(`${r.where}: RegExp built from a non-literal string (cannot be checked; write a scanner)`);
        continue;
      }
      for (const finding of checkRegex(r.source, r.flags)) problems.push(`${r.where}: /${r.source}/${r.flags}: ${finding.rule} — ${finding.detail}`);
      if (REVIEWED.some((d) => rel.startsWith(d)) && hasUnboundedQuantifier(r.source, r.flags) && !r.justified) {
        problems.push(`${r.where}: /${r.source}/${r.flags} repeats without bound: add a "// linear: why" comment (or use a scanner)`);
      }
    }
  }
  assert.ok(count > 20, `found ${count} regexes (the scan works)`);
  assert.deepEqual(problems, []);
});
