// HTML → text for SEARCH BODY/TEXT (src/protocol/mime/html-text.ts): what is kept, what is dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { htmlToText } from '../../../src/protocol/mime/html-text.ts';

test('tags, blocks, comments, script/style, references', () => {
  const cases: Array<[string, string]> = [
    ['<p>trip to Zanz<b>ibar</b> next week</p>', 'trip to Zanzibar next week\n'],
    ['Hello<br/>World<BR>again', 'Hello\nWorld\nagain'],
    ['<div>one</div><div>two</div><h3>T</h3><li>x</li><tr>y</tr>', 'one\ntwo\nT\nx\ny\n'],
    ['a<!-- hidden -->b', 'a b'],
    ['<style>p{color:red}</style>text<script type="x">var a = "<b>";</script>after', ' text after'],
    ['<SCRIPT>x</SCRIPT >after', ' after'],
    ['<script>x</scripts>y</script>z', ' z'],
    ['&amp; &lt;x&gt; &quot;q&quot; &apos;a&apos; &nbsp;|&#65;&#x42;&#X43;', `& <x> "q" 'a'  |ABC`],
    ['&amp;lt; is not decoded twice', '&lt; is not decoded twice'],
    ['&unknown; &#xZZ; &#; & alone', '&unknown; &#xZZ; &#; & alone'],
    ['&#0; &#x110000;', '   '],
    ['<!DOCTYPE html><?xml version="1.0"?>text', 'text'],
  ];
  for (const [html, text] of cases) assert.equal(htmlToText(html), text, html);
});

test('what cannot be a tag stays text; what is left open runs to the end, as in a browser', () => {
  assert.equal(htmlToText('a < b and c > d'), 'a < b and c > d');
  assert.equal(htmlToText('x <b never closed'), 'x <b never closed');
  assert.equal(htmlToText('1 <2 3'), '1 <2 3');
  assert.equal(htmlToText('shown <!-- never closed'), 'shown  ');
  assert.equal(htmlToText('shown <script> never closed'), 'shown  ');
  assert.equal(htmlToText('<a <b <c>x'), 'x');
});
