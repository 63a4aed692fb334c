/**
 * The whole Symphony flow through the proxy with a client generated from our WSDL by
 * node-soap: connect → createSession → 1,000 tasks (single and batch) → fetch → close.
 */
import { expect } from 'chai';
import { invoke } from '../helpers/soap-client';
import { withRelay } from '../helpers/processes';

interface Output {
  taskId: string;
  successful: boolean;
  exception?: string;
  taskOutput?: { text?: string; binary?: string; xml?: Record<string, unknown> };
}

function inputFor(i: number): object {
  switch (i % 3) {
    case 0:
      return { text: `task-${i} <&> "quoted"` };
    case 1:
      return { binary: Buffer.from(`bytes-${i}\u0000\u00ff`, 'latin1').toString('base64') };
    default:
      return { xml: { $xml: `<c:calc xmlns:c="urn:example:calc" n="${i}"><c:x>${i * 2}</c:x></c:calc>` } };
  }
}

function checkOutput(i: number, out: Output): void {
  expect(out.successful, `task ${out.taskId}`).to.equal(true);
  switch (i % 3) {
    case 0:
      expect(out.taskOutput?.text).to.equal(`task-${i} <&> "quoted"`);
      break;
    case 1:
      expect(Buffer.from(out.taskOutput!.binary!, 'base64').toString('latin1')).to.equal(
        `bytes-${i}\u0000\u00ff`,
      );
      break;
    default: {
      const xml = JSON.stringify(out.taskOutput?.xml);
      expect(xml)
        .to.contain(`"n":"${i}"`)
        .and.to.contain(`${i * 2}`);
    }
  }
}

describe('relay: node-soap client generated from the WSDL', function () {
  this.timeout(120000);
  const relay = withRelay({ secret: 's3cret' });

  it('runs connect → createSession → 1,000 tasks single and batched → fetch all → close', async () => {
    const { client } = relay();
    const { connectionId } = await invoke<{ connectionId: string }>(client, 'connect', {
      applicationName: 'echo',
      username: 'client-a',
      password: 'secret-pw',
    });
    expect(connectionId).to.match(/^[A-Za-z0-9._:-]+$/);

    const { sessionId } = await invoke<{ sessionId: string }>(client, 'createSession', {
      connectionId,
      sessionCreationAttributes: {
        name: 'flow',
        type: 'default',
        flags: 0,
        tag: 'nightly',
        priority: 10,
        compressionEnable: false,
        dataCompressionFlag: 0,
        threshold: 0,
        directDataTransferEnable: false,
      },
    });

    const inputOf = new Map<string, number>();
    // 400 single submissions, 8 in flight at a time.
    for (let base = 0; base < 400; base += 8) {
      const ids = await Promise.all(
        Array.from({ length: 8 }, (_, k) =>
          invoke<{ taskId: string }>(client, 'sendTaskInput', {
            sessionId,
            taskSubmissionAttributes: { tag: `t${base + k}`, taskPriority: 1, taskInput: inputFor(base + k) },
          }),
        ),
      );
      ids.forEach((r, k) => inputOf.set(r.taskId, base + k));
    }
    // 600 more in batches of 100; ids come back in submission order.
    for (let base = 400; base < 1000; base += 100) {
      const tasks = Array.from({ length: 100 }, (_, k) => ({
        tag: `t${base + k}`,
        taskInput: inputFor(base + k),
      }));
      const r = await invoke<{ taskId: string[] }>(client, 'sendTaskInputBatch', {
        sessionId,
        taskSubmissionAttributes: tasks,
      });
      expect(r.taskId).to.have.length(100);
      r.taskId.forEach((id, k) => inputOf.set(id, base + k));
    }
    expect(inputOf.size).to.equal(1000);

    const seen = new Set<string>();
    for (let round = 0; round < 300 && seen.size < 1000; round++) {
      const r = await invoke<{ taskOutput?: Output[] }>(client, 'fetchTaskOutput', {
        sessionId,
        countMax: 250,
        timeoutMillis: 1000,
      });
      for (const out of r.taskOutput ?? []) {
        expect(seen.has(out.taskId), `duplicate output ${out.taskId}`).to.equal(false);
        seen.add(out.taskId);
        checkOutput(inputOf.get(out.taskId)!, out);
      }
    }
    expect(seen.size).to.equal(1000);

    const status = await invoke<{ sessionStatus: Record<string, string> }>(client, 'getSessionStatus', {
      sessionId,
    });
    expect(Number(status.sessionStatus.doneTasks)).to.equal(1000);
    expect(status.sessionStatus.state).to.equal('Open');

    await invoke(client, 'closeSession', { sessionId, closeFlags: 'DestroyOnClose' });
    await invoke(client, 'closeConnection', { connectionId });
  });
});
