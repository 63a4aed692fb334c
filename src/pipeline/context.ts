/**
 * The one object that flows through the phases. Stages communicate only through it.
 *
 * A field is established by one phase and read by the later ones, so each phase's hooks get a
 * type in which everything the earlier phases established is present: a stage never asserts
 * that a field is set. The runner (phases.ts) checks each phase's promise once, at its end.
 */
import type { IncomingMessage } from 'node:http';
import type { DecodedFields } from '../soap/schema';
import type { RequestAddressing, SoapVersion } from '../soap/envelope';
import type { XmlElement } from '../soap/xml';
import type { TrustedSigner } from '../security/truststore';
import type { ActivePolicy, CompiledVersion } from '../policy/active-policy';
import type { Sla } from '../policy/model';
import type { BoundOperation } from './operation';

export interface Consumer {
  /** Stable consumer id used for ownership, limits and audit. */
  id: string;
  /** How the identity was established. */
  via: 'anonymous' | 'certificate';
  /** RFC 4514 subject of the signing certificate, for audit. */
  subject?: string;
  fingerprint256?: string;
}

/**
 * What a resource address below the service path names: `…/sessions/{id}`, `…/connections/{id}`,
 * and the notification resources `…/subscriptions/{id}` and `…/pullpoints/{id}`.
 */
export interface AddressedResource {
  kind: 'session' | 'connection' | 'subscription' | 'pullpoint';
  /** Absent at the template addresses `…/sessions` and `…/connections`. */
  id: string | undefined;
}

/** The SLA control file's service version at the request path, pinned for the whole call. */
export interface ServiceBinding {
  policy: ActivePolicy;
  version: CompiledVersion;
}

/** The SLA control file's view of this request, fixed when the request is authorized. */
export interface PolicyBinding extends ServiceBinding {
  sla: Sla;
}

/** What a remembered operation will store under its client key once it has an answer. */
export interface PendingAnswer {
  key: string;
  fingerprint: string;
}

/** Every call from the moment the listener accepts it; later phases fill in the optional fields. */
export interface CallContext {
  readonly startedAt: number;
  readonly req: IncomingMessage;
  /**
   * Request path without the query: the service version when a control file is in effect. A
   * resource's address (…/sessions/{id}) is split by the transport phase: `path` keeps the
   * service's part, `resource` the rest.
   */
  path: string;
  /** The WS-Resource the request path addresses, if any (see resources/address.ts). */
  resource?: AddressedResource;
  /** The request's WS-Addressing, when it used any: the reply then carries Action and RelatesTo. */
  addressing?: RequestAddressing;
  /** The application of the connection or session the call used, once its record was read. */
  application?: string;
  /** Generated, or the client's WS-Addressing MessageID; echoed in X-Correlation-Id and audited. */
  correlationId: string;
  /** Chosen from the Content-Type as soon as it is read, so faults match the request. */
  soapVersion: SoapVersion;
  /** The WS-Addressing MessageID, when it is a plain token: the default client key. */
  messageId: string | undefined;
  /** WS-Security saw this very signed message before (see VerifiedRequest.resend). */
  resend: boolean;
  /** The consumer-scoped client key (clientKey element or MessageID), once the operation is known. */
  clientKey: string | undefined;
  /** The answer came from a remembered earlier call with the same client key. */
  repeated: boolean;
  /** Milliseconds spent waiting for the grid. */
  gridMs: number;
  /** Short verdict of the rate limiter, for the audit record. */
  limitVerdict: string | undefined;
  /** Work to do once the call is over, fault or success (for example releasing a policy snapshot). */
  readonly deferred: (() => void)[];

  service?: ServiceBinding;
  raw?: Buffer;
  /** The parsed Envelope element; header and payload point into it. */
  envelope?: XmlElement;
  header?: XmlElement | null;
  payload?: XmlElement;
  /** The certificate that signed the request, once WS-Security has verified it. */
  signer?: TrustedSigner | null;
  consumer?: Consumer;
  policy?: PolicyBinding | null;
  operation?: BoundOperation;
  args?: DecodedFields;
  pendingAnswer?: PendingAnswer;
  /** The operation's response value, encoded in the reply phase. */
  result?: unknown;
  /** Serialized response envelope. */
  response?: string;
}

/** After transport: the request is a POST of a SOAP content type, its body read within bounds. */
export interface ReceivedCall extends CallContext {
  raw: Buffer;
}

/** After envelope: the body is a well-formed SOAP envelope of the announced version. */
export interface ParsedCall extends ReceivedCall {
  envelope: XmlElement;
  header: XmlElement | null;
  payload: XmlElement;
}

/** After security: the caller is known (the signer, or the anonymous consumer with security off). */
export interface IdentifiedCall extends ParsedCall {
  signer: TrustedSigner | null;
  consumer: Consumer;
}

/** After authorization: the SLA check passed; `policy` is null without an SLA control file. */
export interface AuthorizedCall extends IdentifiedCall {
  policy: PolicyBinding | null;
}

/** After operation: the Body names an operation of the table and its arguments are schema-valid. */
export interface ResolvedCall extends AuthorizedCall {
  operation: BoundOperation;
  args: DecodedFields;
}

/** After invoke (or a hook that stopped with a reply): the response value. */
export interface AnsweredCall extends ResolvedCall {
  result: unknown;
}

/** After reply: the serialized response envelope. */
export interface RepliedCall extends AnsweredCall {
  response: string;
}

/** A fresh context for one request, as the listener makes it. */
export function newCall(req: IncomingMessage, path: string, correlationId: string): CallContext {
  return {
    startedAt: performance.now(),
    req,
    path,
    correlationId,
    soapVersion: '1.1',
    messageId: undefined,
    resend: false,
    clientKey: undefined,
    repeated: false,
    gridMs: 0,
    limitVerdict: undefined,
    deferred: [],
  };
}
