// Human output goes to a terminal, which obeys control characters: a row value
// holding ESC[2J clears the screen, an OSC sequence retitles the window, a newline
// in a tenant id forges a line of a plan. Every human line passes through here
// on its way out; JSON output never does, so it keeps the exact bytes.

/**
 * What a terminal acts on instead of showing: C0 (tab, CR and LF included), DEL,
 * C1 (CSI and OSC have one-character forms there), Unicode's line and paragraph
 * separators, and the bidirectional overrides that reorder what a line appears to say.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * One line of human output with every control character written as a visible
 * escape (`\n`, `\x1b`, `\u009b`). A backslash stays as it is, so bytea's `\x…` and
 * paths read as usual; `--json` is the unambiguous form. The result holds no control
 * character, so applying this twice changes nothing.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => NAMED[c] ?? escapeCode(c.charCodeAt(0)));
}

/** Text of several lines Recall itself broke: each line made printable, the breaks kept. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

function escapeCode(code: number): string {
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
