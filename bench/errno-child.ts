/**
 * Child of bench/deno-errno.ts, the same file on Bun and on Deno: CALLS
 * failing calls whose errno is known from their inputs (ioctl TCGETS on
 * /dev/null: ENOTTY; open of a missing path: ENOENT; read of an empty
 * non-blocking eventfd: EAGAIN; mmap of an fd that is not open: EBADF), in
 * turn, mixed with successful ones; prints one JSON line with the
 * mismatches and where this runtime's errors came from.
 *
 *   bun bench/errno-child.ts [calls=300]
 *   deno run -A bench/errno-child.ts [calls=300]
 */
import { readlinkSync } from "node:fs";
import process from "node:process";
import { sys } from "../src/sys/runtime.ts";

const CALLS = Number(process.argv[2] ?? 300);
const s = sys();
const fd = s.open("/dev/null", 2);
const efd = s.eventfd(0, 0o4000 | 0o2000000);
const buf = new Uint8Array(64);
const NOT_OPEN = 900;
let open = true;
try {
  readlinkSync(`/proc/self/fd/${NOT_OPEN}`);
} catch {
  open = false;
}
if (open) throw new Error(`fd ${NOT_OPEN} is open`);
const EXPECTED = [-25, -2, -11, -9];
const wrong: { i: number; expected: number; got: number }[] = [];
for (let i = 0; i < CALLS; i++) {
  const kind = i % 4;
  const got = kind === 0 ? s.ioctl(fd, 0x5401, buf)
    : kind === 1 ? s.open(`/nonexistent/${i}`, 0)
    : kind === 2 ? s.read(efd, buf, 8)
    : -(s.mmap(4096, 3, 1, NOT_OPEN, 0).errno ?? 0);
  if (got !== EXPECTED[kind]) wrong.push({ i, expected: EXPECTED[kind]!, got });
  if (i % 7 === 0) s.pread(fd, buf, 8, 0); // a success in between (0 bytes from /dev/null)
}
console.log(JSON.stringify({ runtime: s.name, wrong }));
