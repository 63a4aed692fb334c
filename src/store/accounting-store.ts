/**
 * What accounting shares through the store: which proxy makes the record of each task (so that a
 * task whose output the grid handed out twice is recorded once), the running monthly totals
 * that summaries are written from, and the lease of the one proxy that writes them.
 */

/** One record a proxy is about to send, with what it adds to its month's totals. */
export interface UsageClaim {
  /** The record's identity (its LocalJobId). */
  id: string;
  /** `YYYY-MM` of the record's end time (UTC): the month it counts in. */
  month: string;
  /** The summary it counts in: the grouping fields as JSON, identical for every proxy. */
  group: string;
  wallSeconds: number;
  cpuSeconds: number;
  /** Epoch seconds. */
  endTime: number;
}

/** One summary's running totals. */
export interface UsageTotals {
  group: string;
  jobs: number;
  wallSeconds: number;
  cpuSeconds: number;
  earliestEnd: number;
  latestEnd: number;
}

export interface AccountingStore {
  /**
   * For each claim, whether `owner` makes that record: true on first sight (then it counts once
   * in its month's totals) or when `owner` already holds it (a retry after a crash); false when
   * another owner holds it. Claims live for `ttlMs`, longer than the grid could hand the output
   * out again.
   */
  claimUsageRecords(
    owner: string,
    claims: UsageClaim[],
    ttlMs: number,
    totalsTtlMs: number,
  ): Promise<boolean[]>;
  /** The month's totals per summary group. */
  usageTotals(month: string): Promise<UsageTotals[]>;
  /** Takes or extends a named lease for `owner`; false while someone else holds it. */
  holdLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
}

/** One process's accounting state (the memory store). */
export class MemoryAccounting implements AccountingStore {
  private readonly owners = new Map<string, { owner: string; until: number }>();
  private readonly months = new Map<string, Map<string, UsageTotals>>();
  private readonly leases = new Map<string, { owner: string; until: number }>();
  private sweepAt = 0;

  async claimUsageRecords(owner: string, claims: UsageClaim[], ttlMs: number): Promise<boolean[]> {
    const now = Date.now();
    this.sweep(now);
    return claims.map((c) => {
      const held = this.owners.get(c.id);
      if (held && held.until > now) return held.owner === owner;
      this.owners.set(c.id, { owner, until: now + ttlMs });
      addTotals(this.monthOf(c.month), c);
      return true;
    });
  }

  async usageTotals(month: string): Promise<UsageTotals[]> {
    return [...(this.months.get(month)?.values() ?? [])].map((t) => ({ ...t }));
  }

  async holdLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const held = this.leases.get(name);
    if (held && held.until > now && held.owner !== owner) return false;
    this.leases.set(name, { owner, until: now + ttlMs });
    return true;
  }

  private monthOf(month: string): Map<string, UsageTotals> {
    let m = this.months.get(month);
    if (!m) this.months.set(month, (m = new Map()));
    return m;
  }

  /** Expired claims go at most once a minute: a sweep walks every claim. */
  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + 60_000;
    for (const [id, h] of this.owners) if (h.until <= now) this.owners.delete(id);
  }
}

function addTotals(month: Map<string, UsageTotals>, c: UsageClaim): void {
  const t = month.get(c.group);
  if (!t) {
    month.set(c.group, {
      group: c.group,
      jobs: 1,
      wallSeconds: c.wallSeconds,
      cpuSeconds: c.cpuSeconds,
      earliestEnd: c.endTime,
      latestEnd: c.endTime,
    });
    return;
  }
  t.jobs += 1;
  t.wallSeconds += c.wallSeconds;
  t.cpuSeconds += c.cpuSeconds;
  t.earliestEnd = Math.min(t.earliestEnd, c.endTime);
  t.latestEnd = Math.max(t.latestEnd, c.endTime);
}
