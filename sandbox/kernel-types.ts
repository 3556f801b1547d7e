/**
 * What the guest boots: a kernel image and where its modules are.
 */

/** A guest kernel and its modules. */
export interface GuestKernel {
  /** Kernel release, e.g. `6.12.95` or `6.12.95+deb12-amd64`. */
  version: string;
  /** Path of the bzImage (x86) or Image (arm64). */
  vmlinuz: string;
  /**
   * The kernel's `/lib/modules/<version>` folder. For the sandbox's own build
   * it holds only `modules.builtin` (every module is built in), so the module
   * list resolves to nothing and a missing built-in still fails by name.
   */
  modulesDir: string;
  /** True: every module the guest needs is built in and there is no modules folder (`modulesDir` is unused). */
  builtIn?: boolean;
}
