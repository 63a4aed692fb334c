/** Every response and fault the proxy writes validates against our own XSD (checked by libxml2). */
import { expect } from 'chai';
import { withRelay, type ProxyProcess } from '../helpers/processes';
import { envelope11, envelope12, op, pick, postSoap } from '../helpers/soap-http';
import { envelopeValidator, type EnvelopeValidator } from '../helpers/xsd';

describe('relay: responses validate against schemas/symphony.xsd', function () {
  this.timeout(60000);
  const relay = withRelay();
  let proxy: ProxyProcess;
  let xsd: EnvelopeValidator;

  before(async () => {
    xsd = await envelopeValidator();
    proxy = relay().proxy;
  });

  after(async () => {
    xsd?.dispose();
  });

  it('validates the response of every operation, and faults, in SOAP 1.1 and 1.2', async () => {
    const validated: string[] = [];
    for (const version of ['1.1', '1.2'] as const) {
      const env = version === '1.1' ? envelope11 : envelope12;
      const call = async (name: string, inner: string): Promise<string> => {
        const r = await postSoap(proxy.url, env(op(name, inner)), { version });
        validated.push(xsd.validateBody(r.text));
        return r.text;
      };
      const c = pick(
        await call(
          'connect',
          '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
        ),
        'connectionId',
      )!;
      const s = pick(
        await call(
          'createSession',
          `<sym:connectionId>${c}</sym:connectionId><sym:sessionCreationAttributes><sym:name>x</sym:name><sym:priority>5</sym:priority></sym:sessionCreationAttributes>`,
        ),
        'sessionId',
      )!;
      await call(
        'sendTaskInput',
        `<sym:sessionId>${s}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:xml><q:v xmlns:q="urn:q">1</q:v></sym:xml></sym:taskInput></sym:taskSubmissionAttributes>`,
      );
      await call(
        'sendTaskInputBatch',
        `<sym:sessionId>${s}</sym:sessionId>` +
          '<sym:taskSubmissionAttributes><sym:taskInput><sym:text>a</sym:text></sym:taskInput></sym:taskSubmissionAttributes>'.repeat(
            3,
          ) +
          '<sym:taskSubmissionAttributes><sym:taskInput><sym:text>fail:no</sym:text></sym:taskInput></sym:taskSubmissionAttributes><sym:taskSubmissionAttributes><sym:taskInput><sym:binary>AAEC</sym:binary></sym:taskInput></sym:taskSubmissionAttributes>',
      );
      let outputs = 0;
      for (let i = 0; i < 40 && outputs < 6; i++) {
        const text = await call(
          'fetchTaskOutput',
          `<sym:sessionId>${s}</sym:sessionId><sym:countMax>10</sym:countMax><sym:timeoutMillis>500</sym:timeoutMillis>`,
        );
        outputs += (text.match(/<sym:taskId>/g) ?? []).length;
      }
      expect(outputs).to.equal(6);
      await call('getSessionStatus', `<sym:sessionId>${s}</sym:sessionId>`);
      await call(
        'closeSession',
        `<sym:sessionId>${s}</sym:sessionId><sym:closeFlags>DetachOnClose</sym:closeFlags>`,
      );
      await call(
        'openSession',
        `<sym:connectionId>${c}</sym:connectionId><sym:sessionId>${s}</sym:sessionId>`,
      );
      await call('closeSession', `<sym:sessionId>${s}</sym:sessionId>`);
      await call('closeConnection', `<sym:connectionId>${c}</sym:connectionId>`);
      // faults
      await call('closeConnection', `<sym:connectionId>${c}</sym:connectionId>`);
      await call('getSessionStatus', `<sym:sessionId>${s}</sym:sessionId>`);
      await call('fetchTaskOutput', `<sym:sessionId>${s}</sym:sessionId><sym:countMax>0</sym:countMax>`);
      const garbage = await postSoap(proxy.url, '<<<', { version });
      validated.push(xsd.validateBody(garbage.text));
    }
    for (const name of [
      'connectResponse',
      'fetchTaskOutputResponse',
      'openSessionResponse',
      'UnknownConnectionFault',
      'UnknownSessionFault',
      'InvalidArgumentFault',
      'ProxyFault',
    ]) {
      expect(validated).to.include(name);
    }
  });
});
