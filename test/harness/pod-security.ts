// The "restricted" Pod Security Standard (baseline included) as a check over a pod spec, written
// from the standard's table of controls rather than from GRID's code, so that tests of the
// manifests in config/kubernetes/ and of the task pods the kubernetes runner creates cannot agree
// with the code by construction. Each violation names the field and the value.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = Record<string, any>;

const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes',
];
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
const SECCOMP_ALLOWED = ['RuntimeDefault', 'Localhost'];

/** The containers of a pod spec with where they sit: spec.containers[0], spec.initContainers[0], … */
export function containersOf(spec: Obj, where = 'spec'): Array<{ at: string; c: Obj }> {
  const out: Array<{ at: string; c: Obj }> = [];
  for (const list of ['initContainers', 'containers', 'ephemeralContainers']) {
    ((spec[list] ?? []) as Obj[]).forEach((c, i) => out.push({ at: `${where}.${list}[${i}]`, c }));
  }
  return out;
}

/** Every way `spec` (a PodSpec) falls short of the restricted standard; [] when it meets it. */
export function restrictedViolations(spec: Obj, where = 'spec'): string[] {
  const v: string[] = [];
  const psc = (spec['securityContext'] ?? {}) as Obj;
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[k] === true) v.push(`${where}.${k}: true shares a host namespace`);
  if (psc['windowsOptions']?.['hostProcess'] === true) v.push(`${where}.securityContext.windowsOptions.hostProcess: true`);
  ((spec['volumes'] ?? []) as Obj[]).forEach((vol, i) => {
    const type = Object.keys(vol).find((k) => k !== 'name');
    if (!type || !RESTRICTED_VOLUMES.includes(type)) v.push(`${where}.volumes[${i}]: volume type ${type} is not allowed (only ${RESTRICTED_VOLUMES.join(', ')})`);
  });
  for (const s of (psc['sysctls'] ?? []) as Obj[]) if (!SAFE_SYSCTLS.includes(s['name'])) v.push(`${where}.securityContext.sysctls: ${s['name']} is not a safe sysctl`);
  if (psc['runAsUser'] === 0) v.push(`${where}.securityContext.runAsUser: 0 (root)`);
  if (psc['seccompProfile']?.['type'] === 'Unconfined') v.push(`${where}.securityContext.seccompProfile.type: Unconfined`);
  v.push(...seLinuxViolations(psc['seLinuxOptions'], `${where}.securityContext.seLinuxOptions`));
  if (psc['appArmorProfile'] && !['RuntimeDefault', 'Localhost'].includes(psc['appArmorProfile']['type'])) {
    v.push(`${where}.securityContext.appArmorProfile.type: ${psc['appArmorProfile']['type']}`);
  }

  for (const { at, c } of containersOf(spec, where)) {
    const sc = (c['securityContext'] ?? {}) as Obj;
    const s = `${at}.securityContext`;
    if (sc['privileged'] === true) v.push(`${s}.privileged: true`);
    if (sc['windowsOptions']?.['hostProcess'] === true) v.push(`${s}.windowsOptions.hostProcess: true`);
    if (sc['procMount'] !== undefined && sc['procMount'] !== 'Default') v.push(`${s}.procMount: ${sc['procMount']}`);
    if (sc['allowPrivilegeEscalation'] !== false) v.push(`${s}.allowPrivilegeEscalation: must be false, is ${JSON.stringify(sc['allowPrivilegeEscalation'])}`);
    const drop = (sc['capabilities']?.['drop'] ?? []) as string[];
    if (!drop.includes('ALL')) v.push(`${s}.capabilities.drop: must include ALL, is ${JSON.stringify(drop)}`);
    for (const cap of (sc['capabilities']?.['add'] ?? []) as string[]) if (cap !== 'NET_BIND_SERVICE') v.push(`${s}.capabilities.add: ${cap} (only NET_BIND_SERVICE)`);
    const nonRoot = sc['runAsNonRoot'] ?? psc['runAsNonRoot'];
    if (nonRoot !== true) v.push(`${s}.runAsNonRoot: must be true (here or for the pod), is ${JSON.stringify(nonRoot)}`);
    if (sc['runAsUser'] === 0) v.push(`${s}.runAsUser: 0 (root)`);
    const seccomp = sc['seccompProfile']?.['type'] ?? psc['seccompProfile']?.['type'];
    if (!SECCOMP_ALLOWED.includes(seccomp)) v.push(`${s}.seccompProfile.type: must be RuntimeDefault or Localhost (here or for the pod), is ${JSON.stringify(seccomp)}`);
    v.push(...seLinuxViolations(sc['seLinuxOptions'], `${s}.seLinuxOptions`));
    for (const p of (c['ports'] ?? []) as Obj[]) if (p['hostPort']) v.push(`${at}.ports: hostPort ${p['hostPort']}`);
  }
  return v;
}

function seLinuxViolations(opts: Obj | undefined, at: string): string[] {
  if (!opts) return [];
  const v: string[] = [];
  if (!SELINUX_TYPES.includes(opts['type'] ?? '')) v.push(`${at}.type: ${opts['type']}`);
  if (opts['user']) v.push(`${at}.user: must not be set`);
  if (opts['role']) v.push(`${at}.role: must not be set`);
  return v;
}
