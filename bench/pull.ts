/**
 * Draining a session's outputs: WS-Enumeration Pull next to the leased fetchTaskOutput it is
 * built on. Each round submits BENCH_PULL_OUTPUTS tasks of 4 KB straight to the grid (so the
 * bench measures the draining, not the submitting), waits until they have all run, and drains
 * them through the proxy with one method, one consumer, 100 outputs per call, every page
 * acknowledged by the next call; the methods alternate, and the table gives medians. The proxy's
 * resident memory is sampled while it drains: its growth over the level before the drain.
 */
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GridClient } from '../src/backend/client';
import { spawnGrid, startProxyProcess, proxyConfig, type ProxyProcess } from '../test/helpers/processes';
import { call, fetchPage, filledSession, median, pick, SYM } from './sessions';

const OUTPUTS = Number(process.env.BENCH_PULL_OUTPUTS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PAGE = 100;
const PAYLOAD = 'x'.repeat(4096);
const WSEN = 'http://schemas.xmlsoap.org/ws/2004/09/enumeration';

function count(xml: string, needle: string): number {
  let n = 0;
  for (let i = xml.indexOf(needle); i >= 0; i = xml.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Resident memory of a process, in MB. */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

interface Drain {
  outputsPerSec: number;
  rssGrowthMb: number;
}

/** Drains with `next` (one call per page) while sampling the proxy's memory. */
async function drain(proxy: ProxyProcess, next: () => Promise<number>): Promise<Drain> {
  const pid = proxy.child.pid!;
  const before = rssMb(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
  const start = performance.now();
  let got = 0;
  try {
    for (let calls = 0; got < OUTPUTS; calls++) {
      if (calls > (OUTPUTS / PAGE) * 20) throw new Error(`drained only ${got} of ${OUTPUTS}`);
      got += await next();
    }
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - start) / 1000;
  return { outputsPerSec: got / seconds, rssGrowthMb: Math.max(0, peak - before) };
}

function byFetch(proxy: ProxyProcess, sessionId: string): () => Promise<number> {
  let token: string | undefined;
  return async () => {
    const p = await fetchPage(proxy, sessionId, PAGE, token);
    token = p.token;
    return p.outputs;
  };
}

function byPull(proxy: ProxyProcess, sessionId: string): () => Promise<number> {
  const address = `${proxy.url}/sessions/${sessionId}`;
  let cursor: string | undefined;
  return async () => {
    cursor ??= pick(await call(address, `<wsen:Enumerate xmlns:wsen="${WSEN}"/>`), 'EnumerationCursor');
    const r = await call(
      address,
      `<wsen:Pull xmlns:wsen="${WSEN}"><wsen:EnumerationContext><sym:EnumerationCursor xmlns:sym="${SYM}">${cursor!}</sym:EnumerationCursor></wsen:EnumerationContext>` +
        `<wsen:MaxTime>PT1S</wsen:MaxTime><wsen:MaxElements>${PAGE}</wsen:MaxElements></wsen:Pull>`,
    );
    cursor = pick(r, 'EnumerationCursor');
    return count(r, '<sym:taskId>');
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-pull-'));
  const gridConfig = join(dir, 'grid.json');
  writeFileSync(
    gridConfig,
    JSON.stringify({ applications: [{ name: 'echo', service: 'echo', workers: 1 }] }),
  );
  const grid = await spawnGrid(['--port', '0', '--config', gridConfig]);
  const proxy = await startProxyProcess(proxyConfig([grid.address], '', { admin: { enabled: false } }));
  const gridClient = new GridClient({ name: 'bench', addresses: [grid.address], poolSize: 2 });
  await gridClient.call('connect', {
    applicationName: 'echo',
    username: 'bench',
    password: 'pw',
    clusterUrl: '',
  });
  const results: Record<'fetch' | 'pull', Drain[]> = { fetch: [], pull: [] };
  try {
    for (let round = 0; round < RUNS; round++) {
      // Alternating order, so that neither method always runs on a warmer process.
      const order: ('fetch' | 'pull')[] = round % 2 === 0 ? ['fetch', 'pull'] : ['pull', 'fetch'];
      for (const method of order) {
        const sessionId = await filledSession(proxy, gridClient, OUTPUTS, PAYLOAD);
        const next = method === 'fetch' ? byFetch(proxy, sessionId) : byPull(proxy, sessionId);
        results[method].push(await drain(proxy, next));
      }
    }
  } finally {
    gridClient.close();
    await proxy.stop();
    await grid.stop();
  }
  const fetchRate = median(results.fetch.map((d) => d.outputsPerSec));
  const pullRate = median(results.pull.map((d) => d.outputsPerSec));
  const growth = Math.max(...results.pull.map((d) => d.rssGrowthMb));
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  console.log(
    `\nDraining ${fmt(OUTPUTS)} outputs of 4 KB: ${RUNS} alternating rounds per method, one consumer, ${PAGE} per call, medians; ${new Date().toISOString()}\n`,
  );
  console.log('| workload | outputs/s | proxy RSS growth (max) |');
  console.log('|---|---:|---:|');
  console.log(
    `| fetchTaskOutput, leased, acknowledged by the next fetch | ${fmt(fetchRate)} | ${Math.max(...results.fetch.map((d) => d.rssGrowthMb)).toFixed(0)} MB |`,
  );
  console.log(
    `| WS-Enumeration Pull (2004/09, MaxElements ${PAGE}) | ${fmt(pullRate)} | ${growth.toFixed(0)} MB |`,
  );
  console.log('\n| ratio | value | target |');
  console.log('|---|---:|---:|');
  console.log(`| Pull ÷ fetchTaskOutput (outputs/s) | ${(pullRate / fetchRate).toFixed(2)}× | ≥ 0.9× |`);
  console.log(`| proxy RSS growth during Pull | ${growth.toFixed(0)} MB | ≤ 64 MB |`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
