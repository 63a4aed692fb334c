/**
 * Resolves the operation from the Body element against the operation table, then decodes its
 * arguments by the schema (handlers get typed values only). The Body decides; a SOAPAction
 * that names a different operation is refused rather than trusted.
 */
import { GatewayError } from '../errors/catalogue';
import type { AuthorizedCall } from '../pipeline/context';
import type { BoundOperation } from '../pipeline/operation';
import type { Hook } from '../pipeline/phases';
import { actionFromContentType } from '../soap/envelope';
import { isDecodedFields } from '../soap/schema';

export function route(operations: ReadonlyMap<string, BoundOperation>): Hook<AuthorizedCall> {
  const known = [...operations.values()].map((o) => o.name).join(', ');
  return async (ctx) => {
    const el = ctx.payload;
    const op = operations.get(`{${el.uri}}${el.local}`);
    if (!op) {
      throw new GatewayError(
        'SSP_UNKNOWN_OPERATION',
        `no operation takes {${el.uri}}${el.local}; known: ${known}`,
      );
    }
    const header = ctx.req.headers['soapaction'];
    const action = (
      ctx.soapVersion === '1.1'
        ? typeof header === 'string'
          ? header
          : ''
        : (actionFromContentType(ctx.req.headers['content-type']) ?? '')
    ).replace(/^"|"$/g, '');
    if (action !== '' && action !== op.soapAction && !op.request.actionAliases?.includes(action)) {
      throw new GatewayError(
        'SSP_ACTION_MISMATCH',
        `SOAPAction '${action}' does not match the Body operation ${op.name} ('${op.soapAction}')`,
      );
    }
    ctx.operation = op;
    const args = op.request.decode(el);
    // Every request element of the contract is a complex type, so this holds for a sound contract.
    if (!isDecodedFields(args))
      throw new GatewayError('SSP_INTERNAL', `${op.name} decoded to a simple value`);
    ctx.args = args;
  };
}
