// What a definition says about its task's pod, in Kubernetes' words: the container's resources
// (the definition's, else the executor's), the pod's nodeSelector and tolerations, and the
// security contexts. Task pods meet the restricted Pod Security Standard unless the definition
// loosens a field: run as non-root, no privilege escalation, every capability dropped, seccomp
// RuntimeDefault. Pure functions, no I/O.

import type { V1PodSecurityContext, V1ResourceRequirements, V1SecurityContext, V1Toleration } from '@kubernetes/client-node';
import type { KubernetesConfig } from '../../config/executor.js';
import type { JobDefinition } from '../../domain/job.js';

/** The definition's `resources` replace the executor's whole: merged, a request could exceed a default limit. */
export function containerResources(def: JobDefinition, cfg: KubernetesConfig): V1ResourceRequirements | undefined {
  const r = def.resources ?? cfg.resources;
  const requests = { ...r.requests };
  const limits = { ...r.limits };
  if (Object.keys(requests).length + Object.keys(limits).length === 0) return undefined;
  return {
    ...(Object.keys(requests).length ? { requests } : {}),
    ...(Object.keys(limits).length ? { limits } : {}),
  };
}

export function podTolerations(def: JobDefinition): V1Toleration[] | undefined {
  if (!def.tolerations?.length) return undefined;
  return def.tolerations.map((t) => ({
    key: t.key,
    operator: t.operator,
    value: t.value,
    effect: t.effect,
    tolerationSeconds: t.toleration_seconds,
  }));
}

export function podNodeSelector(def: JobDefinition): Record<string, string> | undefined {
  return def.node_selector && Object.keys(def.node_selector).length ? { ...def.node_selector } : undefined;
}

/** The pod's and the container's security contexts: restricted, but for what the definition says. */
export function taskSecurity(def: JobDefinition): { pod: V1PodSecurityContext; container: V1SecurityContext } {
  const sc = def.security_context ?? {};
  const runAsNonRoot = sc.run_as_non_root ?? true;
  const seccompProfile = sc.seccomp_profile
    ? { type: sc.seccomp_profile.type, localhostProfile: sc.seccomp_profile.localhost_profile }
    : { type: 'RuntimeDefault' };
  const add = sc.capabilities?.add ?? [];
  const container: V1SecurityContext = {
    runAsNonRoot,
    runAsUser: sc.run_as_user,
    runAsGroup: sc.run_as_group,
    allowPrivilegeEscalation: sc.allow_privilege_escalation ?? false,
    privileged: sc.privileged,
    readOnlyRootFilesystem: sc.read_only_root_filesystem,
    capabilities: { drop: sc.capabilities?.drop ?? ['ALL'], ...(add.length ? { add } : {}) },
    seccompProfile,
  };
  const pod: V1PodSecurityContext = { runAsNonRoot, seccompProfile, fsGroup: sc.fs_group };
  return { pod, container };
}
