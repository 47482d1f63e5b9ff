/**
 * Text a peer chose (node ids, hosts, attribute values), made safe to print: control characters
 * (C0, DEL, C1 — terminal escape sequences start with them) and line/paragraph separators become
 * visible escapes, and long strings are cut, so a peer cannot move the cursor, recolour or forge
 * lines in an operator's terminal or log.
 */
export function printable(value: unknown, maxChars = 200): string {
  const s = String(value);
  const cut = s.length > maxChars ? `${s.slice(0, maxChars)}…(${s.length} chars)` : s;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
