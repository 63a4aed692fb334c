import { expect } from 'chai';
import { GatewayError, type ErrorCodeName } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { BoundOperation, Handler, OperationTraits } from '../pipeline/operation';
import type { DecodedFields } from '../soap/schema';
import { parseXml } from '../soap/xml';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import { dispatch } from './dispatch';

function operation(
  name: string,
  handler: Handler<DecodedFields, unknown>,
  traits: Partial<OperationTraits<DecodedFields, unknown>> = {},
): BoundOperation {
  const info = testContract().byName.get(name);
  if (!info) throw new Error(`the WSDL has no ${name}`);
  return { ...info, handler, traits: { remembered: true, rerunOnResend: () => true, ...traits } };
}

function call(o: BoundOperation, args: DecodedFields, resend = false): ResolvedCall {
  const payload = parseXml(op(o.name, ''));
  const ctx: ResolvedCall = Object.assign(fakeCall(), {
    raw: Buffer.alloc(0),
    envelope: payload,
    header: null,
    payload,
    signer: null,
    consumer: { id: 'client-a', via: 'anonymous' as const },
    policy: null,
    operation: o,
    args,
  });
  ctx.resend = resend;
  return ctx;
}

const failing =
  (code: ErrorCodeName): Handler<DecodedFields, unknown> =>
  async () => {
    throw new GatewayError(code, `failed with ${code}`);
  };

async function thrownBy(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to throw');
}

describe('stages/dispatch: the invoke phase runs the operation handler', () => {
  it('calls the handler with the call’s arguments and context and returns its value', async () => {
    const seen: { args: DecodedFields; ctx: ResolvedCall }[] = [];
    const o = operation('getSessionStatus', async (args, ctx) => {
      seen.push({ args, ctx });
      return { sessionStatus: { sessionId: 's-1' } };
    });
    const ctx = call(o, { sessionId: 's-1' });
    expect(await dispatch()(ctx)).to.deep.equal({ sessionStatus: { sessionId: 's-1' } });
    expect(seen).to.have.length(1);
    expect(seen[0]!.args).to.equal(ctx.args);
    expect(seen[0]!.ctx).to.equal(ctx);
  });

  for (const code of ['SSP_UNKNOWN_SESSION', 'SSP_UNKNOWN_CONNECTION'] as const) {
    it(`answers {} when a resend of a releasing operation finds the resource gone (${code})`, async () => {
      const o = operation('closeSession', failing(code), { releases: true });
      expect(await dispatch()(call(o, { sessionId: 's-1' }, true))).to.deep.equal({});
    });
  }

  it('a releasing operation that is not a resend propagates SSP_UNKNOWN_SESSION', async () => {
    const o = operation('closeSession', failing('SSP_UNKNOWN_SESSION'), { releases: true });
    const e = await thrownBy(dispatch()(call(o, { sessionId: 's-1' }, false)));
    expect(e).to.be.instanceOf(GatewayError).with.property('code', 'SSP_UNKNOWN_SESSION');
  });

  it('a resend of an operation without the releases trait propagates SSP_UNKNOWN_SESSION', async () => {
    const o = operation('getSessionStatus', failing('SSP_UNKNOWN_SESSION'));
    const e = await thrownBy(dispatch()(call(o, { sessionId: 's-1' }, true)));
    expect(e).to.be.instanceOf(GatewayError).with.property('code', 'SSP_UNKNOWN_SESSION');
  });

  it('a resend of a releasing operation propagates any other fault', async () => {
    const o = operation('closeConnection', failing('SSP_NOT_OWNER'), { releases: true });
    const e = await thrownBy(dispatch()(call(o, { connectionId: 'c-1' }, true)));
    expect(e).to.be.instanceOf(GatewayError).with.property('code', 'SSP_NOT_OWNER');
  });

  it('a resend of a releasing operation propagates a plain error unchanged', async () => {
    const boom = new Error('boom');
    const o = operation('closeConnection', async () => Promise.reject(boom), { releases: true });
    expect(await thrownBy(dispatch()(call(o, { connectionId: 'c-1' }, true)))).to.equal(boom);
  });
});
