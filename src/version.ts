// GRID's version, reported by executors in their heartbeats, by the controller's WhoAmI, and by
// `--version` on every binary; and the API version: the proto package every message lives in.
export const VERSION = '0.1.0';
export const API_VERSION = 'grid.v1';

/** `grid-cli 0.1.0 (API grid.v1)` */
export function versionLine(binary: string): string {
  return `${binary} ${VERSION} (API ${API_VERSION})`;
}
