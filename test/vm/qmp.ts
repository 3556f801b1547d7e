/**
 * The guest side of the sandbox's QMP bridge (sandbox/monitor.ts): ask
 * the host to run a QEMU monitor command, and read the events QEMU sent.
 * Only in profiles with `monitor: true`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { QMP } from "../../sandbox/protocol.ts";

const dir = join(process.env.BUN_VFIO_RESULTS ?? "/tmp/bun-vfio-results", QMP.dir);
let sequence = 0;

/** True when this guest has the bridge (its folder exists once the host connected to QEMU). */
export function haveMonitor(): boolean {
  return existsSync(dir);
}

/** Runs a QMP command on the host; resolves with QEMU's `return`, rejects with its `error`. */
export async function qmp(execute: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<unknown> {
  mkdirSync(dir, { recursive: true });
  const id = `${process.pid}-${++sequence}`;
  const tmp = join(dir, `.${QMP.request(id)}`);
  writeFileSync(tmp, JSON.stringify({ execute, arguments: args }));
  renameSync(tmp, join(dir, QMP.request(id)));
  const replyPath = join(dir, QMP.reply(id));
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await Bun.sleep(50)) {
    if (!existsSync(replyPath)) continue;
    const reply = JSON.parse(readFileSync(replyPath, "utf8")) as { return?: unknown; error?: { class: string; desc: string } };
    rmSync(replyPath, { force: true });
    if (reply.error) throw new Error(`QMP ${execute}: ${reply.error.class}: ${reply.error.desc}`);
    return reply.return;
  }
  throw new Error(`QMP ${execute}: no reply from the host within ${timeoutMs} ms (is the profile's monitor on?)`);
}

/** The QMP events received so far (`{event, data, timestamp}`), oldest first. */
export function qmpEvents(): { event: string; data?: Record<string, unknown> }[] {
  const path = join(dir, QMP.events);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Waits until an event named `name` whose data matches `match` has arrived. */
export async function waitForEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await Bun.sleep(100)) {
    const hit = qmpEvents().find((e) => e.event === name && match(e.data ?? {}));
    if (hit) return hit.data ?? {};
  }
  throw new Error(`no QMP ${name} event within ${timeoutMs} ms`);
}
