import { expect } from 'chai';
import { join } from 'node:path';
import { GatewayError } from '../errors/catalogue';
import { GridRouter } from '../backend/grid-router';
import { ProxyMetrics } from '../observability/metrics';
import { operationTable } from '../operations/table';
import { SCHEMA_DIR } from '../paths';
import type { AnsweredCall, PolicyBinding, ResolvedCall } from '../pipeline/context';
import { bindOperations, type BoundOperation, type TaskOutputItem } from '../pipeline/operation';
import { PolicyManager } from '../policy/policy-manager';
import { isDecodedFields, type DecodedFields } from '../soap/schema';
import { parseXml } from '../soap/xml';
import { Lifetimes, NEVER_IDLE } from '../lifetime/lifetimes';
import { MemoryStore } from '../store/memory-store';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import { validateInputs, validateOutputs } from './validate';

const CONTROL_FILE = join(SCHEMA_DIR, 'sla-examples', 'versioned-payloads.xml');
const V1 = '/services/MathServer/V1';
const V2 = '/services/MathServer/V2';
const NS_V1 = 'urn:example:mathserver:v1';

const tableStore = new MemoryStore();
const operations = bindOperations(
  testContract().operations,
  operationTable({
    router: new GridRouter([], 'default'),
    store: tableStore,
    lifetimes: new Lifetimes(tableStore, NEVER_IDLE),
    maxTasksPerBatch: 100,
    reliability: { clientKeyTtlMs: 60_000, maxLeaseMs: 60_000, gridHoldMs: 1000 },
  }),
);

function bound(name: string): BoundOperation {
  for (const o of operations.values()) if (o.name === name) return o;
  throw new Error(`no operation ${name}`);
}

function argsOf(name: string, inner: string): DecodedFields {
  const v = bound(name).request.decode(parseXml(op(name, inner)));
  if (!isDecodedFields(v)) throw new Error(`${name} decoded to a simple value`);
  return v;
}

function resolvedCall(
  operation: BoundOperation,
  args: DecodedFields,
  policy: PolicyBinding | null,
): ResolvedCall {
  const payload = parseXml(op(operation.name, ''));
  const ctx: ResolvedCall = Object.assign(fakeCall(), {
    raw: Buffer.alloc(0),
    envelope: payload,
    header: null,
    payload,
    signer: null,
    consumer: { id: 'APPLICATION1', via: 'anonymous' as const },
    policy,
    operation,
    args,
  });
  return ctx;
}

const task = (payload: string): string =>
  `<sym:taskSubmissionAttributes><sym:taskInput>${payload}</sym:taskInput></sym:taskSubmissionAttributes>`;
const add = (a: string, b: string, ns = NS_V1): string =>
  `<sym:xml><m:add xmlns:m="${ns}"><m:a>${a}</m:a><m:b>${b}</m:b></m:add></sym:xml>`;
const sum = (value: string): string => `<m:sum xmlns:m="${NS_V1}"><m:value>${value}</m:value></m:sum>`;

async function expectFault(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a GatewayError');
}

/** The value of ssp_payload_validations_total for one direction and result (0 when never counted). */
async function validations(metrics: ProxyMetrics, direction: string, result: string): Promise<number> {
  const all = await metrics.registry.getMetricsAsJSON();
  const metric = all.find((m) => m.name === 'ssp_payload_validations_total');
  const v = metric?.values.find((x) => x.labels['direction'] === direction && x.labels['result'] === result);
  return v?.value ?? 0;
}

describe('stages/validate: task payloads against the schemas of the service version', () => {
  let manager: PolicyManager;
  let v1: PolicyBinding;
  let v2: PolicyBinding;
  let metrics: ProxyMetrics;

  function bindingAt(uri: string, consumer: string): PolicyBinding {
    const policy = manager.current;
    const version = policy.version(uri);
    if (!version) throw new Error(`no version ${uri}`);
    const sla = policy.slaFor(version, consumer, undefined);
    if (!sla) throw new Error(`no SLA for ${consumer} at ${uri}`);
    return { policy, version, sla };
  }

  before(async () => {
    manager = await PolicyManager.start(
      CONTROL_FILE,
      { resolveCluster: (url) => (url === 'symphony://grid-a' ? 'grid-a' : undefined) },
      { reloaded: () => undefined },
    );
    v1 = bindingAt(V1, 'APPLICATION1');
    v2 = bindingAt(V2, 'APPLICATION2');
  });

  after(async () => {
    await manager?.close();
    // Frees the compiled payload schemas (no call holds the snapshot any more).
    manager?.current.retire();
  });

  beforeEach(() => {
    metrics = new ProxyMetrics(() => []);
  });

  describe('validateInputs', () => {
    it('the example version has request schemas (the precondition of these tests)', () => {
      expect(v1.version.requestSchemas).to.have.length(1);
      expect(v1.version.responseSchemas).to.have.length(1);
    });

    it('does nothing without a policy, even for a payload no schema would accept', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInput'),
        argsOf('sendTaskInput', `<sym:sessionId>s-1</sym:sessionId>${task('<sym:text>anything</sym:text>')}`),
        null,
      );
      expect(await validateInputs(metrics)(ctx)).to.equal(undefined);
      expect(await validations(metrics, 'input', 'valid')).to.equal(0);
      expect(await validations(metrics, 'input', 'invalid')).to.equal(0);
    });

    it('lets a valid typed XML input pass and counts it as valid', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInput'),
        argsOf('sendTaskInput', `<sym:sessionId>s-1</sym:sessionId>${task(add('1', '2'))}`),
        v1,
      );
      expect(await validateInputs(metrics)(ctx)).to.equal(undefined);
      expect(await validations(metrics, 'input', 'valid')).to.equal(1);
      expect(await validations(metrics, 'input', 'invalid')).to.equal(0);
    });

    it('counts every task of a valid batch', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInputBatch'),
        argsOf(
          'sendTaskInputBatch',
          `<sym:sessionId>s-1</sym:sessionId>${task(add('1', '2'))}${task(add('3', '4'))}${task(add('5', '6'))}`,
        ),
        v1,
      );
      await validateInputs(metrics)(ctx);
      expect(await validations(metrics, 'input', 'valid')).to.equal(3);
    });

    it('refuses an invalid typed XML input with SSP_PAYLOAD_INVALID naming the task and the version', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInputBatch'),
        argsOf(
          'sendTaskInputBatch',
          `<sym:sessionId>s-1</sym:sessionId>${task(add('1', '2'))}${task(add('1', 'two'))}`,
        ),
        v1,
      );
      const e = await expectFault(validateInputs(metrics)(ctx));
      expect(e.code).to.equal('SSP_PAYLOAD_INVALID');
      expect(e.message).to.contain('task input 2 of 2');
      expect(e.message).to.contain(V1);
      expect(e.message).to.contain('xs:int');
      expect(await validations(metrics, 'input', 'invalid')).to.equal(1);
      expect(await validations(metrics, 'input', 'valid')).to.equal(0);
    });

    it('validates against the schema of the version called: a V1 payload is invalid at V2', async () => {
      const args = argsOf('sendTaskInput', `<sym:sessionId>s-1</sym:sessionId>${task(add('1', '2'))}`);
      await validateInputs(metrics)(resolvedCall(bound('sendTaskInput'), args, v1));
      const e = await expectFault(validateInputs(metrics)(resolvedCall(bound('sendTaskInput'), args, v2)));
      expect(e.code).to.equal('SSP_PAYLOAD_INVALID');
      expect(e.message).to.contain('task input 1 of 1');
      expect(e.message).to.contain(V2);
    });

    it('refuses a text payload where the version takes typed XML', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInput'),
        argsOf('sendTaskInput', `<sym:sessionId>s-1</sym:sessionId>${task('<sym:text>1+2</sym:text>')}`),
        v1,
      );
      const e = await expectFault(validateInputs(metrics)(ctx));
      expect(e.code).to.equal('SSP_PAYLOAD_INVALID');
      expect(e.message).to.contain('task input 1 of 1');
      expect(e.message).to.contain('not text');
    });

    it('refuses a binary payload where the version takes typed XML', async () => {
      const ctx = resolvedCall(
        bound('sendTaskInput'),
        argsOf('sendTaskInput', `<sym:sessionId>s-1</sym:sessionId>${task('<sym:binary>AAEC</sym:binary>')}`),
        v1,
      );
      const e = await expectFault(validateInputs(metrics)(ctx));
      expect(e.code).to.equal('SSP_PAYLOAD_INVALID');
      expect(e.message).to.contain('not binary');
    });

    it('never checks an operation without a taskInputs trait', async () => {
      for (const name of ['getSessionStatus', 'fetchTaskOutput', 'closeSession']) {
        const o = bound(name);
        expect(o.traits.taskInputs, name).to.equal(undefined);
        // Arguments that are not task submissions at all: any look at them would fail.
        const ctx = resolvedCall(o, { sessionId: 's-1', countMax: 1 }, v1);
        expect(await validateInputs(metrics)(ctx), name).to.equal(undefined);
      }
      expect(await validations(metrics, 'input', 'valid')).to.equal(0);
      expect(await validations(metrics, 'input', 'invalid')).to.equal(0);
    });

    it('never calls the taskInputs trait when the version has no request schema', async () => {
      const withoutSchemas: PolicyBinding = { ...v1, version: { ...v1.version, requestSchemas: [] } };
      const probe: BoundOperation = {
        ...bound('sendTaskInput'),
        traits: {
          ...bound('sendTaskInput').traits,
          taskInputs: () => {
            throw new Error('taskInputs must not be called');
          },
        },
      };
      expect(await validateInputs(metrics)(resolvedCall(probe, {}, withoutSchemas))).to.equal(undefined);
    });
  });

  describe('validateOutputs', () => {
    function answered(outputs: TaskOutputItem[], policy: PolicyBinding | null): AnsweredCall {
      const ctx: AnsweredCall = Object.assign(
        resolvedCall(
          bound('fetchTaskOutput'),
          argsOf('fetchTaskOutput', '<sym:sessionId>s-1</sym:sessionId><sym:countMax>5</sym:countMax>'),
          policy,
        ),
        { result: { taskOutput: outputs, deliveryToken: undefined } },
      );
      return ctx;
    }

    it('does nothing without a policy', async () => {
      const outputs: TaskOutputItem[] = [
        { taskId: 't-1', successful: true, taskOutput: { text: 'not xml' } },
      ];
      await validateOutputs(metrics)(answered(outputs, null));
      expect(outputs[0]).to.deep.equal({ taskId: 't-1', successful: true, taskOutput: { text: 'not xml' } });
      expect(await validations(metrics, 'output', 'invalid')).to.equal(0);
    });

    it('leaves valid outputs as they are and counts them', async () => {
      const outputs: TaskOutputItem[] = [
        { taskId: 't-1', successful: true, taskOutput: { xml: sum('3') } },
        { taskId: 't-2', successful: true, taskOutput: { xml: sum('7') } },
      ];
      await validateOutputs(metrics)(answered(outputs, v1));
      expect(outputs.map((o) => o.successful)).to.deep.equal([true, true]);
      expect(outputs[1]!.taskOutput).to.deep.equal({ xml: sum('7') });
      expect(await validations(metrics, 'output', 'valid')).to.equal(2);
      expect(await validations(metrics, 'output', 'invalid')).to.equal(0);
    });

    it('turns an invalid output into an unsuccessful one whose exception starts with SSP_OUTPUT_INVALID', async () => {
      const outputs: TaskOutputItem[] = [
        { taskId: 't-1', successful: true, taskOutput: { xml: sum('3') } },
        { taskId: 't-2', successful: true, taskOutput: { xml: sum('three') } },
      ];
      await validateOutputs(metrics)(answered(outputs, v1));
      expect(outputs[0]).to.deep.include({ taskId: 't-1', successful: true });
      const bad = outputs[1]!;
      expect(bad.taskId).to.equal('t-2');
      expect(bad.successful).to.equal(false);
      expect(bad.exception).to.match(/^SSP_OUTPUT_INVALID: /);
      expect(bad.exception).to.contain(V1);
      expect(bad.taskOutput).to.equal(undefined);
      expect(await validations(metrics, 'output', 'valid')).to.equal(1);
      expect(await validations(metrics, 'output', 'invalid')).to.equal(1);
    });

    it('treats a text output as invalid where the version takes typed XML', async () => {
      const outputs: TaskOutputItem[] = [{ taskId: 't-1', successful: true, taskOutput: { text: '3' } }];
      await validateOutputs(metrics)(answered(outputs, v1));
      expect(outputs[0]!.successful).to.equal(false);
      expect(outputs[0]!.exception).to.match(/^SSP_OUTPUT_INVALID: .*not text/);
      expect(outputs[0]!.taskOutput).to.equal(undefined);
    });

    it('skips failed outputs and outputs without a payload', async () => {
      const outputs: TaskOutputItem[] = [
        { taskId: 't-1', successful: false, exception: 'the task failed', taskOutput: { xml: sum('x') } },
        { taskId: 't-2', successful: true },
      ];
      await validateOutputs(metrics)(answered(outputs, v1));
      expect(outputs[0]).to.deep.equal({
        taskId: 't-1',
        successful: false,
        exception: 'the task failed',
        taskOutput: { xml: sum('x') },
      });
      expect(outputs[1]).to.deep.equal({ taskId: 't-2', successful: true });
      expect(await validations(metrics, 'output', 'valid')).to.equal(0);
      expect(await validations(metrics, 'output', 'invalid')).to.equal(0);
    });

    it('never checks the result of an operation without a taskOutputs trait', async () => {
      const o = bound('sendTaskInput');
      expect(o.traits.taskOutputs).to.equal(undefined);
      const ctx: AnsweredCall = Object.assign(resolvedCall(o, {}, v1), { result: { taskId: 't-1' } });
      await validateOutputs(metrics)(ctx);
      expect(ctx.result).to.deep.equal({ taskId: 't-1' });
      expect(await validations(metrics, 'output', 'valid')).to.equal(0);
    });
  });
});
