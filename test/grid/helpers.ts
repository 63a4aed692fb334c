import type { TaskInput, TaskOutput } from '../../src/backend/protocol';
import { parseGridConfig, type GridConfigInput } from '../../src/grid/config';
import { startGrid, type Grid } from '../../src/grid/server';
import { RawClient } from './raw-client';

/** Starts a grid on an ephemeral loopback port with a small echo pool unless told otherwise. */
export function startTestGrid(overrides: GridConfigInput = {}): Promise<Grid> {
  return startGrid(
    parseGridConfig({
      host: '127.0.0.1',
      port: 0,
      applications: [{ name: 'echo', service: 'echo', workers: 2 }],
      ...overrides,
    }),
  );
}

export interface OpenedSession {
  connectionId: string;
  sessionId: string;
}

export async function newSession(
  client: RawClient,
  applicationName = 'echo',
  priority?: number,
): Promise<OpenedSession> {
  const { connectionId } = await client.call('connect', {
    applicationName,
    username: 'alice',
    password: 'pw',
  });
  const { sessionId } = await client.call('createSession', {
    connectionId,
    attributes: { name: 'test-session', priority },
  });
  return { connectionId, sessionId };
}

/** Long-polls until `count` outputs arrived or the deadline passed; returns what arrived. */
export async function fetchOutputs(
  client: RawClient,
  sessionId: string,
  count: number,
  timeoutMs = 15000,
): Promise<TaskOutput[]> {
  const outputs: TaskOutput[] = [];
  const deadline = Date.now() + timeoutMs;
  while (outputs.length < count && Date.now() < deadline) {
    const waitMs = Math.max(1, Math.min(1000, deadline - Date.now()));
    const reply = await client.call('fetchOutputs', { sessionId, countMax: count - outputs.length, waitMs });
    outputs.push(...reply.outputs);
  }
  return outputs;
}

export function textTasks(texts: string[], priority?: number): TaskInput[] {
  return texts.map((text, i) => ({ tag: `tag-${i}`, priority, payload: { text } }));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls a condition; false if it did not hold before the deadline. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}
