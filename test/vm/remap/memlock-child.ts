/**
 * Run by dma.test.ts in a child process without CAP_IPC_LOCK and with a
 * small RLIMIT_MEMLOCK: maps a DMA buffer larger than the limit and prints
 * what happened as one JSON line.
 *
 *   prlimit --memlock=N:N setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock bun memlock-child.ts <bdf> <bytes>
 */
import { Container, DmaBuffer, memlockStatus, VfioError } from "../../../src/index.ts";

const [bdf, bytes] = [process.argv[2]!, Number(process.argv[3])];
const status = memlockStatus();
const result: Record<string, unknown> = { capIpcLock: status.capIpcLock, limit: String(status.limit) };
using container = Container.open();
container.addGroup(bdf);
try {
  using buf = DmaBuffer.allocate(container, bytes);
  result.mapped = buf.size;
} catch (err) {
  if (!(err instanceof VfioError)) throw err;
  Object.assign(result, { code: err.code, op: err.op, hint: err.hint, message: err.message });
}
// Below the limit it still works.
using small = DmaBuffer.allocate(container, 4096);
result.smallMapped = small.size;
console.log(JSON.stringify(result));
