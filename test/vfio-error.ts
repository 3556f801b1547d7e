/**
 * Shared by unit and guest tests: the VfioError a call throws.
 */
import { VfioError } from "../src/support/errors.ts";

/** Runs `fn` and returns the VfioError it throws; fails the test when it throws nothing or something else. */
export function vfioError(fn: () => unknown): VfioError {
  try {
    fn();
  } catch (err) {
    if (err instanceof VfioError) return err;
    throw err;
  }
  throw new Error("expected a VfioError");
}
