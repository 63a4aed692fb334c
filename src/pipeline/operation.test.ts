import { expect } from 'chai';
import { GridRouter } from '../backend/grid-router';
import { operationTable, type OperationTable } from '../operations/table';
import { isDecodedFields, type DecodedFields } from '../soap/schema';
import type { OperationInfo } from '../soap/wsdl';
import { parseXml } from '../soap/xml';
import { Lifetimes, NEVER_IDLE } from '../lifetime/lifetimes';
import { MemoryStore } from '../store/memory-store';
import { op, testContract } from '../../test/helpers/in-process';
import {
  always,
  bindOperations,
  never,
  operation,
  whenKeyed,
  type BoundOperation,
  type PortType,
} from './operation';

const ALL = [
  'connect',
  'closeConnection',
  'createSession',
  'openSession',
  'closeSession',
  'getSessionStatus',
  'sendTaskInput',
  'sendTaskInputBatch',
  'fetchTaskOutput',
  'acknowledgeTaskOutput',
  'GetResourcePropertyDocument',
  'GetResourceProperty',
  'GetMultipleResourceProperties',
  'QueryResourceProperties',
  'Destroy',
  'SetTerminationTime',
  'Enumerate',
  'Pull',
  'Renew',
  'GetStatus',
  'Release',
  'Subscribe',
  'Unsubscribe',
  'PauseSubscription',
  'ResumeSubscription',
  'CreatePullPoint',
  'GetMessages',
  'DestroyPullPoint',
];

function table(): OperationTable {
  const store = new MemoryStore();
  return operationTable({
    router: new GridRouter([], 'default'),
    store,
    lifetimes: new Lifetimes(store, NEVER_IDLE),
    maxTasksPerBatch: 100,
    reliability: { clientKeyTtlMs: 60_000, maxLeaseMs: 60_000, gridHoldMs: 1000 },
  });
}

function bindingError(wsdl: ReadonlyMap<string, OperationInfo>, t: OperationTable): Error {
  try {
    bindOperations(wsdl, t);
  } catch (e) {
    if (e instanceof Error) return e;
    throw e;
  }
  throw new Error('bindOperations accepted the table');
}

function argsOf(o: BoundOperation, inner: string): DecodedFields {
  const v = o.request.decode(parseXml(op(o.name, inner)));
  if (!isDecodedFields(v)) throw new Error(`${o.name} decoded to a simple value`);
  return v;
}

describe('pipeline/operation: binding the WSDL to the operation table', () => {
  const contract = testContract();

  it('binds every operation of the WSDL, keyed by request element, with their handlers and traits', () => {
    const t = table();
    const bound = bindOperations(contract.operations, t);
    // WS-Enumeration's Enumerate, Renew, GetStatus and Release exist in two namespaces, and
    // WS-BaseNotification has a Renew of its own.
    expect(bound.size).to.equal(ALL.length + 5);
    expect([...new Set([...bound.values()].map((o) => o.name))].sort()).to.deep.equal([...ALL].sort());
    for (const [qname, o] of bound) {
      expect(qname).to.equal(`{${o.request.ns}}${o.request.name}`);
      expect(contract.operations.get(qname)?.name).to.equal(o.name);
      expect(o.handler, o.name).to.equal(t[o.name]!.handler);
      expect(o.traits, o.name).to.equal(t[o.name]!.traits);
      expect([t[o.name]!.portType].flat(), o.name).to.include.members(o.portTypes);
      expect(o.response, o.name).to.equal(contract.operations.get(qname)!.response);
    }
  });

  it('refuses a WSDL operation without a table row, naming it', () => {
    const t = table();
    delete t['getSessionStatus'];
    const e = bindingError(contract.operations, t);
    expect(e.message).to.equal('the WSDL operation getSessionStatus has no entry in the operation table');
  });

  it('refuses a table row without a WSDL operation, naming it', () => {
    const t = table();
    t['pauseSession'] = operation({
      portType: 'SessionPortType',
      handler: async () => ({}),
      traits: { remembered: false, rerunOnResend: always },
    });
    const e = bindingError(contract.operations, t);
    expect(e.message).to.equal('the operation table has pauseSession, which the WSDL does not declare');
  });

  it('refuses a row whose port type disagrees with the WSDL, naming the operation and both port types', () => {
    const t = table();
    const row = t['sendTaskInput']!;
    t['sendTaskInput'] = { ...row, portType: 'SessionPortType' satisfies PortType };
    const e = bindingError(contract.operations, t);
    expect(e.message).to.equal(
      'the operation table puts sendTaskInput in port type SessionPortType; the WSDL says TaskInputPortType',
    );
  });

  it('refuses a WSDL that lost an operation the table still has', () => {
    const wsdl = new Map(
      [...contract.operations].filter(([, info]) => info.name !== 'acknowledgeTaskOutput'),
    );
    const e = bindingError(wsdl, table());
    expect(e.message).to.contain('acknowledgeTaskOutput');
    expect(e.message).to.contain('does not declare');
  });

  it('always, never and whenKeyed answer as named', () => {
    expect([always(), never()]).to.deep.equal([true, false]);
    expect([whenKeyed({}, true), whenKeyed({}, false)]).to.deep.equal([true, false]);
  });

  describe('the traits of every operation (see src/stages/idempotency.ts)', () => {
    const bound = new Map([...bindOperations(contract.operations, table()).values()].map((o) => [o.name, o]));
    const get = (name: string): BoundOperation => {
      const o = bound.get(name);
      if (!o) throw new Error(`no operation ${name}`);
      return o;
    };

    /** name → remembered, rerun on a keyed resend, rerun on an unkeyed resend, releases, inputs, outputs */
    const expected: [string, boolean, boolean, boolean, boolean, boolean, boolean][] = [
      // connect and createSession would make a second resource: a resend is a replay.
      ['connect', true, false, false, false, false, false],
      // Closing twice is closing once.
      ['closeConnection', true, true, false, true, false, false],
      ['createSession', true, false, false, false, false, false],
      ['openSession', true, false, false, false, false, false],
      ['closeSession', true, true, false, true, false, false],
      ['getSessionStatus', false, true, true, false, false, false],
      // The grid de-duplicates a keyed send (submit_key).
      ['sendTaskInput', true, true, false, false, true, false],
      ['sendTaskInputBatch', true, true, false, false, true, false],
      // Only a leased, keyed fetch may be resent (see the next test); this row is an unleased one.
      ['fetchTaskOutput', false, false, false, false, false, true],
      ['acknowledgeTaskOutput', false, true, true, false, false, false],
      // WS-ResourceProperties reads are safe to repeat.
      ['GetResourcePropertyDocument', false, true, true, false, false, false],
      ['GetResourceProperty', false, true, true, false, false, false],
      ['GetMultipleResourceProperties', false, true, true, false, false, false],
      ['QueryResourceProperties', false, true, true, false, false, false],
      // The resource is named outside the signed Body: a resend is answered, never run again.
      ['Destroy', true, false, false, true, false, false],
      ['SetTerminationTime', true, false, false, false, false, false],
      // A context names its page: a repeated Pull gets the same page without a remembered answer.
      ['Enumerate', false, true, true, false, false, true],
      ['Pull', false, true, true, false, false, true],
      ['Renew', false, true, true, false, false, false],
      ['GetStatus', false, true, true, false, false, false],
      ['Release', false, true, true, true, false, false],
      // A Subscribe or CreatePullPoint run twice makes two: a resend gets the remembered answer.
      ['Subscribe', true, false, false, false, false, false],
      ['Unsubscribe', true, false, false, true, false, false],
      ['PauseSubscription', false, true, true, false, false, false],
      ['ResumeSubscription', false, true, true, false, false, false],
      ['CreatePullPoint', true, false, false, false, false, false],
      // Without sym:Ack it acknowledges the previous batch: a resend would lose one (see the next rows).
      ['GetMessages', false, false, false, false, false, false],
      ['DestroyPullPoint', true, false, false, true, false, false],
    ];

    it('covers every operation of the WSDL', () => {
      expect(expected.map(([name]) => name).sort()).to.deep.equal([...ALL].sort());
    });

    for (const [name, remembered, keyed, unkeyed, releases, inputs, outputs] of expected) {
      it(`${name}: remembered=${remembered}, resend keyed=${keyed} unkeyed=${unkeyed}, releases=${releases}`, () => {
        const t = get(name).traits;
        const args: DecodedFields = { sessionId: 's-1', countMax: 1 };
        expect(t.remembered, 'remembered').to.equal(remembered);
        expect(t.rerunOnResend(args, true), 'rerunOnResend keyed').to.equal(keyed);
        expect(t.rerunOnResend(args, false), 'rerunOnResend unkeyed').to.equal(unkeyed);
        expect(t.releases ?? false, 'releases').to.equal(releases);
        expect(t.taskInputs !== undefined, 'taskInputs').to.equal(inputs);
        expect(t.taskOutputs !== undefined, 'taskOutputs').to.equal(outputs);
      });
    }

    it('GetMessages may be rerun on a resend only when it names its acknowledgement (sym:Ack)', () => {
      const t = get('GetMessages').traits;
      expect(t.rerunOnResend({ ack: 3 }, false)).to.equal(true);
      expect(t.rerunOnResend({}, true)).to.equal(false);
    });

    it('fetchTaskOutput may be rerun on a resend only when it is leased and keyed', () => {
      const o = get('fetchTaskOutput');
      const leased = argsOf(
        o,
        '<sym:sessionId>s-1</sym:sessionId><sym:countMax>1</sym:countMax><sym:leaseMillis>30000</sym:leaseMillis>',
      );
      const unleased = argsOf(o, '<sym:sessionId>s-1</sym:sessionId><sym:countMax>1</sym:countMax>');
      expect(o.traits.rerunOnResend(leased, true)).to.equal(true);
      expect(o.traits.rerunOnResend(leased, false)).to.equal(false);
      expect(o.traits.rerunOnResend(unleased, true)).to.equal(false);
      expect(o.traits.rerunOnResend(unleased, false)).to.equal(false);
    });

    it('taskInputs gives the payload of a send and every payload of a batch, in order', () => {
      const task = (text: string): string =>
        `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
      const one = get('sendTaskInput');
      expect(
        one.traits.taskInputs?.(argsOf(one, `<sym:sessionId>s-1</sym:sessionId>${task('a')}`)),
      ).to.deep.equal([{ text: 'a' }]);
      const batch = get('sendTaskInputBatch');
      expect(
        batch.traits.taskInputs?.(
          argsOf(batch, `<sym:sessionId>s-1</sym:sessionId>${task('a')}${task('b')}${task('c')}`),
        ),
      ).to.deep.equal([{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    });

    it('taskOutputs gives the task outputs of a fetch reply', () => {
      const outputs = [
        { taskId: 't-1', successful: true, taskOutput: { text: 'a' } },
        { taskId: 't-2', successful: false, exception: 'failed' },
      ];
      expect(
        get('fetchTaskOutput').traits.taskOutputs?.({ taskOutput: outputs, deliveryToken: undefined }),
      ).to.equal(outputs);
    });
  });
});
