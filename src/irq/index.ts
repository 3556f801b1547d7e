/**
 * The irq layer's public surface: MSI-X, MSI, INTx, ERR and REQ through
 * eventfds and VFIO_DEVICE_SET_IRQS, awaited without blocking the event loop.
 */
export { DeviceInterrupts } from "./interrupts.ts";
export { MsixInterrupts } from "./msix.ts";
export { MsiInterrupts } from "./msi.ts";
export { IntxInterrupt, type IntxEnableOptions } from "./intx.ts";
export { DeviceEventIndex, ErrorEvents, ReleaseRequests, type ReleaseOptions as ReleaseRequestOptions, type ReleaseRequest } from "./device-events.ts";
export { VectorIndex } from "./vector-index.ts";
export { IrqVector, type IrqKind, type IrqVectors } from "./vector.ts";
export { EventFd } from "./eventfd.ts";
export { EventWaiter, type InterruptHandler, type Subscription } from "./waiter.ts";
