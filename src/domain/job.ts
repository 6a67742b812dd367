// A job definition as GRID stores and uses it: Octavius's metadata.json fields plus GRID's
// additions, normalised (runner inferred, defaults filled). Pure data; validation is in jobdef.ts.

export type RunnerName = 'host' | 'kubernetes';
export const RUNNERS: readonly RunnerName[] = ['host', 'kubernetes'];

export type ArgType = 'string' | 'int' | 'bool' | 'enum';
export const ARG_TYPES: readonly ArgType[] = ['string', 'int', 'bool', 'enum'];

export interface SecretSpec {
  name: string;
  description: string;
  /**
   * Execute refuses to run without it; grid-cli on a terminal asks for it without echo. Absent in
   * definitions stored before it existed: not required.
   */
  required?: boolean;
}

export interface ArgSpec {
  name: string;
  description: string;
  required: boolean;
  type: ArgType;
  /** Allowed values, only for type enum. */
  values?: string[];
  /** Applied when the argument is not given; always stored as a string. */
  default?: string;
  /** A regular expression the whole value must match. */
  pattern?: string;
}

export const ON_LOST = ['retry', 'fail', 'at_most_once'] as const;
export type OnLost = (typeof ON_LOST)[number];

export interface RetryPolicy {
  max_attempts: number;
  backoff_seconds: number;
}

export interface FileRef {
  name: string;
  path: string;
  template: boolean;
  /** Octal mode such as "0644". */
  mode?: string;
}

/**
 * What a task pod asks for and is held to (kubernetes runner only): Kubernetes quantities such
 * as "500m", "2", "128Mi", "1Gi" by resource name (cpu, memory, ephemeral-storage,
 * hugepages-<size>, or a domain-qualified extended resource such as nvidia.com/gpu).
 */
export interface PodResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export const TOLERATION_OPERATORS = ['Equal', 'Exists'] as const;
export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

/** A Kubernetes toleration, spelt the way definitions are (snake_case). */
export interface Toleration {
  /** Absent: every taint key (operator must then be Exists). */
  key?: string;
  operator: (typeof TOLERATION_OPERATORS)[number];
  value?: string;
  /** Absent: every effect. */
  effect?: (typeof TAINT_EFFECTS)[number];
  /** How long a NoExecute taint is tolerated before the pod is evicted. */
  toleration_seconds?: number;
}

export const SECCOMP_TYPES = ['RuntimeDefault', 'Localhost', 'Unconfined'] as const;

/**
 * The task container's security context, in snake_case. Task pods follow the restricted Pod
 * Security Standard unless this says otherwise: what is absent takes the restricted default
 * (run_as_non_root true, allow_privilege_escalation false, capabilities.drop ["ALL"],
 * seccomp_profile RuntimeDefault).
 */
export interface TaskSecurityContext {
  run_as_user?: number;
  run_as_group?: number;
  run_as_non_root?: boolean;
  /** Pod-level: the group that owns the pod's volumes. */
  fs_group?: number;
  read_only_root_filesystem?: boolean;
  allow_privilege_escalation?: boolean;
  privileged?: boolean;
  /** Each list given replaces its default (add: none, drop: ["ALL"]). */
  capabilities?: { add?: string[]; drop?: string[] };
  seccomp_profile?: { type: (typeof SECCOMP_TYPES)[number]; localhost_profile?: string };
}

export interface JobDefinition {
  name: string;
  description: string;
  image_name?: string;
  author?: string;
  contributors?: string[];
  organization?: string;
  authorized_groups: string[];
  env_vars: { secrets: SecretSpec[]; args: ArgSpec[] };
  runner: RunnerName;
  command?: string[];
  shell?: string;
  timeout_seconds?: number;
  retries?: RetryPolicy;
  target?: string;
  /** Lock name; `serialize: true` in the file is normalised to the job's name. */
  serialize?: string;
  files: FileRef[];
  /**
   * What happens to a task whose executor is lost while running it (expired, or restarted):
   * `retry` (the default) runs it again, elsewhere for a pool task; `fail` leaves it LOST;
   * `at_most_once` never runs it a second time and ends it UNKNOWN.
   */
  on_lost?: OnLost;
  /** Restricted environment names (env-rules.ts) this job may take as arguments or secrets. */
  allow_env?: string[];
  /** Kubernetes runner: the task container's requests and limits (replace the executor's). */
  resources?: PodResources;
  /** Kubernetes runner: the task pod's nodeSelector. */
  node_selector?: Record<string, string>;
  /** Kubernetes runner: the task pod's tolerations. */
  tolerations?: Toleration[];
  /** Kubernetes runner: loosens or tightens the restricted default of the task pod. */
  security_context?: TaskSecurityContext;
}

/** A definition as stored: the definition plus its version and audit fields. */
export interface StoredJob {
  definition: JobDefinition;
  version: number;
  created_by: string;
  created_at_ms: number;
  updated_by: string;
  updated_at_ms: number;
}
