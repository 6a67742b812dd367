// The task-pod fields of a definition (resources, node_selector, tolerations, security_context):
// what create accepts and normalises, and what it refuses, each problem naming the field, the
// value and what would be valid. That the runner puts them on the Job's pod is in
// test/integration/kube-runner.test.ts.

import { describe, expect, it } from 'vitest';
import { validateJobDefinition } from '../../src/domain/jobdef.js';
import { parseQuantity } from '../../src/domain/quantity.js';
import { problemsOf } from '../harness/problems.js';

const kube = (extra: Record<string, unknown>) => ({ name: 'report', image_name: 'registry.example.com/report:1.4', ...extra });

describe('job definitions: the task pod (kubernetes runner)', () => {
  it('accepts resources, node_selector, tolerations and security_context, normalised, and again from its own output', () => {
    const securityContext = {
      run_as_user: 1000,
      run_as_group: 1000,
      fs_group: 1000,
      read_only_root_filesystem: true,
      capabilities: { add: ['NET_BIND_SERVICE'] },
      seccomp_profile: { type: 'Localhost', localhost_profile: 'profiles/report.json' },
    };
    const def = validateJobDefinition(
      kube({
        resources: { requests: { cpu: 0.5, memory: '256Mi', 'nvidia.com/gpu': '1' }, limits: { memory: '1Gi', 'nvidia.com/gpu': '1', 'hugepages-2Mi': '64Mi' } },
        node_selector: { 'kubernetes.io/arch': 'amd64', pool: '' },
        tolerations: [{ key: 'dedicated', value: 'batch', effect: 'NoSchedule' }, { operator: 'Exists' }, { key: 'spot', operator: 'Exists', effect: 'NoExecute', toleration_seconds: 120 }],
        security_context: securityContext,
      }),
    );
    expect(def.runner).toBe('kubernetes');
    expect(def.resources).toEqual({ requests: { cpu: '0.5', memory: '256Mi', 'nvidia.com/gpu': '1' }, limits: { memory: '1Gi', 'nvidia.com/gpu': '1', 'hugepages-2Mi': '64Mi' } });
    expect(def.node_selector).toEqual({ 'kubernetes.io/arch': 'amd64', pool: '' });
    expect(def.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'batch', effect: 'NoSchedule' },
      { operator: 'Exists' },
      { key: 'spot', operator: 'Exists', effect: 'NoExecute', toleration_seconds: 120 },
    ]);
    expect(def.security_context).toEqual(securityContext);
    expect(validateJobDefinition(JSON.parse(JSON.stringify(def)))).toEqual(def);
  });

  it('leaves the fields out when the definition has none (the runner then uses its restricted defaults)', () => {
    const def = validateJobDefinition(kube({}));
    for (const f of ['resources', 'node_selector', 'tolerations', 'security_context']) expect(def).not.toHaveProperty(f);
  });

  it('refuses them on a host-runner definition', () => {
    expect(problemsOf(() => validateJobDefinition({ name: 'h', command: ['true'], node_selector: { a: 'b' }, tolerations: [] }))).toEqual([
      'node_selector: only the kubernetes runner uses it (it shapes the task\'s pod); this job runs on the host runner',
      'tolerations: only the kubernetes runner uses it (it shapes the task\'s pod); this job runs on the host runner',
    ]);
  });

  it('resources: quantities that parse, resource names Kubernetes knows, requests within limits', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(kube({ resources: { requests: { cpu: '2', memory: '1GB', cpus: '1', gpu: '1' }, limits: { cpu: '1', memory: -1 }, limit: {} } })),
      ),
    ).toEqual([
      'resources.limit: unknown field (did you mean "limits"?)',
      'resources.requests.memory: "1GB" is not a Kubernetes quantity; write a number with an optional suffix, e.g. "500m", "2", "128Mi" or "1Gi" (did you mean "1G" or "1Gi"?)',
      'resources.requests.cpus: "cpus" is not a resource: use cpu, memory, ephemeral-storage, hugepages-<size>, or an extended resource named with its domain, e.g. "nvidia.com/gpu" (did you mean "cpu"?)',
      'resources.requests.gpu: "gpu" is not a resource: use cpu, memory, ephemeral-storage, hugepages-<size>, or an extended resource named with its domain, e.g. "nvidia.com/gpu" (a GPU is named by its device plugin, e.g. "nvidia.com/gpu" or "amd.com/gpu")',
      'resources.limits.memory: -1 must not be negative',
      'resources.requests.cpu: "2" is more than its limit "1" (resources.limits.cpu); a request may not exceed its limit',
    ]);
    expect(problemsOf(() => validateJobDefinition(kube({ resources: { requests: ['cpu'] } })))).toEqual([
      'resources.requests: got an array; it must be an object of resource name → quantity, e.g. {"cpu": "500m", "memory": "256Mi"}',
    ]);
  });

  it('quantities compare by value across suffixes', () => {
    expect(parseQuantity('500m')).toBe(0.5);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('.5')).toBe(0.5);
    for (const bad of ['1GB', '', 'm', '1 Gi', '0x10', '1.2.3']) expect(parseQuantity(bad), bad).toBeUndefined();
    // 1536Mi is more than 1Gi: refused although "1536Mi" < "1Gi" as text.
    expect(problemsOf(() => validateJobDefinition(kube({ resources: { requests: { memory: '1536Mi' }, limits: { memory: '1Gi' } } })))).toHaveLength(1);
    expect(validateJobDefinition(kube({ resources: { requests: { memory: '900Mi' }, limits: { memory: '1G' } } })).resources).toEqual({ requests: { memory: '900Mi' }, limits: { memory: '1G' } });
  });

  it('node_selector: label keys and values as Kubernetes checks them', () => {
    expect(problemsOf(() => validateJobDefinition(kube({ node_selector: { 'Bad_Prefix.io/x': 'y', 'zone!': 'a', tier: 2, arch: 'x'.repeat(64) } })))).toEqual([
      'node_selector.Bad_Prefix.io/x: "Bad_Prefix.io/x" is not a label key: its prefix "Bad_Prefix.io" must be a DNS subdomain such as "example.com"',
      'node_selector.zone!: "zone!" is not a label key: a label key is an optional DNS-subdomain prefix and "/", then a name of at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit, e.g. "kubernetes.io/arch" or "disktype"',
      'node_selector.tier: 2 must be a string (a label value); write "2" in quotes',
      `node_selector.arch: "${'x'.repeat(56)}..." is not a label value: a label value is at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit (or empty)`,
    ]);
  });

  it('tolerations: operator and effect enums, Exists without a value, toleration_seconds only with NoExecute, snake_case', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(
          kube({
            tolerations: [
              { key: 'dedicated', operator: 'equal', value: 'batch', effect: 'NoSchedul' },
              { key: 'gpu', operator: 'Exists', value: 'true' },
              { value: 'x' },
              { key: 'spot', effect: 'NoSchedule', toleration_seconds: 60 },
              { key: 'spot', effect: 'NoExecute', tolerationSeconds: 60 },
              'dedicated=batch:NoSchedule',
            ],
          }),
        ),
      ),
    ).toEqual([
      'tolerations[0].operator: "equal" is not one of "Equal", "Exists" (did you mean "Equal"?)',
      'tolerations[0].effect: "NoSchedul" is not one of "NoSchedule", "PreferNoSchedule", "NoExecute" (or leave it out for every effect) (did you mean "NoSchedule"?)',
      'tolerations[1].value: must be empty with operator "Exists" (which tolerates every value of the key); use operator "Equal" to match "true"',
      'tolerations[2].operator: must be "Exists" when there is no key (a toleration of every taint); give a key to match one with "Equal"',
      'tolerations[3].toleration_seconds: goes only with effect "NoExecute": it is how long the pod stays on a node after such a taint appears',
      'tolerations[4].tolerationSeconds: unknown field (definitions spell it "toleration_seconds")',
      'tolerations[5]: "dedicated=batch:NoSchedule" must be an object such as {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}',
    ]);
  });

  it('security_context: known fields only, ids, root only when run_as_non_root is false, privileged only with escalation, capability names, seccomp', () => {
    expect(
      problemsOf(() =>
        validateJobDefinition(
          kube({
            security_context: {
              runAsNonRoot: true,
              run_as_user: 0,
              run_as_group: -1,
              privileged: true,
              hostNetwork: true,
              capabilities: { add: ['CAP_SYS_ADMIN', 'net_raw'], drop: 'ALL' },
              seccomp_profile: { type: 'runtime/default' },
            },
          }),
        ),
      ),
    ).toEqual([
      'security_context.runAsNonRoot: unknown field (definitions spell it "run_as_non_root")',
      'security_context.hostNetwork: unknown field; known fields are run_as_user, run_as_group, run_as_non_root, fs_group, read_only_root_filesystem, allow_privilege_escalation, privileged, capabilities, seccomp_profile',
      'security_context.run_as_group: -1 must be a numeric id (0 or more), at least 0',
      'security_context.run_as_user: 0 is root, which run_as_non_root (true unless the definition says false) refuses; use a non-zero uid, or set "run_as_non_root": false (a namespace enforcing the restricted Pod Security Standard will then refuse the pod)',
      'security_context.privileged: true needs "allow_privilege_escalation": true as well (it is false unless the definition says otherwise, and Kubernetes refuses the two together)',
      'security_context.capabilities.add[0]: "CAP_SYS_ADMIN": write it without "CAP_", as Kubernetes does: "SYS_ADMIN"',
      'security_context.capabilities.add[1]: "net_raw" is not a capability name: upper-case, as in "NET_BIND_SERVICE" or "ALL" (did you mean "NET_RAW"?)',
      'security_context.capabilities.drop: "ALL" must be an array, e.g. ["NET_BIND_SERVICE"]',
      'security_context.seccomp_profile.type: "runtime/default" is not one of "RuntimeDefault", "Localhost", "Unconfined" (did you mean "RuntimeDefault"?)',
    ]);
    expect(problemsOf(() => validateJobDefinition(kube({ security_context: { seccomp_profile: { type: 'Localhost' } } })))).toEqual([
      'security_context.seccomp_profile.localhost_profile: missing; type "Localhost" needs the profile\'s path, relative to the kubelet\'s seccomp folder, e.g. "profiles/task.json"',
    ]);
    expect(problemsOf(() => validateJobDefinition(kube({ security_context: { seccomp_profile: { type: 'RuntimeDefault', localhost_profile: '/etc/x.json' } } })))).toEqual([
      'security_context.seccomp_profile.localhost_profile: goes only with type "Localhost", not "RuntimeDefault"',
      'security_context.seccomp_profile.localhost_profile: "/etc/x.json" must be a relative path inside the kubelet\'s seccomp folder, without ".."',
    ]);
    // Root, said outright, is the definition's choice.
    expect(validateJobDefinition(kube({ security_context: { run_as_non_root: false, run_as_user: 0 } })).security_context).toEqual({ run_as_user: 0, run_as_non_root: false });
  });

  it('a top-level field in Kubernetes\' spelling is pointed to its name here', () => {
    expect(problemsOf(() => validateJobDefinition(kube({ nodeSelector: {}, securityContext: {} })))).toEqual([
      'nodeSelector: unknown field (did you mean "node_selector"?)',
      'securityContext: unknown field (did you mean "security_context"?)',
    ]);
  });
});
