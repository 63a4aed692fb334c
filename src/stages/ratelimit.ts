/**
 * SLA (per consumer) and SLD (per service endpoint) limits from the control file, decided in
 * one atomic store call so that proxies sharing Redis count exactly and a refused request is
 * charged to no limit. Actions: throttle refuses at once; shape holds the request up to its
 * bound, then refuses; notify only logs and counts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import type { ResolvedCall } from '../pipeline/context';
import type { PolicyHook } from '../pipeline/phases';
import type { BoundLimit } from '../policy/active-policy';
import type { LimiterDecision, ProxyMetrics } from '../observability/metrics';
import { StoreUnavailableError, type RateDecision, type StateStore } from '../store/store';

function describe(l: BoundLimit): string {
  const p = l.policy;
  return `${p.scope.toUpperCase()} policy ${p.name} (${p.threshold} messages per ${p.intervalMs / 1000} s, ${p.intervalType})`;
}

export function ratelimit(store: StateStore, metrics: ProxyMetrics): PolicyHook {
  const count = (l: BoundLimit, d: LimiterDecision): void =>
    metrics.limiter.inc({ scope: l.policy.scope, decision: d });

  return async (ctx) => {
    const binding = ctx.policy;
    if (!binding) return;
    const limits: BoundLimit[] = [];
    const sla = binding.version.slaLimits.get(binding.sla);
    if (sla) limits.push(sla);
    if (binding.version.sld) limits.push(binding.version.sld);
    if (limits.length === 0) return;

    const started = Date.now();
    let shaped = false;
    for (;;) {
      let d: RateDecision;
      try {
        d = await store.admit(limits);
      } catch (e) {
        if (!(e instanceof StoreUnavailableError)) throw e;
        failOpenOrClosed(ctx, limits, count, e);
        return;
      }
      if (d.admitted) {
        limits.forEach((l, i) => {
          if (d.over[i] && !l.enforce) {
            count(l, 'notify');
            log.warn('rate limit exceeded (notify only)', {
              correlationId: ctx.correlationId,
              consumer: ctx.consumer.id,
              serviceVersion: ctx.path,
              policy: l.policy.name,
            });
          } else count(l, shaped ? 'shaped' : 'ok');
        });
        ctx.limitVerdict = shaped ? 'shaped' : d.over.some(Boolean) ? 'notify' : 'ok';
        return;
      }
      const refusing = limits.filter((l, i) => d.over[i] && l.enforce);
      const wait = d.retryAfterMs;
      // Each refusing limit bounds the hold by its own maxDelayMs; a client that went away is
      // not held (nor counted) any longer.
      const deadline =
        started + Math.min(...refusing.map((l) => (l.policy.action === 'shape' ? l.policy.maxDelayMs : 0)));
      if (
        refusing.every((l) => l.policy.action === 'shape') &&
        Date.now() + wait <= deadline &&
        !ctx.req.socket.destroyed
      ) {
        shaped = true;
        await sleep(wait);
        continue;
      }
      for (const l of refusing) count(l, 'over_limit');
      ctx.limitVerdict = `over_limit ${refusing.map((l) => l.policy.name).join(',')}`;
      throw new GatewayError('SSP_RATE_LIMITED', `Error: ${refusing.map(describe).join('; ')} reached`, {
        retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)),
      });
    }
  };
}

/** Store unreachable: every proxy applies the same per-policy choice from the control file. */
function failOpenOrClosed(
  ctx: ResolvedCall,
  limits: BoundLimit[],
  count: (l: BoundLimit, d: LimiterDecision) => void,
  cause: StoreUnavailableError,
): void {
  const closed = limits.filter((l) => l.enforce && l.policy.onStoreFailure === 'closed');
  for (const l of limits) count(l, closed.includes(l) ? 'error' : 'fail_open');
  if (closed.length) {
    ctx.limitVerdict = 'store_unavailable_closed';
    throw new GatewayError(
      'SSP_LIMITER_UNAVAILABLE',
      `the rate-limit store is unreachable and ${closed.map((l) => l.policy.name).join(', ')} fails closed`,
      { retryAfterSeconds: 1, cause },
    );
  }
  ctx.limitVerdict = 'store_unavailable_open';
  log.warn('rate-limit store unreachable; admitted (fail-open policy)', {
    correlationId: ctx.correlationId,
    error: cause.message,
  });
}
