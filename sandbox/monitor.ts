/**
 * The QEMU monitor (QMP) bridge: lets a command in the guest ask the host to
 * run QMP commands (device_del for hot-unplug tests, device_add, ...).
 *
 * QEMU listens on a unix socket (`-qmp unix:<sock>,server=on,wait=off`). The
 * host watches the results share: the guest drops `request-<id>.json`
 * (`{"execute": ..., "arguments": ...}`) into `$BUN_VFIO_RESULTS/.qmp/`, the
 * host runs it and writes QEMU's answer (`{"return": ...}` or
 * `{"error": ...}`) to `reply-<id>.json`, and appends every QMP event
 * (DEVICE_DELETED...) to `events.jsonl`. Files appear by rename, so neither
 * side reads a half-written one. Only profiles with `monitor: true` get it.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { QMP } from "./protocol.ts";

/** QEMU arguments that open the QMP socket. */
export function qmpArgs(socket: string): string[] {
  return ["-qmp", `unix:${socket},server=on,wait=off`];
}

type QmpMessage = { return?: unknown; error?: unknown; event?: string; QMP?: unknown; id?: unknown };

/** A minimal QMP client: greeting, qmp_capabilities, then one command at a time. */
class QmpClient {
  #socket: Awaited<ReturnType<typeof Bun.connect>> | undefined;
  #buffer = "";
  #waiting: ((m: QmpMessage) => void)[] = [];
  #onEvent: (e: QmpMessage) => void;

  constructor(onEvent: (e: QmpMessage) => void) {
    this.#onEvent = onEvent;
  }

  /** Connects, retrying while QEMU has not created the socket yet (until `cancelled()`), and negotiates capabilities. */
  async connect(path: string, timeoutMs: number, cancelled: () => boolean): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (cancelled()) return;
      try {
        const greeting = this.#next();
        this.#socket = await Bun.connect({
          unix: path,
          socket: {
            data: (_s, chunk) => this.#receive(chunk.toString()),
            close: () => {
              this.#socket = undefined;
              for (const wait of this.#waiting.splice(0)) wait({ error: { class: "GenericError", desc: "QEMU closed the QMP connection" } });
            },
          },
        });
        await greeting;
        break;
      } catch (err) {
        this.#waiting = [];
        if (performance.now() > deadline) throw new Error(`cannot connect to QMP at ${path}: ${err instanceof Error ? err.message : String(err)}`);
        await Bun.sleep(50);
      }
    }
    await this.execute({ execute: "qmp_capabilities" });
  }

  /** Sends one command and resolves with QEMU's `{return}` or `{error}` message. */
  execute(command: { execute: string; arguments?: unknown }): Promise<QmpMessage> {
    if (!this.#socket) return Promise.resolve({ error: { class: "GenericError", desc: "the QMP connection is closed" } });
    const reply = this.#next();
    this.#socket.write(`${JSON.stringify(command)}\n`);
    return reply;
  }

  close(): void {
    this.#socket?.end();
    this.#socket = undefined;
  }

  #next(): Promise<QmpMessage> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #receive(text: string): void {
    this.#buffer += text;
    let nl: number;
    while ((nl = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (!line) continue;
      const message = JSON.parse(line) as QmpMessage;
      if (message.event) this.#onEvent(message);
      else this.#waiting.shift()?.(message);
    }
  }
}

/** The host side of the bridge for one guest run. */
export class MonitorBridge {
  readonly #dir: string;
  readonly #client: QmpClient;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;
  #stopped = false;

  /** `outDir` is the host folder the guest sees as `$BUN_VFIO_RESULTS`. */
  constructor(outDir: string) {
    this.#dir = join(outDir, QMP.dir);
    mkdirSync(this.#dir, { recursive: true });
    this.#client = new QmpClient((event) => appendFileSync(join(this.#dir, QMP.events), `${JSON.stringify(event)}\n`));
  }

  /** Connects to QEMU's QMP socket and starts watching for requests. */
  async start(socket: string): Promise<void> {
    await this.#client.connect(socket, 30_000, () => this.#stopped);
    if (this.#stopped) this.#client.close(); // the guest run ended while connecting
    else this.#timer = setInterval(() => void this.#poll(), 50);
  }

  /** Stops watching, closes the connection and removes the bridge's files. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#client.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async #poll(): Promise<void> {
    if (this.#busy || !existsSync(this.#dir)) return;
    this.#busy = true;
    try {
      for (const name of readdirSync(this.#dir).sort()) {
        const id = name.match(QMP.requestPattern)?.[1];
        if (id === undefined) continue;
        const path = join(this.#dir, name);
        let reply: QmpMessage;
        try {
          const request = JSON.parse(readFileSync(path, "utf8")) as { execute: string; arguments?: unknown };
          rmSync(path);
          reply = await this.#client.execute({ execute: request.execute, ...(request.arguments === undefined ? {} : { arguments: request.arguments }) });
        } catch (err) {
          rmSync(path, { force: true });
          reply = { error: { class: "BridgeError", desc: err instanceof Error ? err.message : String(err) } };
        }
        const tmp = join(this.#dir, `.${QMP.reply(id)}`);
        writeFileSync(tmp, JSON.stringify(reply));
        renameSync(tmp, join(this.#dir, QMP.reply(id)));
      }
    } finally {
      this.#busy = false;
    }
  }
}
