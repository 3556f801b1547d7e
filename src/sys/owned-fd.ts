/**
 * An owned file descriptor: closed once, use-after-close throws, and a
 * FinalizationRegistry closes it if it is garbage-collected unclosed (a
 * backstop only: owners are meant to be closed or disposed).
 */
import { useAfterClose } from "../support/errors.ts";
import { check, type Hints } from "./check.ts";
import { sys } from "./runtime.ts";

const leaked = new FinalizationRegistry<number>((fd) => {
  sys().close(fd);
});

/** A file descriptor with a path for errors and a one-time close. */
export class OwnedFd {
  #fd: number;
  /** Path named in errors (the node the fd was opened from). */
  readonly path: string;
  /** What the fd is, for error messages ("container", "group", "device"...). */
  readonly what: string;

  constructor(fd: number, path: string, what: string) {
    this.#fd = fd;
    this.path = path;
    this.what = what;
    leaked.register(this, fd, this);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The fd, or a VfioError (ECLOSED) naming `op` when already closed. */
  get(op: string): number {
    if (this.#fd < 0) throw useAfterClose(op, this.what, this.path);
    return this.#fd;
  }

  /** ioctl(2) on this fd with `arg` (a buffer or an integer); returns the result, throws a VfioError on failure. */
  ioctl(op: string, request: number, arg: Uint8Array | number, hints?: Hints): number {
    return check(sys().ioctl(this.get(op), request, arg), op, this.path, hints);
  }

  /**
   * A *_GET_INFO ioctl whose struct starts with `argsz`: called with the
   * buffer `make(0)` builds, and again with `make(argsz)` when the kernel
   * asks for more room (capability chains). Returns the filled buffer.
   */
  query(op: string, request: number, make: (argsz: number) => Uint8Array, hints?: Hints): Uint8Array {
    let buf = make(0);
    this.ioctl(op, request, buf, hints);
    const wanted = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true);
    if (wanted > buf.byteLength) {
      buf = make(wanted);
      this.ioctl(op, request, buf, hints);
    }
    return buf;
  }

  /** ioctl(2) returning the raw result (`-errno` on failure) for callers that handle some errors themselves. */
  tryIoctl(op: string, request: number, arg: Uint8Array | number): number {
    return sys().ioctl(this.get(op), request, arg);
  }

  /** Hands the fd to a new owner (who will close it): this object forgets it without closing. */
  disown(): number {
    const fd = this.get("disown");
    this.#fd = -1;
    leaked.unregister(this);
    return fd;
  }

  /** close(2); idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    leaked.unregister(this);
    check(sys().close(fd), "close", this.path);
  }
}
