/**
 * Retries are answered, not repeated. A call names itself with a client key (an explicit
 * clientKey element, else its WS-Addressing MessageID); a retry with the same key from the
 * same consumer, on any proxy, gets the first call's answer from the store.
 *
 * Between the store lookup and the recorded answer a proxy may die. What a retry may then do
 * depends on the operation: sends run again with the same key and the grid de-duplicates
 * them (submit_key); closing twice is closing once; connect and createSession would make a
 * second resource, so a signed resend of them is refused as a replay instead.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import type { RequestContext, Stage } from '../pipeline/context';
import type { StateStore } from '../store/store';

/** Operations whose answer is remembered under the client key. */
const REMEMBERED = new Set([
  'connect',
  'closeConnection',
  'createSession',
  'openSession',
  'closeSession',
  'sendTaskInput',
  'sendTaskInputBatch',
]);

/** Remembered operations that may run again when the answer was never recorded. */
const RERUNNABLE = new Set(['sendTaskInput', 'sendTaskInputBatch', 'closeConnection', 'closeSession']);

/** Operations a signed resend may reach without a remembered answer: reads and releases. */
function repeatable(ctx: RequestContext): boolean {
  const op = ctx.operation!.name;
  if (op === 'getSessionStatus' || op === 'acknowledgeTaskOutput') return true;
  // A leased fetch with a key answers its repeat from the lease; any other fetch would take more.
  return op === 'fetchTaskOutput' && ctx.clientKey !== undefined && argsOf(ctx)['leaseMillis'] !== undefined;
}

function argsOf(ctx: RequestContext): Record<string, unknown> {
  return (ctx.args ?? {}) as Record<string, unknown>;
}

/** The store key: the consumer's own namespace, so that one consumer cannot collide with another. */
export function scopedClientKey(consumerId: string, key: string): string {
  return createHash('sha256').update(consumerId).update('\0').update(key).digest('base64url');
}

/** Binary payloads hash as base64 rather than JSON's byte arrays. */
function replacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer') {
    return Buffer.from((v as { data: number[] }).data).toString('base64');
  }
  return v;
}

/** What makes two requests the same request; the password never enters the store, even hashed. */
function fingerprint(ctx: RequestContext): string {
  const rest = { ...argsOf(ctx) };
  delete rest['clientKey'];
  delete rest['password'];
  return createHash('sha256')
    .update(ctx.operation!.name)
    .update('\0')
    .update(JSON.stringify(rest, replacer))
    .digest('base64url');
}

const replay = (): GatewayError =>
  new GatewayError('SSP_WSS_REPLAY', 'this signed message was already accepted once');

export function idempotency(store: StateStore, ttlMs: number): Stage {
  return async (ctx, next) => {
    const op = ctx.operation!.name;
    const explicit = argsOf(ctx)['clientKey'];
    const raw = typeof explicit === 'string' ? explicit : ctx.messageId;
    ctx.clientKey = raw === undefined ? undefined : scopedClientKey(ctx.consumer!.id, raw);

    if (!REMEMBERED.has(op) || ctx.clientKey === undefined) {
      if (ctx.resend && !repeatable(ctx)) throw replay();
      return next();
    }
    const key = ctx.clientKey;
    const fp = fingerprint(ctx);
    const prev = await store.getReply(key);
    if (prev) {
      if (prev.fingerprint !== fp) {
        throw new GatewayError(
          'SSP_CLIENT_KEY_REUSED',
          `the client key of this ${op} was used before for a different request`,
        );
      }
      ctx.result = JSON.parse(prev.reply) as unknown;
      ctx.repeated = true;
      return;
    }
    if (ctx.resend && !RERUNNABLE.has(op)) throw replay();
    try {
      await next();
    } catch (e) {
      // The first attempt closed it and died before its answer was recorded.
      const gone =
        e instanceof GatewayError &&
        (e.code === 'SSP_UNKNOWN_SESSION' || e.code === 'SSP_UNKNOWN_CONNECTION');
      if (!(ctx.resend && gone && (op === 'closeSession' || op === 'closeConnection'))) throw e;
      ctx.result = {};
    }
    try {
      await store.putReply(key, { fingerprint: fp, reply: JSON.stringify(ctx.result) }, ttlMs);
    } catch (e) {
      // The call succeeded; a retry would run it again, which these operations tolerate.
      log.warn('could not remember an answer for retries', {
        correlationId: ctx.correlationId,
        operation: op,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  };
}
