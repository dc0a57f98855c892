// Where a message's searchable text is (SEARCH BODY / TEXT, RFC 9051 §6.4.4): its text/* leaves,
// also inside attached messages, minus non-text attachments, in document order. Computed from
// the MIME tree once at delivery and stored compactly, so a body search reads no parse per message.
import type { MimeNode, TextLeaf } from './types.ts';

export function textPlan(root: MimeNode): TextLeaf[] {
  const out: TextLeaf[] = [];
  const visit = (n: MimeNode): void => {
    if (n.children && n.children.length) {
      for (const c of n.children) visit(c);
      return;
    }
    if (n.message) {
      visit(n.message.root);
      return;
    }
    if (n.type !== 'text') return;
    if (n.disposition?.type === 'attachment' && n.subtype !== 'plain' && n.subtype !== 'html') return;
    const charset = n.params.find(([k]) => k === 'charset')?.[1] ?? null;
    out.push([n.bodyStart, n.bodyEnd, n.encoding, charset, n.subtype === 'html' ? 1 : 0]);
  };
  visit(root);
  return out;
}
