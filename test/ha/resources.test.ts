/**
 * WS-Resources across a farm: three proxy processes share one redis-server and one grid. Session
 * lifetimes and enumeration contexts live in the shared store, so any proxy carries on what
 * another began: a termination time set through a proxy killed since is carried out by a
 * survivor, an idle session is reaped, and an enumeration started on one proxy is pulled to the
 * end on the others (also across a SIGKILL) with every output delivered exactly once.
 *
 * The cases run in order on the same farm: the first kills proxy A, the last kills one of B, C.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { requestGridStats } from '../../src/grid/stats-probe';
import { SYM, WSEN_2004, WSRF_RL, WSRF_RP } from '../../src/soap/ws-namespaces';
import { requirePeer } from '../helpers/peers';
import { sample, until } from '../helpers/poll';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';
import { callOk, envelope11, op, openSessionAt, pick, postSoap, type SoapReply } from '../helpers/soap-http';

const PREFIX = 'resources:';

/** Sessions of this application lapse after IDLE_MS unused; echo's (the other cases') never do. */
const IDLE_APP = 'cpu';
const IDLE_MS = 1500;
const SWEEP_MS = 100;
const TASKS = 60;
const PAGE = 7;
/** Rounds of the kill-after-a-Pull run (each kills a proxy and starts a replacement). */
const ROUNDS = 5;

const getProperty = (qname: string): string =>
  `<wsrf-rp:GetResourceProperty xmlns:wsrf-rp="${WSRF_RP}" xmlns:sym="${SYM}" xmlns:wsrf-rl="${WSRF_RL}">${qname}</wsrf-rp:GetResourceProperty>`;
const setTermination = (duration: string): string =>
  `<wsrf-rl:SetTerminationTime xmlns:wsrf-rl="${WSRF_RL}"><wsrf-rl:RequestedLifetimeDuration>${duration}</wsrf-rl:RequestedLifetimeDuration></wsrf-rl:SetTerminationTime>`;
const enumerate = `<wsen:Enumerate xmlns:wsen="${WSEN_2004}"><wsen:Expires>PT5M</wsen:Expires></wsen:Enumerate>`;
const pull = (cursor: string): string =>
  `<wsen:Pull xmlns:wsen="${WSEN_2004}"><wsen:EnumerationContext><sym:EnumerationCursor xmlns:sym="${SYM}">${cursor}</sym:EnumerationCursor></wsen:EnumerationContext><wsen:MaxElements>${PAGE}</wsen:MaxElements></wsen:Pull>`;
const cursorOf = (body: string): string | undefined =>
  /<sym:EnumerationCursor[^>]*>([^<]+)<\/sym:EnumerationCursor>/.exec(body)?.[1];
const taskIds = (body: string): string[] =>
  [...body.matchAll(/<sym:taskId>([^<]+)<\/sym:taskId>/g)].map((m) => m[1]!);
const texts = (body: string): string[] =>
  [...body.matchAll(/<sym:text>([^<]*)<\/sym:text>/g)].map((m) => m[1]!);
const expected = (): string[] => Array.from({ length: TASKS }, (_, i) => `out-${i}`).sort();

describe('ha: sessions as WS-Resources and enumeration contexts across three proxies on one Redis', function () {
  this.timeout(120_000);
  let redis: RedisProcess | undefined;
  let grid: GridProcess | undefined;
  let client: Redis | undefined;
  const proxies: ProxyProcess[] = [];
  const killed = new Set<ProxyProcess>();
  let proxyA: ProxyProcess;
  let proxyB: ProxyProcess;
  let proxyC: ProxyProcess;
  let config: Record<string, unknown>;

  const resource = (p: ProxyProcess, sessionId: string): string => `${p.url}/sessions/${sessionId}`;
  const stats = (): ReturnType<typeof requestGridStats> => requestGridStats(grid!.child);
  const alive = (): ProxyProcess[] => proxies.filter((p) => !killed.has(p));

  async function kill(p: ProxyProcess): Promise<void> {
    killed.add(p);
    await p.stop('SIGKILL');
  }

  /** The sum over the live proxies of one ssp_resource_terminations_total sample. */
  async function terminations(labels: string): Promise<number> {
    let sum = 0;
    for (const p of alive()) {
      const text = await (await fetch(`${p.adminUrl!}/metrics`)).text();
      sum += sample(text, 'ssp_resource_terminations_total', labels);
    }
    return sum;
  }

  async function post(url: string, body: string): Promise<SoapReply> {
    return postSoap(url, envelope11(body));
  }

  /** A session of `application` opened through `p`, unsigned (security is off). */
  async function openSession(p: ProxyProcess, application: string): Promise<string> {
    const c = await callOk(
      p.url,
      op(
        'connect',
        `<sym:applicationName>${application}</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>`,
      ),
    );
    const s = await callOk(
      p.url,
      op('createSession', `<sym:connectionId>${pick(c, 'connectionId')!}</sym:connectionId>`),
    );
    const sessionId = pick(s, 'sessionId');
    expect(sessionId, s).to.be.a('string');
    return sessionId!;
  }

  /** A session with TASKS finished echo tasks whose outputs wait on the grid; opened and fed through several proxies. */
  async function sessionWithOutputs(
    open: ProxyProcess,
    send: ProxyProcess,
    ask: ProxyProcess,
  ): Promise<string> {
    const { sessionId } = await openSessionAt(open.url);
    let tasks = '';
    for (let i = 0; i < TASKS; i++) {
      tasks += `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>out-${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
    }
    await callOk(send.url, op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}`));
    let done = 0;
    const ran = await until(async () => {
      const st = await callOk(ask.url, op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`));
      done = Number(pick(st, 'doneTasks'));
      return done === TASKS;
    }, 20_000);
    expect(ran, `every task ran (${done} of ${TASKS} done)`).to.equal(true);
    return sessionId;
  }

  /** One Pull that must succeed; its outputs, task ids and next context. */
  async function pullAt(
    p: ProxyProcess,
    sessionId: string,
    cursor: string,
  ): Promise<{ texts: string[]; ids: string[]; next: string | undefined; end: boolean; body: string }> {
    const r = await post(resource(p, sessionId), pull(cursor));
    expect(r.status, r.text.slice(0, 800)).to.equal(200);
    const next = cursorOf(r.text);
    const end = r.text.includes('EndOfSequence');
    if (end) expect(next, 'no context on the last page').to.equal(undefined);
    return { texts: texts(r.text), ids: taskIds(r.text), next, end, body: r.text };
  }

  /** Every output exactly once, none other. */
  function expectExactlyOnce(got: string[]): void {
    const seen = new Map<string, number>();
    for (const t of got) seen.set(t, (seen.get(t) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([t]) => t);
    expect(twice, 'outputs delivered more than once').to.deep.equal([]);
    expect([...got].sort(), 'every output, and none other').to.deep.equal(expected());
  }

  before(async function () {
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    redis = await startRedis();
    grid = await spawnGrid(['--port', '0']);
    client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    config = proxyConfig([grid.address], '', {
      store: { kind: 'redis', redis: { url: redis.url, keyPrefix: PREFIX } },
      lifetime: {
        sweepIntervalMs: SWEEP_MS,
        // Longer than a grid call (requestTimeoutMs 5000): no claim is taken over while it runs.
        claimLeaseMs: 10_000,
        applications: [{ name: IDLE_APP, sessionIdleMs: IDLE_MS, connectionIdleMs: IDLE_MS }],
      },
    });
    // Started one at a time: each picks its own free ports.
    for (let i = 0; i < 3; i++) proxies.push(await startProxyProcess(config));
    [proxyA, proxyB, proxyC] = proxies as [ProxyProcess, ProxyProcess, ProxyProcess];
    for (const p of proxies) expect(p.adminUrl, 'the admin listener is on').to.be.a('string');
  });

  after(async () => {
    client?.disconnect();
    for (const p of proxies) await p.stop('SIGKILL');
    await grid?.stop();
    await redis?.stop();
  });

  it('a termination time set through a proxy killed since is carried out once by a survivor', async () => {
    const before = (await stats()).sessions;
    const { sessionId } = await openSessionAt(proxyA.url);
    expect((await stats()).sessions).to.equal(before + 1);

    const set = await callOk(resource(proxyA, sessionId), setTermination('PT2S'));
    const granted = Date.parse(pick(set, 'NewTerminationTime')!);
    expect(granted, set.slice(0, 800)).to.be.closeTo(Date.now() + 2000, 1500);
    // The time is the farm's, not A's: C reads it from the shared store.
    const seen = await callOk(resource(proxyC, sessionId), getProperty('wsrf-rl:TerminationTime'));
    expect(Date.parse(pick(seen, 'TerminationTime')!)).to.equal(granted);

    await kill(proxyA);
    let goneAt = 0;
    const destroyed = await until(
      async () => {
        if ((await stats()).sessions !== before) return false;
        goneAt = Date.now();
        return true;
      },
      granted - Date.now() + 10_000,
    );
    expect(destroyed, 'a survivor destroyed the session on the grid').to.equal(true);
    expect(goneAt, 'not before its termination time').to.be.at.least(granted - 50);

    const late = await post(resource(proxyB, sessionId), getProperty('sym:State'));
    expect(late.status).to.equal(500);
    expect(late.text).to.contain('wsrf-r:ResourceUnknownFault');
    expect(late.text).to.contain('SSP_RESOURCE_UNKNOWN');

    const labels = 'kind="session",cause="scheduled",outcome="destroyed"';
    expect(await until(async () => (await terminations(labels)) >= 1, 5000)).to.equal(true);
    // A few more sweeps on both survivors: nobody counts it again.
    await sleep(10 * SWEEP_MS);
    expect(await terminations(labels), 'counted once across B and C').to.equal(1);
    expect(await terminations('kind="session",cause="scheduled",outcome="gone"')).to.equal(0);
    expect(await terminations('kind="session",cause="scheduled",outcome="retry"')).to.equal(0);
  });

  it('an idle session is reaped on the grid, and its record leaves the store', async () => {
    const before = await stats();
    const opened = Date.now();
    const sessionId = await openSession(proxyB, IDLE_APP);
    expect(await stats()).to.include({
      sessions: before.sessions + 1,
      connections: before.connections + 1,
    });
    expect(await client!.exists(`${PREFIX}sess:${sessionId}`)).to.equal(1);
    expect(await client!.zscore(`${PREFIX}term:due`, `session:${sessionId}`)).to.not.equal(null);

    let goneAt = 0;
    const reaped = await until(async () => {
      const s = await stats();
      if (s.sessions !== before.sessions || s.connections !== before.connections) return false;
      goneAt = Date.now();
      return true;
    }, IDLE_MS + 10_000);
    expect(reaped, 'the session and its connection were closed on the grid').to.equal(true);
    expect(goneAt - opened, 'not before its idle time').to.be.at.least(IDLE_MS - 50);

    const late = await post(resource(proxyB, sessionId), getProperty('sym:State'));
    expect(late.status).to.equal(500);
    expect(late.text).to.contain('wsrf-r:ResourceUnknownFault');
    expect(late.text).to.contain('SSP_RESOURCE_UNKNOWN');
    expect(await client!.exists(`${PREFIX}sess:${sessionId}`), 'the session record').to.equal(0);
    for (const zset of ['term:due', 'term:claimed']) {
      expect(await client!.zscore(`${PREFIX}${zset}`, `session:${sessionId}`), zset).to.equal(null);
    }
    expect(await client!.hexists(`${PREFIX}term:client`, `session:${sessionId}`)).to.equal(0);
    expect(
      await until(
        async () => (await terminations('kind="session",cause="idle",outcome="destroyed"')) === 1,
        5000,
      ),
      'counted once',
    ).to.equal(true);
  });

  it('an enumeration started on B is pulled to the end across B and C: every output exactly once', async () => {
    const sessionId = await sessionWithOutputs(proxyC, proxyB, proxyC);
    const e = await post(resource(proxyB, sessionId), enumerate);
    expect(e.status, e.text.slice(0, 800)).to.equal(200);
    let cursor = cursorOf(e.text);
    expect(cursor, 'EnumerateResponse carries a context').to.be.a('string');

    const got: string[] = [];
    const order = [proxyB, proxyC];
    let pages = 0;
    let repeated = false;
    let end = false;
    while (!end && pages < 30) {
      const here = order[pages % 2]!;
      const other = order[(pages + 1) % 2]!;
      const page = await pullAt(here, sessionId, cursor!);
      if (pages === 3) {
        // The reply "lost": the same context sent to the other proxy answers the same page.
        const again = await pullAt(other, sessionId, cursor!);
        expect(again.ids, 'same task ids').to.deep.equal(page.ids);
        expect(again.texts).to.deep.equal(page.texts);
        expect(again.next, 'same next context').to.equal(page.next);
        expect(page.ids).to.have.length(PAGE);
        repeated = true;
      }
      got.push(...page.texts);
      expect(page.texts.length).to.be.at.most(PAGE);
      cursor = page.next;
      end = page.end;
      pages++;
    }
    expect(repeated).to.equal(true);
    expect(end, 'EndOfSequence').to.equal(true);
    expect(cursor, 'no context after the end').to.equal(undefined);
    expectExactlyOnce(got);
    expect(pages).to.equal(Math.ceil(TASKS / PAGE) + 1);
  });

  it('the proxy that answered the last Pull is SIGKILLed: the survivor goes on with the same context, nothing lost or repeated', async () => {
    // A kill right after a reply races the proxy's own work after it; several rounds (a fresh
    // proxy replaces each one killed) so that a window there shows. Stops at the first repeat.
    const rounds: { killed: string; lastPage: string[]; twice: string[]; requeued: number }[] = [];
    let [first, second] = [proxyB, proxyC];
    for (let round = 0; round < ROUNDS; round++) {
      const sessionId = await sessionWithOutputs(first, second, first);
      const requeuedBefore = (await stats()).outputsRequeued;
      const e = await post(resource(first, sessionId), enumerate);
      expect(e.status, e.text.slice(0, 800)).to.equal(200);
      let cursor = cursorOf(e.text);
      expect(cursor).to.be.a('string');

      const got: string[] = [];
      let lastPage: string[] = [];
      // first, second, first: `first` started the enumeration and answers the last Pull before it is killed.
      for (const p of [first, second, first]) {
        const page = await pullAt(p, sessionId, cursor!);
        expect(page.texts).to.have.length(PAGE);
        got.push(...page.texts);
        lastPage = page.texts;
        cursor = page.next;
      }
      await kill(first);

      let end = false;
      for (let pages = 0; !end && pages < 30; pages++) {
        const page = await pullAt(second, sessionId, cursor!);
        got.push(...page.texts);
        cursor = page.next;
        end = page.end;
      }
      expect(end, 'EndOfSequence from the survivor').to.equal(true);
      expect(cursor).to.equal(undefined);
      // At least once: nothing is lost, whatever else happens.
      expect([...new Set(got)].sort(), 'every output at least once').to.deep.equal(expected());
      const twice = got.filter((t, i) => got.indexOf(t) !== i);
      rounds.push({
        killed: first === proxyB ? 'B' : first === proxyC ? 'C' : `replacement ${round}`,
        lastPage,
        twice,
        requeued: (await stats()).outputsRequeued - requeuedBefore,
      });
      // A fresh proxy takes the place of the one killed.
      const fresh = await startProxyProcess(config);
      proxies.push(fresh);
      [first, second] = [second, fresh];
      if (twice.length > 0) break;
    }
    // Exactly once: the page answered just before the kill was acknowledged by the next Pull's
    // context, so the survivor must not hand it out again.
    expect(
      rounds.filter((r) => r.twice.length > 0),
      `rounds in which outputs came twice: ${JSON.stringify(rounds)}`,
    ).to.deep.equal([]);
  });
});
