/**
 * Resolves the operation from the Body element against the WSDL table. The Body decides;
 * a SOAPAction that names a different operation is refused rather than trusted.
 */
import { GatewayError } from '../errors/catalogue';
import type { Stage } from '../pipeline/context';
import { actionFromContentType } from '../soap/envelope';
import type { Contract } from '../soap/wsdl';

export function route(contract: Contract): Stage {
  return async (ctx, next) => {
    const el = ctx.payload!;
    const op = contract.operations.get(`{${el.uri}}${el.local}`);
    if (!op) {
      throw new GatewayError(
        'SSP_UNKNOWN_OPERATION',
        `no operation takes {${el.uri}}${el.local}; known: ${[...contract.byName.keys()].join(', ')}`,
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
    if (action !== '' && action !== op.soapAction) {
      throw new GatewayError(
        'SSP_ACTION_MISMATCH',
        `SOAPAction '${action}' does not match the Body operation ${op.name} ('${op.soapAction}')`,
      );
    }
    ctx.operation = op;
    await next();
  };
}
