/**
 * The proxy's stages in their phases: the one place that says what runs, and in what order.
 * Each stage is a file in src/stages/ with its tests beside it.
 */
import type { StateStore } from '../store/store';
import type { WssVerifier } from '../security/verifier';
import type { PolicyManager } from '../policy/policy-manager';
import type { ProxyMetrics } from '../observability/metrics';
import type { AuditLog } from '../observability/audit-log';
import { auditCalls, logFaults, recordMetrics } from '../observability/completion';
import type { EnvelopeWriter } from '../soap/envelope';
import type { XmlLimits } from '../soap/xml';
import { servicePath } from '../stages/service-path';
import { receive } from '../stages/receive';
import { parse } from '../stages/parse';
import { wssecurity } from '../stages/wssecurity';
import { identify, type IdentifyOptions } from '../stages/identify';
import { authorize } from '../stages/authorize';
import { route } from '../stages/route';
import { validateInputs, validateOutputs } from '../stages/validate';
import { answerRetries, rememberAnswer } from '../stages/idempotency';
import { ratelimit } from '../stages/ratelimit';
import { dispatch } from '../stages/dispatch';
import { respond } from '../stages/respond';
import type { BoundOperation } from './operation';
import type { Phases } from './phases';

export interface PipelineDeps {
  /** The SOAP endpoint's path, when no SLA control file names the service paths. */
  endpointPath: string;
  maxBodyBytes: number;
  xmlLimits: XmlLimits & { maxHeaders: number };
  /** Null when WS-Security is off. */
  verifier: WssVerifier | null;
  identity: IdentifyOptions;
  policies: PolicyManager | null;
  operations: ReadonlyMap<string, BoundOperation>;
  store: StateStore;
  clientKeyTtlMs: number;
  metrics: ProxyMetrics;
  /** Writes (and signs, when configured) response envelopes. */
  write: EnvelopeWriter;
  audit: AuditLog | null;
}

export function buildPhases(d: PipelineDeps): Phases {
  return {
    transport: [servicePath(d.endpointPath, d.policies), receive({ maxBodyBytes: d.maxBodyBytes })],
    envelope: [parse(d.xmlLimits)],
    security: [...(d.verifier ? [wssecurity(d.verifier)] : []), identify(d.identity)],
    authorization: [authorize()],
    operation: [route(d.operations)],
    // Validation first, so an invalid request never uses up a quota; a retry answered from
    // the store is neither counted against a limit nor sent to the grid.
    policy: [validateInputs(d.metrics), answerRetries(d.store), ratelimit(d.store, d.metrics)],
    invoke: dispatch(),
    reply: [rememberAnswer(d.store, d.clientKeyTtlMs), validateOutputs(d.metrics), respond(d.write)],
    completion: [recordMetrics(d.metrics), ...(d.audit ? [auditCalls(d.audit)] : []), logFaults()],
  };
}
