/**
 * What the grid path writes into `staged/`: the facts of one fetch, as cheaply as they can be
 * written (records are built, checked and claimed later, off the call's path). One element:
 *
 *   ssp-usage 1\t<SessionFacts as JSON>\n
 *   <taskId>\t<1|0>\t<startMs>\t<endMs>\t<cpuMs>\t<processors>\t<maxRssKb>\t<maxVmemKb>\t<machine>\n   (one per task)
 *
 * A task id or machine name holding a tab, a line break or a backslash (never seen from a grid,
 * but possible) makes its row a JSON array instead, marked by a leading `[`.
 */
import type { TaskUsage } from './records';
import type { FinishedTask, SessionFacts } from './usage';

const MAGIC = 'ssp-usage 1\t';
const UNSAFE = /[\t\n\r\\]/;

export function encodeStaged(session: SessionFacts, tasks: readonly FinishedTask[]): string {
  let out = MAGIC + JSON.stringify(session) + '\n';
  for (const t of tasks) {
    const u = t.usage!;
    const ok = t.successful ? 1 : 0;
    if (UNSAFE.test(t.taskId) || UNSAFE.test(u.machine) || t.taskId.startsWith('['))
      out +=
        JSON.stringify([
          t.taskId,
          ok,
          u.startTimeMs,
          u.endTimeMs,
          u.cpuTimeMs,
          u.processors,
          u.maxRssKb,
          u.maxVmemKb,
          u.machine,
        ]) + '\n';
    else
      out += `${t.taskId}\t${ok}\t${u.startTimeMs}\t${u.endTimeMs}\t${u.cpuTimeMs}\t${u.processors}\t${u.maxRssKb}\t${u.maxVmemKb}\t${u.machine}\n`;
  }
  return out;
}

export interface StagedFetch {
  session: SessionFacts;
  tasks: FinishedTask[];
}

/** The inverse of encodeStaged; throws on anything else (a damaged or foreign file). */
export function decodeStaged(text: string): StagedFetch {
  if (!text.startsWith(MAGIC)) throw new Error('not a staged usage file (no "ssp-usage 1" header)');
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new Error('staged usage file cut short');
  lines.pop();
  const session = JSON.parse(lines[0]!.slice(MAGIC.length)) as SessionFacts;
  if (typeof session.sessionId !== 'string' || typeof session.cluster !== 'string')
    throw new Error('staged usage file without its session');
  const tasks: FinishedTask[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f: unknown[] = lines[i]!.startsWith('[')
      ? (JSON.parse(lines[i]!) as unknown[])
      : lines[i]!.split('\t');
    if (f.length !== 9) throw new Error(`staged usage row ${i} has ${f.length} fields, not 9`);
    const n = (k: number): number => {
      const v = Number(f[k]);
      if (!Number.isFinite(v)) throw new Error(`staged usage row ${i}: field ${k + 1} is not a number`);
      return v;
    };
    const usage: TaskUsage = {
      startTimeMs: n(2),
      endTimeMs: n(3),
      cpuTimeMs: n(4),
      processors: n(5),
      maxRssKb: n(6),
      maxVmemKb: n(7),
      machine: String(f[8]),
    };
    tasks.push({ taskId: String(f[0]), successful: String(f[1]) === '1', usage });
  }
  return { session, tasks };
}
