/**
 * Child of bench/deno-errno.ts: 300 failing calls whose errno is known from
 * their inputs (ioctl TCGETS on /dev/null: ENOTTY; open of a missing path:
 * ENOENT; read of an empty non-blocking eventfd: EAGAIN), mixed with
 * successful ones; prints one JSON line with the mismatches.
 */
import { sys } from "../src/sys/runtime.ts";

const s = sys();
const fd = s.open("/dev/null", 2);
const efd = s.eventfd(0, 0o4000 | 0o2000000);
const buf = new Uint8Array(64);
const wrong: { i: number; expected: number; got: number }[] = [];
for (let i = 0; i < 300; i++) {
  const kind = i % 3;
  const expected = kind === 0 ? -25 : kind === 1 ? -2 : -11;
  const got = kind === 0 ? s.ioctl(fd, 0x5401, buf) : kind === 1 ? s.open(`/nonexistent/${i}`, 0) : s.read(efd, buf, 8);
  if (got !== expected) wrong.push({ i, expected, got });
  if (i % 7 === 0) s.pread(fd, buf, 8, 0); // a success in between (0 bytes from /dev/null)
}
console.log(JSON.stringify({ wrong }));
