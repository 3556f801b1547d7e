/**
 * errno names. The value itself comes back with each failing call of the
 * runtime seam (`-errno`, see ./types.ts).
 */
import { errnoName, errnoNumber } from "../support/errno-names.ts";
import { sys } from "./runtime.ts";

export { errnoName, errnoNumber };

/** libc's description of an errno value ("Operation not permitted"). */
export function errnoMessage(errno: number): string {
  return sys().strerror(errno);
}
