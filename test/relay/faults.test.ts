/**
 * Every failure a client can cause comes back as a typed SOAP fault: the declared detail
 * element for operation failures, a ProxyFault for envelope-level problems.
 */
import { expect } from 'chai';
import { faultDetail, invoke, type SoapClient } from '../helpers/soap-client';
import { withRelay, type ProxyProcess } from '../helpers/processes';
import { envelope11, envelope12, op, pick, postSoap, SYM } from '../helpers/soap-http';

async function expectFault(p: Promise<unknown>, element: string, code?: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    const d = faultDetail(e);
    expect(d, `fault detail of ${(e as Error).message}`).to.not.equal(undefined);
    expect(d!.element).to.equal(element);
    if (code) expect(d!.code).to.equal(code);
    return;
  }
  expect.fail(`expected a ${element} fault`);
}

describe('relay: typed faults', function () {
  this.timeout(60000);
  const relay = withRelay();
  let proxy: ProxyProcess;
  let client: SoapClient;
  let connectionId: string;
  let sessionId: string;

  before(async () => {
    ({ proxy, client } = relay());
    ({ connectionId } = await invoke<{ connectionId: string }>(client, 'connect', {
      applicationName: 'echo',
      username: 'u',
      password: 'p',
    }));
    ({ sessionId } = await invoke<{ sessionId: string }>(client, 'createSession', { connectionId }));
  });

  it('failing tasks come back unsuccessful with the exception text', async () => {
    const { taskId } = await invoke<{ taskId: string }>(client, 'sendTaskInput', {
      sessionId,
      taskSubmissionAttributes: { taskInput: { text: 'fail:the service refused this input' } },
    });
    type Out = { taskId: string; successful: boolean; exception?: string };
    let out: Out | undefined;
    for (let i = 0; i < 50 && !out; i++) {
      const r = await invoke<{ taskOutput?: Out[] }>(client, 'fetchTaskOutput', {
        sessionId,
        countMax: 10,
        timeoutMillis: 500,
      });
      out = r.taskOutput?.find((o) => o.taskId === taskId);
    }
    expect(out, 'output of the failing task').to.not.equal(undefined);
    expect(out!.successful).to.equal(false);
    expect(out!.exception).to.contain('the service refused this input');
  });

  it('an unknown connection id gives UnknownConnectionFault', async () => {
    await expectFault(
      invoke(client, 'createSession', { connectionId: 'no-such-connection' }),
      'UnknownConnectionFault',
      'SSP_UNKNOWN_CONNECTION',
    );
  });

  it('an unknown session id gives UnknownSessionFault', async () => {
    await expectFault(
      invoke(client, 'sendTaskInput', {
        sessionId: 'nope',
        taskSubmissionAttributes: { taskInput: { text: 'x' } },
      }),
      'UnknownSessionFault',
    );
  });

  it('a closed session and a closed connection give the declared faults', async () => {
    const c = await invoke<{ connectionId: string }>(client, 'connect', {
      applicationName: 'echo',
      username: 'u',
      password: 'p',
    });
    const s = await invoke<{ sessionId: string }>(client, 'createSession', { connectionId: c.connectionId });
    await invoke(client, 'closeSession', { sessionId: s.sessionId });
    await expectFault(invoke(client, 'getSessionStatus', { sessionId: s.sessionId }), 'UnknownSessionFault');
    await invoke(client, 'closeConnection', { connectionId: c.connectionId });
    await expectFault(
      invoke(client, 'closeConnection', { connectionId: c.connectionId }),
      'UnknownConnectionFault',
    );
  });

  it('an unknown application or cluster gives InvalidArgumentFault', async () => {
    await expectFault(
      invoke(client, 'connect', { applicationName: 'no-such-app', username: 'u', password: 'p' }),
      'InvalidArgumentFault',
      'SSP_UNKNOWN_APPLICATION',
    );
    await expectFault(
      invoke(client, 'connect', {
        clusterURL: 'grid-zz',
        applicationName: 'echo',
        username: 'u',
        password: 'p',
      }),
      'InvalidArgumentFault',
      'SSP_UNKNOWN_CLUSTER',
    );
  });

  it('a value outside the schema gives InvalidArgumentFault naming the element', async () => {
    const r = await postSoap(
      proxy.url,
      envelope11(
        op(
          'sendTaskInput',
          `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskPriority>20000</sym:taskPriority><sym:taskInput><sym:text>x</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
        ),
      ),
    );
    expect(r.status).to.equal(500);
    expect(r.text).to.contain('InvalidArgumentFault').and.to.contain('taskPriority');
    expect(r.text).to.contain('<faultcode>soap:Client</faultcode>');
  });

  it('openSession on an attached session gives InvalidArgumentFault; after detach it re-attaches', async () => {
    await expectFault(
      invoke(client, 'openSession', { connectionId, sessionId }),
      'InvalidArgumentFault',
      'SSP_SESSION_NOT_DETACHED',
    );
    const s = await invoke<{ sessionId: string }>(client, 'createSession', { connectionId });
    await invoke(client, 'closeSession', { sessionId: s.sessionId, closeFlags: 'DetachOnClose' });
    const again = await invoke<{ sessionId: string }>(client, 'openSession', {
      connectionId,
      sessionId: s.sessionId,
    });
    expect(again.sessionId).to.equal(s.sessionId);
  });

  it('SOAP 1.2 requests work and faults come back as SOAP 1.2 with Sender/Receiver codes', async () => {
    const ok = await postSoap(
      proxy.url,
      envelope12(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`)),
      { version: '1.2' },
    );
    expect(ok.status).to.equal(200);
    expect(ok.headers.get('content-type')).to.contain('application/soap+xml');
    expect(pick(ok.text, 'state')).to.equal('Open');
    const bad = await postSoap(
      proxy.url,
      envelope12(op('getSessionStatus', '<sym:sessionId>missing</sym:sessionId>')),
      { version: '1.2' },
    );
    expect(bad.status).to.equal(400);
    expect(bad.text).to.contain('soap:Sender').and.to.contain('UnknownSessionFault');
  });

  it('envelope-level problems give a clean ProxyFault and the proxy keeps serving', async () => {
    const cases: [string | Buffer, Record<string, string>, string, number][] = [
      ['<not-xml', {}, 'SSP_MALFORMED_XML', 500],
      [Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), {}, 'SSP_MALFORMED_XML', 500],
      ['<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', {}, 'SSP_FORBIDDEN_XML', 500],
      [envelope11('<foo xmlns="urn:evil"/>'), {}, 'SSP_UNKNOWN_OPERATION', 500],
      [`<s:Envelope xmlns:s="urn:evil"><s:Body/></s:Envelope>`, {}, 'SSP_NOT_SOAP', 500],
      [
        envelope12(op('getSessionStatus', '<sym:sessionId>x</sym:sessionId>')),
        {},
        'SSP_VERSION_MISMATCH',
        500,
      ],
      [
        envelope11(op('getSessionStatus', '<sym:sessionId>x</sym:sessionId>')),
        { contentType: 'application/json' },
        'SSP_UNSUPPORTED_MEDIA_TYPE',
        415,
      ],
      [
        envelope11(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`)),
        { action: `${SYM}/closeSession` },
        'SSP_ACTION_MISMATCH',
        500,
      ],
    ];
    for (const [body, opts, code, status] of cases) {
      const r = await postSoap(proxy.url, body, opts);
      expect(r.text, code).to.contain(`<sym:code>${code}</sym:code>`);
      expect(r.status, code).to.equal(status);
    }
    const still = await postSoap(
      proxy.url,
      envelope11(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`)),
    );
    expect(still.status).to.equal(200);
  });

  it('serves the WSDL with its own address and the schema it imports', async () => {
    const wsdl = await (await fetch(proxy.wsdlUrl)).text();
    expect(wsdl).to.contain(`location="${proxy.url}"`);
    expect(wsdl).to.contain(`schemaLocation="${proxy.url}?xsd=symphony.xsd"`);
    const xsd = await fetch(`${proxy.url}?xsd=symphony.xsd`);
    expect(xsd.status).to.equal(200);
    expect(await xsd.text()).to.contain('targetNamespace="http://soapproxy.symphony/v1"');
  });
});
