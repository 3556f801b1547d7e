/**
 * Progress messages of the sandbox, always on stderr so a command's stdout
 * stays clean.
 */

/** Prefix of every progress line the sandbox prints. */
export const LOG_PREFIX = "bun-vfio sandbox:";

/**
 * Print one progress line ("downloading kernel ...") on stderr.
 * @param message what the sandbox is doing, in plain words
 */
export function say(message: string): void {
  process.stderr.write(`${LOG_PREFIX} ${message}\n`);
}

/**
 * The error class of the sandbox: a failure to prepare or run the guest,
 * with the message written for a person (what failed, and how to fix it).
 * `logPath` names the guest console log when one exists.
 */
export class SandboxError extends Error {
  override name = "SandboxError";
  /** Full console log of the guest run that failed, if it got that far. */
  readonly logPath: string | undefined;

  /**
   * @param message what failed and, when known, how to fix it
   * @param logPath path of the saved guest console log, if any
   */
  constructor(message: string, logPath?: string) {
    super(message);
    this.logPath = logPath;
  }
}
