/**
 * `bun-vfio bind` / `bun-vfio release`: move a device to vfio-pci and back.
 */
import { bindToVfio, releaseFromVfio } from "../host/bind.ts";
import { parse, requireBdf } from "./args.ts";

/** Binds a device to vfio-pci, printing the driver it had (needed to release it later). */
export function bindCommand(argv: string[]): number {
  const { values, positionals } = parse("bind", argv, {});
  if (values.help) {
    console.log("usage: bun-vfio bind <bdf>\n\nUnbinds the device from its driver and binds it to vfio-pci (driver_override + drivers_probe). Needs root and the vfio-pci module.");
    return 0;
  }
  const result = bindToVfio(requireBdf("bind", positionals));
  if (result.alreadyBound) console.log(`${result.bdf} is already bound to vfio-pci`);
  else console.log(`${result.bdf} bound to vfio-pci (was ${result.previousDriver ?? "unbound"}; give it back with: bun-vfio release ${result.bdf}${result.previousDriver ? ` --driver ${result.previousDriver}` : ""})`);
  return 0;
}

/** Unbinds a device from vfio-pci and lets the kernel (or --driver) take it back. */
export function releaseCommand(argv: string[]): number {
  const { values, positionals } = parse("release", argv, { driver: { type: "string" } });
  if (values.help) {
    console.log("usage: bun-vfio release <bdf> [--driver NAME]\n\nUnbinds the device from vfio-pci, clears driver_override and reprobes it, so its own driver (or NAME) takes it back.");
    return 0;
  }
  const result = releaseFromVfio(requireBdf("release", positionals), { previousDriver: values.driver });
  console.log(`${result.bdf} released; now bound to ${result.driver ?? "no driver"}`);
  return 0;
}
