// GRID configuration: one loader per program, all built on the schema in ./schema.ts.
export * from './controller.js';
export * from './executor.js';
export * from './client.js';
export { readConfigFile } from './json.js';
export type { DeepPartial, Env, Flags, LoadOptions, StringMap } from './schema.js';
