/**
 * Choosing an IOMMU backend: iommufd (`/dev/iommu` + device cdevs, where
 * new VFIO features land), the legacy type1 container, or no-IOMMU mode.
 * Both IOMMU backends hand out the same PciDevice and are the DmaSpace of
 * their devices, so the code above them does not change with the backend.
 */
import { invalidArgument } from "../support/errors.ts";
import { oneOf, optionsArg } from "../support/args.ts";
import { hasIommufd, hasVfioCdevs } from "../host/cdev.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { Container } from "./container.ts";
import { Iommufd } from "./iommufd.ts";

/** An IOMMU backend: `iommufd`, the `type1` container, or `noiommu` (the container in VFIO_NOIOMMU_IOMMU mode). */
export type VfioBackend = "iommufd" | "type1" | "noiommu";

/** What {@link openVfio} can be asked for: a backend, or `auto`. */
export type BackendChoice = VfioBackend | "auto";

/** Options of {@link openVfio}. */
export interface OpenVfioOptions extends HostOptions {
  /**
   * `auto` (default): `$BUN_VFIO_BACKEND` when set, else iommufd when the
   * kernel has `/dev/iommu` and VFIO device cdevs, else type1. `auto`
   * never picks `noiommu`: no isolation at all must be asked for by name.
   */
  backend?: BackendChoice;
}

/** The DMA space and device source of either backend. */
export type VfioSpace = Container | Iommufd;

const BACKENDS: readonly VfioBackend[] = ["iommufd", "type1", "noiommu"];
const CHOICES: readonly BackendChoice[] = ["auto", ...BACKENDS];

/** The backend `openVfio(options)` would use, and why. */
export function chooseBackend(options: OpenVfioOptions = {}): { backend: VfioBackend; reason: string } {
  const opts = optionsArg("chooseBackend", options);
  const asked = opts.backend === undefined ? "auto" : oneOf("chooseBackend", "backend", opts.backend, CHOICES);
  if (asked !== "auto") return { backend: asked, reason: "asked for by name" };
  const env = process.env.BUN_VFIO_BACKEND;
  if (env !== undefined && env !== "" && env !== "auto") {
    if (!(BACKENDS as readonly string[]).includes(env)) throw invalidArgument("chooseBackend", `BUN_VFIO_BACKEND=${env} is not a backend`, `Set it to one of ${BACKENDS.join(", ")} (or unset it).`);
    return { backend: env as VfioBackend, reason: `BUN_VFIO_BACKEND=${env}` };
  }
  if (hasIommufd(opts) && hasVfioCdevs(opts)) return { backend: "iommufd", reason: "the kernel has /dev/iommu and VFIO device cdevs" };
  return { backend: "type1", reason: hasIommufd(opts) ? "the kernel has /dev/iommu but no VFIO device cdevs" : "the kernel has no /dev/iommu (no iommufd)" };
}

/**
 * Opens an IOMMU backend: an {@link Iommufd} (IOMMU_IOAS_ALLOC on
 * `/dev/iommu`) or a {@link Container} (`/dev/vfio/vfio`, in
 * VFIO_NOIOMMU_IOMMU mode for `noiommu`). Open devices with
 * `openPciDevice(bdf)` and DMA buffers with `DmaBuffer.allocate(space, size)`
 * on either.
 *
 * ```ts
 * using vfio = openVfio();                       // iommufd where the kernel has it, else type1
 * using dev = vfio.openPciDevice("0000:01:00.0");
 * ```
 */
export function openVfio(options: OpenVfioOptions = {}): VfioSpace {
  const opts = optionsArg("openVfio", options);
  const { backend } = chooseBackend(opts);
  const host: HostOptions = opts.root === undefined ? {} : { root: opts.root };
  if (backend === "iommufd") return Iommufd.open(host);
  return Container.open(backend === "noiommu" ? { iommuType: "noiommu" } : {});
}
