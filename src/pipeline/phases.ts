/**
 * The request lifecycle: named phases in a fixed order, each a list of hooks, and one runner.
 *
 *   transport → envelope → security → authorization → operation → policy → invoke → reply
 *   then completion, after the answer is written, on every outcome
 *
 * The hook contract (the same for built-in stages and, later, plug-ins):
 * - return nothing: continue with the next hook;
 * - return `{ reply }` (policy phase only, where the operation is known): skip the rest of the
 *   policy phase and invoke, and go to the reply phase with this response value;
 * - throw a GatewayError: the call ends with that coded fault. Anything else thrown becomes
 *   SSP_INTERNAL (or SSP_STORE_UNAVAILABLE for a store outage), so no answer is uncoded.
 *
 * Each phase promises the fields its hooks establish (see context.ts); the runner checks the
 * promise once when the phase ends, so later hooks get a narrowed type.
 */
import { GatewayError, isGatewayError } from '../errors/catalogue';
import { log } from '../log';
import { CONTENT_TYPE, envelope, renderFault, type EnvelopeWriter } from '../soap/envelope';
import { StoreUnavailableError } from '../store/store';
import type {
  AnsweredCall,
  AuthorizedCall,
  CallContext,
  IdentifiedCall,
  ParsedCall,
  ReceivedCall,
  RepliedCall,
  ResolvedCall,
} from './context';

export const PHASES = [
  'transport',
  'envelope',
  'security',
  'authorization',
  'operation',
  'policy',
  'invoke',
  'reply',
  'completion',
] as const;
export type PhaseName = (typeof PHASES)[number];

/** A policy hook's way to answer the call itself: the operation's response value. */
export interface StopWithReply {
  reply: unknown;
}

/** A hook of a phase that can only continue or throw. */
export type Hook<C> = (ctx: C) => Promise<void>;
/** A hook of the policy phase, which may also stop with a reply. */
export type PolicyHook = (ctx: ResolvedCall) => Promise<void | StopWithReply>;

/** What the listener writes: the response or the fault, already rendered. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The fault this answer carries, or null for a success. */
  fault: GatewayError | null;
}

/** Runs once per call after the answer is written: audit, metrics, logs. It must not throw. */
export type CompletionHook = (ctx: CallContext, answer: Answer) => void;

export interface Phases {
  /** Establishes `raw`: the request is a SOAP POST at a served path with a bounded body. */
  transport: Hook<CallContext>[];
  /** Establishes `envelope`, `header`, `payload`. */
  envelope: Hook<ReceivedCall>[];
  /** Establishes `signer` and `consumer`. */
  security: Hook<ParsedCall>[];
  /** Establishes `policy` (the SLA binding, or null without a control file). */
  authorization: Hook<IdentifiedCall>[];
  /** Establishes `operation` and `args`. */
  operation: Hook<AuthorizedCall>[];
  /** Checks and limits before the operation runs; may answer from elsewhere (a remembered reply). */
  policy: PolicyHook[];
  /** Runs the operation's handler and gives its response value. */
  invoke: (ctx: ResolvedCall) => Promise<unknown>;
  /** Works on the response value, then establishes `response` (the last hook encodes it). */
  reply: Hook<AnsweredCall>[];
  completion: CompletionHook[];
}

function broken(phase: PhaseName, what: string): GatewayError {
  return new GatewayError('SSP_INTERNAL', `the ${phase} phase ended without ${what}`);
}

async function each<C>(hooks: readonly Hook<C>[], ctx: C): Promise<void> {
  for (const h of hooks) await h(ctx);
}

const isReceived = (c: CallContext): c is ReceivedCall => c.raw !== undefined;
const isParsed = (c: ReceivedCall): c is ParsedCall =>
  c.envelope !== undefined && c.header !== undefined && c.payload !== undefined;
const isIdentified = (c: ParsedCall): c is IdentifiedCall =>
  c.consumer !== undefined && c.signer !== undefined;
const isAuthorized = (c: IdentifiedCall): c is AuthorizedCall => c.policy !== undefined;
const isResolved = (c: AuthorizedCall): c is ResolvedCall =>
  c.operation !== undefined && c.args !== undefined;
const isReplied = (c: AnsweredCall): c is RepliedCall => typeof c.response === 'string';

/** Runs the phases up to the serialized response; throws the fault that ends the call. */
export async function runPhases(p: Phases, ctx: CallContext): Promise<RepliedCall> {
  await each(p.transport, ctx);
  if (!isReceived(ctx)) throw broken('transport', 'a request body');
  await each(p.envelope, ctx);
  if (!isParsed(ctx)) throw broken('envelope', 'a parsed envelope');
  await each(p.security, ctx);
  if (!isIdentified(ctx)) throw broken('security', 'a consumer');
  await each(p.authorization, ctx);
  if (!isAuthorized(ctx)) throw broken('authorization', 'a policy decision');
  await each(p.operation, ctx);
  if (!isResolved(ctx)) throw broken('operation', 'an operation and its arguments');
  let stop: void | StopWithReply = undefined;
  for (const h of p.policy) {
    stop = await h(ctx);
    if (stop) break;
  }
  const answered = ctx as AnsweredCall;
  answered.result = stop ? stop.reply : await p.invoke(ctx);
  await each(p.reply, answered);
  if (!isReplied(answered)) throw broken('reply', 'a response envelope');
  return answered;
}

/** Every failure becomes a coded fault: a store outage is retryable, anything unforeseen internal. */
export function asGatewayError(e: unknown): GatewayError {
  if (isGatewayError(e)) return e;
  if (e instanceof StoreUnavailableError) {
    return new GatewayError('SSP_STORE_UNAVAILABLE', 'the shared state store is unreachable', { cause: e });
  }
  return new GatewayError('SSP_INTERNAL', 'internal error', { cause: e });
}

export interface Pipeline {
  /** Runs the call to its answer; never rejects. */
  handle(ctx: CallContext): Promise<Answer>;
  /** The completion phase, and the call's deferred work. Call once, after the answer is written. */
  complete(ctx: CallContext, answer: Answer): void;
}

export function createPipeline(phases: Phases, write: EnvelopeWriter = envelope): Pipeline {
  return {
    async handle(ctx) {
      try {
        const done = await runPhases(phases, ctx);
        return {
          status: 200,
          headers: { 'content-type': CONTENT_TYPE[done.soapVersion], 'x-correlation-id': done.correlationId },
          body: done.response,
          fault: null,
        };
      } catch (e) {
        const fault = asGatewayError(e);
        let rendered;
        try {
          rendered = renderFault(fault, ctx.soapVersion, ctx.correlationId, write, ctx.addressing);
        } catch (signing) {
          // The fault still reaches the client, unsigned, rather than no answer at all.
          log.error('signing a fault failed', {
            correlationId: ctx.correlationId,
            error: signing instanceof Error ? signing.message : String(signing),
          });
          rendered = renderFault(fault, ctx.soapVersion, ctx.correlationId, envelope, ctx.addressing);
        }
        rendered.headers['x-correlation-id'] = ctx.correlationId;
        return { ...rendered, fault };
      }
    },
    complete(ctx, answer) {
      // Deferred work first and in reverse, like a stack of finally blocks. A failure here must
      // not try to answer the client twice: it is logged.
      const jobs = [...ctx.deferred.slice().reverse(), ...phases.completion.map((h) => () => h(ctx, answer))];
      for (const job of jobs) {
        try {
          job();
        } catch (e) {
          log.error('completing a call failed', {
            correlationId: ctx.correlationId,
            error: e instanceof Error ? e.message : String(e),
          });
        }
      }
    },
  };
}
