/**
 * What the pipeline knows about an operation: its WSDL facts (port type, codec, SOAPAction)
 * and its traits. Stages read traits and never name an operation; the table that declares
 * them is src/operations/table.ts.
 */
import type { DecodedFields } from '../soap/schema';
import type { OperationInfo } from '../soap/wsdl';
import type { ResolvedCall } from './context';

/** One task payload as the schema decodes it: exactly one of the three is set. */
export interface TaskPayload {
  xml?: string;
  text?: string;
  binary?: Buffer;
}

/** One task output in a reply, as the handler returns it (before encoding). */
export interface TaskOutputItem {
  taskId: string;
  successful: boolean;
  exception?: string | undefined;
  taskOutput?: TaskPayload | undefined;
}

/**
 * The WSDL's port types: the four Symphony API categories, then sessions and connections as
 * WS-Resources (WS-ResourceProperties and WS-ResourceLifetime).
 */
export type PortType =
  | 'ConnectionPortType'
  | 'SessionPortType'
  | 'TaskInputPortType'
  | 'TaskOutputPortType'
  | 'SessionResourcePortType'
  | 'ConnectionResourcePortType'
  | 'EnumerationSource2004PortType'
  | 'EnumerationSource2011PortType'
  | 'NotificationProducerPortType'
  | 'SubscriptionManagerPortType'
  | 'CreatePullPointPortType'
  | 'PullPointPortType';

/** The code behind one operation: decoded, schema-valid arguments in, the response value out. */
export type Handler<A, R> = (args: A, ctx: ResolvedCall) => Promise<R>;

export interface OperationTraits<A, R> {
  /**
   * The answer is remembered under the call's client key (an explicit clientKey element, else
   * its WS-Addressing MessageID), so that a retry gets it instead of a second run.
   */
  remembered: boolean;
  /**
   * Whether a signed resend (the same signature and MessageID, seen before) may run this
   * operation when no answer is remembered for it: only when repeating it has no further effect.
   * `keyed` tells whether the call has a client key.
   */
  rerunOnResend: (args: A, keyed: boolean) => boolean;
  /**
   * The operation releases a resource. When a resend finds it already gone, the earlier
   * attempt did the work, and the call is answered as done.
   */
  releases?: boolean;
  /** The task payloads a request carries, for payload validation (and plug-ins). */
  taskInputs?: (args: A) => TaskPayload[];
  /** The task outputs a reply carries, checked (and possibly marked failed) before encoding. */
  taskOutputs?: (result: R) => TaskOutputItem[];
}

/** One row of the operation table, as declared. */
export interface OperationSpec<A, R> {
  /** Several when port types share the operation (the resource's address tells them apart). */
  portType: PortType | readonly PortType[];
  handler: Handler<A, R>;
  traits: OperationTraits<A, R>;
}

/**
 * The same row with its types erased, joined with the WSDL's facts. Decoded arguments are
 * trusted to match `A` because the schema codec validated them against the operation's
 * request element; this is the one place that trust is written down.
 */
export interface BoundOperation extends OperationInfo {
  handler: Handler<DecodedFields, unknown>;
  traits: OperationTraits<DecodedFields, unknown>;
}

/** Declares a table row with typed arguments and result. */
export function operation<A, R>(spec: OperationSpec<A, R>): OperationSpec<DecodedFields, unknown> {
  return spec as unknown as OperationSpec<DecodedFields, unknown>;
}

export const always = (): boolean => true;
export const never = (): boolean => false;
export const whenKeyed = (_args: unknown, keyed: boolean): boolean => keyed;

/**
 * Joins the WSDL's operations with the table: every WSDL operation needs a row and every row a
 * WSDL operation, so a contract change that the code does not follow fails at start-up.
 */
export function bindOperations(
  wsdl: ReadonlyMap<string, OperationInfo>,
  table: Readonly<Record<string, OperationSpec<DecodedFields, unknown>>>,
): Map<string, BoundOperation> {
  const bound = new Map<string, BoundOperation>();
  const portTypesOf = new Map<string, Set<string>>();
  for (const [qname, info] of wsdl) {
    const spec = Object.hasOwn(table, info.name) ? table[info.name] : undefined;
    if (!spec) throw new Error(`the WSDL operation ${info.name} has no entry in the operation table`);
    const declared: readonly string[] = [spec.portType].flat();
    for (const p of info.portTypes) {
      if (!declared.includes(p)) {
        throw new Error(
          `the operation table puts ${info.name} in port type ${declared.join(', ')}; the WSDL says ${p}`,
        );
      }
    }
    bound.set(qname, { ...info, handler: spec.handler, traits: spec.traits });
    const seen = portTypesOf.get(info.name) ?? new Set<string>();
    for (const p of info.portTypes) seen.add(p);
    portTypesOf.set(info.name, seen);
  }
  for (const [name, spec] of Object.entries(table)) {
    const seen = portTypesOf.get(name);
    if (!seen) throw new Error(`the operation table has ${name}, which the WSDL does not declare`);
    for (const p of [spec.portType].flat()) {
      if (!seen.has(p))
        throw new Error(`the operation table puts ${name} in port type ${p}; the WSDL does not`);
    }
  }
  return bound;
}
