/** The one object that flows through the stages. Stages communicate only through it. */
import type { IncomingMessage } from 'node:http';
import type { Decoded } from '../soap/schema';
import type { SoapVersion } from '../soap/envelope';
import type { OperationInfo } from '../soap/wsdl';
import type { XmlElement } from '../soap/xml';
import type { TrustedSigner } from '../security/truststore';
import type { ActivePolicy, CompiledVersion } from '../policy/active-policy';
import type { Sla } from '../policy/model';

export interface Consumer {
  /** Stable consumer id used for ownership, limits and audit. */
  id: string;
  /** How the identity was established. */
  via: 'anonymous' | 'certificate';
  /** RFC 4514 subject of the signing certificate, for audit. */
  subject?: string;
  fingerprint256?: string;
}

/** The SLA control file's view of this request, fixed when the request is authorized. */
export interface PolicyBinding {
  policy: ActivePolicy;
  version: CompiledVersion;
  sla: Sla;
}

export interface RequestContext {
  /** Generated, or the client's WS-Addressing MessageID; echoed in X-Correlation-Id and audited. */
  correlationId: string;
  /** The WS-Addressing MessageID, when it is a plain token: the default client key. */
  messageId: string | undefined;
  /** WS-Security saw this very signed message before (see VerifiedRequest.resend). */
  resend: boolean;
  /** The consumer-scoped client key (clientKey element or MessageID), once decoded. */
  clientKey: string | undefined;
  /** The answer came from a remembered earlier call with the same client key. */
  repeated: boolean;
  readonly startedAt: number;
  readonly req: IncomingMessage;
  /** Request path without the query: the service version when a control file is in effect. */
  readonly path: string;
  /** Chosen from the Content-Type as soon as it is read, so faults match the request. */
  soapVersion: SoapVersion;
  raw: Buffer | null;
  /** The parsed Envelope element; header and payload point into it. */
  envelope: XmlElement | null;
  header: XmlElement | null;
  payload: XmlElement | null;
  operation: OperationInfo | null;
  args: Decoded | null;
  /** The certificate that signed the request, once WS-Security has verified it. */
  signer: TrustedSigner | null;
  consumer: Consumer | null;
  /** The operation's response value, encoded by the respond stage. */
  result: unknown;
  /** Serialized response envelope. */
  response: string | null;
  /** Milliseconds spent waiting for the grid. */
  gridMs: number;
  policy: PolicyBinding | null;
  /** Short verdict of the rate limiter, for the audit record. */
  limitVerdict: string | undefined;
}

export type Stage = (ctx: RequestContext, next: () => Promise<void>) => Promise<void>;

/** Runs stages in their fixed order; each may act before and after the rest. */
export function compose(stages: Stage[]): (ctx: RequestContext) => Promise<void> {
  return (ctx) => {
    const run = (i: number): Promise<void> =>
      i < stages.length ? stages[i]!(ctx, () => run(i + 1)) : Promise.resolve();
    return run(0);
  };
}
