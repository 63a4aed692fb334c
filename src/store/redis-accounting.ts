/**
 * Accounting state in Redis (see AccountingStore): record claims as plain keys with a TTL, and
 * each month's totals in one hash whose fields are `<group>\n<measure>`, both changed by one
 * script so that a claim and its counting can never be separated.
 */
import type { Redis } from 'ioredis';
import type { AccountingStore, UsageClaim, UsageTotals } from './accounting-store';

/**
 * KEYS[i]      the claim key of record i (i = 1..n), KEYS[n + i] its month's totals hash.
 * ARGV[1]      owner; ARGV[2] claim TTL ms; ARGV[3] totals TTL ms;
 * ARGV[4 + 5(i-1) ..] per record: group, wall, cpu, end time, (unused).
 * Returns      one 1|0 per record: 1 when the owner makes it.
 */
const CLAIM_USAGE_SCRIPT = `
local owner = ARGV[1]
local ttl = tonumber(ARGV[2])
local totalsTtl = tonumber(ARGV[3])
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local held = redis.call('GET', KEYS[i])
  if held then
    out[i] = (held == owner) and 1 or 0
  else
    redis.call('SET', KEYS[i], owner, 'PX', ttl)
    local month = KEYS[n + i]
    local a = 3 + (i - 1) * 4
    local g = ARGV[a + 1]
    local endTime = tonumber(ARGV[a + 4])
    redis.call('HINCRBY', month, g .. '\\njobs', 1)
    redis.call('HINCRBY', month, g .. '\\nwall', tonumber(ARGV[a + 2]))
    redis.call('HINCRBY', month, g .. '\\ncpu', tonumber(ARGV[a + 3]))
    local first = tonumber(redis.call('HGET', month, g .. '\\nfirst'))
    if not first or endTime < first then redis.call('HSET', month, g .. '\\nfirst', endTime) end
    local last = tonumber(redis.call('HGET', month, g .. '\\nlast'))
    if not last or endTime > last then redis.call('HSET', month, g .. '\\nlast', endTime) end
    redis.call('PEXPIRE', month, totalsTtl)
    out[i] = 1
  end
end
return out
`;

/** Takes the lease when free, or extends it for its holder. */
const HOLD_LEASE_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
`;

interface AccountingCommands {
  sspClaimUsage(numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  sspHoldLease(...keysAndArgs: string[]): Promise<unknown>;
}

/** Claims per script call: bounds the time one script holds Redis. */
const CLAIMS_PER_CALL = 200;

export class RedisAccounting implements AccountingStore {
  private readonly scripts: AccountingCommands;

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly call: <T>(what: string, op: () => Promise<T>) => Promise<T>,
  ) {
    client.defineCommand('sspClaimUsage', { lua: CLAIM_USAGE_SCRIPT });
    client.defineCommand('sspHoldLease', { lua: HOLD_LEASE_SCRIPT, numberOfKeys: 1 });
    this.scripts = client as unknown as AccountingCommands;
  }

  async claimUsageRecords(
    owner: string,
    claims: UsageClaim[],
    ttlMs: number,
    totalsTtlMs: number,
  ): Promise<boolean[]> {
    const out: boolean[] = [];
    for (let i = 0; i < claims.length; i += CLAIMS_PER_CALL) {
      const part = claims.slice(i, i + CLAIMS_PER_CALL);
      const keys = [
        ...part.map((c) => `${this.prefix}acct:rec:${c.id}`),
        ...part.map((c) => this.monthKey(c.month)),
      ];
      const args = [owner, String(ttlMs), String(totalsTtlMs)];
      for (const c of part)
        args.push(
          c.group,
          String(Math.round(c.wallSeconds)),
          String(Math.round(c.cpuSeconds)),
          String(c.endTime),
        );
      const r = (await this.call('claim usage records', () =>
        this.scripts.sspClaimUsage(keys.length, ...keys, ...args),
      )) as number[];
      out.push(...r.map((v) => v === 1));
    }
    return out;
  }

  async usageTotals(month: string): Promise<UsageTotals[]> {
    const h = await this.call('HGETALL usage totals', () => this.client.hgetall(this.monthKey(month)));
    const byGroup = new Map<string, UsageTotals>();
    for (const [field, value] of Object.entries(h)) {
      const cut = field.lastIndexOf('\n');
      const group = field.slice(0, cut);
      let t = byGroup.get(group);
      if (!t) {
        t = { group, jobs: 0, wallSeconds: 0, cpuSeconds: 0, earliestEnd: 0, latestEnd: 0 };
        byGroup.set(group, t);
      }
      const v = Number(value);
      switch (field.slice(cut + 1)) {
        case 'jobs':
          t.jobs = v;
          break;
        case 'wall':
          t.wallSeconds = v;
          break;
        case 'cpu':
          t.cpuSeconds = v;
          break;
        case 'first':
          t.earliestEnd = v;
          break;
        case 'last':
          t.latestEnd = v;
          break;
      }
    }
    return [...byGroup.values()];
  }

  async holdLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.call('hold lease', () =>
      this.scripts.sspHoldLease(`${this.prefix}acct:lease:${name}`, owner, String(ttlMs)),
    );
    return r === 1;
  }

  private monthKey(month: string): string {
    return `${this.prefix}acct:month:${month}`;
  }
}
