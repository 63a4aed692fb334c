/**
 * Every failure the proxy can report, in one place. A stage ends a request by throwing a
 * GatewayError; the fault writer turns it into a SOAP 1.1 or 1.2 fault. `detail` names the
 * fault element declared in the WSDL, so generated clients can catch the fault by type.
 */

export type FaultSide = 'Sender' | 'Receiver';

/** Fault elements declared in schemas/symphony.xsd. */
export type FaultElement =
  | 'UnknownConnectionFault'
  | 'UnknownSessionFault'
  | 'NotOwnerFault'
  | 'InvalidArgumentFault'
  | 'AuthenticationFault'
  | 'GridUnavailableFault'
  | 'SlaFault'
  | 'ValidationFault';

/**
 * Fault elements of the WS-Resource standards (WS-BaseFaults 1.2 shape), for the resource port
 * types: `prefix:Name`, the prefix naming the standard's schema (see resources/namespaces.ts).
 */
/**
 * A standard's fault code (WS-Enumeration's wsen:InvalidEnumerationContext and the like): the
 * SOAP 1.2 Subcode, and the faultcode of SOAP 1.1 (which has no subcodes).
 */
export interface FaultSubcode {
  ns: string;
  prefix: string;
  local: string;
}

export type StandardFault =
  | 'wsrf-r:ResourceUnknownFault'
  | 'wsrf-r:ResourceUnavailableFault'
  | 'wsrf-rp:InvalidResourcePropertyQNameFault'
  | 'wsrf-rp:UnknownQueryExpressionDialectFault'
  | 'wsrf-rp:InvalidQueryExpressionFault'
  | 'wsrf-rp:QueryEvaluationErrorFault'
  | 'wsrf-rl:ResourceNotDestroyedFault'
  | 'wsrf-rl:UnableToSetTerminationTimeFault'
  | 'wsrf-rl:TerminationTimeChangeRejectedFault'
  | 'wsnt:SubscribeCreationFailedFault'
  | 'wsnt:InvalidFilterFault'
  | 'wsnt:TopicExpressionDialectUnknownFault'
  | 'wsnt:InvalidTopicExpressionFault'
  | 'wsnt:TopicNotSupportedFault'
  | 'wsnt:UnacceptableInitialTerminationTimeFault'
  | 'wsnt:UnrecognizedPolicyRequestFault'
  | 'wsnt:UnsupportedPolicyRequestFault'
  | 'wsnt:UnacceptableTerminationTimeFault'
  | 'wsnt:UnableToDestroySubscriptionFault'
  | 'wsnt:PauseFailedFault'
  | 'wsnt:ResumeFailedFault'
  | 'wsnt:UnableToCreatePullPointFault'
  | 'wsnt:UnableToGetMessagesFault'
  | 'wsnt:UnableToDestroyPullPointFault';

interface CatalogueEntry {
  /** HTTP status for SOAP 1.2; SOAP 1.1 faults always use 500 (WS-I BP R1126) unless transport-level. */
  status: number;
  side: FaultSide;
  detail?: FaultElement | StandardFault;
  retryable: boolean;
  /** Transport-level refusals keep their status under SOAP 1.1 too (413, 415, 405). */
  transport?: boolean;
  /** What the client should do next; appended to the fault string. */
  hint: string;
}

export const CATALOGUE = {
  SSP_METHOD_NOT_ALLOWED: {
    status: 405,
    side: 'Sender',
    retryable: false,
    transport: true,
    hint: 'POST the SOAP envelope; GET ?wsdl returns the contract',
  },
  SSP_BODY_TOO_LARGE: {
    status: 413,
    side: 'Sender',
    retryable: false,
    transport: true,
    hint: 'split the work into smaller requests (for example smaller sendTaskInputBatch calls)',
  },
  SSP_INCOMPLETE_REQUEST: {
    status: 400,
    side: 'Sender',
    retryable: true,
    transport: true,
    hint: 'the connection closed before the whole request body arrived; send the request again',
  },
  SSP_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    side: 'Sender',
    retryable: false,
    transport: true,
    hint: 'use text/xml for SOAP 1.1 or application/soap+xml for SOAP 1.2',
  },
  SSP_MALFORMED_XML: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'send a well-formed UTF-8 SOAP envelope',
  },
  SSP_FORBIDDEN_XML: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'remove DOCTYPE declarations, processing instructions and comments',
  },
  SSP_XML_LIMIT: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'reduce nesting, attributes or size; see the limits section of the README',
  },
  SSP_NOT_SOAP: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'the root must be a SOAP 1.1 or 1.2 Envelope with one Body element',
  },
  SSP_VERSION_MISMATCH: {
    status: 500,
    side: 'Sender',
    retryable: false,
    hint: 'the envelope namespace does not match the content type',
  },
  SSP_UNKNOWN_OPERATION: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'the Body element must be one of the operations in the WSDL (GET ?wsdl)',
  },
  SSP_ACTION_MISMATCH: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'the SOAPAction must be empty or match the operation of the Body element',
  },
  SSP_INVALID_ARGUMENT: {
    status: 400,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'correct the request so that it matches the WSDL and schema',
  },
  SSP_UNKNOWN_CLUSTER: {
    status: 400,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'use a clusterURL listed in the proxy configuration, or omit it for the default cluster',
  },
  SSP_UNKNOWN_APPLICATION: {
    status: 400,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'use an application name defined on the grid',
  },
  SSP_SESSION_NOT_DETACHED: {
    status: 400,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'openSession only re-attaches sessions closed with DetachOnClose',
  },
  SSP_UNKNOWN_CONNECTION: {
    status: 400,
    side: 'Sender',
    detail: 'UnknownConnectionFault',
    retryable: false,
    hint: 'connect again to obtain a new connection id',
  },
  SSP_UNKNOWN_SESSION: {
    status: 400,
    side: 'Sender',
    detail: 'UnknownSessionFault',
    retryable: false,
    hint: 'create a new session, or openSession if it was detached',
  },
  SSP_NOT_OWNER: {
    status: 403,
    side: 'Sender',
    detail: 'NotOwnerFault',
    retryable: false,
    hint: 'only the consumer that created a connection or session may use it',
  },
  SSP_WSS_MISSING: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'sign the request: a wsse:Security header with a Timestamp, an X.509 token and a Signature over Body and Timestamp is required',
  },
  SSP_WSS_STRUCTURE: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'send one Security header with one Signature whose references cover exactly the SOAP Body and the Timestamp, with unique ids',
  },
  SSP_WSS_TIMESTAMP: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'check the client clock and send a fresh Timestamp with each request',
  },
  SSP_WSS_UNTRUSTED: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'sign with a valid certificate issued by a CA in the proxy trust store',
  },
  SSP_WSS_REVOCATION_UNAVAILABLE: {
    status: 503,
    side: 'Receiver',
    detail: 'AuthenticationFault',
    retryable: true,
    hint: "the proxy could not confirm with the CA's OCSP responder that the signing certificate is not revoked, and it fails closed; retry after the indicated delay, and if this persists ask the operators to check the OCSP responder (security.trust.ocsp)",
  },
  SSP_WSS_ALGORITHM: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'sign with RSA-SHA256 (2048-bit or larger) or ECDSA-SHA256, exclusive c14n and SHA-256 digests',
  },
  SSP_WSS_SIGNATURE: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'the message changed after it was signed, or was signed with another key',
  },
  SSP_WSS_REPLAY: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'sign every request anew; a signed message is accepted once',
  },
  SSP_TLS_SIGNER_MISMATCH: {
    status: 401,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'sign with the same certificate that authenticates the TLS connection',
  },
  SSP_UNKNOWN_CONSUMER: {
    status: 403,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'ask the operators to map this certificate to a consumer id',
  },
  SSP_GRID_AUTHENTICATION: {
    status: 403,
    side: 'Sender',
    detail: 'AuthenticationFault',
    retryable: false,
    hint: 'check the grid user name and password',
  },
  SSP_GRID_UNAVAILABLE: {
    status: 503,
    side: 'Receiver',
    detail: 'GridUnavailableFault',
    retryable: true,
    hint: 'retry after the indicated delay',
  },
  SSP_GRID_TIMEOUT: {
    status: 504,
    side: 'Receiver',
    detail: 'GridUnavailableFault',
    retryable: true,
    hint: 'the grid did not answer in time; retry after the indicated delay',
  },
  SSP_GRID_BUSY: {
    status: 503,
    side: 'Receiver',
    detail: 'GridUnavailableFault',
    retryable: true,
    hint: 'the grid is at its in-flight limit; retry after the indicated delay',
  },
  SSP_RESOURCE_UNKNOWN: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-r:ResourceUnknownFault',
    retryable: false,
    hint: 'send the request to the Address of the endpoint reference that connect or createSession returned; a destroyed or terminated resource is gone for good',
  },
  SSP_INVALID_PROPERTY_QNAME: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-rp:InvalidResourcePropertyQNameFault',
    retryable: false,
    hint: 'name a property of the resource-properties document (for example sym:State, with xmlns:sym="http://soapproxy.symphony/v1" in scope); GetResourcePropertyDocument lists them all',
  },
  SSP_UNKNOWN_QUERY_DIALECT: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-rp:UnknownQueryExpressionDialectFault',
    retryable: false,
    hint: 'use the XPath 1.0 dialect http://www.w3.org/TR/1999/REC-xpath-19991116',
  },
  SSP_INVALID_QUERY: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-rp:InvalidQueryExpressionFault',
    retryable: false,
    hint: 'send a simpler XPath 1.0 expression whose prefixes are declared on the QueryExpression element; the limits are in the README',
  },
  SSP_QUERY_FAILED: {
    status: 500,
    side: 'Receiver',
    detail: 'wsrf-rp:QueryEvaluationErrorFault',
    retryable: false,
    hint: 'the expression took too long or selected too much; narrow it, or read the properties with GetMultipleResourceProperties',
  },
  SSP_RESOURCE_NOT_DESTROYED: {
    status: 503,
    side: 'Receiver',
    detail: 'wsrf-rl:ResourceNotDestroyedFault',
    retryable: true,
    hint: 'the grid could not be reached to end it; send Destroy again (a repeat is harmless)',
  },
  SSP_TERMINATION_TIME_INVALID: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-rl:UnableToSetTerminationTimeFault',
    retryable: false,
    hint: 'ask for a time in the future, within lifetime.maxTerminationMs of now (or nil for no scheduled end); use Destroy to end it now',
  },
  SSP_TERMINATION_TIME_REJECTED: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-rl:TerminationTimeChangeRejectedFault',
    retryable: false,
    hint: 'the operator manages lifetimes here (lifetime.clientTerminationTimes: false); use Destroy to end the resource now',
  },
  SSP_SUBSCRIPTION_UNKNOWN: {
    status: 400,
    side: 'Sender',
    detail: 'wsrf-r:ResourceUnknownFault',
    retryable: false,
    hint: 'send the request to the Address of the endpoint reference that Subscribe or CreatePullPoint returned; an ended subscription or pull point is gone for good (subscribe again)',
  },
  SSP_SUBSCRIBE_FAILED: {
    status: 503,
    side: 'Receiver',
    detail: 'wsnt:SubscribeCreationFailedFault',
    retryable: true,
    hint: 'the subscription could not be recorded; send Subscribe again',
  },
  SSP_CONSUMER_REFUSED: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:SubscribeCreationFailedFault',
    retryable: false,
    hint: 'a ConsumerReference may only name an http(s) address the operator allows for you (notifications.destinations), or one of your pull points; create a pull point (…/pullpoints) if you cannot receive calls',
  },
  SSP_SUBSCRIPTION_QUOTA: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:SubscribeCreationFailedFault',
    retryable: false,
    hint: 'you hold as many subscriptions or pull points as allowed (notifications.maxSubscriptionsPerConsumer, maxPullPointsPerConsumer); Unsubscribe or DestroyPullPoint ones you no longer need',
  },
  SSP_INVALID_FILTER: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:InvalidFilterFault',
    retryable: false,
    hint: 'filter by one wsnt:TopicExpression (Simple or Concrete dialect); message-content and producer-properties filters are not offered',
  },
  SSP_TOPIC_DIALECT_UNKNOWN: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:TopicExpressionDialectUnknownFault',
    retryable: false,
    hint: 'use the dialect http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple or …/Concrete',
  },
  SSP_INVALID_TOPIC_EXPRESSION: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:InvalidTopicExpressionFault',
    retryable: false,
    hint: 'write one topic as prefix:Name (Concrete: prefix:Name/Child), with the prefix bound to http://soapproxy.symphony/v1 on the TopicExpression',
  },
  SSP_TOPIC_NOT_SUPPORTED: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:TopicNotSupportedFault',
    retryable: false,
    hint: 'subscribe to a topic this producer publishes: the fault names them; the README lists what each carries',
  },
  SSP_INITIAL_TERMINATION_INVALID: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:UnacceptableInitialTerminationTimeFault',
    retryable: false,
    hint: 'ask for a time in the future or a positive duration (for example PT1H); a longer one than allowed is cut to the maximum, which the response states',
  },
  SSP_RENEW_TERMINATION_INVALID: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:UnacceptableTerminationTimeFault',
    retryable: false,
    hint: 'ask for a time in the future or a positive duration (for example PT1H); a longer one than allowed is cut to the maximum, which the response states',
  },
  SSP_POLICY_UNRECOGNIZED: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:UnrecognizedPolicyRequestFault',
    retryable: false,
    hint: 'send no SubscriptionPolicy: the proxy offers none',
  },
  SSP_POLICY_UNSUPPORTED: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:UnsupportedPolicyRequestFault',
    retryable: false,
    hint: 'notifications are always wrapped in wsnt:Notify (signed, with a sequence number); send no UseRaw',
  },
  SSP_GET_MESSAGES_REFUSED: {
    status: 400,
    side: 'Sender',
    detail: 'wsnt:UnableToGetMessagesFault',
    retryable: false,
    hint: 'sym:Ack names a message never handed out; echo the last value of sym:Batch from the previous GetMessagesResponse, or send no sym:Ack',
  },
  SSP_ENUMERATION_CONTEXT_INVALID: {
    // Receiver, as WS-Enumeration defines it; the SOAP 1.2 HTTP binding sends that with 500.
    status: 500,
    side: 'Receiver',
    retryable: false,
    hint: "the enumeration context is unknown, released, expired or another consumer's; start a new one with Enumerate (outputs not acknowledged by a Pull or Release are delivered again)",
  },
  SSP_ENUMERATION_TIMED_OUT: {
    status: 504,
    side: 'Receiver',
    retryable: true,
    hint: 'no item arrived within MaxTime; Pull again with the same context (it is still valid)',
  },
  SSP_ENUMERATION_EXPIRES_INVALID: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'ask for an expiry in the future: a positive xs:duration (for example PT10M) or a later xs:dateTime',
  },
  SSP_ENUMERATION_FILTER_UNSUPPORTED: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: "an enumeration of task outputs takes every output (a filter would hide outputs nobody else would then see); filter the consumer's sessions instead, or send no Filter",
  },
  SSP_ENUMERATION_DIALECT_UNAVAILABLE: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'use an XPath 1.0 filter: the SupportedDialect elements of the fault name the dialects',
  },
  SSP_ENUMERATION_FILTER_INVALID: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'send a simpler XPath 1.0 filter whose prefixes are declared on the Filter element; the limits are in the README',
  },
  SSP_ENUMERATION_ENDTO_UNSUPPORTED: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'send no EndTo: the proxy does not call consumer-supplied addresses; Pull until EndOfSequence, or GetStatus to see the expiry',
  },
  SSP_ENUMERATION_ENDTO_REFUSED: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'an EndTo may only name an http(s) address at a host the operator allows (enumeration.endToHosts); send none and Pull to the end instead',
  },
  SSP_ENUMERATION_ITEM_TOO_LARGE: {
    status: 400,
    side: 'Sender',
    retryable: false,
    hint: 'the next item is larger than MaxCharacters; Pull again with a larger MaxCharacters (the item is kept for it)',
  },
  SSP_UNKNOWN_PATH: {
    status: 404,
    side: 'Sender',
    retryable: false,
    transport: true,
    hint: 'POST SOAP calls to the endpoint address of the WSDL (GET <endpoint>?wsdl returns it)',
  },
  SSP_UNKNOWN_SERVICE_VERSION: {
    status: 404,
    side: 'Sender',
    retryable: false,
    transport: true,
    hint: 'send SOAP calls to a ServiceVersion uri of the SLA control file (GET <uri>?wsdl returns its contract)',
  },
  SSP_SLA_CHECK: {
    status: 403,
    side: 'Sender',
    detail: 'SlaFault',
    retryable: false,
    hint: 'Error: SLA Check. This consumer has no SLA for this service version; ask the operators to add one to the SLA control file',
  },
  SSP_WRONG_SERVICE_VERSION: {
    status: 400,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'use a connection or session at the service version uri it was created at',
  },
  SSP_RATE_LIMITED: {
    status: 429,
    side: 'Sender',
    detail: 'SlaFault',
    retryable: true,
    hint: 'the SLA or SLD rate limit is reached; retry after the indicated delay',
  },
  SSP_LIMITER_UNAVAILABLE: {
    status: 503,
    side: 'Receiver',
    detail: 'SlaFault',
    retryable: true,
    hint: 'the shared rate-limit store is unreachable and this policy fails closed; retry after the indicated delay',
  },
  SSP_PAYLOAD_INVALID: {
    status: 400,
    side: 'Sender',
    detail: 'ValidationFault',
    retryable: false,
    hint: 'make the task input valid against the schema of this service version (InputSchemaURL in the SLA control file)',
  },
  SSP_CLIENT_KEY_REUSED: {
    status: 409,
    side: 'Sender',
    detail: 'InvalidArgumentFault',
    retryable: false,
    hint: 'a client key (clientKey or WS-Addressing MessageID) names one request; use a fresh key for a different request',
  },
  SSP_STORE_UNAVAILABLE: {
    status: 503,
    side: 'Receiver',
    retryable: true,
    hint: 'the shared state store (Redis) is unreachable; retry after the indicated delay',
  },
  SSP_INTERNAL: {
    status: 500,
    side: 'Receiver',
    retryable: false,
    hint: 'quote the correlation id to the operators',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCodeName = keyof typeof CATALOGUE;

export class GatewayError extends Error {
  readonly code: ErrorCodeName;
  readonly status: number;
  readonly side: FaultSide;
  readonly detail: FaultElement | StandardFault | undefined;
  readonly retryable: boolean;
  readonly transport: boolean;
  readonly hint: string;
  readonly retryAfterSeconds: number | undefined;
  readonly subcode: FaultSubcode | undefined;
  readonly extraDetail: string | undefined;
  readonly faultExtension: string | undefined;

  constructor(
    code: ErrorCodeName,
    message: string,
    /** `detail` replaces the catalogue's fault element (a resource port type reports its standard faults). */
    opts: {
      retryAfterSeconds?: number;
      cause?: unknown;
      detail?: FaultElement | StandardFault;
      subcode?: FaultSubcode;
      /** More detail elements, after ours (for example WS-Enumeration's SupportedDialect). */
      extraDetail?: string;
      /** Children a standard's fault type adds after the BaseFault ones (WS-BaseNotification's MinimumTime). */
      faultExtension?: string;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    const entry: CatalogueEntry = CATALOGUE[code];
    this.name = 'GatewayError';
    this.code = code;
    this.status = entry.status;
    this.side = entry.side;
    this.detail = opts.detail ?? entry.detail;
    this.retryable = entry.retryable;
    this.transport = entry.transport ?? false;
    this.hint = entry.hint;
    this.retryAfterSeconds = opts.retryAfterSeconds ?? (entry.retryable ? 1 : undefined);
    this.subcode = opts.subcode;
    this.extraDetail = opts.extraDetail;
    this.faultExtension = opts.faultExtension;
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}
