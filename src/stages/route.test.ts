import { expect } from 'chai';
import {
  envelope11,
  fakeCall,
  op,
  testContract,
  type FakeRequestOptions,
} from '../../test/helpers/in-process';
import { envelope12, SYM } from '../../test/helpers/soap-http';
import { GatewayError } from '../errors/catalogue';
import type { AuthorizedCall } from '../pipeline/context';
import { bindOperations, never, operation, type BoundOperation, type PortType } from '../pipeline/operation';
import type { OperationTable } from '../operations/table';
import { readEnvelope, type SoapVersion } from '../soap/envelope';
import { parseXml } from '../soap/xml';
import { ANONYMOUS } from './identify';
import { route } from './route';

const PORT_TYPES: readonly PortType[] = [
  'ConnectionPortType',
  'SessionPortType',
  'TaskInputPortType',
  'TaskOutputPortType',
  'SessionResourcePortType',
  'ConnectionResourcePortType',
  'EnumerationSource2004PortType',
  'EnumerationSource2011PortType',
  'NotificationProducerPortType',
  'SubscriptionManagerPortType',
  'CreatePullPointPortType',
  'PullPointPortType',
];

function portTypeOf(name: string): PortType {
  const found = PORT_TYPES.find((p) => p === name);
  if (!found) throw new Error(`the WSDL names an unknown port type ${name}`);
  return found;
}

/** One row per WSDL operation with a handler that must never run: routing only resolves. */
function dummyTable(): OperationTable {
  const table: OperationTable = {};
  // One row per name, in every port type that has an operation of that name.
  const portTypes = new Map<string, PortType[]>();
  for (const info of testContract().operations.values()) {
    portTypes.set(info.name, [...(portTypes.get(info.name) ?? []), ...info.portTypes.map(portTypeOf)]);
  }
  for (const info of testContract().byName.values()) {
    table[info.name] = operation({
      portType: portTypes.get(info.name)!,
      handler: async () => {
        throw new Error(`the route stage ran the handler of ${info.name}`);
      },
      traits: { remembered: false, rerunOnResend: never },
    });
  }
  return table;
}

const ACTION = (name: string): string => `${SYM}/${name}`;
const CONNECT = op(
  'connect',
  '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
);

/** A call as the authorization phase leaves it, without a control file. */
function authorizedCall(
  body: string,
  version: SoapVersion = '1.1',
  o: FakeRequestOptions = {},
): AuthorizedCall {
  const xml = version === '1.1' ? envelope11(body) : envelope12(body);
  const root = parseXml(xml);
  const { header, payload } = readEnvelope(root, version);
  const ctx = Object.assign(fakeCall({ ...o, body: xml }), {
    raw: Buffer.from(xml),
    envelope: root,
    header,
    payload,
    signer: null,
    consumer: ANONYMOUS,
    policy: null,
  });
  ctx.soapVersion = version;
  return ctx;
}

const soap12 = (action?: string): Record<string, string> => ({
  'content-type': `application/soap+xml; charset=utf-8${action === undefined ? '' : `; action="${action}"`}`,
});

/** The fault a hook ended the call with; fails the test when it did not throw a GatewayError. */
async function refusal(run: Promise<unknown>): Promise<GatewayError> {
  try {
    await run;
  } catch (e) {
    expect(e).to.be.instanceOf(GatewayError);
    if (e instanceof GatewayError) return e;
  }
  throw new Error('expected the stage to refuse the call');
}

describe('stages/route: resolving the operation from the Body', () => {
  let operations: Map<string, BoundOperation>;
  let hook: ReturnType<typeof route>;

  before(() => {
    operations = bindOperations(testContract().operations, dummyTable());
    hook = route(operations);
  });

  it('resolves the Body element to its operation and decodes the arguments', async () => {
    const ctx = authorizedCall(CONNECT);
    await hook(ctx);
    expect(ctx.operation).to.equal(operations.get(`{${SYM}}connect`));
    expect(ctx.operation?.name).to.equal('connect');
    expect(ctx.operation?.portType).to.equal('ConnectionPortType');
    expect(ctx.args).to.deep.equal({ applicationName: 'echo', username: 'u', password: 'p' });
  });

  it('decodes typed and repeated values by the schema', async () => {
    const ctx = authorizedCall(
      op(
        'fetchTaskOutput',
        '<sym:sessionId>s-1</sym:sessionId><sym:countMax>25</sym:countMax><sym:timeoutMillis>500</sym:timeoutMillis>',
      ),
    );
    await hook(ctx);
    expect(ctx.operation?.name).to.equal('fetchTaskOutput');
    expect(ctx.args).to.deep.include({ sessionId: 's-1', countMax: 25, timeoutMillis: 500 });
  });

  it('resolves every WSDL operation by its request element', async () => {
    expect(operations.size).to.equal(testContract().operations.size);
    for (const [qname, bound] of operations) {
      const ns = qname.slice(1, qname.indexOf('}'));
      const local = qname.slice(qname.indexOf('}') + 1);
      const ctx = authorizedCall(`<p:${local} xmlns:p="${ns}"/>`);
      // An empty request element is usually schema-invalid; the operation is resolved first.
      await hook(ctx).catch((e: unknown) => {
        expect(e).to.be.instanceOf(GatewayError);
        // An empty GetResourceProperty names no property: WS-RP's own fault.
        if (e instanceof GatewayError)
          expect(e.code).to.be.oneOf(['SSP_INVALID_ARGUMENT', 'SSP_INVALID_PROPERTY_QNAME']);
      });
      expect(ctx.operation, qname).to.equal(bound);
    }
  });

  it('refuses an unknown Body element with SSP_UNKNOWN_OPERATION, listing the known ones', async () => {
    for (const body of [
      op('nothingLikeThis', ''),
      op('connectResponse', ''),
      '<x:connect xmlns:x="urn:other-namespace"/>',
      '<connect/>',
    ]) {
      const ctx = authorizedCall(body);
      const err = await refusal(hook(ctx));
      expect(err.code, body).to.equal('SSP_UNKNOWN_OPERATION');
      expect(err.message).to.contain('connect, ');
      expect(ctx.operation, body).to.equal(undefined);
      expect(ctx.args).to.equal(undefined);
    }
  });
});

describe('stages/route: SOAPAction', () => {
  let hook: ReturnType<typeof route>;
  before(() => {
    hook = route(bindOperations(testContract().operations, dummyTable()));
  });

  it('passes a SOAP 1.1 call whose soapaction header is the operation’s, quoted or not, or empty', async () => {
    for (const action of [`"${ACTION('connect')}"`, ACTION('connect'), '""', '']) {
      const ctx = authorizedCall(CONNECT, '1.1', { headers: { soapaction: action } });
      await hook(ctx);
      expect(ctx.operation?.name, action).to.equal('connect');
    }
    const without = authorizedCall(CONNECT);
    await hook(without);
    expect(without.operation?.name).to.equal('connect');
  });

  it('refuses a SOAP 1.1 soapaction naming another operation with SSP_ACTION_MISMATCH', async () => {
    for (const action of [`"${ACTION('closeSession')}"`, ACTION('closeSession'), 'connect', 'urn:anything']) {
      const ctx = authorizedCall(CONNECT, '1.1', { headers: { soapaction: action } });
      const err = await refusal(hook(ctx));
      expect(err.code, action).to.equal('SSP_ACTION_MISMATCH');
      expect(err.message).to.contain(ACTION('connect'));
      expect(ctx.operation, action).to.equal(undefined);
    }
  });

  it('passes a SOAP 1.2 call whose content-type action is the operation’s, or absent', async () => {
    for (const action of [ACTION('connect'), '', undefined]) {
      const ctx = authorizedCall(CONNECT, '1.2', { headers: soap12(action) });
      await hook(ctx);
      expect(ctx.operation?.name, String(action)).to.equal('connect');
    }
  });

  it('refuses a SOAP 1.2 content-type action naming another operation with SSP_ACTION_MISMATCH', async () => {
    const ctx = authorizedCall(CONNECT, '1.2', { headers: soap12(ACTION('createSession')) });
    const err = await refusal(hook(ctx));
    expect(err.code).to.equal('SSP_ACTION_MISMATCH');
    expect(err.message).to.contain(ACTION('createSession'));
    const unquoted = authorizedCall(CONNECT, '1.2', {
      headers: { 'content-type': `application/soap+xml;action=${ACTION('createSession')};charset=utf-8` },
    });
    expect((await refusal(hook(unquoted))).code).to.equal('SSP_ACTION_MISMATCH');
  });

  it('reads the action where the SOAP version defines it: 1.1 the header, 1.2 the content type', async () => {
    // A SOAP 1.2 call's soapaction header is not a SOAP 1.2 action and is not read.
    const v12 = authorizedCall(CONNECT, '1.2', {
      headers: { ...soap12(ACTION('connect')), soapaction: ACTION('closeSession') },
    });
    await hook(v12);
    expect(v12.operation?.name).to.equal('connect');
    const v11 = authorizedCall(CONNECT, '1.1', {
      headers: {
        'content-type': `text/xml; charset=utf-8; action="${ACTION('closeSession')}"`,
        soapaction: ACTION('connect'),
      },
    });
    await hook(v11);
    expect(v11.operation?.name).to.equal('connect');
  });
});

describe('stages/route: schema-invalid arguments', () => {
  let hook: ReturnType<typeof route>;
  before(() => {
    hook = route(bindOperations(testContract().operations, dummyTable()));
  });

  it('refuses a request that does not match its schema with SSP_INVALID_ARGUMENT', async () => {
    for (const body of [
      op('connect', '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username>'),
      op(
        'connect',
        `${CONNECT.slice(CONNECT.indexOf('>') + 1, CONNECT.lastIndexOf('<'))}<sym:extra>1</sym:extra>`,
      ),
      op('connect', 'text<sym:applicationName>echo</sym:applicationName>'),
      op('fetchTaskOutput', '<sym:sessionId>s-1</sym:sessionId><sym:countMax>many</sym:countMax>'),
      op('fetchTaskOutput', '<sym:sessionId>s-1</sym:sessionId><sym:countMax>0</sym:countMax>'),
      op('getSessionStatus', '<sym:sessionId>has space</sym:sessionId>'),
      op('getSessionStatus', ''),
    ]) {
      const ctx = authorizedCall(body);
      const err = await refusal(hook(ctx));
      expect(err.code, body).to.equal('SSP_INVALID_ARGUMENT');
      expect(err.detail).to.equal('InvalidArgumentFault');
      expect(ctx.args, body).to.equal(undefined);
      // The operation is known, so metrics and the audit record can name it.
      expect(ctx.operation?.name, body).to.equal(body.slice(5, body.indexOf(' ')));
    }
  });
});
