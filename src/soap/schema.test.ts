import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../paths';
import { loadProxyContract } from '../operations/contract';
import { parseXml } from './xml';

const contract = loadProxyContract(ROOT);
const S = 'http://soapproxy.symphony/v1';

function decode(op: string, inner: string): unknown {
  return contract.byName.get(op)!.request.decode(parseXml(`<s:${op} xmlns:s="${S}">${inner}</s:${op}>`));
}

describe('soap/schema: WSDL-driven codec', () => {
  it('knows the twelve port types and their operations from the WSDL', () => {
    const ports = new Set([...contract.operations.values()].flatMap((o) => o.portTypes));
    expect([...ports]).to.have.members([
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
    ]);
    expect(contract.byName.get('sendTaskInputBatch')!.soapAction).to.equal(`${S}/sendTaskInputBatch`);
  });

  it('loads in JDK schema validators: no maxOccurs above their default limit of 5000', () => {
    // A JDK SchemaFactory with secure processing (CXF schema validation, XML firewalls on Java)
    // refuses a schema whose maxOccurs exceeds jdk.xml.maxOccurLimit; batch bounds live in config.
    for (const file of [join(ROOT, 'schemas', 'symphony.xsd'), join(ROOT, 'wsdl', 'symphony.wsdl')]) {
      const counts = [...readFileSync(file, 'utf8').matchAll(/maxOccurs="(\d+)"/g)].map((m) => Number(m[1]));
      expect(
        counts.filter((n) => n > 5000),
        file,
      ).to.deep.equal([]);
    }
  });

  it('decodes typed values and keeps repeated elements as arrays', () => {
    const v = decode(
      'sendTaskInputBatch',
      '<s:sessionId>a1</s:sessionId><s:taskSubmissionAttributes><s:taskPriority>7</s:taskPriority><s:taskInput><s:binary>aGk=</s:binary></s:taskInput></s:taskSubmissionAttributes>',
    ) as { taskSubmissionAttributes: { taskPriority: number; taskInput: { binary: Buffer } }[] };
    expect(v.taskSubmissionAttributes).to.have.length(1);
    expect(v.taskSubmissionAttributes[0]!.taskPriority).to.equal(7);
    expect(v.taskSubmissionAttributes[0]!.taskInput.binary.toString()).to.equal('hi');
  });

  it('refuses what the schema does not allow, naming the path', () => {
    const cases: [string, string, string][] = [
      ['getSessionStatus', '', 'missing element sessionId'],
      ['getSessionStatus', '<s:sessionId>a</s:sessionId><s:extra/>', 'unexpected element extra'],
      ['closeSession', '<s:sessionId>a</s:sessionId><s:closeFlags>Explode</s:closeFlags>', 'not one of'],
      ['fetchTaskOutput', '<s:sessionId>a</s:sessionId><s:countMax>abc</s:countMax>', 'not an xs:int'],
      [
        'sendTaskInput',
        '<s:sessionId>a</s:sessionId><s:taskSubmissionAttributes><s:taskInput><s:xml><plain/></s:xml></s:taskInput></s:taskSubmissionAttributes>',
        'its own namespace',
      ],
      [
        'sendTaskInput',
        '<s:sessionId>a</s:sessionId><s:taskSubmissionAttributes><s:taskInput><s:binary>!!</s:binary></s:taskInput></s:taskSubmissionAttributes>',
        'not valid base64',
      ],
    ];
    for (const [op, inner, msg] of cases) {
      expect(() => decode(op, inner), `${op} ${inner}`)
        .to.throw()
        .with.property('message')
        .that.contains(msg);
    }
  });

  it('encodes responses in schema order, escaping text', () => {
    const xml = contract.byName.get('fetchTaskOutput')!.response.encode({
      taskOutput: [{ successful: false, taskId: '3', exception: 'a<b' }],
    });
    expect(xml).to.equal(
      `<sym:fetchTaskOutputResponse xmlns:sym="${S}"><sym:taskOutput><sym:taskId>3</sym:taskId>` +
        '<sym:successful>false</sym:successful><sym:exception>a&lt;b</sym:exception></sym:taskOutput></sym:fetchTaskOutputResponse>',
    );
  });
});
