// GRID's version, reported by executors in their heartbeats and by `--version`.
export const VERSION = '0.1.0';
