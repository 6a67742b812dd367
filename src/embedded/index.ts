// The embedded local cluster: real nats-server and etcd child processes on loopback.

export { findBinary } from './binary.js';
export { freePort, isPortFree } from './ports.js';
export type { ChildExit } from './child.js';
export { startNats, type NatsOptions, type NatsServer } from './nats.js';
export { startEtcd, type EtcdOptions, type EtcdServer, type EtcdServerTls } from './etcd.js';
export {
  startEmbeddedCluster,
  type EmbeddedCluster,
  type EmbeddedClusterOptions,
  type EmbeddedServerName,
  type EmbeddedTls,
} from './cluster.js';
export { DEFAULT_RESTART_POLICY, Supervisor, type RestartPolicy, type SupervisionEvent } from './supervisor.js';
