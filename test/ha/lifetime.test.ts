/**
 * Idle leases across a farm: two proxy processes share one redis-server and one grid. A session
 * opened through the first proxy outlives that proxy's SIGKILL: the second one ends it on the
 * grid when its idle time comes, once.
 */
import { expect } from 'chai';
import { requestGridStats } from '../../src/grid/stats-probe';
import { eventually } from '../grid/helpers';
import { requirePeer } from '../helpers/peers';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';
import { callOk, envelope11, op, openSessionAt, postSoap } from '../helpers/soap-http';

const IDLE_MS = 1500;

describe('ha: an idle session is ended by another proxy after the one that opened it is killed', function () {
  this.timeout(60000);
  let redis: RedisProcess | undefined;
  let grid: GridProcess | undefined;
  const proxies: ProxyProcess[] = [];

  before(async function () {
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    redis = await startRedis();
    grid = await spawnGrid(['--port', '0']);
    for (let i = 0; i < 2; i++) {
      proxies.push(
        await startProxyProcess(
          proxyConfig([grid.address], '', {
            store: { kind: 'redis', redis: { url: redis.url, keyPrefix: 'lifetime:' } },
            lifetime: { sessionIdleMs: IDLE_MS, connectionIdleMs: IDLE_MS, sweepIntervalMs: 100 },
          }),
        ),
      );
    }
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await grid?.stop();
    await redis?.stop();
  });

  it('reaps the session and connection on the grid, and counts it once across the farm', async () => {
    const [first, second] = proxies as [ProxyProcess, ProxyProcess];
    const { sessionId } = await openSessionAt(first.url);
    await callOk(second.url, op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`));
    expect(await requestGridStats(grid!.child)).to.include({ sessions: 1, connections: 1 });

    await first.stop('SIGKILL');
    const reaped = await eventually(async () => {
      const stats = await requestGridStats(grid!.child);
      return stats.sessions === 0 && stats.connections === 0;
    }, 10_000);
    expect(reaped, 'the surviving proxy ended both on the grid').to.equal(true);

    // The count follows the grid call: wait for it, bounded.
    let metrics = '';
    await eventually(async () => {
      metrics = await (await fetch(`${second.adminUrl!}/metrics`)).text();
      return /ssp_resource_terminations_total\{kind="connection",cause="idle",outcome="destroyed"\} 1\b/.test(
        metrics,
      );
    }, 5000);
    expect(metrics).to.match(
      /ssp_resource_terminations_total\{kind="session",cause="idle",outcome="destroyed"\} 1\b/,
    );
    expect(metrics).to.match(
      /ssp_resource_terminations_total\{kind="connection",cause="idle",outcome="destroyed"\} 1\b/,
    );
    const late = await postSoap(
      second.url,
      envelope11(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`)),
    );
    expect(late.text).to.contain('SSP_UNKNOWN_SESSION');
  });
});
