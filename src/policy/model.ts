/**
 * The SLA control file as the proxy uses it (docs/policy.md has the mapping):
 * a BusinessService is a grid application, a ServiceVersion is the SOAP endpoint path a
 * client calls, and its SLD EndPoint names the grid cluster(s) that serve it.
 */

export type LimitAction = 'throttle' | 'shape' | 'notify';
export type IntervalType = 'fixed' | 'moving';
/** What a limit does when the shared store cannot be reached. */
export type StoreFailureMode = 'open' | 'closed';

export interface LimitPolicy {
  /** As written in the file, e.g. SLA_5MessagesPer10Seconds_Throttle. */
  name: string;
  scope: 'sla' | 'sld';
  /** Messages (SOAP calls) admitted per interval. */
  threshold: number;
  intervalMs: number;
  intervalType: IntervalType;
  action: LimitAction;
  /** shape only: the longest a request is held before it is rejected. */
  maxDelayMs: number;
  onStoreFailure: StoreFailureMode;
  /** Line of the Policy element, for messages. */
  line: number;
}

export interface Sla {
  consumerId: string;
  /** When set, the SLA applies only to requests that carry this context id. */
  contextId?: string;
  /** No Policy element: the consumer may call without a limit. */
  policy: LimitPolicy | null;
  line: number;
}

/** Validation (and, where supported, transformation) for one direction. */
export interface PayloadRules {
  /** Absolute path of the XSD that validates the message before any transformation. */
  inputSchema?: string;
  inputSchemaLine?: number;
  /** Absolute path of the XSD that validates the message after transformation. */
  outputSchema?: string;
  outputSchemaLine?: number;
}

export interface EndPoint {
  /** URL values in file order. */
  urls: string[];
  /** Configured cluster names the URLs resolve to, tried in this order. */
  clusters: string[];
  /** Rules for task inputs on their way to the grid. */
  request: PayloadRules;
  /** Rules for task outputs on their way back. */
  response: PayloadRules;
  line: number;
}

export interface Sld {
  policy: LimitPolicy | null;
  endpoint: EndPoint;
  line: number;
}

export interface ServiceVersion {
  /** Request path that selects this version, e.g. /services/MathServer/V1. */
  uri: string;
  /** BusinessService/@name. */
  service: string;
  /** Grid application a connect at this version must name (BusinessService/@application, else @name). */
  application: string;
  slas: Sla[];
  sld: Sld;
  line: number;
  /** Idle times of the application's sessions and connections (ms; 0: never), when the file names them. */
  idle?: { sessionMs?: number; connectionMs?: number };
}

export interface ControlFile {
  /** Absolute path it was read from. */
  file: string;
  /** SHA-256 of the bytes, so an unchanged file is not reloaded. */
  sha256: string;
  domain?: string;
  version?: string;
  /** Keyed by uri. */
  versions: Map<string, ServiceVersion>;
}

/** One problem in a control file, named by line and element so an operator can fix it. */
export interface PolicyProblem {
  line: number;
  element: string;
  message: string;
}

export class PolicyLoadError extends Error {
  constructor(
    readonly file: string,
    readonly problems: PolicyProblem[],
  ) {
    super(
      `invalid SLA control file ${file}:\n` +
        problems.map((p) => `  - line ${p.line}, <${p.element}>: ${p.message}`).join('\n'),
    );
    this.name = 'PolicyLoadError';
  }
}
