/** linux/vfio.h: constants, struct layouts and codecs. */
export * from "./vfio.ts";
export * from "./layout.ts";
export * from "./caps.ts";
export * from "./structs.ts";
export * from "./iommufd.ts";
