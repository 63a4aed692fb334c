/** Establishes who is calling. With security off every caller is the same anonymous consumer. */
import type { Stage } from '../pipeline/context';

export const ANONYMOUS = { id: 'anonymous', via: 'anonymous' } as const;

export function identify(): Stage {
  return async (ctx, next) => {
    ctx.consumer ??= ANONYMOUS;
    await next();
  };
}
