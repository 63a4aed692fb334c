/**
 * SLA check: with an SLA control file in effect, the consumer must hold an SLA for the service
 * version it calls (the request path). Pins the policy snapshot for the rest of the request.
 */
import { GatewayError } from '../errors/catalogue';
import type { Stage } from '../pipeline/context';
import type { PolicyManager } from '../policy/policy-manager';

/** Optional HTTP header that selects an SLA declared with a contextId. */
export const CONTEXT_HEADER = 'x-context-id';

export function authorize(policies: PolicyManager | null): Stage {
  if (!policies) return (_ctx, next) => next();
  return async (ctx, next) => {
    const policy = policies.current;
    policy.acquire();
    try {
      const version = policy.version(ctx.path);
      if (!version) {
        throw new GatewayError('SSP_UNKNOWN_SERVICE_VERSION', `no service version is served at ${ctx.path}`);
      }
      const header = ctx.req.headers[CONTEXT_HEADER];
      const contextId = typeof header === 'string' && header !== '' ? header : undefined;
      const consumer = ctx.consumer!.id;
      const sla = policy.slaFor(version, consumer, contextId);
      if (!sla) {
        throw new GatewayError(
          'SSP_SLA_CHECK',
          `Error: SLA Check. Consumer '${consumer}'${contextId ? ` in context '${contextId}'` : ''} has no SLA for service version ${ctx.path}`,
        );
      }
      ctx.policy = { policy, version, sla };
      await next();
    } finally {
      policy.release();
    }
  };
}
