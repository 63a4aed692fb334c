/**
 * `symphony-soap-proxy accounting …`: what an operator does with the queue on disk. Safe while the
 * proxy runs: an element being sent is locked, and the CLI leaves locked elements alone.
 *
 *   list   [--rejected]                    ids, age, size and record count, oldest first
 *   show   ID [--rejected]                 the message as it will be signed and sent
 *   check  [--rejected]                    what the receiver would say about each message
 *   resend ID… | --rejected                put rejected elements back in the outgoing queue
 *   purge  ID… | --older-than DAYS | --rejected   --yes   delete for good
 */
import { parseArgs } from 'node:util';
import { checkAccountingMessage } from '../accounting/apel';
import type { DirQueue } from '../accounting/spool';
import { spoolQueues } from '../components/accounting';
import { loadConfig } from '../config';

const USAGE =
  'usage: symphony-soap-proxy accounting list|show ID|check|resend ID…|--rejected|purge ID…|--older-than DAYS|--rejected --yes [--config FILE] [--spool DIR] [--rejected]';

interface Args {
  sub: string | undefined;
  ids: string[];
  rejected: boolean;
  yes: boolean;
  olderThanDays: number | undefined;
  spool: string;
}

function parse(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      spool: { type: 'string' },
      rejected: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      'older-than': { type: 'string' },
    },
  });
  const spool = values.spool ?? loadConfig(values.config).accounting.spoolDir;
  const older = values['older-than'];
  return {
    sub: positionals[0],
    ids: positionals.slice(1),
    rejected: values.rejected,
    yes: values.yes,
    olderThanDays: older === undefined ? undefined : Number(older),
    spool,
  };
}

/** Reads an element without disturbing the sender: lock, read, unlock; undefined while it is being sent. */
async function peek(q: DirQueue, id: string): Promise<Buffer | undefined> {
  if (!(await q.lock(id))) return undefined;
  try {
    return await q.get(id);
  } finally {
    await q.unlock(id);
  }
}

export async function accountingCommand(
  argv: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  let a: Args;
  try {
    a = parse(argv);
  } catch (e) {
    out(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const queues = spoolQueues(a.spool);
  const q = a.rejected ? queues.rejected : queues.outgoing;
  const now = Date.now();
  switch (a.sub) {
    case 'list': {
      const ids = await q.list();
      for (const id of ids) {
        const body = await peek(q, id);
        const age = Math.round((now - q.addedAtMs(id)) / 1000);
        if (!body) out(`${id}\tage ${age}s\t(being sent)`);
        else
          out(
            `${id}\tage ${age}s\t${body.length} bytes\t${checkAccountingMessage(body.toString('utf8'), now).records.length} records`,
          );
      }
      await queues.journal.init();
      const staged = (await queues.journal.sealed()).length;
      out(
        `${ids.length} ${a.rejected ? 'rejected' : 'outgoing'} messages; ${staged} staged record segments in ${a.spool}`,
      );
      return 0;
    }
    case 'show': {
      const id = a.ids[0];
      if (!id) return usage(out);
      const body = await peek(q, id);
      if (!body) {
        out(`${id}: not found, or being sent right now`);
        return 1;
      }
      out(body.toString('utf8'));
      return 0;
    }
    case 'check': {
      let bad = 0;
      for (const id of await q.list()) {
        const body = await peek(q, id);
        if (!body) continue;
        const c = checkAccountingMessage(body.toString('utf8'), now);
        if (c.problems.length > 0) bad += 1;
        out(
          `${id}\t${c.kind}\t${c.records.length} records\t${c.problems.length ? c.problems.slice(0, 3).join('; ') : 'ok'}`,
        );
      }
      return bad > 0 ? 1 : 0;
    }
    case 'resend': {
      const ids = a.ids.length > 0 ? a.ids : a.rejected ? await queues.rejected.list() : [];
      if (ids.length === 0) return usage(out);
      let moved = 0;
      for (const id of ids) {
        if (!(await queues.rejected.lock(id))) {
          out(`${id}: not in the rejected queue`);
          continue;
        }
        out(`${id} → outgoing ${await queues.rejected.moveTo(id, queues.outgoing)}`);
        moved += 1;
      }
      out(`${moved} put back for sending`);
      return 0;
    }
    case 'purge': {
      let ids = a.ids;
      if (ids.length === 0 && a.olderThanDays !== undefined) {
        if (!(a.olderThanDays >= 0)) return usage(out);
        ids = (await q.list()).filter((id) => now - q.addedAtMs(id) > a.olderThanDays! * 86_400_000);
      } else if (ids.length === 0 && a.rejected) ids = await q.list();
      if (ids.length === 0) return usage(out);
      if (!a.yes) {
        out(`would delete ${ids.length} elements for good (their records are never sent); add --yes`);
        return 1;
      }
      let removed = 0;
      for (const id of ids) {
        if (!(await q.lock(id))) continue;
        await q.remove(id);
        removed += 1;
      }
      out(`${removed} deleted`);
      return 0;
    }
    default:
      return usage(out);
  }
}

function usage(out: (line: string) => void): number {
  out(USAGE);
  return 2;
}
