/**
 * Text from the server on a terminal. A device prompt, an `error_description`, a claim in
 * `whoami` are the server's (or a forger's) words: printed raw, an ESC or a C1 control starts a
 * terminal escape sequence (clear the line, move the cursor, set the window title, write the
 * clipboard with OSC 52, make a link point elsewhere with OSC 8), a CR overwrites what was shown,
 * and a bidirectional override reorders it. Such characters are shown escaped instead.
 */

/**
 * C0 controls (U+0000–U+001F: ESC, BEL, CR, LF, TAB, …), DEL, C1 controls (U+0080–U+009F, CSI
 * among them), the line and paragraph separators, and the bidirectional formatting characters
 * (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** Whether `text` holds a character {@link escapeControlChars} would escape. */
export function hasControlChars(text: string): boolean {
  CONTROL.lastIndex = 0;
  return CONTROL.test(text);
}

/**
 * `text` safe to print on a terminal: every control character (see {@link hasControlChars})
 * replaced by its escape, `\x1b` or `\u202e`; everything else is unchanged.
 */
export function escapeControlChars(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * `JSON.stringify(value, null, space)` safe to print on a terminal: JSON already escapes C0
 * controls; DEL, C1 controls, the line separators and bidirectional controls are escaped too
 * (`\u009b`), which leaves the same JSON value.
 */
export function terminalSafeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
