/**
 * The grid's session manager dies mid-run and comes back: calls fail fast with a retryable
 * GridUnavailableFault (never hang), readiness follows, and the proxy reconnects by itself.
 */
import { expect } from 'chai';
import { faultDetail, invoke } from '../helpers/soap-client';
import { spawnGrid, withRelay } from '../helpers/processes';

describe('relay: grid restart mid-run', function () {
  this.timeout(90000);
  const relay = withRelay();

  it('fails calls fast while the grid is down and recovers when it returns', async () => {
    const r = relay();
    const { client, proxy } = r;
    const { connectionId } = await invoke<{ connectionId: string }>(client, 'connect', {
      applicationName: 'echo',
      username: 'u',
      password: 'p',
    });
    const { sessionId } = await invoke<{ sessionId: string }>(client, 'createSession', { connectionId });
    const tasks = Array.from({ length: 50 }, (_, i) => ({ taskInput: { text: `before-${i}` } }));
    await invoke(client, 'sendTaskInputBatch', { sessionId, taskSubmissionAttributes: tasks });

    const port = r.grid.address.split(':').pop()!;
    await r.grid.stop('SIGKILL');

    const t0 = Date.now();
    let detail: ReturnType<typeof faultDetail>;
    try {
      await invoke(client, 'sendTaskInput', {
        sessionId,
        taskSubmissionAttributes: { taskInput: { text: 'during' } },
      });
    } catch (e) {
      detail = faultDetail(e);
    }
    expect(detail?.element).to.equal('GridUnavailableFault');
    expect(detail?.retryable).to.equal('true');
    expect(Date.now() - t0, 'fault latency in ms').to.be.below(8000);

    const ready = await fetch(`${proxy.adminUrl}/readyz`);
    expect(ready.status).to.equal(503);

    r.grid = await spawnGrid(['--port', port]);
    let reconnected: string | undefined;
    for (let i = 0; i < 60 && !reconnected; i++) {
      try {
        reconnected = (
          await invoke<{ connectionId: string }>(client, 'connect', {
            applicationName: 'echo',
            username: 'u',
            password: 'p',
          })
        ).connectionId;
      } catch (e) {
        expect(faultDetail(e)?.element).to.equal('GridUnavailableFault');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(reconnected, 'a connect after the restart').to.be.a('string');
    expect((await fetch(`${proxy.adminUrl}/readyz`)).status).to.equal(200);

    // The reference grid keeps sessions in memory, so the old session is gone; a client
    // recovers by creating a new one.
    try {
      await invoke(client, 'getSessionStatus', { sessionId });
      expect.fail('the old session should be unknown after a grid restart');
    } catch (e) {
      expect(faultDetail(e)?.element).to.equal('UnknownSessionFault');
    }
    const fresh = await invoke<{ sessionId: string }>(client, 'createSession', { connectionId: reconnected });
    const { taskId } = await invoke<{ taskId: string }>(client, 'sendTaskInput', {
      sessionId: fresh.sessionId,
      taskSubmissionAttributes: { taskInput: { text: 'after' } },
    });
    const out = await invoke<{ taskOutput?: { taskId: string; taskOutput: { text: string } }[] }>(
      client,
      'fetchTaskOutput',
      {
        sessionId: fresh.sessionId,
        countMax: 1,
        timeoutMillis: 5000,
      },
    );
    expect(out.taskOutput?.[0]?.taskId).to.equal(taskId);
    expect(out.taskOutput?.[0]?.taskOutput.text).to.equal('after');
  });
});
