/**
 * Child process of `bun-vfio release`: does the sysfs writes of
 * releaseFromVfio. The kernel may block the `unbind` write until every VFIO
 * user lets go ("blocked until released by user"), uninterruptibly, so the
 * parent runs it here and keeps reporting progress and its own timeout.
 * Prints `start`, then one JSON line: `{ driver }` or `{ error }`.
 */
import { VfioError } from "../support/errors.ts";
import { releaseFromVfio } from "../host/bind.ts";

const [bdf, previousDriver] = process.argv.slice(2);
// Tells the parent the writes start now: from here a wait is the kernel's, not Bun's startup.
console.log("start");
try {
  const r = releaseFromVfio(bdf!, previousDriver ? { previousDriver } : {});
  console.log(JSON.stringify({ driver: r.driver ?? null }));
} catch (err) {
  if (!(err instanceof VfioError)) throw err;
  console.log(JSON.stringify({ error: err.message }));
  process.exit(1);
}
