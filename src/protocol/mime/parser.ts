export function parseMessage(_r: Buffer): any { throw new Error("stub"); }
