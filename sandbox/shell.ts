/**
 * Quoting for the POSIX shell scripts handed to the guest.
 */

/**
 * Quote one word for `sh`: wrap in single quotes, escaping single quotes.
 * @param word any string (may contain spaces, quotes, `$`)
 */
export function shQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * True when `name` is a valid environment variable name for `export`.
 * @param name candidate variable name
 */
export function isEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
