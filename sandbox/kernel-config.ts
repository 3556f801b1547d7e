/**
 * The guest kernel's configuration fragment (`sandbox/guest-kernel.config`)
 * and the check that every option in it took effect after `olddefconfig`
 * (Kconfig silently drops an option whose dependencies are not met).
 * Pure functions over file contents.
 */
import { join } from "node:path";

/** The fragment merged over `tinyconfig`, kept in the repository. */
export const FRAGMENT_PATH: string = join(import.meta.dirname!, "guest-kernel.config");

/**
 * Options of a Kconfig fragment: `CONFIG_X=value` lines, and
 * `# CONFIG_X is not set` lines as the value `n`. Other comments and blank
 * lines are ignored; a later line for the same option wins (as in
 * merge_config.sh).
 * @param text the fragment's (or a `.config`'s) contents
 */
export function parseKconfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const off = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (off) {
      out.set(off[1]!, "n");
      continue;
    }
    const on = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (on) out.set(on[1]!, on[2]!);
  }
  return out;
}

/** A fragment option whose value in the final `.config` differs from the fragment's. */
export interface DroppedOption {
  /** The option, e.g. `CONFIG_IOMMUFD`. */
  option: string;
  /** The value the fragment asked for (`n` for "is not set"). */
  wanted: string;
  /** The value in the final `.config` (`n` when absent or not set). */
  got: string;
}

/**
 * Every option of `fragment` that the final `.config` does not have as asked.
 * An option absent from `.config` counts as `n` (Kconfig omits options whose
 * menu is hidden).
 * @param fragment the fragment's contents
 * @param dotConfig the `.config` written by `olddefconfig`
 */
export function droppedOptions(fragment: string, dotConfig: string): DroppedOption[] {
  const final = parseKconfig(dotConfig);
  const dropped: DroppedOption[] = [];
  for (const [option, wanted] of parseKconfig(fragment)) {
    const got = final.get(option) ?? "n";
    if (got !== wanted) dropped.push({ option, wanted, got });
  }
  return dropped;
}

/** One line per dropped option: `CONFIG_X: wanted y, got n`. */
export function describeDropped(dropped: readonly DroppedOption[]): string {
  return dropped.map((d) => `${d.option}: wanted ${d.wanted}, got ${d.got}`).join("\n");
}
