/**
 * SLA check: with an SLA control file in effect, the consumer must hold an SLA for the service
 * version it calls (pinned by the service-path stage from the request path).
 */
import { GatewayError } from '../errors/catalogue';
import type { IdentifiedCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';

/** Optional HTTP header that selects an SLA declared with a contextId. */
export const CONTEXT_HEADER = 'x-context-id';

export function authorize(): Hook<IdentifiedCall> {
  return async (ctx) => {
    const service = ctx.service;
    if (!service) {
      ctx.policy = null;
      return;
    }
    const header = ctx.req.headers[CONTEXT_HEADER];
    const contextId = typeof header === 'string' && header !== '' ? header : undefined;
    const consumer = ctx.consumer.id;
    const sla = service.policy.slaFor(service.version, consumer, contextId);
    if (!sla) {
      throw new GatewayError(
        'SSP_SLA_CHECK',
        `Error: SLA Check. Consumer '${consumer}'${contextId ? ` in context '${contextId}'` : ''} has no SLA for service version ${ctx.path}`,
      );
    }
    ctx.policy = { ...service, sla };
  };
}
