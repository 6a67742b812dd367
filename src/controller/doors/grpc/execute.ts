// Execute in the API's own messages, for every door that speaks them (gRPC, and the NATS intake,
// whose requests are ExecuteRequest in JSON): the use-case's input from the request, the response
// from its result, and what the audit line records.

import type { ExecuteRequest, ExecuteResponse } from '../../../gen/grid/v1/controller.js';
import type { AuditSpec } from '../../audit.js';
import type { ExecuteInput, ExecuteResult } from '../../executions.js';
import { executionToPb } from './convert.js';

export function executeInput(req: ExecuteRequest): ExecuteInput {
  return {
    job: req.job,
    args: req.args,
    target: req.target,
    timeoutSeconds: req.timeoutSeconds,
    waitOfflineMs: req.waitOfflineMs,
    batchSize: req.batchSize,
    maxFailures: req.maxFailures,
    dryRun: req.dryRun,
    idempotencyKey: req.idempotencyKey,
  };
}

export function executeResponse(res: ExecuteResult): ExecuteResponse {
  return {
    executionId: res.execution?.id ?? '',
    execution: res.execution ? executionToPb(res.execution) : undefined,
    dryRun: res.dryRun ?? [],
    reused: !!res.reused,
  };
}

export const executeAudit: AuditSpec<ExecuteRequest, ExecuteResponse> = {
  action: 'execution.create',
  target: (req) => req.job,
  executionId: (_req, res) => res?.executionId,
  on: (req, res) => res?.execution?.target ?? req.target,
  dryRun: (req) => req.dryRun,
  reused: (_req, res) => !!res?.reused,
  // Argument values stay out of the line, even where an error message quotes one.
  hide: (req) => Object.values(req.args),
};
