/**
 * A set that does not keep its members alive: owners track children they
 * must close (a group its devices, a container its DMA buffers) without
 * stopping a child the user dropped from being garbage-collected, which is
 * what lets the child's FinalizationRegistry backstop release it.
 */
export class WeakMembers<T extends object> {
  readonly #refs = new Map<T | WeakRef<T>, WeakRef<T>>();
  readonly #byTarget = new WeakMap<T, WeakRef<T>>();

  add(member: T): void {
    if (this.#byTarget.has(member)) return;
    const ref = new WeakRef(member);
    this.#byTarget.set(member, ref);
    this.#refs.set(ref, ref);
  }

  delete(member: T): void {
    const ref = this.#byTarget.get(member);
    if (ref === undefined) return;
    this.#byTarget.delete(member);
    this.#refs.delete(ref);
  }

  /** The members still alive, oldest first. */
  values(): T[] {
    const alive: T[] = [];
    for (const ref of [...this.#refs.values()]) {
      const member = ref.deref();
      if (member === undefined) this.#refs.delete(ref);
      else alive.push(member);
    }
    return alive;
  }

  get size(): number {
    return this.values().length;
  }

  clear(): void {
    for (const member of this.values()) this.delete(member);
  }
}
