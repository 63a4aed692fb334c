/**
 * Retries are answered, not repeated. A call names itself with a client key (an explicit
 * clientKey element, else its WS-Addressing MessageID); a retry with the same key from the
 * same consumer, on any proxy, gets the first call's answer from the store.
 *
 * Between the store lookup and the recorded answer a proxy may die. What a retry may then do
 * is the operation's trait (rerunOnResend): sends run again with the same key and the grid
 * de-duplicates them (submit_key); closing twice is closing once; connect and createSession
 * would make a second resource, so a signed resend of them is refused as a replay instead.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import type { AnsweredCall, ResolvedCall } from '../pipeline/context';
import type { Hook, PolicyHook } from '../pipeline/phases';
import type { StateStore } from '../store/store';

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
function fingerprint(ctx: ResolvedCall): string {
  const rest = { ...ctx.args };
  delete rest['clientKey'];
  delete rest['password'];
  return createHash('sha256')
    .update(ctx.operation.name)
    .update('\0')
    .update(JSON.stringify(rest, replacer))
    .digest('base64url');
}

const replay = (): GatewayError =>
  new GatewayError('SSP_WSS_REPLAY', 'this signed message was already accepted once');

/** Policy phase: names the call, and answers a retry of a remembered operation from the store. */
export function answerRetries(store: StateStore): PolicyHook {
  return async (ctx) => {
    const { traits, name } = ctx.operation;
    const explicit = ctx.args['clientKey'];
    const raw = typeof explicit === 'string' ? explicit : ctx.messageId;
    const key = raw === undefined ? undefined : scopedClientKey(ctx.consumer.id, raw);
    ctx.clientKey = key;

    if (!traits.remembered || key === undefined) {
      if (ctx.resend && (traits.remembered || !traits.rerunOnResend(ctx.args, key !== undefined)))
        throw replay();
      return;
    }
    const fp = fingerprint(ctx);
    const prev = await store.getReply(key);
    if (prev) {
      if (prev.fingerprint !== fp) {
        throw new GatewayError(
          'SSP_CLIENT_KEY_REUSED',
          `the client key of this ${name} was used before for a different request`,
        );
      }
      ctx.repeated = true;
      return { reply: JSON.parse(prev.reply) as unknown };
    }
    if (ctx.resend && !traits.rerunOnResend(ctx.args, true)) throw replay();
    ctx.pendingAnswer = { key, fingerprint: fp };
  };
}

/** Reply phase: records the answer of a remembered operation for its retries. */
export function rememberAnswer(store: StateStore, ttlMs: number): Hook<AnsweredCall> {
  return async (ctx) => {
    const pending = ctx.pendingAnswer;
    if (!pending) return;
    try {
      await store.putReply(
        pending.key,
        { fingerprint: pending.fingerprint, reply: JSON.stringify(ctx.result) },
        ttlMs,
      );
    } catch (e) {
      // The call succeeded; a retry would run it again, which these operations tolerate.
      log.warn('could not remember an answer for retries', {
        correlationId: ctx.correlationId,
        operation: ctx.operation.name,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  };
}
