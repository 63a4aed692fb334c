import { expect } from 'chai';
import type { AnsweredCall } from '../pipeline/context';
import type { BoundOperation } from '../pipeline/operation';
import { SOAP11_NS, SOAP12_NS, SYM_NS, type SoapVersion } from '../soap/envelope';
import { childElements, parseXml, textOf } from '../soap/xml';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import { respond } from './respond';

function operation(name: string): BoundOperation {
  const info = testContract().byName.get(name);
  if (!info) throw new Error(`the WSDL has no ${name}`);
  return { ...info, handler: async () => ({}), traits: { remembered: false, rerunOnResend: () => true } };
}

function answered(name: string, result: unknown, soapVersion: SoapVersion = '1.1'): AnsweredCall {
  const o = operation(name);
  const payload = parseXml(op(name, ''));
  const ctx: AnsweredCall = Object.assign(fakeCall(), {
    raw: Buffer.alloc(0),
    envelope: payload,
    header: null,
    payload,
    signer: null,
    consumer: { id: 'client-a', via: 'anonymous' as const },
    policy: null,
    operation: o,
    args: {},
    result,
  });
  ctx.soapVersion = soapVersion;
  return ctx;
}

describe('stages/respond: the response value encoded in an envelope', () => {
  it('encodes the result with the operation’s response codec inside a SOAP 1.1 envelope', async () => {
    const ctx = answered('connect', { connectionId: 'c-1' });
    await respond()(ctx);
    expect(ctx.response).to.be.a('string');
    const root = parseXml(ctx.response ?? '');
    expect(root.uri).to.equal(SOAP11_NS);
    expect(root.local).to.equal('Envelope');
    const [body] = childElements(root);
    expect(body?.local).to.equal('Body');
    const [reply] = childElements(body!);
    expect(reply).to.deep.include({ uri: SYM_NS, local: 'connectResponse' });
    const [id] = childElements(reply!);
    expect(id?.local).to.equal('connectionId');
    expect(textOf(id!)).to.equal('c-1');
  });

  it('writes the envelope in the SOAP version of the request', async () => {
    const ctx = answered('sendTaskInput', { taskId: 't-1' }, '1.2');
    await respond()(ctx);
    const root = parseXml(ctx.response ?? '');
    expect(root.uri).to.equal(SOAP12_NS);
    expect(ctx.response).to.contain('<sym:taskId>t-1</sym:taskId>');
  });

  it('encodes an empty response value as an empty response element', async () => {
    const ctx = answered('closeSession', {});
    await respond()(ctx);
    expect(ctx.response).to.contain(`<sym:closeSessionResponse xmlns:sym="${SYM_NS}"/>`);
  });

  it('hands the SOAP version and the encoded body to the given writer, and keeps what it returns', async () => {
    const calls: [SoapVersion, string][] = [];
    const writer = (version: SoapVersion, body: string): string => {
      calls.push([version, body]);
      return `signed(${version}):${body}`;
    };
    const ctx = answered('connect', { connectionId: 'c-1' }, '1.2');
    await respond(writer)(ctx);
    const encoded = ctx.operation.response.encode({ connectionId: 'c-1' });
    expect(calls).to.deep.equal([['1.2', encoded]]);
    expect(ctx.response).to.equal(`signed(1.2):${encoded}`);
  });
});
